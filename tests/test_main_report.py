"""What main.py shows: a quiet console, verdicts that follow their intervals, in-sample marks, and output paths
that never overwrite what the evaluation reads (issue #34 points 3, 4, 6; issue #32 cases 1 and 3).

The end-to-end run with models (console, metrics.json and report.html of one evaluation) is in
test_html_report.py; these tests run main.py over BM25 alone, or call the pieces directly.
"""

import json
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from reranker_kit.benchmark.training_queries import FileOverlap, file_overlaps, run_training_queries
from reranker_kit.benchmark.verdicts import (
    GAIN,
    LOSS,
    NOISE,
    file_statements,
    finding,
    recommendation,
    run_statement,
)
from reranker_kit.data.loading import load_corpus, load_queries
from reranker_kit.data.splits import query_key

from conftest import run_script

# The issue's dev record: the run kept its trained weights and wrote "gain", on an interval that crosses zero.
ISSUE_DEV_RECORD = {"verdict": "gain", "saved_weights": "fine-tuned", "metric_for_best_model": "mrr@5",
                    "mrr@5": 0.61, "baseline": {"mrr@5": 0.43},
                    "trained_vs_base": {"n_queries": 19, "mean_a": 0.61, "mean_b": 0.43, "mean_difference": 0.178,
                                        "standard_error": 0.1, "ci_low": -0.037, "ci_high": 0.392, "p_value": 0.11,
                                        "significant": False}}


def first_stage_flags(small_data, tmp_path, *more: str) -> list[str]:
    """main.py over BM25 alone on the small files: no model, a few seconds."""
    return ["--corpus_csv", str(small_data["corpus"]), "--eval_xlsx", str(small_data["test"]), "--reranker", "none",
            "--pretrained_reranker", "none", "--top_n", "5", "--runs_root", str(tmp_path / "outputs"), *more]


def error_line(result: subprocess.CompletedProcess) -> str:
    """The one error line of a refused run (exit 2, no traceback)."""
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line or ": error: " in line]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


def snapshot(folder) -> dict:
    """Every file under a folder with its bytes: what a refused run must leave exactly as it was."""
    return {path.relative_to(folder): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


# Issue #34 point 6: no DEBUG line at the default level.

def test_a_clean_first_stage_run_logs_no_debug_line(small_data, tmp_path):
    """bm25s sets its own logger to DEBUG when imported; at the scripts' default level nothing below INFO shows."""
    result = run_script("main.py", *first_stage_flags(small_data, tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"INFO main: report written to", result.stderr)  # The log is there, at its level.
    assert [line for line in result.stderr.splitlines() if " DEBUG " in line] == []


# Issue #34 point 3: "gain" only when the paired interval excludes zero.

@pytest.mark.parametrize("low, high, significant, expected", [
    (-0.037, 0.392, False, NOISE),  # The issue's dev interval: +0.178 is not a gain.
    (0.0, 0.05, False, NOISE),  # Touching zero is not excluding it.
    (0.02, 0.30, True, GAIN),
    (-0.39, -0.08, True, LOSS),
    (0.02, 0.30, False, NOISE),  # The interval excludes 0 but the randomization test does not agree: unmarked.
    (None, None, False, NOISE),  # One query: nothing bounds the difference.
])
def test_a_finding_follows_the_interval(low, high, significant, expected):
    assert finding({"ci_low": low, "ci_high": high, "significant": significant, "mean_difference": 0.1}) == expected


def test_the_runs_recorded_gain_is_read_by_its_interval(tmp_path):
    """dev_metrics.json says "gain" on [-0.037, +0.392]: main.py says what was kept, and that it is within noise."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "dev_metrics.json").write_text(json.dumps(ISSUE_DEV_RECORD), encoding="utf-8")
    statement = run_statement(run_dir)
    assert statement["finding"] == statement["verdict"] == NOISE and statement["recorded_verdict"] == "gain"
    assert statement["text"] == (f"{run_dir}: verdict within noise: the run kept the fine-tuned weights; trained - base "
                                 "dev mrr@5 +0.178 [-0.037, +0.392] on its 19 dev queries (the interval covers 0: not a "
                                 "measured gain)")
    record = {**ISSUE_DEV_RECORD, "trained_vs_base": {**ISSUE_DEV_RECORD["trained_vs_base"], "ci_low": 0.05,
                                                      "significant": True}}
    (run_dir / "dev_metrics.json").write_text(json.dumps(record), encoding="utf-8")
    assert run_statement(run_dir)["verdict"] == GAIN
    assert run_statement(run_dir)["text"].startswith(f"{run_dir}: verdict gain: the run kept the fine-tuned weights")
    # A run that kept its base says so beside the interval's finding.
    (run_dir / "dev_metrics.json").write_text(json.dumps({**ISSUE_DEV_RECORD, "saved_weights": "base"}),
                                              encoding="utf-8")
    assert run_statement(run_dir)["text"].startswith(f"{run_dir}: verdict within noise: the run kept the base weights; ")


def comparison(dataset, a, low, high, significant, metric="mrr@5"):
    return {"dataset": dataset, "a": a, "b": "first_stage", "metric": metric, "n_queries": 30,
            "mean_difference": (low + high) / 2, "ci_low": low, "ci_high": high, "p_value": 0.003 if significant else 0.4,
            "significant": significant}


def test_mains_own_statements_follow_their_intervals_and_put_out_of_sample_files_first():
    overlap = FileOverlap(dataset="train", queries=100, trained=81, dev=19, training_file="train.xlsx", exact=True,
                          is_training_file=True, examples=())
    rows = [comparison("train", "fine_tuned", -0.05, 0.04, False), comparison("test", "fine_tuned", -0.39, -0.08, True),
            comparison("test", "fused_rrf_w0.3", -0.02, 0.06, False), comparison("test", "fine_tuned", 0.1, 0.2, True,
                                                                                    metric="hit@3")]
    statements = file_statements(rows, {"train": overlap, "test": FileOverlap(
        dataset="test", queries=30, trained=0, dev=0, training_file="train.xlsx", exact=True, is_training_file=False,
        examples=())}, "mrr@5")
    assert [(row["dataset"], row["a"], row["finding"], row["in_sample"]) for row in statements] == [
        ("test", "fine_tuned", LOSS, False), ("test", "fused_rrf_w0.3", NOISE, False), ("train", "fine_tuned", NOISE, True)]
    assert statements[0]["text"] == ("test: fine_tuned - first_stage mrr@5 -0.235 [-0.390, -0.080], p 0.003, 30 queries: "
                                     "loss (fine_tuned below first_stage)")
    assert statements[2]["text"].startswith("train (81 of 100 queries trained on): ")


def test_the_recommended_row_is_the_one_that_gains_on_files_the_run_never_trained_on():
    """Issue #30: main.py says which row to use; a reranker that adds nothing measurable is not recommended."""
    outside = FileOverlap(dataset="test", queries=30, trained=0, dev=0, training_file="t.xlsx", exact=True,
                          is_training_file=False, examples=())
    inside = FileOverlap(dataset="train", queries=100, trained=81, dev=19, training_file="t.xlsx", exact=True,
                         is_training_file=True, examples=())
    overlaps = {"test": outside, "train": inside}
    fused_gains = [comparison("test", "fine_tuned", 0.01, 0.2, True), comparison("test", "fused_minmax_w0.3", 0.02, 0.1, True),
                   comparison("train", "fused_minmax_w0.3", -0.3, -0.1, True)]  # In-sample rows never decide.
    assert recommendation(fused_gains, overlaps, "mrr@5")["row"] == "fused_minmax_w0.3"
    only_reranker = [comparison("test", "fine_tuned", 0.01, 0.2, True), comparison("test", "fused_rrf_w0.2", -0.02, 0.1, False)]
    assert recommendation(only_reranker, overlaps, "mrr@5")["row"] == "fine_tuned"
    noise = [comparison("test", "fine_tuned", -0.39, -0.08, True), comparison("test", "fused_rrf_w0.2", -0.02, 0.06, False)]
    advice = recommendation(noise, overlaps, "mrr@5")
    assert advice["row"] == "first_stage" and "no reranker row gains over it beyond noise" in advice["text"]
    assert recommendation(fused_gains[-1:], {"train": inside}, "mrr@5")["row"] is None  # In-sample only: no advice.
    assert recommendation([], overlaps, "mrr@5") is None


def test_bm25_is_ranked_beside_another_first_stage_and_compared_with_it(small_data, tmp_path):
    report_path = tmp_path / "report.json"
    result = run_script("main.py", *first_stage_flags(small_data, tmp_path, "--retriever", "tfidf", "--output_json",
                                                      str(report_path)), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(report_path.read_text(encoding="utf-8"))
    assert {row["name"] for row in report["runs"]} == {"first_stage", "bm25"}
    assert {(row["a"], row["b"]) for row in report["comparisons"]} == {("first_stage", "bm25")}


# Issue #34 point 3: which evaluated queries the run trained on.

def test_the_runs_training_queries_are_its_split_of_its_training_file(small_data, trained_run):
    run_dir, _ = trained_run
    corpus = load_corpus(small_data["corpus"])
    info = json.loads((run_dir / "training_info.json").read_text(encoding="utf-8"))
    training = run_training_queries(run_dir, corpus)
    assert training.exact and (len(training.trained), len(training.dev)) == (info["data"]["train_queries"],
                                                                            info["data"]["dev_queries"])
    datasets = {name: load_queries(small_data[name], corpus) for name in ("train", "test")}
    overlaps = file_overlaps(datasets, {name: small_data[name] for name in datasets}, training)
    train = overlaps["train"]
    # Every row of the training file was trained on or held out (a repeated query counts on each of its rows).
    assert train.is_training_file and train.trained + train.dev == len(datasets["train"]) and train.dev > 0
    assert len({query_key(query.text) for query in datasets["train"]} - training.trained) == len(training.dev)
    # The test file: exactly its queries that also sit in the training file, split into trained and dev.
    in_training_file = {query_key(query.text) for query in datasets["train"]}
    shared = [query for query in datasets["test"] if query_key(query.text) in in_training_file]
    assert overlaps["test"].trained + overlaps["test"].dev == len(shared) and not overlaps["test"].is_training_file


def test_a_training_file_edited_since_the_run_counts_every_query_as_an_upper_bound(small_data, trained_run, tmp_path):
    run_dir = shutil.copytree(trained_run[0], tmp_path / "run")
    edited = tmp_path / "train.xlsx"
    frame = pd.read_excel(small_data["train"], dtype=object)
    frame.iloc[::-1].to_excel(edited, index=False)  # Same queries, other order: the seeded split moves.
    info = json.loads((run_dir / "training_info.json").read_text(encoding="utf-8"))
    info["train_xlsx"] = str(edited)
    (run_dir / "training_info.json").write_text(json.dumps(info), encoding="utf-8")
    corpus = load_corpus(small_data["corpus"])
    training = run_training_queries(run_dir, corpus)
    assert not training.exact and len(training.trained) == len({query_key(text) for text in frame["Query"]})
    overlap = file_overlaps({"train": load_queries(edited, corpus)}, {"train": edited}, training)["train"]
    assert overlap.tag().startswith("in-sample: the fine-tuned run trained on up to ")
    assert "changed since the run" in overlap.note()


# Issue #34 point 4: charts with axis labels; the untrained pretrained row labelled.

def test_the_metrics_chart_labels_its_axes():
    from reranker_kit.reports.plots import metrics_by_k_figure

    table = pd.DataFrame({"first_stage": [0.5, 0.6, 0.2, 0.3], "pretrained": [0.4, 0.5, 0.1, 0.2]},
                         index=["hit@3", "hit@5", "mrr@3", "mrr@5"])
    figure = metrics_by_k_figure(table, [3, 5], "test", labels={"pretrained": "pretrained (untrained head)"},
                                 tag="in-sample: the fine-tuned run trained on 2 of these 9 queries")
    axes = [axis for axis in figure.axes if axis.get_title()]
    assert [(axis.get_xlabel(), axis.get_ylabel()) for axis in axes] == [("cut-off k", "mean hit@k"),
                                                                       ("cut-off k", "mean mrr@k")]
    assert [text.get_text() for text in axes[0].get_legend().get_texts()] == ["first_stage",
                                                                              "pretrained (untrained head)"]
    assert "in-sample" in figure._suptitle.get_text()


class FakeReranker:
    """Scores by document length; `head_is_trained` as models.reranker.Reranker reports it."""

    def __init__(self, head_is_trained: bool):
        self.head_is_trained = head_is_trained

    def compute_score(self, pairs):
        return [float(len(document)) for _, document in pairs]


@pytest.mark.parametrize("head_is_trained", [False, True])
def test_a_pretrained_row_without_a_trained_head_is_marked(monkeypatch, head_is_trained):
    from reranker_kit.benchmark import run
    from reranker_kit.data.loading import Query
    from reranker_kit.retrieval.candidates import Candidates

    monkeypatch.setattr(run, "load_reranker", lambda *args, **kwargs: FakeReranker(head_is_trained))
    corpus = {1: "ngắn", 2: "dài hơn một chút", 3: "tài liệu dài nhất trong ba tài liệu"}
    queries = [Query(qid="q0", text="câu hỏi", relevant_ids=(3,), answer="", difficulty=1, source="t.xlsx", row=2)]
    candidates = {"test": Candidates(ids={"q0": [1, 2, 3]}, first_stage_scores={"q0": np.array([3.0, 2.0, 1.0])})}
    rows = run.reranker_rows("pretrained", "some-model", None, {"test": queries}, candidates, corpus,
                             settings=SimpleNamespace(k=(3,)), rankings={}, trained=frozenset({query_key("câu hỏi")}))
    assert rows and all(row.get("head_trained", True) is head_is_trained for row in rows)
    assert all(row["training_queries"] == 1 for row in rows)


# Issue #32 case 1: no output path may be one of the evaluation's inputs.

@pytest.mark.parametrize("flag, target, message", [
    ("--output_json", "corpus", "is the corpus CSV (--corpus_csv),"),
    ("--output_json", "test", "is a query file (--eval_xlsx),"),
    ("--report_dir", "data_folder", "holds {data}/corpus.csv, the corpus CSV (--corpus_csv),"),
])
def test_main_refuses_to_write_a_report_over_an_input(small_data, tmp_path, flag, target, message):
    data = shutil.copytree(small_data["corpus"].parent, tmp_path / "data")
    path = data if target == "data_folder" else data / small_data[target].name
    before = snapshot(data)
    flags = first_stage_flags(small_data, tmp_path)
    flags[flags.index("--corpus_csv") + 1] = str(data / small_data["corpus"].name)
    flags[flags.index("--eval_xlsx") + 1] = str(data / small_data["test"].name)
    line = error_line(run_script("main.py", *flags, flag, str(path), cwd=tmp_path))
    assert f"{flag} {path} {message.format(data=data)} which this evaluation reads" in line
    assert snapshot(data) == before and not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("flag, inside, message", [
    ("--output_json", "metrics.json", "lies inside {run}, the fine-tuned reranker (--reranker),"),
    ("--report_dir", "", "is the fine-tuned reranker (--reranker),"),
    ("--report_dir", "eval", "lies inside {run}, the fine-tuned reranker (--reranker),"),
])
def test_main_refuses_to_write_a_report_into_the_model_it_reads(small_data, trained_run, tmp_path, flag, inside,
                                                                message):
    run_dir = shutil.copytree(trained_run[0], tmp_path / "outputs" / trained_run[0].name)
    before = snapshot(run_dir)
    destination = run_dir / inside if inside else run_dir
    flags = first_stage_flags(small_data, tmp_path)
    flags[flags.index("--reranker") + 1] = str(run_dir)
    line = error_line(run_script("main.py", *flags, flag, str(destination), cwd=tmp_path))
    assert f"{flag} {destination} {message.format(run=run_dir)} which this evaluation reads" in line
    assert snapshot(run_dir) == before


# Issue #32 case 3: an earlier report is never overwritten without a word, nor left half beside a new one.

def test_an_earlier_report_folder_is_refused_then_replaced_whole_with_overwrite_report(small_data, tmp_path):
    report_dir = tmp_path / "report"
    both_files = first_stage_flags(small_data, tmp_path, "--eval_xlsx", str(small_data["train"]), "--report_dir",
                                   str(report_dir))
    assert run_script("main.py", *both_files, cwd=tmp_path).returncode == 0
    earlier = snapshot(report_dir)
    assert {"metrics_by_k_train.png", "metrics_by_k_test.png"} <= {path.name for path in earlier}

    # Again, now over the test file alone: refused, the earlier report as it was.
    test_only = first_stage_flags(small_data, tmp_path, "--report_dir", str(report_dir))
    line = error_line(run_script("main.py", *test_only, cwd=tmp_path))
    assert f"--report_dir {report_dir} holds an earlier evaluation's report" in line and "--overwrite_report" in line
    assert snapshot(report_dir) == earlier

    # With --overwrite_report: the new report, and no chart of the train file left from the earlier one.
    result = run_script("main.py", *test_only, "--overwrite_report", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(path.name for path in report_dir.iterdir()) == ["metrics.csv", "metrics.json", "metrics_by_k_test.png",
                                                                  "report.html"]
    assert {run["dataset"] for run in json.loads((report_dir / "metrics.json").read_text())["runs"]} == {"test"}
    assert "removed the earlier report's metrics_by_k_train.png" in result.stderr


def test_a_report_folder_holding_other_files_is_refused_even_with_overwrite_report(small_data, tmp_path):
    report_dir = tmp_path / "notes"
    report_dir.mkdir()
    (report_dir / "ghi_chu.txt").write_text("của tôi", encoding="utf-8")
    (report_dir / "metrics.json").write_text("{}", encoding="utf-8")
    line = error_line(run_script("main.py", *first_stage_flags(small_data, tmp_path, "--report_dir", str(report_dir),
                                                               "--overwrite_report"), cwd=tmp_path))
    assert f"--report_dir {report_dir} already holds files that main.py did not write (ghi_chu.txt)" in line
    assert snapshot(report_dir) == {Path("ghi_chu.txt"): "của tôi".encode(), Path("metrics.json"): b"{}"}


def test_overwrite_report_without_report_dir_is_refused(small_data, tmp_path):
    line = error_line(run_script("main.py", *first_stage_flags(small_data, tmp_path, "--overwrite_report"),
                                 cwd=tmp_path))
    assert "--overwrite_report replaces the report in --report_dir" in line
