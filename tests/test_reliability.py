"""Interruption, hard kills, resume, determinism, distributed training and partial requests, run for real."""

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reranker_kit.data.loading import parse_ground_truth

from conftest import QUICK, ROOT, data_flags, run_script, write_corpus, write_queries

RANKING_KEYS = [f"{metric}@{k}" for metric in ("hit", "mrr", "ndcg") for k in (3, 5, 7)]


def start_training(*args, cwd):
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
    return subprocess.Popen([sys.executable, str(ROOT / "fine_tune_reranker.py"), *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(predicate, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_ctrl_c_saves_a_checkpoint_and_the_resumed_run_matches_an_uninterrupted_one(small_data, trained_run, tmp_path):
    """Resume tolerance: dev scores within 1e-4 of the uninterrupted run with the same seed (CPU)."""
    flags = [*data_flags(small_data), "--base_model", "bundled-minilm", "--max_steps", "4", *QUICK,
             "--output_dir", str(tmp_path / "run")]
    process = start_training(*flags, cwd=tmp_path)
    for line in process.stdout:
        if ": loss " in line:  # The first optimizer step has run and logged its loss.
            process.send_signal(signal.SIGINT)
            break
    output = process.stdout.read()
    assert process.wait(timeout=300) == 130, output[-3000:]
    assert "SIGINT received: saving a checkpoint" in output and "--resume_from_checkpoint" in output
    saved = sorted((tmp_path / "run").glob("checkpoint-*"))
    assert saved and not (tmp_path / "run" / "training_info.json").exists()

    resumed = run_script("fine_tune_reranker.py", *flags, "--resume_from_checkpoint", "latest", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"from {saved[-1].name}" in resumed.stderr
    expected = json.loads((trained_run[0] / "dev_metrics.json").read_text())
    actual = json.loads((tmp_path / "run" / "dev_metrics.json").read_text())
    for key in RANKING_KEYS + ["accuracy", "avg_pos_score", "avg_neg_score"]:
        assert actual[key] == pytest.approx(expected[key], abs=1e-4), key


def test_same_seed_same_split_negatives_and_dev_metrics(small_data, trained_run, tmp_path):
    again = run_script("fine_tune_reranker.py", *data_flags(small_data), "--base_model", "bundled-minilm",
                       "--max_steps", "4", *QUICK, "--output_dir", str(tmp_path / "again"), cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    first = json.loads((trained_run[0] / "training_info.json").read_text())["data"]
    second = json.loads((tmp_path / "again" / "training_info.json").read_text())["data"]
    assert first == second
    expected = json.loads((trained_run[0] / "dev_metrics.json").read_text())
    actual = json.loads((tmp_path / "again" / "dev_metrics.json").read_text())
    for key in RANKING_KEYS + ["accuracy", "avg_pos_score", "avg_neg_score"]:
        assert actual[key] == pytest.approx(expected[key], abs=1e-6), key


def test_split_is_reproducible_and_by_query(small_data):
    from reranker_kit.data.loading import load_corpus, load_queries
    from reranker_kit.data.splits import split_queries

    queries = load_queries(small_data["train"], load_corpus(small_data["corpus"]))
    train, dev = split_queries(queries, 0.25, seed=3)
    assert (train, dev) == split_queries(queries, 0.25, seed=3)
    assert dev != split_queries(queries, 0.25, seed=4)[1]
    assert not {query.qid for query in train} & {query.qid for query in dev}
    assert len(dev) == round(len(queries) * 0.25) and len(train) + len(dev) == len(queries)


def test_hard_kill_leaves_nothing_main_takes_for_a_model(small_data, tmp_path):
    runs_root = tmp_path / "outputs"
    process = start_training(*data_flags(small_data), "--base_model", "bundled-minilm", "--max_steps", "40",
                             *QUICK, "--runs_root", str(runs_root), cwd=tmp_path)
    try:
        wait_for(lambda: list(runs_root.glob("*/checkpoint-2/trainer_state.json")))
    finally:
        process.kill()
        process.wait()
    (run_dir,) = runs_root.glob("reranker-finetuned-*")
    result = run_script("main.py", "--corpus_csv", str(small_data["corpus"]), "--eval_xlsx", str(small_data["test"]),
                        "--runs_root", str(runs_root), "--output_json", str(tmp_path / "r.json"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"skipping {run_dir}: unfinished" in result.stderr
    assert [run["name"] for run in json.loads((tmp_path / "r.json").read_text())["runs"]] == ["first_stage"]


def test_torchrun_two_processes_write_one_run(small_data, tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
               str(ROOT / "fine_tune_reranker.py"), *data_flags(small_data), "--base_model", "bundled-minilm",
               "--max_steps", "2", *QUICK]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs").iterdir()
    info = json.loads((run_dir / "training_info.json").read_text())
    assert info["processes"] == 2
    state = json.loads((run_dir / "trainer_state.json").read_text())
    assert state["global_step"] == 2
    # Each process takes half the pairs, 8 per step: an epoch is half as many steps as with one process.
    rows = info["data"]["train_pairs"]
    pairs = rows["positive_pairs"] + rows["hard_negative_pairs"] + rows["random_negative_pairs"]
    assert state["epoch"] == pytest.approx(2 / math.ceil(math.ceil(pairs / 2) / 8))


def test_partial_requests_go_on_with_a_warning(small_data, tmp_path):
    result = run_script("fine_tune_reranker.py", *data_flags(small_data), "--base_model", "bundled-minilm",
                        "--max_steps", "1", *QUICK, "--hard_neg_top_k", "500", "--num_random_negatives", "2",
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "--hard_neg_top_k 500 is larger than the corpus; using all 30 documents" in result.stderr
    assert "got fewer negatives than asked" in result.stderr


@pytest.mark.parametrize("case", ["empty corpus", "no usable query rows"])
def test_empty_inputs_through_the_cli(tmp_path, case):
    corpus = write_corpus(tmp_path / "c.csv", [] if case == "empty corpus" else [(1, "Văn bản một.")])
    queries = write_queries(tmp_path / "q.xlsx", [] if case != "empty corpus" else [
        {"Query": "q", "Ground truth document": 1, "Ground truth answer": "a", "Difficulty": 1}])
    result = run_script("fine_tune_reranker.py", "--corpus_csv", str(corpus), "--train_xlsx", str(queries),
                        "--base_model", "bundled-minilm", cwd=tmp_path)
    assert result.returncode == 2
    assert ("no documents" if case == "empty corpus" else "no queries") in result.stderr
    assert not (tmp_path / "outputs").exists()


def test_resume_of_a_finished_run_is_refused(trained_run, small_data, tmp_path):
    copy = tmp_path / "done"
    shutil.copytree(trained_run[0], copy)
    result = run_script("fine_tune_reranker.py", *data_flags(small_data), "--resume_from_checkpoint",
                        str(copy / "checkpoint-2"), cwd=tmp_path)
    assert result.returncode == 2 and "finished already" in result.stderr


ids = st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=6)


@settings(max_examples=200, deadline=None)
@given(ids, st.sampled_from([", ", ",", " , ", " ,"]))
def test_ground_truth_round_trips(doc_ids, separator):
    expected = tuple(dict.fromkeys(doc_ids))
    assert parse_ground_truth(separator.join(map(str, doc_ids))) == expected
    if len(doc_ids) == 1:
        assert parse_ground_truth(doc_ids[0]) == parse_ground_truth(float(doc_ids[0])) == expected


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=20), st.floats(allow_nan=True), st.integers(), st.none(), st.booleans()))
def test_ground_truth_parser_only_ever_raises_value_error(cell):
    try:
        result = parse_ground_truth(cell)
    except ValueError:
        return
    assert result and all(isinstance(doc_id, int) and doc_id >= 1 for doc_id in result)


def test_latest_resumes_the_run_whose_checkpoint_is_newest_not_the_newest_name(tmp_path):
    from reranker_kit.run_folder import newest_unfinished_run_with_checkpoint

    def unfinished_run(name: str, saved_at: float) -> Path:
        checkpoint = tmp_path / name / "checkpoint-2"
        checkpoint.mkdir(parents=True)
        for file in ("trainer_state.json", "config.json", "model.safetensors"):
            (checkpoint / file).write_text("{}")
        os.utime(checkpoint, (saved_at, saved_at))
        return tmp_path / name

    now = time.time()
    resumed_lately = unfinished_run("reranker-finetuned-20260101-090000", now)
    unfinished_run("reranker-finetuned-20991231-235959", now - 3600)  # Dated by a clock set in the future.
    finished = unfinished_run("reranker-finetuned-20260102-090000", now + 60)
    (finished / "training_info.json").write_text("{}")
    (finished / "config.json").write_text("{}")
    assert newest_unfinished_run_with_checkpoint(tmp_path) == resumed_lately
