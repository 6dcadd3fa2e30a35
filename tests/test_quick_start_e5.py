"""README's quick start in miniature: both stages on `bundled-e5` with the CPU-sized defaults, then main.py.

The same three commands as README (embedder, reranker mining with it, main.py with the hybrid first
stage) on the small data and two optimizer steps each: the settings are sized for a CPU and say so, each
run stays under the 6 GB a default run may take on a 24 GB, 2-core machine, the e5 prompts reach training
and the saved encoder, and main.py ranks the pipeline beside BM25 and says which row to use.
"""

import json

import pytest

from conftest import data_flags, run_script

PEAK_RSS_CAP_GIB = 6.0


@pytest.fixture(scope="module")
def quick_start(small_data, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("quick_start_e5")
    embedder = run_script("fine_tune_embedder.py", *data_flags(small_data), "--base_model", "bundled-e5",
                          "--max_steps", "2", cwd=workdir, timeout=1200)
    assert embedder.returncode == 0, embedder.stderr[-3000:]
    reranker = run_script("fine_tune_reranker.py", *data_flags(small_data), "--base_model", "bundled-e5",
                          "--hard_neg_method", "hybrid", "--embedding_model", "latest", "--max_steps", "2",
                          cwd=workdir, timeout=1200)
    assert reranker.returncode == 0, reranker.stderr[-3000:]
    report = workdir / "report.json"
    evaluation = run_script("main.py", "--corpus_csv", str(small_data["corpus"]), "--eval_xlsx", str(small_data["test"]),
                            "--retriever", "hybrid", "--top_n", "5", "--output_json", str(report), cwd=workdir,
                            timeout=1200)
    assert evaluation.returncode == 0, evaluation.stderr[-3000:]
    (embedder_dir,) = (workdir / "outputs").glob("embedder-finetuned-*")
    (reranker_dir,) = (workdir / "outputs").glob("reranker-finetuned-*")
    return {"embedder": (embedder, embedder_dir), "reranker": (reranker, reranker_dir),
            "main": (evaluation, json.loads(report.read_text(encoding="utf-8")))}


@pytest.mark.parametrize("job", ["embedder", "reranker"])
def test_the_defaults_are_sized_for_the_cpu_and_stay_under_the_memory_cap(quick_start, job):
    result, run_dir = quick_start[job]
    (line,) = [line for line in result.stderr.splitlines() if "no GPU found: CPU-sized settings" in line]
    assert "--max_seq_length 128" in line and "--batch_size 16" in line and "--freeze_word_embeddings on" in line
    info = json.loads((run_dir / "training_info.json").read_text(encoding="utf-8"))
    arguments = info["arguments"]
    assert arguments["max_seq_length"] == 128 and arguments["freeze_word_embeddings"] and arguments["epochs"] == 1
    assert info["peak_memory_gib"]["process_rss"] < PEAK_RSS_CAP_GIB, info["peak_memory_gib"]
    assert info["base_model"]["trainable_parameters"] < info["base_model"]["parameters"] / 2  # 96M of 118M frozen.
    assert not list(run_dir.glob("checkpoint-*"))  # A finished run keeps its model, not its checkpoints.
    assert "You should probably TRAIN" not in result.stderr and "fix_mistral_regex" not in result.stderr


def test_the_embedder_trains_and_saves_with_the_models_prompts(quick_start):
    result, run_dir = quick_start["embedder"]
    assert "training with the model's prompts" in result.stderr and "'anchor': 'query: '" in result.stderr
    saved = json.loads((run_dir / "config_sentence_transformers.json").read_text(encoding="utf-8"))
    assert saved["prompts"] == {"query": "query: ", "document": "passage: "}
    info = json.loads((run_dir / "training_info.json").read_text(encoding="utf-8"))
    assert info["base_model"]["prompts"] == saved["prompts"] and info["base_model"]["name"] == "bundled-e5"


def test_the_reranker_mines_with_the_newest_embedder_run(quick_start):
    _, embedder_dir = quick_start["embedder"]
    result, run_dir = quick_start["reranker"]
    info = json.loads((run_dir / "training_info.json").read_text(encoding="utf-8"))
    assert info["arguments"]["embedding_model"] == str(embedder_dir)  # `latest`, recorded as the run it meant.
    assert json.loads((run_dir / "fusion.json").read_text(encoding="utf-8"))["retriever"] == "hybrid"


def test_main_ranks_the_e5_pipeline_beside_bm25_and_recommends_a_row(quick_start):
    result, report = quick_start["main"]
    names = {row["name"] for row in report["runs"]}
    assert {"bm25", "first_stage", "first_stage_base_encoder", "fine_tuned"} <= names
    pairs = {(row["a"], row["b"]) for row in report["comparisons"]}
    assert ("first_stage", "bm25") in pairs and ("fine_tuned", "bm25") in pairs
    assert all("ci_low" in row and "p_value" in row for row in report["comparisons"])
    assert report["verdict"]["recommendation"]["text"].startswith("recommended: ")
    assert "recommended: " in result.stdout
