"""Unit tests of the small parts that the end-to-end tests only reach through a whole run.

Every module of the package is imported directly by at least one test (`test_every_module_is_imported_by_a_test`).
"""

import ast
import json
import math
import os
import stat

import numpy as np
import pytest
import torch

from reranker_kit.basics import distributed
from reranker_kit.basics.errors import KitError
from reranker_kit.basics.files import check_writable_folder, write_file_atomic, write_json_atomic
from reranker_kit.benchmark.settings import BenchmarkSettings
from reranker_kit.commands import benchmark_flags, embedding_flags
from reranker_kit.commands.benchmark import main as benchmark_main
from reranker_kit.commands.flag_names import as_flags
from reranker_kit.commands.train_reranker import build_parser as reranker_parser
from reranker_kit.commands.train_reranker import main as train_main
from reranker_kit.finetune.progress import read_checkpoint_progress, write_checkpoint_progress
from reranker_kit.finetune.verdict import NOT_JUDGED, Verdict
from reranker_kit.fusion import choose_fusion, setting_key
from reranker_kit.metrics.conventions import CUTOFFS, check_k, dedupe
from reranker_kit.reports.tables import difficulty_table, metrics_table
from reranker_kit.retrieval.base import select_top_k
from reranker_kit.retrieval.first_stage import describe_candidates
from reranker_kit.retrieval.lexical import LexicalIndex
from reranker_kit.training.arguments import LOSS_NAMES, RerankerSettings
from reranker_kit.training.cross_validation import summarize_folds, summary_table
from reranker_kit.training.losses import LOSSES, BinaryCrossEntropyLoss, ListwiseSoftmaxLoss, loss_from_name
from reranker_kit.training.outputs import dev_metrics_payload
from reranker_kit.training.result import DevMetrics, FoldResult

from conftest import ROOT


def default_config(*flags: str) -> RerankerSettings:
    from reranker_kit.commands.train_reranker import parse_settings_from

    return parse_settings_from(list(flags))


# basics

def test_run_on_main_runs_once_in_a_plain_launch(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("RANK", raising=False)
    calls = []
    assert distributed.run_on_main(lambda: calls.append(1) or "folder") == "folder"
    assert calls == [1] and distributed.world_size() == 1 and distributed.is_main_process()
    monkeypatch.setenv("RANK", "1")
    assert not distributed.is_main_process()


def test_an_atomic_write_that_fails_leaves_neither_the_file_nor_a_temporary(tmp_path):
    def broken(path):
        path.write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_file_atomic(tmp_path / "metrics.json", broken)
    assert list(tmp_path.iterdir()) == []


def test_an_atomic_write_gives_an_ordinary_file_the_umask_allows(tmp_path):
    write_json_atomic(tmp_path / "info.json", {"a": 1})
    assert json.loads((tmp_path / "info.json").read_text()) == {"a": 1}
    mode = stat.S_IMODE((tmp_path / "info.json").stat().st_mode)
    assert mode == 0o666 & ~_umask()


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def test_a_destination_under_a_file_is_refused_with_its_flag(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(KitError, match="--runs_root .* lies under .*file"):
        check_writable_folder(tmp_path / "file" / "outputs", "--runs_root")
    check_writable_folder(tmp_path / "new" / "folder", "--runs_root")  # Creatable: accepted, nothing made.
    assert not (tmp_path / "new").exists()


# metrics, retrieval

def test_conventions_check_k_and_keep_first_occurrences():
    assert CUTOFFS == (3, 5, 7) and dedupe([3, 1, 3, 2, 1]) == [3, 1, 2]
    with pytest.raises(ValueError):
        check_k(0)


def test_select_top_k_orders_best_first_and_caps_k():
    positions, scores = select_top_k(np.array([[0.1, 0.9, 0.5]]), 5)
    assert positions.tolist() == [[1, 2, 0]] and scores[0].tolist() == pytest.approx([0.9, 0.5, 0.1])


def test_lexical_index_finds_the_document_sharing_the_words():
    index = LexicalIndex(["Lịch sinh hoạt CLB vào tối thứ sáu", "Phí thành viên mỗi kỳ"], method="bm25")
    positions, _ = index.top_k(["phi thanh vien"], 1)  # Typed without diacritics.
    assert positions.tolist() == [[1]]


def test_describe_candidates_names_the_embedding_model_only_for_embedding_first_stages():
    assert describe_candidates("bm25", 20, False, "BAAI/bge-m3") == {"retriever": "bm25", "top_n": 20,
                                                                     "expanded_documents": False}
    assert describe_candidates("hybrid", 5, True, "m")["embedding_model"] == "m"
    assert describe_candidates("bm25", 20, False, None, from_file=True)["retriever"] == "candidates_file"


# reports

def rows(names=("first_stage", "fine_tuned")) -> list[dict]:
    return [{"name": name, "dataset": "test", "difficulty": level, "queries": 4,
             "metrics": {f"{metric}@{k}": 0.5 for metric in ("hit", "mrr") for k in CUTOFFS}}
            for name in names for level in (None, 1)]


def test_metrics_table_has_rankers_as_columns_and_only_measured_metrics():
    table = metrics_table([row for row in rows() if row["difficulty"] is None], "test", CUTOFFS)
    assert list(table.columns) == ["first_stage", "fine_tuned"] and list(table.index)[:3] == ["hit@3", "hit@5", "hit@7"]
    by_level = difficulty_table([row for row in rows() if row["difficulty"] is not None], "test", CUTOFFS)
    assert list(by_level.index) == ["difficulty 1 (4 queries) hit@5", "difficulty 1 (4 queries) mrr@5"]


# training: settings, losses, cross-validation, progress, outputs

def test_the_settings_round_trip_to_the_flat_arguments_training_info_records():
    args = vars(reranker_parser().parse_args(["--lr", "1e-4", "--loss", "listwise"]))
    settings = RerankerSettings.from_arguments(args)
    assert settings.optimisation.lr == 1e-4 and settings.optimisation.loss == "listwise"
    assert settings.as_arguments() == args  # Same keys and values as vars(args) wrote before the settings existed.
    with pytest.raises(ValueError, match="holds typo"):
        RerankerSettings.from_arguments({**args, "typo": 1})
    with pytest.raises(AttributeError):  # Frozen: no code below the CLI changes a setting on the way.
        settings.optimisation.lr = 1.0  # type: ignore[misc]


def test_every_flag_of_the_training_clis_is_one_settings_field_with_its_default_and_help():
    from reranker_kit.commands.train_embedder import build_parser as embedder_parser
    from reranker_kit.embedder.arguments import EmbedderSettings

    for settings_class, parser in ((RerankerSettings, reranker_parser()), (EmbedderSettings, embedder_parser())):
        owners = list(settings_class.setting_fields())
        flags = vars(parser.parse_args([]))
        assert sorted(owners) == sorted(flags) and len(owners) == len(set(owners))
        defaults = settings_class.from_arguments({}).as_arguments()
        assert defaults == flags  # Each flag's default is its field's.
        helps = {action.dest: action.help for action in parser._actions if action.option_strings}
        assert all(helps[name] for name in owners)


def test_a_setting_named_in_backticks_is_shown_as_its_flag_where_the_parser_knows_it():
    parser = reranker_parser()
    assert as_flags("`dev_ratio` must be in [0, 1), got 2", parser) == "--dev_ratio must be in [0, 1), got 2"
    assert as_flags("run `huggingface-cli login`; `unknown_name` stays", parser) == (
        "run `huggingface-cli login`; `unknown_name` stays")


def test_benchmark_settings_take_every_flag_of_main_py():
    args = vars(benchmark_flags.build_parser().parse_args(["--k", "3", "5", "--eval_xlsx", "a.xlsx"]))
    settings = BenchmarkSettings.from_arguments(args)
    assert settings.k == (3, 5) and settings.eval_xlsx == ("a.xlsx",)
    assert set(args) == set(BenchmarkSettings.__dataclass_fields__)


def test_embedding_flags_are_the_same_in_both_clis():
    """One definition; main.py's default is `auto` (the newest embedder run), training's the base encoder."""
    import argparse

    parser = argparse.ArgumentParser()
    embedding_flags.add_embedding_flags(parser)
    shared = vars(parser.parse_args([]))
    assert shared["embedding_cache_dir"] == vars(reranker_parser().parse_args([]))["embedding_cache_dir"]
    from_main = vars(benchmark_flags.build_parser().parse_args([]))
    assert from_main["embedding_model"] == "auto" and from_main["embedding_cache_dir"] == shared["embedding_cache_dir"]


def test_the_losses_are_the_formulas_on_hand_computed_logits():
    logits = torch.tensor([[2.0], [-1.0], [0.5]])
    bce = BinaryCrossEntropyLoss()(logits, {"labels": torch.tensor([1.0, 0.0, 0.0])})
    expected = -(math.log(1 / (1 + math.exp(-2))) + math.log(1 - 1 / (1 + math.exp(1)))
                 + math.log(1 - 1 / (1 + math.exp(-0.5)))) / 3
    assert bce.item() == pytest.approx(expected, rel=1e-6)
    listwise = ListwiseSoftmaxLoss()(logits, {"group_sizes": torch.tensor([2, 1])})
    first = -math.log(math.exp(2) / (math.exp(2) + math.exp(-1)))
    assert listwise.item() == pytest.approx((first + 0.0) / 2, rel=1e-6)
    assert tuple(LOSSES) == LOSS_NAMES and isinstance(loss_from_name("listwise"), ListwiseSoftmaxLoss)
    assert loss_from_name("listwise").rows_are_groups and not loss_from_name("bce").rows_are_groups


def test_the_loss_flag_reaches_the_config_and_names_a_loss():
    assert loss_from_name(default_config("--loss", "listwise").optimisation.loss).name == "listwise"


def fold_result(first_stage: float, fine_tuned: float, qids: list[str]) -> FoldResult:
    metric_names = [f"{metric}@{k}" for metric in ("hit", "mrr", "ndcg") for k in CUTOFFS]
    per_query = {setting_key("minmax", weight / 10): {qid: dict.fromkeys(metric_names, fine_tuned if weight else first_stage)
                                                       for qid in qids} for weight in range(11)}
    fusion = choose_fusion(per_query, "mrr@5")
    dev = DevMetrics(fine_tuned=dict.fromkeys(metric_names, fine_tuned), pretrained=dict.fromkeys(metric_names, 0.1),
                     first_stage=dict.fromkeys(metric_names, first_stage), fused=fusion.fused_dev_metrics,
                     metric_for_best_model="mrr@5")
    return FoldResult(dev=dev, fusion=fusion)


def test_cross_validation_summary_gives_each_folds_value_its_mean_and_spread():
    results = [fold_result(0.4, 0.6, ["a", "b"]), fold_result(0.5, 0.7, ["c", "d"])]
    summary = summarize_folds(results)
    assert summary["fine_tuned"]["mrr@5"]["folds"] == [0.6, 0.7]
    assert summary["fine_tuned"]["mrr@5"]["mean"] == pytest.approx(0.65)
    assert summary["fine_tuned"]["mrr@5"]["std"] == pytest.approx(math.sqrt(0.005))
    assert len(summary["fused"]["settings"]) == 2  # Each fold's setting, chosen on the other fold.
    assert "| fine_tuned | " in summary_table(summary)


def test_checkpoint_progress_round_trips_and_a_broken_file_starts_from_scratch(tmp_path):
    write_checkpoint_progress(tmp_path, "bundled-minilm", 12.5, "reranker")
    assert read_checkpoint_progress(tmp_path) == {"base_model": "bundled-minilm", "wall_time_s": 12.5, "kind": "reranker"}
    (tmp_path / "run_progress.json").write_text("{not json")
    assert read_checkpoint_progress(tmp_path) == {} and read_checkpoint_progress(None) == {}


def test_dev_metrics_payload_puts_the_fine_tuned_metrics_on_top():
    from reranker_kit.training.result import TrainingResult

    fold = fold_result(0.4, 0.6, ["a"])
    result = TrainingResult(dev=fold.dev, fusion=fold.fusion, train_metrics={}, log_history=[], best_checkpoint=None,
                            base_model={}, device="cpu", world_size=1, peak_memory_gib={})
    payload = dev_metrics_payload(result, Verdict(NOT_JUDGED, "fine-tuned"))
    assert payload["mrr@5"] == 0.6 and payload["baseline"]["mrr@5"] == 0.1 and payload["first_stage"]["mrr@5"] == 0.4
    assert payload["verdict"] == NOT_JUDGED and payload["saved_weights"] == "fine-tuned"


# commands: bad flags exit 2 before anything runs

@pytest.mark.parametrize("main, flags", [(train_main, ["--dev_ratio", "1.5"]), (benchmark_main, ["--top_n", "0"])])
def test_the_commands_refuse_bad_flags_with_exit_status_2(main, flags):
    with pytest.raises(SystemExit) as stopped:
        main(flags)
    assert stopped.value.code == 2


def test_every_module_is_imported_by_a_test():
    modules = {".".join(path.relative_to(ROOT).with_suffix("").parts) for path in (ROOT / "reranker_kit").rglob("*.py")
               if path.name != "__init__.py"}
    imported = set()
    for path in (ROOT / "tests").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
            elif isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
    assert sorted(modules - imported) == []


# The modules the tests above reach only through whole runs, each with a small direct test.

def small_corpus() -> dict[int, str]:
    return {1: "CLB tuyển thành viên mới vào tháng 9 hằng năm.", 2: "Phí thành viên là 100.000 đồng mỗi kỳ.",
            3: "Lịch sinh hoạt vào tối thứ sáu tại phòng 302."}


def small_queries():
    from reranker_kit.data.loading import Query

    return [Query("q1", "phí thành viên bao nhiêu", (2,), "100.000 đồng mỗi kỳ.", 1, "t.xlsx", 2),
            Query("q2", "khi nào tuyển thành viên", (1,), "Tháng 9 hằng năm.", 2, "t.xlsx", 3)]


def benchmark_settings(**changes) -> BenchmarkSettings:
    args = vars(benchmark_flags.build_parser().parse_args([]))
    return BenchmarkSettings.from_arguments({**args, **changes})


def test_the_benchmark_first_stage_retrieves_every_file_and_says_what_it_was():
    from reranker_kit.benchmark.candidates import first_stage_candidates

    candidates, described = first_stage_candidates(benchmark_settings(top_n=2), small_corpus(), {"t": small_queries()},
                                                   None)
    assert described == {"method": "bm25"} and candidates["t"].ids["q1"][0] == 2 and len(candidates["t"].ids["q2"]) == 2


def test_the_benchmark_fuses_at_a_given_weight_and_finds_no_run_when_told_none():
    from reranker_kit.benchmark.run import find_fine_tuned, resolve_fusion

    assert find_fine_tuned(benchmark_settings(reranker="none")) is None
    assert resolve_fusion(benchmark_settings(fusion_weight="0.3"), ROOT) == ("minmax", 0.3)
    assert resolve_fusion(benchmark_settings(fusion_weight="none"), ROOT) is None


def test_the_fusion_warning_takes_one_embedder_folder_written_two_ways_as_the_same(tmp_path, monkeypatch, caplog):
    """README's quick start: training records `latest` as an absolute path, main.py's `auto` finds the same run
    as outputs/...; that is the same first stage, while another folder is not."""
    from safetensors.numpy import save_file

    from reranker_kit.benchmark.run import warn_about_fusion_first_stage

    monkeypatch.chdir(tmp_path)
    embedder, other = tmp_path / "outputs" / "embedder-finetuned-1", tmp_path / "outputs" / "embedder-finetuned-2"
    for folder in (embedder, other):  # Folders that load as models: a config and whole weights.
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
        save_file({"weight": np.zeros(1, dtype=np.float32)}, str(folder / "model.safetensors"))
    run_dir = tmp_path / "outputs" / "reranker-finetuned-1"
    run_dir.mkdir()
    (run_dir / "fusion.json").write_text(json.dumps({"method": "minmax", "weight": 0.2, "retriever": "hybrid", "top_n": 20,
                                                     "expanded_documents": False, "embedding_model": str(embedder)}))
    hybrid = benchmark_settings(retriever="hybrid", top_n=20)
    with caplog.at_level("WARNING"):
        warn_about_fusion_first_stage(run_dir, hybrid, "outputs/embedder-finetuned-1")
    assert "unlike the ones ranked here" not in caplog.text
    with caplog.at_level("WARNING"):
        warn_about_fusion_first_stage(run_dir, hybrid, "outputs/embedder-finetuned-2")
    assert "embedding_model" in caplog.text and "unlike the ones ranked here" in caplog.text


def test_metrics_modules_on_a_hand_made_ranking():
    from reranker_kit.metrics.context_recall import context_recall_at_k
    from reranker_kit.metrics.ranking import hit_at_k, mrr_at_k

    assert hit_at_k([3, 2, 1], [2], 1) == 0.0 and mrr_at_k([3, 2, 1], [2], 3) == 0.5
    assert context_recall_at_k(["Phí thành viên là 100 nghìn đồng mỗi kỳ."], "Phí thành viên mỗi kỳ. Trời mưa to.", 1) == 0.5


def test_a_cross_encoder_loads_with_one_logit_and_pairs_stay_within_the_budget():
    from reranker_kit.models.loading import load_cross_encoder
    from reranker_kit.models.pair_encoding import encode_pairs, position_limit

    model, tokenizer, resolved = load_cross_encoder("bundled-minilm")
    assert model.config.num_labels == 1 and position_limit(model.config) == 512
    encoded = encode_pairs(tokenizer, [("câu hỏi " * 50, "văn bản dài " * 400)], 64)
    assert len(encoded[0]["input_ids"]) <= 64


def test_the_reranker_ranks_best_first_and_the_onnx_files_have_fixed_names(tmp_path):
    from reranker_kit.models.onnx_export import FP32_FILE, INT8_FILE, onnx_file
    from reranker_kit.models.reranker import Reranker

    reranker = Reranker(model_name="bundled-minilm", batch_size=2)
    scores, ranked = reranker("phí thành viên", list(small_corpus().values()))
    assert list(scores) == sorted(scores, reverse=True) and sorted(ranked) == sorted(small_corpus().values())
    assert onnx_file(tmp_path, int8=False) == tmp_path / "onnx" / FP32_FILE
    assert onnx_file(tmp_path, int8=True).name == INT8_FILE


def test_the_model_card_renders_the_facts_it_is_given(tmp_path):
    from huggingface_hub import ModelCard

    from reranker_kit.training.model_card import CardFacts, write_model_card

    info = {"base_model": {"name": "namdp-ptit/ViRanker", "resolved": "namdp-ptit/ViRanker"}, "wall_time_s": 3.0,
            "device": "cpu", "data": {"train_queries": 8, "documents": 3, "dev_queries": 2, "augmented_train_queries": 8,
                                      "answer_queries": 0, "corpus_sentence_queries": 0},
            "pairs": {"positive_pairs": 8, "hard_negative_pairs": 16, "random_negative_pairs": 8}}
    facts = CardFacts(corpus_file="c.csv", train_file="t.xlsx", dev_top_n=20, augment_with_answers=False,
                      pseudo_queries_per_document=0, settings={"lr": 2e-5}, hub_model_id="me/model")
    write_model_card(tmp_path / "README.md", info, {"baseline": {"mrr@5": 0.5}, "mrr@5": 0.6}, facts)
    card = ModelCard.load(tmp_path / "README.md")
    assert card.data.base_model == "namdp-ptit/ViRanker" and "| `lr` | 2e-05 |" in card.text
    assert "8 labelled queries from `t.xlsx`" in card.text and 'Reranker(model_name="me/model")' in card.text


def test_training_curves_are_written_as_a_png(tmp_path):
    from reranker_kit.reports.plots import plot_training_curves

    history = [{"step": 1, "loss": 0.7}, {"step": 2, "loss": 0.6, "eval_mrr@5": 0.4}]
    plot_training_curves(history, {"mrr@5": 0.3}, "mrr@5", tmp_path / "curves.png")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_dataset_takes_the_shape_its_loss_asks_for():
    from transformers import AutoTokenizer

    from reranker_kit.basics.model_files import resolve_model_name
    from reranker_kit.finetune.negatives import TrainingGroup
    from reranker_kit.training.dataset import CrossEncoderCollator, build_train_dataset

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_name("bundled-minilm"))
    groups = [TrainingGroup("phí thành viên", 2, (1,), (3,))]
    pairs = build_train_dataset(groups, small_corpus(), tokenizer, 32, rows_are_groups=False)
    assert pairs["labels"] == [1.0, 0.0, 0.0]
    grouped = build_train_dataset(groups, small_corpus(), tokenizer, 32, rows_are_groups=True)
    assert len(grouped) == 1
    batch = CrossEncoderCollator(tokenizer, rows_are_groups=True)([grouped[0]])
    assert batch["group_sizes"].tolist() == [3] and batch["input_ids"].shape[0] == 3


def test_dev_evaluation_scores_the_first_stage_on_its_own_candidates():
    from reranker_kit.retrieval.candidates import Candidates
    from reranker_kit.training.dev_evaluation import DevEvaluator

    candidates = Candidates(ids={"q1": [1, 2], "q2": [1, 3]},
                            first_stage_scores={"q1": np.array([2.0, 1.0]), "q2": np.array([2.0, 1.0])})
    evaluator = DevEvaluator(small_queries(), [], small_corpus(), candidates, tokenizer=None, max_length=32, batch_size=2)
    metrics = evaluator.first_stage_metrics()
    assert metrics["hit@3"] == 1.0 and metrics["mrr@3"] == pytest.approx((0.5 + 1.0) / 2)


def test_the_job_refuses_a_corpus_without_negatives_and_a_used_output_dir(tmp_path):
    from reranker_kit.basics.errors import DataError
    from reranker_kit.finetune.data import require_negatives
    from reranker_kit.finetune.run_folders import new_run_dir
    from reranker_kit.training.runner import RERANKER

    with pytest.raises(DataError, match="at least 2 documents"):
        require_negatives({2: "x"}, small_queries()[:1], "c.csv")
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "model.safetensors").write_text("x")
    with pytest.raises(KitError, match="already holds files"):
        new_run_dir(tmp_path, str(tmp_path / "used"), RERANKER)


def test_a_resume_refuses_a_base_model_of_another_shape(tmp_path, tiny_xlmr_model):
    import shutil

    from reranker_kit.basics.errors import CheckpointError
    from reranker_kit.basics.model_files import resolve_model_name
    from reranker_kit.finetune.progress import check_base_model

    checkpoint = tmp_path / "checkpoint-2"
    checkpoint.mkdir()
    for name in ("config.json", "model.safetensors"):  # A checkpoint holds the weights beside the config.
        shutil.copy(os.path.join(resolve_model_name("bundled-minilm"), name), checkpoint / name)
    write_checkpoint_progress(checkpoint, "bundled-minilm", 1.0, "reranker")
    check_base_model(checkpoint, "bundled-minilm")  # The same model: accepted.
    check_base_model(checkpoint, resolve_model_name("bundled-minilm"))  # The same model by its folder: accepted.
    with pytest.raises(CheckpointError, match="resume with `base_model` bundled-minilm"):
        check_base_model(checkpoint, str(tiny_xlmr_model))


def test_a_run_folder_written_before_the_typed_config_is_found_read_and_evaluated(trained_run, small_data, tmp_path):
    """training_info.json keeps its keys: a run of the kit at 8a1dbc5 loads in the config and in main.py."""
    import shutil

    from reranker_kit.run_folder import newest_finished_run, read_run_info, stored_fusion

    from conftest import run_script

    run_dir, _ = trained_run
    old = tmp_path / "outputs" / "reranker-finetuned-20261202-005233"
    shutil.copytree(run_dir, old)
    for name in ("training_info.json", "fusion.json", "dev_metrics.json"):
        shutil.copy(ROOT / "tests" / "fixtures" / "run_before_typed_config" / name, old / name)
    info = read_run_info(old)
    settings = RerankerSettings.from_arguments(info["arguments"])  # Settings added since 8a1dbc5 take their defaults.
    assert {key: value for key, value in settings.as_arguments().items() if key in info["arguments"]} == info["arguments"]
    assert newest_finished_run(tmp_path / "outputs") == old and stored_fusion(old) == ("minmax", 0.0)
    result = run_script("main.py", "--corpus_csv", str(small_data["corpus"]), "--eval_xlsx", str(small_data["test"]),
                        "--pretrained_reranker", "none", "--top_n", "5", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"fine-tuned reranker: outputs/{old.name}" in result.stderr and "fused_minmax_w0.0" in result.stdout


def test_serving_parts_on_their_own():
    """The server's request parsing, responses and micro-batcher without HTTP (tests/test_serving.py goes through it)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from reranker_kit.serving.batching import MicroBatcher
    from reranker_kit.serving.requests import RequestError, parse_cohere_request, parse_tei_request
    from reranker_kit.serving.responses import cohere_response, tei_response
    from reranker_kit.serving.served_model import ServedModel
    from reranker_kit.serving.settings import ServingSettings

    tei = parse_tei_request({"query": "phí", "texts": ["a", "b"], "raw_scores": True}, max_documents=5)
    assert [item["index"] for item in tei_response(tei, [(0.1, 3), (2.0, 3)])] == [1, 0]
    cohere = parse_cohere_request({"query": "phí", "documents": [{"text": "a"}, "b"], "top_n": 1}, max_documents=5)
    assert [item["index"] for item in cohere_response(cohere, [(0.1, 3), (2.0, 3)], "m")["results"]] == [1]
    with pytest.raises(RequestError):
        parse_tei_request({"query": "", "texts": ["a"]}, max_documents=5)

    calls = []

    def score(pairs):
        calls.append(len(pairs))
        return [len(text) for _, text in pairs]

    async def two_requests():
        batcher = MicroBatcher(score, ThreadPoolExecutor(1), max_batch_pairs=8, max_wait_s=0.05, max_queued_pairs=8,
                               timeout_s=30)
        batcher.start()
        results = await asyncio.gather(batcher.score([("q", "ab")]), batcher.score([("q", "abc"), ("q", "a")]))
        await batcher.stop()
        return results

    assert asyncio.run(two_requests()) == [[2], [3, 1]] and calls == [3]  # One batch, each its own answer.
    settings = ServingSettings(model="bundled-minilm", backend="torch", device="cpu", max_length=64, batch_size=4,
                               max_batch_pairs=8, max_wait_ms=1, max_documents=10, max_body_bytes=4096)
    served = ServedModel(settings, load=lambda settings: None)
    served.fail("no weights")
    assert served.info()["status"] == "failed"


def test_comparison_pairs_report_what_fine_tuning_and_fusion_gained():
    from reranker_kit.benchmark.comparisons import comparison_pairs

    assert comparison_pairs(["first_stage", "pretrained", "fine_tuned", "fused_rrf_w0.2"]) == [
        ("fine_tuned", "pretrained"), ("fine_tuned", "first_stage"), ("fused_rrf_w0.2", "first_stage")]
    assert comparison_pairs(["first_stage"]) == []


def test_the_embedder_parts_on_their_own(tmp_path):
    """fine_tune_embedder.py's modules, each directly (tests/test_fine_tune_embedder.py runs them end to end)."""
    import reranker_kit.embedder.cross_validation as embedder_cv
    import reranker_kit.embedder.dev_evaluation as embedder_dev
    import reranker_kit.embedder.model_card as embedder_card
    import reranker_kit.embedder.modeling as embedder_modeling
    import reranker_kit.embedder.outputs as embedder_outputs
    import reranker_kit.embedder.run as embedder_run
    import reranker_kit.embedder.runner as embedder_runner
    from reranker_kit.benchmark.encoders import choose_encoder
    from reranker_kit.commands.settings_flags import settings_from_namespace
    from reranker_kit.commands.train_embedder import build_parser
    from reranker_kit.embedder.arguments import EmbedderSettings
    from reranker_kit.embedder.dataset import build_triples, negative_columns
    from reranker_kit.finetune.mining import MiningSettings
    from reranker_kit.finetune.negatives import TrainingGroup
    from reranker_kit.finetune.trainer import eval_interval

    settings = settings_from_namespace(EmbedderSettings, build_parser().parse_args(["--seed", "7", "--dev_top_n", "30"]))
    mining = MiningSettings.of(settings)
    assert mining.seed == 7 and mining.dev_top_n == 30 and mining.negatives.num_hard_negatives == 1
    triples = build_triples([TrainingGroup("phí", 2, (1,), (3,))], small_corpus(), negatives_per_row=1)
    assert triples.rows == 1 and negative_columns(2) == ["negative_1", "negative_2"]
    short = build_triples([TrainingGroup("phí", 2, (1,), ())], small_corpus(), negatives_per_row=2)
    assert short.rows == 0 and short.rows_short_of_negatives == 1  # Left out, never padded with a repeat.
    assert eval_interval(settings, train_rows=64, has_dev=True) == (2, 2)
    assert choose_encoder("bm25", "auto", str(tmp_path)) is None  # A lexical first stage embeds nothing.
    assert choose_encoder("hybrid", "auto", str(tmp_path)).model == "bundled-e5"  # No embedder run; bge-m3 offline.
    assert embedder_dev.HYBRID_FUSION == "minmax" and embedder_card.PIPELINE_TAG == "sentence-similarity"
    assert embedder_runner.EMBEDDER.script == "fine_tune_embedder.py" and callable(embedder_run.train_embedder)
    assert callable(embedder_outputs.write_finished_embedder_run) and callable(embedder_modeling.load_encoder)
    assert callable(embedder_cv.write_embedder_cv_report)
