"""The Reranker API on edge cases, and main.py's benchmark end to end."""

import json
import shutil

import numpy as np
import pytest

from conftest import run_script


@pytest.fixture(scope="module")
def reranker(trained_run):
    from rerank import Reranker

    return Reranker(model_name=str(trained_run[0]), device="cpu", max_length=128, batch_size=4)


def test_reranker_sorts_best_first_and_keeps_pairs_aligned(reranker):
    passages = ["Phí thành viên là 100.000 đồng.", "Tuyển thành viên vào tháng 9.", "Lịch họp tối thứ Tư.",
                "Team AI làm chatbot tiếng Việt.", "Cuộc thi lập trình nội bộ."]
    scores, ranked = reranker("CLB tuyển thành viên khi nào?", passages)
    assert sorted(ranked) == sorted(passages) and len(scores) == 5
    assert scores == sorted(scores, reverse=True)
    direct = reranker.compute_score([("CLB tuyển thành viên khi nào?", passage) for passage in ranked])
    assert direct == pytest.approx(scores, abs=1e-5)


def test_reranker_edge_cases(reranker):
    assert reranker("q", []) == ([], [])
    scores, ranked = reranker("q", ["một đoạn duy nhất"])
    assert ranked == ["một đoạn duy nhất"] and len(scores) == 1
    very_long = "Đây là một đoạn văn rất dài về câu lạc bộ. " * 400
    (long_score,) = reranker.compute_score([("câu lạc bộ", very_long)])
    truncated = reranker.compute_score([("câu lạc bộ", very_long[: len(very_long) // 2])])[0]
    assert np.isfinite(long_score) and long_score == pytest.approx(truncated, abs=1e-5)
    probability = reranker.compute_score([("câu lạc bộ", "CLB")], normalize=True)[0]
    assert 0 < probability < 1


def test_batching_does_not_change_scores(trained_run):
    from rerank import Reranker

    pairs = [("tuyển thành viên", "Tuyển thành viên vào tháng 9. " * n) for n in (1, 7, 3, 20, 2)]
    one_by_one = Reranker(model_name=str(trained_run[0]), device="cpu", batch_size=1).compute_score(pairs)
    batched = Reranker(model_name=str(trained_run[0]), device="cpu", batch_size=5).compute_score(pairs)
    assert batched == pytest.approx(one_by_one, abs=1e-4)


def test_reranker_refuses_misuse(reranker):
    with pytest.raises(TypeError, match="list of"):
        reranker.compute_score(("q", "p"))
    with pytest.raises(TypeError, match="query must be a string"):
        reranker(["q"], ["p"])


def test_main_end_to_end(small_data, trained_run, tmp_path):
    run_dir, _ = trained_run
    runs_root = tmp_path / "outputs"
    shutil.copytree(run_dir, runs_root / run_dir.name)
    crashed = runs_root / "reranker-finetuned-29991231-235959"  # newer, but never finished
    shutil.copytree(run_dir / "checkpoint-2", crashed / "checkpoint-2")
    shutil.copy(run_dir / "config.json", crashed / "config.json")
    output_json = tmp_path / "report.json"
    result = run_script("main.py", "--corpus_csv", str(small_data["corpus"]), "--eval_xlsx", str(small_data["train"]),
                        "--eval_xlsx", str(small_data["test"]), "--top_n", "5", "--max_length", "96",
                        "--runs_root", str(runs_root), "--output_json", str(output_json), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"skipping {crashed}" in result.stderr
    assert f"fine-tuned reranker: {runs_root / run_dir.name}" in result.stderr
    report = json.loads(output_json.read_text())
    names = {run["name"] for run in report["runs"]}
    fusion = json.loads((run_dir / "fusion.json").read_text())
    assert names == {"first_stage", "pretrained", "fine_tuned", f"fused_{fusion['method']}_w{fusion['weight']:.1f}"}
    assert {run["dataset"] for run in report["runs"]} == {"train", "test"}
    expected_keys = {f"{metric}@{k}" for metric in ("hit", "recall", "precision", "f1", "map", "mrr", "ndcg",
                                                    "context_precision", "context_recall") for k in (3, 5, 7)}
    for run in report["runs"]:
        assert set(run["metrics"]) == expected_keys
        assert all(0 <= value <= 1 for value in run["metrics"].values())
    assert {row["difficulty"] for row in report["by_difficulty"]} <= {1, 2, 3, 4}
    (report_dir,) = runs_root.glob("eval-*")
    assert {"metrics.csv", "metrics.json", "metrics_by_k_train.png", "metrics_by_k_test.png"} <= {
        path.name for path in report_dir.iterdir()}
    assert "=== train" in result.stdout and "fine_tuned" in result.stdout


def test_main_reports_every_difficulty_level_a_file_uses(tmp_path):
    """Levels 1 to 4 and a text label, as real club files have them: each gets its rows, in order."""
    from conftest import write_corpus, write_queries

    corpus = write_corpus(tmp_path / "c.csv", [(1, "Lịch sinh hoạt vào tối thứ tư"), (2, "Phí thành viên một trăm nghìn"),
                                               (3, "Phòng lab ở tầng ba nhà A2")])
    rows = [{"Query": text, "Ground truth document": truth, "Ground truth answer": "a", "Difficulty": level}
            for text, truth, level in [("lịch sinh hoạt", 1, 4), ("phí bao nhiêu", 2, 1), ("lab ở đâu", 3, "khó"),
                                       ("sinh hoạt tối nào", 1, 2), ("phong lab", 3, 3), ("đóng phí", 2, 4)]]
    queries = write_queries(tmp_path / "q.xlsx", rows)
    output_json = tmp_path / "report.json"
    result = run_script("main.py", "--corpus_csv", str(corpus), "--eval_xlsx", str(queries), "--reranker", "none",
                        "--pretrained_reranker", "none", "--top_n", "3", "--output_json", str(output_json),
                        "--runs_root", str(tmp_path / "o"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    levels = [row["difficulty"] for row in json.loads(output_json.read_text())["by_difficulty"]]
    assert levels == [1, 2, 3, 4, "khó"]
    assert "difficulty 4 (2 queries)" in result.stdout and "difficulty khó (1 queries)" in result.stdout


def test_main_first_stage_only_needs_no_model(small_data, tmp_path):
    output_json = tmp_path / "report.json"
    result = run_script("main.py", "--corpus_csv", str(small_data["corpus"]), "--eval_xlsx", str(small_data["test"]),
                        "--runs_root", str(tmp_path / "empty"), "--retriever", "tfidf", "--output_json",
                        str(output_json), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "no finished run under" in result.stderr
    # TF-IDF first stage, with BM25 (the club's reference) beside it.
    assert [run["name"] for run in json.loads(output_json.read_text())["runs"]] == ["first_stage", "bm25"]


@pytest.mark.parametrize("flags, message", [
    (["--reranker", "./missing-model"], "does not exist"),
    (["--fusion_weight", "1.5"], "--fusion_weight must be"),
    (["--top_n", "0"], "--top_n"),
    (["--eval_xlsx", "nope.xlsx"], "file not found"),
    (["--retriever", "dense", "--embedding_model", "./no/such/encoder"], "does not exist"),
    (["--candidates", "c.jsonl", "--expand_documents"], "nothing to expand"),
    (["--expand_documents", "--reranker", "none"], "--expand_documents needs labelled training queries"),
])
def test_main_bad_input_exits_2(small_data, tmp_path, flags, message):
    result = run_script("main.py", "--corpus_csv", str(small_data["corpus"]), "--runs_root", str(tmp_path / "o"),
                        "--eval_xlsx", str(small_data["test"]), *flags, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_quick_start_on_the_shipped_data(tmp_path):
    """README's quick start at full data size, capped at 20 steps (about 10 minutes on 2 CPU cores)."""
    from conftest import CORPUS_CSV, CPU_RECIPE, TEST_XLSX, TRAIN_XLSX

    trained = run_script("fine_tune_reranker.py", "--corpus_csv", str(CORPUS_CSV), "--train_xlsx", str(TRAIN_XLSX),
                         *CPU_RECIPE, "--max_steps", "20", cwd=tmp_path, timeout=3000)
    assert trained.returncode == 0, trained.stderr[-3000:]
    result = run_script("main.py", "--corpus_csv", str(CORPUS_CSV), "--eval_xlsx", str(TRAIN_XLSX),
                        "--eval_xlsx", str(TEST_XLSX), cwd=tmp_path, timeout=3000)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "fine-tuned reranker: outputs/reranker-finetuned-" in result.stderr
    assert "=== train_data_proptit (100 queries) ===" in result.stdout
    assert "=== test_data_proptit (30 queries) ===" in result.stdout
