"""The training CLI end to end on CPU: smoke runs, outputs, flag validation, resume, FlagReranker parity."""

import json
import shutil

import pytest
from safetensors.torch import load_file

from reranker_kit.data.augmentation import passages_as_queries
from reranker_kit.data.loading import load_corpus

from conftest import QUICK, data_flags, run_script


def test_bundled_smoke_run_writes_every_output(trained_run):
    run_dir, result = trained_run
    for name in ("config.json", "model.safetensors", "tokenizer.json", "training_info.json", "dev_metrics.json",
                 "trainer_state.json", "train_results.json", "training_curves.png", "README.md", "fusion.json",
                 "baseline_dev_metrics.json"):
        assert (run_dir / name).is_file(), name
    assert [path.name for path in sorted(run_dir.glob("checkpoint-*"))] == ["checkpoint-2", "checkpoint-4"]
    info = json.loads((run_dir / "training_info.json").read_text())
    assert info["status"] == "complete" and info["arguments"]["max_steps"] == 4
    assert info["base_model"]["name"] == "bundled-minilm" and info["base_model"]["resolved"].endswith("model")
    assert info["data"]["train_pairs"]["positive_pairs"] > 0 and info["data"]["dev_queries"] > 0
    # Training queries = the labelled ones, their answers, and the corpus sentences the flags ask for.
    corpus_sentences = passages_as_queries(load_corpus(info["arguments"]["corpus_csv"]),
                                           info["arguments"]["pseudo_queries_per_document"])
    assert info["data"]["augmented_train_queries"] == 2 * info["data"]["train_queries"] + len(corpus_sentences)
    assert info["data"]["train_pairs"]["queries"] == info["data"]["augmented_train_queries"]
    assert {"torch", "transformers", "FlagEmbedding"} <= set(info["library_versions"])
    assert info["wall_time_s"] > 0 and info["peak_memory_gib"]["process_rss"] > 0
    dev = json.loads((run_dir / "dev_metrics.json").read_text())
    seed_keys = {"accuracy", "avg_pos_score", "avg_neg_score", "margin"}
    ranking_keys = {f"{metric}@{k}" for metric in ("hit", "mrr", "ndcg") for k in (3, 5, 7)}
    assert seed_keys | ranking_keys <= set(dev) and seed_keys | ranking_keys <= set(dev["baseline"])
    assert dev["margin"] == pytest.approx(dev["avg_pos_score"] - dev["avg_neg_score"])
    assert all(0 <= dev[key] <= 1 for key in ranking_keys)
    state = json.loads((run_dir / "trainer_state.json").read_text())
    losses = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    assert len(losses) == 4 and all(0 < loss < 5 for loss in losses)
    assert any("eval_mrr@5" in entry for entry in state["log_history"])
    fusion = json.loads((run_dir / "fusion.json").read_text())
    assert 0 <= fusion["weight"] <= 1 and fusion["metric"] == "mrr@5"
    assert fusion["method"] in ("minmax", "zscore", "rrf") and fusion["queries"] == info["data"]["dev_queries"]
    assert "training pairs:" in result.stderr and "hard negative" in result.stderr


def test_saved_model_scores_like_flag_reranker(trained_run):
    from FlagEmbedding import FlagReranker

    from rerank import Reranker

    run_dir, _ = trained_run
    pairs = [("CLB tuyển thành viên khi nào ạ?", "Đợt tuyển chính diễn ra vào tháng 9 hằng năm."),
             ("em ko hoc CNTT co vao dc ko", "CLB nhận sinh viên mọi ngành. " * 200),
             ("phí", "Phí thành viên là 100.000 đồng mỗi kỳ.")]
    ours = Reranker(model_name=str(run_dir), device="cpu").compute_score(pairs, normalize=True)
    reference = FlagReranker(str(run_dir), use_fp16=False, devices="cpu").compute_score(pairs, normalize=True)
    assert ours == pytest.approx(reference, abs=1e-5)


def test_tiny_xlm_roberta_smoke_run(small_data, tiny_xlmr_model, tmp_path):
    result = run_script("fine_tune_reranker.py", *data_flags(small_data), "--base_model", str(tiny_xlmr_model),
                        "--max_steps", "2", "--loss", "listwise", "--output_dir", str(tmp_path / "run"), *QUICK,
                        "--max_seq_length", "512", "--gradient_checkpointing", "--fp16", "--lr", "1e-3", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    # The tiny model has 130 positions = 128 tokens after RoBERTa's offset; fp16 falls back on CPU.
    assert "exceeds what" in result.stderr and "using 128" in result.stderr
    assert "needs a CUDA GPU" in result.stderr
    info = json.loads((tmp_path / "run" / "training_info.json").read_text())
    assert info["base_model"]["max_length"] == 128 and info["arguments"]["loss"] == "listwise"


def test_resume_continues_the_interrupted_run_exactly(small_data, tmp_path):
    """A run cut after checkpoint-2 and resumed ends with the same weights as one never interrupted.

    With --dev_ratio 0 the last step's weights are kept, so equality needs the optimizer, scheduler,
    step and data order restored: a warm start from the checkpoint's weights would differ.
    """
    flags = [*data_flags(small_data), "--base_model", "bundled-minilm", "--max_steps", "4", "--dev_ratio", "0",
             *QUICK, "--lr", "1e-4", "--keep_checkpoints"]
    whole = run_script("fine_tune_reranker.py", *flags, "--output_dir", str(tmp_path / "whole"), cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]
    assert "nothing judges the trained weights, the last step's are kept" in whole.stderr
    cut = tmp_path / "cut"
    shutil.copytree(tmp_path / "whole", cut)
    # What a crash right after step 2's checkpoint leaves behind.
    shutil.rmtree(cut / "checkpoint-4")
    for path in cut.iterdir():
        if path.is_file():
            path.unlink()
    resumed = run_script("fine_tune_reranker.py", *flags, "--resume_from_checkpoint", "latest",
                         "--output_dir", str(cut), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "from checkpoint-2" in resumed.stderr
    state = json.loads((cut / "trainer_state.json").read_text())
    assert state["global_step"] == 4
    expected, actual = load_file(tmp_path / "whole" / "model.safetensors"), load_file(cut / "model.safetensors")
    start = load_file(cut / "checkpoint-2" / "model.safetensors")
    for name, tensor in expected.items():
        assert (actual[name] - tensor).abs().max() < 1e-5, name
    assert any((start[name] - tensor).abs().max() > 1e-4 for name, tensor in expected.items())


@pytest.mark.parametrize("flags, message", [
    (["--fp16", "--bf16"], "exclude each other"),
    (["--dev_ratio", "1.5"], "--dev_ratio must be in [0, 1)"),
    (["--num_hard_negatives", "-1"], "--num_hard_negatives must be 0 or more"),
    (["--pseudo_queries_per_document", "-2"], "--pseudo_queries_per_document must be 0 or more"),
    (["--num_hard_negatives", "0", "--num_random_negatives", "0"], "no negatives requested"),
    (["--batch_size", "0"], "--batch_size must be 1 or more"),
    (["--max_steps", "0"], "--max_steps must be -1"),
    (["--metric_for_best_model", "loss"], "--metric_for_best_model must be"),
    (["--save_steps", "30", "--eval_steps", "20"], "must be a multiple of --eval_steps"),
    (["--warmup_ratio", "2"], "--warmup_ratio must be in [0, 1]"),
    (["--hard_neg_method", "splade"], "invalid choice"),
    (["--hard_neg_method", "dense", "--embedding_model", "./no/such/encoder"], "does not exist"),
    (["--candidates", "missing.jsonl"], "missing.jsonl: file not found"),
    (["--teacher_model", "bundled-minilm"], "add --filter_false_negatives"),
    (["--filter_false_negatives", "--false_negative_margin", "1"], "--false_negative_margin must be in [0, 1)"),
    (["--dev_ratio", "0.001"], "leaves no dev query"),
    (["--resume_from_checkpoint", "CLB_PROPTIT.csv"], "is not a Trainer checkpoint"),
    (["--resume_from_checkpoint", "latest"], "no unfinished reranker run with a checkpoint"),
    (["--base_model", "./no/such/model"], "does not exist"),
    (["--base_model", "namdp-ptit/ViRanker"], "--base_model bundled-e5"),
])
def test_bad_flags_exit_2_with_a_clear_message(small_data, tmp_path, flags, message):
    (tmp_path / "CLB_PROPTIT.csv").write_text("not a checkpoint", encoding="utf-8")
    result = run_script("fine_tune_reranker.py", *data_flags(small_data), "--max_steps", "1", *flags, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    finished = [path for path in tmp_path.glob("outputs/*") if (path / "training_info.json").exists()]
    assert not finished


def test_existing_output_dir_is_never_overwritten(small_data, tmp_path):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("my notes", encoding="utf-8")
    result = run_script("fine_tune_reranker.py", *data_flags(small_data), "--base_model", "bundled-minilm",
                        "--output_dir", str(target), cwd=tmp_path)
    assert result.returncode == 2 and "already holds files" in result.stderr
    assert [path.name for path in target.iterdir()] == ["notes.txt"]


def test_cross_validation_reports_every_fold(small_data, tmp_path):
    result = run_script("fine_tune_reranker.py", *data_flags(small_data), "--base_model", "bundled-minilm",
                        "--cv_folds", "2", "--max_steps", "1", *QUICK, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (cv_dir,) = (tmp_path / "outputs").glob("reranker-cv-*")
    report = json.loads((cv_dir / "cv_results.json").read_text())
    assert set(report["summary"]) == {"first_stage", "pretrained", "fine_tuned", "fused"}
    mrr = report["summary"]["fine_tuned"]["mrr@5"]
    assert len(mrr["folds"]) == 2 and mrr["mean"] == pytest.approx(sum(mrr["folds"]) / 2)
    for fold in ("fold-1", "fold-2"):
        assert (cv_dir / fold / "dev_metrics.json").is_file()
        assert not (cv_dir / fold / "model.safetensors").exists() and not list((cv_dir / fold).glob("checkpoint-*"))
    dev_sizes = [json.loads((cv_dir / fold / "training_info.json").read_text())["data"]["dev_queries"]
                 for fold in ("fold-1", "fold-2")]
    assert abs(dev_sizes[0] - dev_sizes[1]) <= 1
    assert "| fine_tuned |" in (cv_dir / "cv_results.md").read_text()


def test_checkpoint_as_base_model_is_a_warm_start_in_a_new_folder(small_data, trained_run, tmp_path):
    checkpoint = trained_run[0] / "checkpoint-2"
    result = run_script("fine_tune_reranker.py", *data_flags(small_data), "--base_model", str(checkpoint),
                        "--max_steps", "1", *QUICK, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs").glob("reranker-finetuned-*")
    info = json.loads((run_dir / "training_info.json").read_text())
    assert info["base_model"]["resolved"] == str(checkpoint)
    state = json.loads((run_dir / "trainer_state.json").read_text())
    assert state["global_step"] == 1  # A fresh schedule, not step 3 of the old run.
    assert "newly initialized" not in result.stderr  # The trained head came along.
