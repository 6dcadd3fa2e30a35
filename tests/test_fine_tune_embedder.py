"""fine_tune_embedder.py end to end on CPU (bundled MiniLM, a few steps): outputs, loading, resume, bad input,
main.py's use of the newest embedder run, and an embedding cache that never mixes two encoders."""

import json
import shutil

import numpy as np
import pytest
from safetensors.torch import load_file
from test_cli_contract import only_error_line
from test_data_loading import bad_input_files

from reranker_kit.finetune.verdict import VERDICTS

from conftest import QUICK_EMBEDDER, data_flags, run_script

FIRST_STAGE_KEYS = {f"{metric}@{k}" for metric in ("hit", "mrr", "recall") for k in (3, 5, 7)} | {"recall@20"}


def test_the_cli_writes_a_finished_run_with_every_output(embedder_run):
    run_dir, result = embedder_run
    for name in ("modules.json", "config.json", "model.safetensors", "dev_metrics.json", "hybrid.json", "README.md",
                 "training_curves.png", "trainer_state.json", "training_info.json"):
        assert (run_dir / name).is_file(), name
    assert [path.name for path in sorted(run_dir.glob("checkpoint-*"))] == ["checkpoint-2", "checkpoint-4"]
    written = sorted((path for path in run_dir.iterdir() if path.is_file()), key=lambda path: path.stat().st_mtime_ns)
    assert written[-1].name == "training_info.json"  # Last: it marks the run finished.
    info = json.loads((run_dir / "training_info.json").read_text())
    assert info["status"] == "complete" and info["kind"] == "embedder"
    assert info["arguments"]["max_steps"] == 4 and info["data"]["train_rows"] > 0
    assert info["data"]["answer_queries"] == info["data"]["train_queries"] > 0
    dev = json.loads((run_dir / "dev_metrics.json").read_text())
    assert dev["verdict"] in VERDICTS and dev["metric_for_best_model"] == "recall@20"
    assert dev["saved_weights"] in ("base", "fine-tuned") and dev["trained_vs_base"]["n_queries"] == info["data"]["dev_queries"]
    for encoder in ("base", "fine_tuned"):
        assert FIRST_STAGE_KEYS <= set(dev[encoder]["dense"]) and FIRST_STAGE_KEYS <= set(dev[encoder]["hybrid"])
    saved = dev["base" if dev["saved_weights"] == "base" else "fine_tuned"]["dense"]
    assert all(dev[key] == saved[key] for key in FIRST_STAGE_KEYS)
    hybrid = json.loads((run_dir / "hybrid.json").read_text())
    assert 0 <= hybrid["dense_weight"]["run"] <= 1 and hybrid["queries"] == info["data"]["dev_queries"]
    assert sum("verdict:" in line for line in result.stderr.splitlines()) == 1
    assert "pipeline_tag: sentence-similarity" in (run_dir / "README.md").read_text()


def test_the_run_folder_loads_in_sentence_transformers(embedder_run):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(embedder_run[0]), device="cpu")
    embeddings = model.encode(["CLB tuyển thành viên khi nào ạ?", "Đợt tuyển chính vào tháng 9."])
    assert embeddings.shape == (2, 384) and np.isfinite(embeddings).all()


def test_a_base_that_wins_is_the_saved_model(embedder_run):
    """When the verdict keeps the base, the folder holds the base's weights; otherwise the best checkpoint's."""
    from reranker_kit.basics.model_files import bundled_model_path

    run_dir = embedder_run[0]
    dev = json.loads((run_dir / "dev_metrics.json").read_text())
    saved = load_file(run_dir / "model.safetensors")
    reference_dir = bundled_model_path() if dev["saved_weights"] == "base" else run_dir / "checkpoint-2"
    reference = load_file(next(reference_dir.glob("model.safetensors")))
    key = "embeddings.word_embeddings.weight"
    assert np.allclose(saved[key].numpy(), reference[key].numpy())


def test_resume_continues_the_interrupted_run_exactly(small_data, tmp_path):
    flags = [*data_flags(small_data), *QUICK_EMBEDDER, "--max_steps", "4", "--dev_ratio", "0", "--lr", "1e-4"]
    whole = run_script("fine_tune_embedder.py", *flags, "--output_dir", str(tmp_path / "whole"), "--keep_checkpoints",
                       cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr[-3000:]
    cut = tmp_path / "cut"
    shutil.copytree(tmp_path / "whole", cut)
    shutil.rmtree(cut / "checkpoint-4")  # What a crash right after step 2's checkpoint leaves behind.
    for path in cut.iterdir():
        if path.is_file():
            path.unlink()
    resumed = run_script("fine_tune_embedder.py", *flags, "--resume_from_checkpoint", "latest", "--output_dir",
                         str(cut), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "from checkpoint-2" in resumed.stderr
    assert json.loads((cut / "trainer_state.json").read_text())["global_step"] == 4
    expected, actual = load_file(tmp_path / "whole" / "model.safetensors"), load_file(cut / "model.safetensors")
    for key in expected:
        assert np.allclose(expected[key].numpy(), actual[key].numpy(), atol=1e-6), key


@pytest.mark.parametrize("case", ["unknown ground truth", "missing query file", "corpus column missing"])
def test_bad_data_exits_2_as_the_reranker_cli_and_writes_nothing(tmp_path, case):
    corpus, queries, fragment = bad_input_files(tmp_path, case)
    result = run_script("fine_tune_embedder.py", "--corpus_csv", str(corpus), "--train_xlsx", str(queries),
                        "--base_model", "bundled-minilm", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert fragment in only_error_line(result)
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("flags, message", [
    (["--dev_ratio", "1.5"], "--dev_ratio must be in [0, 1)"),
    (["--fp16", "--bf16"], "--fp16 and --bf16 exclude each other"),
    (["--metric_for_best_model", "ndcg@5"], "--metric_for_best_model must be one of"),
    (["--filter_false_negatives"], "--filter_false_negatives needs --teacher_model"),
    (["--base_model", "./no_such_model"], "no such folder"),
    (["--save_steps", "3", "--eval_steps", "2"], "must be a multiple of --eval_steps"),
])
def test_bad_flags_exit_2_before_any_folder(small_data, tmp_path, flags, message):
    result = run_script("fine_tune_embedder.py", *data_flags(small_data), "--base_model", "bundled-minilm", *flags,
                        cwd=tmp_path)
    assert result.returncode == 2
    assert message in only_error_line(result)
    assert not (tmp_path / "outputs").exists()


def test_the_embedding_cache_never_serves_the_base_to_a_fine_tuned_encoder(embedder_run, small_data, tmp_path):
    from reranker_kit.data.loading import load_corpus
    from reranker_kit.retrieval.dense import DenseIndex, SentenceEncoder

    documents = list(load_corpus(str(small_data["corpus"])).values())
    trained = embedder_run[0] / "checkpoint-4"  # Trained weights, whatever the verdict kept.
    base = DenseIndex(documents, SentenceEncoder.load("bundled-minilm"), tmp_path)
    tuned = DenseIndex(documents, SentenceEncoder.load(str(trained)), tmp_path)
    assert not tuned.cache_hit and len(list(tmp_path.glob("*.npy"))) == 2
    assert not np.allclose(base.document_embeddings, tuned.document_embeddings)
    again = DenseIndex(documents, SentenceEncoder.load(str(trained)), tmp_path)
    assert again.cache_hit and np.array_equal(again.document_embeddings, tuned.document_embeddings)


def test_main_ranks_with_the_newest_embedder_run_beside_its_base(embedder_run, small_data, tmp_path):
    from datetime import datetime, timedelta

    from test_cli_contract import set_finished_at

    runs_root = tmp_path / "outputs"
    older = shutil.copytree(embedder_run[0], runs_root / "embedder-finetuned-20990101-000000")
    newer = shutil.copytree(embedder_run[0], runs_root / "embedder-finetuned-20200101-000000")  # Named older.
    set_finished_at(older, datetime.now() - timedelta(days=1))
    set_finished_at(newer, datetime.now())
    flags = ["--corpus_csv", str(small_data["corpus"]), "--eval_xlsx", str(small_data["test"]), "--top_n", "5",
             "--runs_root", str(runs_root), "--reranker", "none", "--pretrained_reranker", "none", "--retriever",
             "hybrid", "--embedding_cache_dir", str(tmp_path / "cache")]
    result = run_script("main.py", *flags, "--output_json", str(tmp_path / "report.json"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"embedding model: {newer} (newest finished embedder run under {runs_root})" in result.stderr
    assert "first_stage_base_encoder" in result.stdout
    first_stage = json.loads((tmp_path / "report.json").read_text())["first_stage"]
    weights = json.loads((newer / "hybrid.json").read_text())["dense_weight"]
    assert first_stage["embedding_model"] == str(newer) and first_stage["dense_weight"] == weights["run"]
    assert first_stage["base_encoder"]["embedding_model"] == "bundled-minilm"
    assert first_stage["base_encoder"]["dense_weight"] == weights["base"]

    base_only = run_script("main.py", *flags, "--embedding_model", "base", cwd=tmp_path)
    assert base_only.returncode == 0, base_only.stderr[-3000:]
    assert "embedding model: bundled-minilm (--embedding_model base" in base_only.stderr
    assert "first_stage_base_encoder" not in base_only.stdout


def test_cached_loss_and_gradient_checkpointing_train(small_data, tmp_path):
    """The large-batch path for a small GPU: GradCache mini-batches and recomputed activations, a few steps."""
    result = run_script("fine_tune_embedder.py", *data_flags(small_data), *QUICK_EMBEDDER, "--max_steps", "2",
                        "--dev_ratio", "0", "--loss", "cached_mnrl", "--mini_batch_size", "4",
                        "--gradient_checkpointing", "--pseudo_queries_per_document", "0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs").glob("embedder-finetuned-*")
    info = json.loads((run_dir / "training_info.json").read_text())
    assert info["verdict"] == "no dev queries" and info["arguments"]["loss"] == "cached_mnrl"
    losses = [entry["loss"] for entry in json.loads((run_dir / "trainer_state.json").read_text())["log_history"]
              if "loss" in entry]
    assert len(losses) == 2 and all(0 < loss < 10 for loss in losses)


def test_main_skips_an_embedder_run_missing_a_module_folder(embedder_run, small_data, tmp_path):
    """Issue #32, case 13: a run without 1_Pooling/ is passed over, named, for the newest whole one."""
    from datetime import datetime, timedelta

    from test_cli_contract import set_finished_at

    runs_root = tmp_path / "outputs"
    whole = shutil.copytree(embedder_run[0], runs_root / "embedder-finetuned-20261201-000000")
    damaged = shutil.copytree(embedder_run[0], runs_root / "embedder-finetuned-20261202-000000")
    shutil.rmtree(damaged / "1_Pooling")
    set_finished_at(whole, datetime.now() - timedelta(days=1))
    set_finished_at(damaged, datetime.now())
    result = run_script("main.py", "--corpus_csv", str(small_data["corpus"]), "--eval_xlsx", str(small_data["test"]),
                        "--top_n", "5", "--runs_root", str(runs_root), "--reranker", "none", "--pretrained_reranker",
                        "none", "--retriever", "hybrid", "--embedding_cache_dir", str(tmp_path / "cache"), cwd=tmp_path)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    assert f"skipping {damaged}: {damaged / 'modules.json'} names the module folder(s) 1_Pooling" in result.stderr
    assert f"embedding model: {whole} (newest finished embedder run" in result.stderr
