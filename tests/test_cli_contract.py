"""The command-line contract on inputs a new user tries: exit status, one-line message, what stays on disk.

Each case went wrong once (a traceback, a lost evaluation, a broken run blocking the others); every
test drives it through a script or the `Reranker` API as a user would.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
from datetime import datetime, timedelta

import pytest
from safetensors.torch import load_file

from conftest import QUICK, ROOT, TRAINED_RERANKER, data_flags, run_script

TRAINING_FLAGS = TRAINED_RERANKER


def only_error_line(result: subprocess.CompletedProcess) -> str:
    """The single error line a script printed; fails on a traceback or on several error lines."""
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line or ": error: " in line]
    assert len(errors) == 1, result.stderr[-3000:]
    return errors[0]


def main_flags(small_data, tmp_path, *flags):
    return ["--corpus_csv", str(small_data["corpus"]), "--eval_xlsx", str(small_data["test"]), "--top_n", "5",
            "--max_length", "96", "--runs_root", str(tmp_path / "outputs"), *flags]


def copy_run(trained_run, runs_root, name=None):
    source = trained_run[0]
    return shutil.copytree(source, runs_root / (name or source.name))


def set_finished_at(run_dir, when: datetime) -> None:
    info_path = run_dir / "training_info.json"
    info = json.loads(info_path.read_text())
    info["finished_at"] = when.isoformat(timespec="seconds")
    info_path.write_text(json.dumps(info))


def truncate(path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def unfinished_copy(trained_run, target):
    """What a run stopped after its last checkpoint but before its end leaves: the checkpoints only."""
    shutil.copytree(trained_run[0], target)
    for path in target.iterdir():
        if path.is_file():
            path.unlink()
    return target


# main.py: every destination checked before scoring, and no report file lost to another.

@pytest.mark.parametrize("flag, destination, message", [
    ("--runs_root", "a_file", "--runs_root {} is a file, not a folder"),
    ("--report_dir", "a_file/report", "--report_dir {} lies under"),
    ("--output_json", "a_file/report.json", "--output_json {}: its folder"),
])
def test_main_refuses_an_unwritable_destination_before_scoring(small_data, tmp_path, flag, destination, message):
    (tmp_path / "a_file").write_text("mine", encoding="utf-8")
    flags = main_flags(small_data, tmp_path, "--reranker", "none", "--pretrained_reranker", "none")
    flags += [flag, str(tmp_path / destination)]
    result = run_script("main.py", *flags, cwd=tmp_path)
    assert result.returncode == 2
    assert message.format(tmp_path / destination) in only_error_line(result)
    assert "===" not in result.stdout  # Refused before any table, so nothing was scored for nothing.
    assert (tmp_path / "a_file").read_text(encoding="utf-8") == "mine"
    assert not list(tmp_path.glob("outputs/eval-*"))


def test_a_report_file_that_cannot_be_written_never_loses_the_others(tmp_path):
    from reranker_kit.basics.errors import KitError
    from reranker_kit.benchmark.report import write_report

    metrics = {f"{name}@{k}": 0.5 for name in ("hit", "mrr") for k in (3, 5)}
    report = {"runs": [{"name": "first_stage", "dataset": "test", "difficulty": None, "queries": 2,
                        "metrics": metrics}], "by_difficulty": []}
    (tmp_path / "report" / "metrics.csv").mkdir(parents=True)  # In the way of one report file.
    with pytest.raises(KitError, match="could not write .*metrics.csv"):
        write_report(report, tmp_path / "report", tmp_path / "elsewhere" / "r.json", [3, 5], lambda: "<p>trang</p>")
    assert json.loads((tmp_path / "report" / "metrics.json").read_text())["runs"] == report["runs"]
    assert (tmp_path / "report" / "report.html").read_text(encoding="utf-8") == "<p>trang</p>"
    assert json.loads((tmp_path / "elsewhere" / "r.json").read_text()) == report
    assert (tmp_path / "report" / "metrics_by_k_test.png").stat().st_size > 0
    assert not [path.name for path in tmp_path.rglob(".*")]  # No temporary file left behind.


def test_main_deduplicates_k_and_warns_above_top_n(small_data, tmp_path):
    output_json = tmp_path / "r.json"
    result = run_script("main.py", *main_flags(small_data, tmp_path, "--reranker", "none", "--pretrained_reranker",
                                               "none", "--k", "5", "3", "5", "7", "--output_json", str(output_json)),
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "--k 5 3 5 7 repeats a value" in result.stderr
    assert "--k 7 is above --top_n 5" in result.stderr
    assert json.loads(output_json.read_text())["k"] == [5, 3, 7]
    (report_dir,) = (tmp_path / "outputs").glob("eval-*")
    assert (report_dir / "metrics_by_k_test.png").is_file()


# Finding the fine-tuned run: damaged runs skipped with the file named, order by recorded time.

def test_newest_run_is_the_newest_valid_one_by_recorded_time(small_data, trained_run, tmp_path):
    runs_root = tmp_path / "outputs"
    chosen = copy_run(trained_run, runs_root, "reranker-finetuned-20260101-120000")
    set_finished_at(chosen, datetime(2026, 1, 1, 12, 30))
    misdated = copy_run(trained_run, runs_root, "reranker-finetuned-29990101-000000")  # A wrong clock's name.
    set_finished_at(misdated, datetime(2025, 6, 1))
    cut_short = copy_run(trained_run, runs_root, "reranker-finetuned-20260102-120000")
    set_finished_at(cut_short, datetime(2026, 1, 2, 12, 30))
    truncate(cut_short / "model.safetensors")
    unreadable = copy_run(trained_run, runs_root, "reranker-finetuned-20260103-120000")
    (unreadable / "training_info.json").write_text('{"status": "complete", ', encoding="utf-8")
    result = run_script("main.py", *main_flags(small_data, tmp_path, "--pretrained_reranker", "none",
                                               "--fusion_weight", "none"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"skipping {cut_short}: {cut_short / 'model.safetensors'} is damaged or cut short" in result.stderr
    assert f"skipping {unreadable}: {unreadable / 'training_info.json'} does not parse" in result.stderr
    assert f"fine-tuned reranker: {chosen} (newest finished run" in result.stderr


@pytest.mark.parametrize("damage, named_file", [("weights", "model.safetensors"), ("info", "training_info.json")])
def test_an_explicit_damaged_reranker_exits_2_naming_the_file(small_data, trained_run, tmp_path, damage, named_file):
    run_dir = copy_run(trained_run, tmp_path / "runs")
    if damage == "weights":
        truncate(run_dir / "model.safetensors")
    else:
        (run_dir / "training_info.json").write_text("not json", encoding="utf-8")
    result = run_script("main.py", *main_flags(small_data, tmp_path, "--reranker", str(run_dir)), cwd=tmp_path)
    assert result.returncode == 2
    assert str(run_dir / named_file) in only_error_line(result)
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("script", ["main.py", "fine_tune_reranker.py"])
def test_a_mistyped_run_path_is_no_such_folder_with_the_nearest_runs(small_data, trained_run, tmp_path, script):
    copy_run(trained_run, tmp_path / "outputs", "reranker-finetuned-20261127-101500")
    flags = (main_flags(small_data, tmp_path, "--reranker", "outputs/reranker-finetuned-2026") if script == "main.py"
             else [*data_flags(small_data), "--base_model", "outputs/reranker-finetuned-2026"])
    result = run_script(script, *flags, cwd=tmp_path)
    assert result.returncode == 2
    line = only_error_line(result)
    assert "no such folder" in line and "outputs/reranker-finetuned-20261127-101500" in line
    assert "huggingface-cli" not in line and "not in the local Hugging Face cache" not in line


# The Reranker API: any iterable, never a bare string, checked before scoring.

@pytest.fixture(scope="module")
def reranker(trained_run):
    from rerank import Reranker

    return Reranker(model_name=str(trained_run[0]), device="cpu", max_length=96, batch_size=4)


def test_reranker_takes_any_iterable_of_passages(reranker):
    passages = ["Tuyển thành viên vào tháng 9.", "Phí thành viên là 100.000 đồng.", "Lịch họp tối thứ Tư."]
    expected = reranker("CLB tuyển khi nào?", passages)
    assert reranker("CLB tuyển khi nào?", (passage for passage in passages)) == expected
    assert reranker("CLB tuyển khi nào?", tuple(passages)) == expected
    pairs = (("CLB tuyển khi nào?", passage) for passage in passages)
    assert sorted(reranker.compute_score(pairs)) == pytest.approx(sorted(expected[0]))


@pytest.mark.parametrize("passages, message", [
    ("một đoạn văn", r"got one string; to score a single passage pass \[passage\]"),
    (None, "passages must be a list"),
    (iter(["một đoạn", 3]), r"passages\[1\] must be a string"),
])
def test_reranker_refuses_what_is_not_passages_before_scoring(reranker, monkeypatch, passages, message):
    monkeypatch.setattr("reranker_kit.models.reranker.score_pairs", lambda *args: pytest.fail("scored"))
    with pytest.raises(TypeError, match=message):
        reranker("câu hỏi", passages)


@pytest.mark.parametrize("pairs, message", [
    (None, "list \\(or any iterable\\) of \\(query, passage\\) pairs"),
    ("q", "list \\(or any iterable\\) of \\(query, passage\\) pairs"),
    (["ab"], r"pairs\[0\] must be a \(query: str, passage: str\) pair"),
    ((pair for pair in [("q", "p"), ("q", None)]), r"pairs\[1\] must be"),
])
def test_compute_score_refuses_what_is_not_pairs_before_scoring(reranker, monkeypatch, pairs, message):
    monkeypatch.setattr("reranker_kit.models.reranker.score_pairs", lambda *args: pytest.fail("scored"))
    with pytest.raises(TypeError, match=message):
        reranker.compute_score(pairs)


# Training flags and folders: refused before any model loads, nothing written.

@pytest.mark.parametrize("flags, message", [
    (["--lr", "nan"], "--lr must be a finite number, got nan"),
    (["--epochs", "inf"], "--epochs must be a finite number, got inf"),
    (["--weight_decay", "-5"], "--weight_decay must be 0 or more"),
    (["--seed", "-1"], "--seed must be 0 or more"),
    (["--runs_root", "a_file"], "--runs_root a_file is a file, not a folder"),
    (["--output_dir", "a_file"], "--output_dir a_file is a file, not a folder"),
    (["--cv_folds", "500"], "--cv_folds 500 is more than the"),
])
def test_bad_training_flags_exit_2_before_any_folder(small_data, tmp_path, flags, message):
    (tmp_path / "a_file").write_text("mine", encoding="utf-8")
    result = run_script("fine_tune_reranker.py", *data_flags(small_data), "--base_model", "bundled-minilm", *flags,
                        cwd=tmp_path)
    assert result.returncode == 2
    assert message in only_error_line(result)
    assert "training pairs" not in result.stderr  # Refused before the negatives were mined.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a_file"]
    assert (tmp_path / "a_file").read_text(encoding="utf-8") == "mine"


def test_ctrl_c_before_the_first_step_exits_130_and_removes_the_new_run(small_data, tmp_path):
    runs_root = tmp_path / "outputs"
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
    process = subprocess.Popen([sys.executable, str(ROOT / "fine_tune_reranker.py"), *data_flags(small_data),
                                *TRAINING_FLAGS, "--runs_root", str(runs_root)], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, sent = [], False
    for line in process.stdout:  # The run folder exists once the negatives are mined; the model loads next.
        lines.append(line)
        if "training pairs:" in line:
            process.send_signal(signal.SIGINT)
            sent = True
            break
    lines += process.stdout.readlines()
    assert process.wait(timeout=300) == 130, f"signal sent: {sent}\n" + "".join(lines)[-3000:]
    output = "".join(lines)
    assert "Traceback" not in output and "KeyboardInterrupt" not in output
    assert "'loss'" not in output, "the signal came after training began; the test needs it before"
    (error,) = [line for line in lines if " ERROR " in line]
    assert "interrupted before the first checkpoint: removed" in error
    assert list(runs_root.iterdir()) == []



@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # The dropped KeyboardInterrupt.
def test_a_ctrl_c_that_a_destructor_swallowed_still_stops_before_training(monkeypatch):
    """Python drops a KeyboardInterrupt raised inside `__del__`; the Ctrl-C must still end the run with 130."""
    import threading

    from reranker_kit.basics import exits as interrupts
    from reranker_kit.commands import common
    from reranker_kit.finetune.trainer import GracefulInterruptCallback

    class CollectedDuringTheCtrlC:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)  # Its KeyboardInterrupt is raised here, printed and dropped.

    def job():
        CollectedDuringTheCtrlC()
        GracefulInterruptCallback().on_train_begin(None, None, None)
        raise AssertionError("training began after a Ctrl-C")

    monkeypatch.setattr(interrupts, "_INTERRUPTED", threading.Event())
    previous = {signum: signal.getsignal(signum) for signum in interrupts.STOP_SIGNALS}
    try:
        with pytest.raises(SystemExit) as stopped:
            common.run_cli(job)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    assert stopped.value.code == 130


# Resume: the base model is checked before loading; the run's totals cover every session.

@pytest.mark.parametrize("base_model", ["tiny-xlmr", "namdp-ptit/ViRanker"])
def test_resume_with_another_base_model_names_the_one_to_use(small_data, trained_run, tiny_xlmr_model, tmp_path,
                                                            base_model):
    run_dir = unfinished_copy(trained_run, tmp_path / "cut")
    base_model = str(tiny_xlmr_model) if base_model == "tiny-xlmr" else base_model
    result = run_script("fine_tune_reranker.py", *data_flags(small_data), *QUICK, "--max_steps", "4",
                        "--base_model", base_model, "--resume_from_checkpoint", str(run_dir / "checkpoint-2"),
                        cwd=tmp_path)
    assert result.returncode == 2
    line = only_error_line(result)
    assert "started from bundled-minilm (a bert model with hidden size 384, 6 layers" in line
    assert f"--base_model {base_model} is" in line and line.endswith("resume with --base_model bundled-minilm")
    assert "missing" not in result.stderr.lower() and "unexpected" not in result.stderr.lower()
    assert sorted(path.name for path in run_dir.iterdir()) == ["checkpoint-2", "checkpoint-4"]


def test_resume_at_the_last_step_finishes_without_training_and_counts_all_time(small_data, trained_run, tmp_path):
    """What a stop during the final save leaves: the last step's checkpoint, and no finished run."""
    run_dir = unfinished_copy(trained_run, tmp_path / "cut")
    result = run_script("fine_tune_reranker.py", *data_flags(small_data), *TRAINING_FLAGS,
                        "--resume_from_checkpoint", "latest", "--output_dir", str(run_dir), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((run_dir / "trainer_state.json").read_text())["global_step"] == 4
    assert "checkpoint-4 is the run's last step" in result.stderr
    info = json.loads((run_dir / "training_info.json").read_text())
    assert info["final_step"] == 4
    before = json.loads((run_dir / "checkpoint-4" / "run_progress.json").read_text())
    assert info["wall_time_s"] > before["wall_time_s"] > 0
    # The same weights as the run that was never stopped: no extra step was taken.
    expected, actual = load_file(trained_run[0] / "model.safetensors"), load_file(run_dir / "model.safetensors")
    assert all((actual[name] - tensor).abs().max() < 1e-6 for name, tensor in expected.items())


def test_a_finished_run_reports_its_final_step_and_records_progress_in_checkpoints(trained_run):
    run_dir, _ = trained_run
    info = json.loads((run_dir / "training_info.json").read_text())
    assert info["final_step"] == 4
    progress = [json.loads((run_dir / name / "run_progress.json").read_text()) for name in ("checkpoint-2", "checkpoint-4")]
    assert [entry["base_model"] for entry in progress] == ["bundled-minilm", "bundled-minilm"]
    assert 0 < progress[0]["wall_time_s"] < progress[1]["wall_time_s"] < info["wall_time_s"]


def test_finished_time_falls_back_to_the_folder_name(tmp_path):
    from reranker_kit.run_folder import finished_time

    run_dir = tmp_path / "reranker-finetuned-20260305-080910"
    run_dir.mkdir()
    (run_dir / "training_info.json").write_text("{}", encoding="utf-8")
    assert finished_time(run_dir) == datetime(2026, 3, 5, 8, 9, 10)
    set_finished_at(run_dir, datetime(2026, 3, 5, 9) + timedelta(seconds=1))
    assert finished_time(run_dir) == datetime(2026, 3, 5, 9, 0, 1)
