"""What main.py shows: a quiet console, verdicts that follow their intervals, in-sample marks, and output paths
that never overwrite what the evaluation reads."""

import re

from conftest import run_script


def first_stage_flags(small_data, tmp_path, *more: str) -> list[str]:
    """main.py over BM25 alone on the small files: no model, a few seconds."""
    return ["--corpus_csv", str(small_data["corpus"]), "--eval_xlsx", str(small_data["test"]), "--reranker", "none",
            "--pretrained_reranker", "none", "--top_n", "5", "--runs_root", str(tmp_path / "outputs"), *more]


def test_a_clean_first_stage_run_logs_no_debug_line(small_data, tmp_path):
    """bm25s sets its own logger to DEBUG when imported; at the scripts' default level nothing below INFO shows."""
    result = run_script("main.py", *first_stage_flags(small_data, tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert re.search(r"INFO main: report written to", result.stderr)  # The log is there, at its level.
    assert [line for line in result.stderr.splitlines() if " DEBUG " in line] == []
