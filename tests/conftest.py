"""Shared fixtures: small real data cut from the shipped sample, and tiny models built offline."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from reranker_kit.testing import CPU_QUICK_START
from reranker_kit.testing import REPOSITORY_ROOT as ROOT

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CORPUS_CSV = ROOT / "CLB_PROPTIT.csv"
TRAIN_XLSX = ROOT / "train_data_proptit.xlsx"
TEST_XLSX = ROOT / "test_data_proptit.xlsx"


def write_queries(path: Path, rows: list[dict]) -> Path:
    columns = ["Query", "Ground truth document", "Ground truth answer", "Difficulty"]
    pd.DataFrame(rows, columns=columns).to_excel(path, index=False)
    return path


def write_corpus(path: Path, rows: list[tuple]) -> Path:
    pd.DataFrame(rows, columns=["STT", "Văn bản"]).to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def small_data(tmp_path_factory) -> dict[str, Path]:
    """The first 30 sample documents and the sample queries answered only by them.

    Real club-schema text, small enough that a training smoke run takes seconds on CPU.
    """
    from reranker_kit.data.loading import parse_ground_truth

    folder = tmp_path_factory.mktemp("small_data")
    corpus = pd.read_csv(CORPUS_CSV)
    kept = corpus[corpus["STT"] <= 30]
    kept.to_csv(folder / "corpus.csv", index=False)
    paths = {"corpus": folder / "corpus.csv"}
    for name, source in (("train", TRAIN_XLSX), ("test", TEST_XLSX)):
        queries = pd.read_excel(source, dtype=object)
        inside = queries["Ground truth document"].map(lambda cell: max(parse_ground_truth(cell)) <= 30)
        queries[inside].to_excel(folder / f"{name}.xlsx", index=False)
        paths[name] = folder / f"{name}.xlsx"
    return paths


@pytest.fixture(scope="session")
def tiny_xlmr_model(tmp_path_factory) -> Path:
    """An XLM-RoBERTa sequence classifier with random weights and a small cased tokenizer trained here."""
    from reranker_kit.testing import save_tiny_xlmr

    return save_tiny_xlmr(tmp_path_factory.mktemp("tiny_xlmr"))


def run_script(script: str, *args: str, cwd: Path, timeout: int = 600, **popen) -> subprocess.CompletedProcess:
    """Runs one of the project's scripts as a user would, from `cwd`."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, str(ROOT / script), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout, **popen)


# Small settings: seconds per run on 2 CPU cores.
QUICK = ["--max_seq_length", "96", "--batch_size", "8", "--gradient_accumulation_steps", "1", "--eval_steps", "2",
         "--save_steps", "2", "--dev_top_n", "5", "--logging_steps", "1", "--eval_batch_size", "64"]


CPU_RECIPE = CPU_QUICK_START  # README's quick start.
# The flags of the session's finished reranker run.
TRAINED_RERANKER = ["--base_model", "bundled-minilm", "--max_steps", "4", *QUICK, "--keep_checkpoints"]


def data_flags(small_data):
    return ["--corpus_csv", str(small_data["corpus"]), "--train_xlsx", str(small_data["train"])]


@pytest.fixture(scope="session")
def trained_run(small_data, tmp_path_factory):
    """One finished bundled-model run, shared by the tests that read its outputs (checkpoints kept: tests
    cut copies of it into interrupted runs)."""
    workdir = tmp_path_factory.mktemp("trained")
    result = run_script("fine_tune_reranker.py", *data_flags(small_data), *TRAINED_RERANKER, cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (workdir / "outputs").glob("reranker-finetuned-*")
    return run_dir, result


# The embedder's small settings, and the flags of the session's finished embedder run.
QUICK_EMBEDDER = ["--base_model", "bundled-minilm", "--max_seq_length", "64", "--batch_size", "8", "--eval_steps", "2",
                  "--save_steps", "2", "--logging_steps", "1"]
TRAINED_EMBEDDER = [*QUICK_EMBEDDER, "--max_steps", "4", "--keep_checkpoints"]


@pytest.fixture(scope="session")
def embedder_run(small_data, tmp_path_factory):
    """One finished embedder run, shared by the tests that read its outputs (checkpoints kept)."""
    workdir = tmp_path_factory.mktemp("embedder")
    result = run_script("fine_tune_embedder.py", *data_flags(small_data), *TRAINED_EMBEDDER, cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (workdir / "outputs").glob("embedder-finetuned-*")
    return run_dir, result
