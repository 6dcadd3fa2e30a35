"""ONNX export for CPU serving: its own subfolder, the run's files untouched, scores that match torch."""

import hashlib
import shutil

import numpy as np
import pandas as pd
import pytest

from reranker_kit.basics.errors import ModelLoadError

from conftest import run_script


def run_files(run_dir):
    """Every file of the run outside onnx/, with a hash of its content."""
    return {path.relative_to(run_dir).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(run_dir.rglob("*")) if path.is_file() and "onnx" not in path.relative_to(run_dir).parts}


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    """A copy of the trained run exported as a user would: fp32 first, then int8 added, then a repeat."""
    run_dir = tmp_path_factory.mktemp("onnx") / trained_run[0].name
    shutil.copytree(trained_run[0], run_dir)
    before = run_files(run_dir)
    fp32 = run_script("rerank.py", "export", str(run_dir), "--onnx", cwd=run_dir.parent)
    assert fp32.returncode == 0, fp32.stderr[-3000:]
    fp32_hash = hashlib.sha256((run_dir / "onnx" / "model.onnx").read_bytes()).hexdigest()
    int8 = run_script("rerank.py", "export", str(run_dir), "--onnx", "--int8", cwd=run_dir.parent)
    assert int8.returncode == 0, int8.stderr[-3000:]
    return {"run_dir": run_dir, "before": before, "fp32": fp32, "int8": int8, "fp32_hash": fp32_hash}


@pytest.fixture(scope="module")
def sample_pairs(small_data):
    """Real pairs: each small test query with five documents, plus one passage long enough to be truncated."""
    corpus = pd.read_csv(small_data["corpus"])["Văn bản"].tolist()
    queries = pd.read_excel(small_data["test"])["Query"].tolist()
    pairs = [(query, corpus[(i * 7 + j) % len(corpus)]) for i, query in enumerate(queries) for j in range(5)]
    return pairs + [(queries[0], " ".join(corpus))]


def test_export_writes_its_own_subfolder_and_never_touches_the_run(exported):
    run_dir = exported["run_dir"]
    assert run_files(run_dir) == exported["before"]
    top_level_before = {name.split("/")[0] for name in exported["before"]}
    assert {path.name for path in run_dir.iterdir()} == top_level_before | {"onnx"}  # No staging folder left.
    onnx_dir = run_dir / "onnx"
    assert {"model.onnx", "model_int8.onnx", "config.json", "tokenizer.json"} <= {p.name for p in onnx_dir.iterdir()}
    # Adding int8 later left the fp32 export as it was.
    assert hashlib.sha256((onnx_dir / "model.onnx").read_bytes()).hexdigest() == exported["fp32_hash"]
    assert "model.onnx: scores within" in exported["fp32"].stderr
    assert "model_int8.onnx: scores within" in exported["int8"].stderr
    assert "Quantization parameters for tensor" not in exported["int8"].stderr  # Per-tensor noise stays quiet.


def test_onnx_fp32_scores_match_torch_within_1e_4(exported, sample_pairs):
    from rerank import Reranker

    run_dir = str(exported["run_dir"])
    torch_scores = Reranker(run_dir, device="cpu", max_length=128, batch_size=8).compute_score(sample_pairs)
    onnx = Reranker(run_dir, max_length=128, batch_size=8, backend="onnx")
    assert onnx.compute_score(sample_pairs) == pytest.approx(torch_scores, abs=1e-4)
    scores, ranked = onnx(sample_pairs[0][0], [passage for _, passage in sample_pairs[:5]])
    assert scores == sorted(scores, reverse=True) and len(ranked) == 5


def test_onnx_int8_scores_stay_close_to_torch(exported, sample_pairs):
    from rerank import Reranker

    run_dir = str(exported["run_dir"])
    torch_scores = np.array(Reranker(run_dir, device="cpu", max_length=128).compute_score(sample_pairs))
    int8_scores = np.array(Reranker(run_dir, max_length=128, backend="onnx_int8").compute_score(sample_pairs))
    assert np.isfinite(int8_scores).all() and not np.allclose(int8_scores, torch_scores, atol=1e-7)  # Really int8.
    assert np.abs(int8_scores - torch_scores).max() < 0.05


def test_sentence_transformers_loads_the_export_without_writing_into_the_run(exported, sample_pairs):
    from sentence_transformers import CrossEncoder

    from rerank import Reranker

    run_dir = exported["run_dir"]
    before = {path: path.stat().st_mtime_ns for path in run_dir.rglob("*")}
    model = CrossEncoder(str(run_dir), backend="onnx", model_kwargs={"file_name": "onnx/model.onnx"}, max_length=128)
    ours = Reranker(str(run_dir), max_length=128, backend="onnx").compute_score(sample_pairs[:6], normalize=True)
    assert model.predict(sample_pairs[:6]).tolist() == pytest.approx(ours, abs=1e-4)
    assert {path: path.stat().st_mtime_ns for path in run_dir.rglob("*")} == before


def test_a_second_export_refuses_and_changes_nothing(exported):
    run_dir = exported["run_dir"]
    onnx_before = {path.name: path.stat().st_mtime_ns for path in (run_dir / "onnx").iterdir()}
    again = run_script("rerank.py", "export", str(run_dir), "--onnx", "--int8", cwd=run_dir.parent)
    assert again.returncode == 2
    assert "already holds model.onnx, model_int8.onnx; delete that folder to export again" in again.stderr
    assert {path.name: path.stat().st_mtime_ns for path in (run_dir / "onnx").iterdir()} == onnx_before
    assert not list(run_dir.glob(".onnx-export-*"))


@pytest.mark.parametrize("target, message", [
    ("missing-run", "not a folder"),
    (".", "without config.json, so it is not a saved model"),
])
def test_export_of_something_that_is_not_a_model_folder_exits_2(tmp_path, target, message):
    result = run_script("rerank.py", "export", target, "--onnx", cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_onnx_backend_without_an_export_says_how_to_make_one(trained_run):
    from rerank import Reranker

    with pytest.raises(ModelLoadError, match=r"no ONNX export .* python rerank.py export .* --onnx --int8"):
        Reranker(str(trained_run[0]), backend="onnx_int8")
    with pytest.raises(ValueError, match="backend must be one of"):
        Reranker(str(trained_run[0]), backend="tensorrt")
    with pytest.raises(ValueError, match="runs on the CPU"):
        Reranker(str(trained_run[0]), backend="onnx", device="cuda")


def test_the_int8_check_scores_the_runs_own_queries_and_reports_top_k_agreement(exported):
    """#26 case 19: the check measures what users will see, the run's queries against their BM25 candidates."""
    import re

    line = next(line for line in exported["int8"].stderr.splitlines() if "model_int8.onnx: scores within" in line)
    assert "x BM25 top 20" in line and re.search(r"the top 5 of \d+% of the \d+ queries unchanged", line), line


def test_case_13_the_export_refuses_an_unfinished_run_and_writes_nothing(trained_run, tmp_path):
    run_dir = tmp_path / trained_run[0].name
    shutil.copytree(trained_run[0], run_dir)
    (run_dir / "training_info.json").unlink()
    result = run_script("rerank.py", "export", str(run_dir), "--onnx", cwd=tmp_path)
    assert result.returncode == 2 and "is an unfinished run" in result.stderr and "Traceback" not in result.stderr
    assert not (run_dir / "onnx").exists() and not list(run_dir.glob(".onnx-export-*"))
