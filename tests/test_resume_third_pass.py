"""Issue #26, reliability third pass, the resume cases, for both training CLIs (the shared core, issue #31):
interruption, changed settings, a full disk, a cut save, cross-validation resumed as a whole.

Each case runs once through `fine_tune_reranker.py` and once through `fine_tune_embedder.py`, as a user would;
each once ended with a traceback, a wrong run or a message that pointed nowhere, and the embedder's resume
once said less than the reranker's.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from reranker_kit.finetune.run_folders import checkpoint_kind
from reranker_kit.finetune.starts import read_starts

from conftest import QUICK, QUICK_EMBEDDER, ROOT, TRAINED_EMBEDDER, TRAINED_RERANKER, data_flags, run_script


@dataclass(frozen=True)
class Job:
    script: str
    kind: str
    small: tuple[str, ...]  # Seconds-long settings for a new run.
    trained: tuple[str, ...]  # The flags of the session's finished run of this kind.
    marker: str  # A line the job logs after mining, before its first training step.
    fixture: str  # The session fixture with a finished run of this kind.

    @property
    def run_prefix(self) -> str:
        return f"{self.kind}-finetuned-"

    @property
    def cv_prefix(self) -> str:
        return f"{self.kind}-cv-"


RERANKER = Job("fine_tune_reranker.py", "reranker", ("--base_model", "bundled-minilm", *QUICK),
               tuple(TRAINED_RERANKER), "training pairs:", "trained_run")
EMBEDDER = Job("fine_tune_embedder.py", "embedder", tuple(QUICK_EMBEDDER), tuple(TRAINED_EMBEDDER), "mined for",
               "embedder_run")
JOBS = pytest.mark.parametrize("job", [RERANKER, EMBEDDER], ids=lambda job: job.kind)


def small(job: Job) -> list[str]:
    return [*job.small, "--pseudo_queries_per_document", "0"]


def start_training(job: Job, *args: str, cwd: Path) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
    return subprocess.Popen([sys.executable, str(ROOT / job.script), *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def signal_after(process: subprocess.Popen, markers: str | tuple[str, ...], signum: int) -> str:
    """Sends `signum` once lines holding each marker have appeared, in order; returns all the script printed."""
    lines, waiting = [], [markers] if isinstance(markers, str) else list(markers)
    for line in process.stdout:
        lines.append(line)
        if waiting[0] in line:
            waiting.pop(0)
        if not waiting:
            process.send_signal(signum)
            break
    lines += process.stdout.readlines()
    process.wait(timeout=300)
    return "".join(lines)


def error_lines(output: str) -> list[str]:
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output[-3000:]
    return [line for line in output.splitlines() if " ERROR " in line]


def refusal(result: subprocess.CompletedProcess) -> str:
    """The one error line of a refused run (exit status 2, no traceback)."""
    assert result.returncode == 2, result.stderr[-3000:]
    (line,) = error_lines(result.stderr)
    return line


def finished_run(job: Job, request) -> Path:
    return request.getfixturevalue(job.fixture)[0]


def interrupted_copy(run_dir: Path, target: Path) -> Path:
    """What a run stopped after its last checkpoint leaves: checkpoints and what its start wrote, no finished files."""
    shutil.copytree(run_dir, target)
    for path in list(target.iterdir()):
        if path.is_file() and path.name not in ("run_started.json", "baseline_dev_metrics.json"):
            path.unlink()
        elif path.is_dir() and not path.name.startswith("checkpoint-"):
            shutil.rmtree(path)
    return target


# Case 1: cross-validation stopped in fold 2 resumes as a whole: fold 1 read back, fold 2 continued, the report.

@JOBS
def test_case_01_cross_validation_stopped_in_fold_2_resumes_as_a_whole(job, small_data, tmp_path):
    runs_root = tmp_path / "outputs"
    flags = [*data_flags(small_data), *small(job), "--max_steps", "4", "--cv_folds", "2", "--runs_root", str(runs_root)]
    output = signal_after(start_training(job, *flags, cwd=tmp_path), ("fold 2/2", ": loss "), signal.SIGTERM)
    assert "SIGTERM received: saving a checkpoint" in output, output[-3000:]
    (cv_dir,) = runs_root.glob(f"{job.cv_prefix}*")
    printed = Path(re.search(rf"resume with: python {job.script} <same settings> --resume_from_checkpoint (\S+)",
                             output).group(1))
    assert printed.parent == cv_dir / "fold-2" and (printed / "trainer_state.json").is_file()
    assert (cv_dir / "fold-1" / "fold_result.json").is_file() and not (cv_dir / "cv_results.json").exists()

    # Without --cv_folds the fold's checkpoint is refused, saying how to resume the whole; a changed fold count too.
    line = refusal(run_script(job.script, *flags[:-4], "--runs_root", str(runs_root),
                              "--resume_from_checkpoint", str(printed), cwd=tmp_path))
    assert f"belongs to fold 2 of the cross-validation {cv_dir}" in line and "keep --cv_folds 2" in line, line
    line = refusal(run_script(job.script, *flags, "--cv_folds", "3", "--resume_from_checkpoint", "latest",
                              cwd=tmp_path))
    assert "--cv_folds 3 here, 2 when the run started" in line, line

    resumed = run_script(job.script, *flags, "--resume_from_checkpoint", "latest", cwd=tmp_path)
    assert resumed.returncode == 0 and "Traceback" not in resumed.stderr, resumed.stderr[-3000:]
    assert "fold-1 finished already" in resumed.stderr and f"resuming fold-2 from {printed.name}" in resumed.stderr
    report = json.loads((cv_dir / "cv_results.json").read_text(encoding="utf-8"))
    per_fold = (report["summary"]["fine_tuned"]["mrr@5"]["folds"] if job.kind == "reranker"
                else report["summary"]["first_stages"]["dense_fine_tuned"]["mrr@5"]["folds"])
    assert len(per_fold) == 2
    fold_2 = json.loads((cv_dir / "fold-2" / "training_info.json").read_text(encoding="utf-8"))
    assert fold_2["final_step"] == 4 and len(fold_2["starts"]) == 2 and fold_2["verdict"] == "not judged"


# Case 2: a resume with another data file, seed or learning rate is refused with the differences named.

@JOBS
def test_case_02_a_resume_with_other_training_settings_is_refused_naming_them(job, request, small_data, tmp_path):
    run_dir = interrupted_copy(finished_run(job, request), tmp_path / "cut")
    other_queries = tmp_path / "other.xlsx"
    pd.read_excel(small_data["train"]).iloc[1:].to_excel(other_queries, index=False)
    first_lr = read_starts(run_dir)[0]["arguments"]["lr"]
    resume = [*data_flags(small_data), *job.trained, "--resume_from_checkpoint", "latest", "--output_dir", str(run_dir)]
    for changed, fragment in ((["--lr", "1e-4"], f"--lr 0.0001 here, {first_lr} when the run started"),
                              (["--seed", "7"], "--seed 7 here, 42 when the run started"),
                              (["--train_xlsx", str(other_queries)], f"--train_xlsx {other_queries} holds other data")):
        line = refusal(run_script(job.script, *resume, *changed, cwd=tmp_path))
        assert fragment in line and "Resume with the same settings, or start a new run" in line, line
    assert not (run_dir / "training_info.json").exists()

    # Settings that do not change what is trained may differ; every start is recorded.
    accepted = run_script(job.script, *resume, "--eval_batch_size", "16", "--logging_steps", "2", cwd=tmp_path)
    assert accepted.returncode == 0, accepted.stderr[-3000:]
    info = json.loads((run_dir / "training_info.json").read_text(encoding="utf-8"))
    assert info["kind"] == job.kind
    assert [start["arguments"]["eval_batch_size"] for start in info["starts"]][-1] == 16
    assert info["arguments"] == info["starts"][0]["arguments"] and info["arguments"]["resume_from_checkpoint"] is None
    assert {start["arguments"]["lr"] for start in read_starts(run_dir)} == {first_lr}  # Refused starts: none.


# Case 12: SIGTERM before the first step (mining, the pre-training dev evaluation) ends as Ctrl-C does.

@JOBS
def test_case_12_sigterm_before_the_first_step_exits_130_and_removes_the_new_run(job, small_data, tmp_path):
    runs_root = tmp_path / "outputs"
    process = start_training(job, *data_flags(small_data), *small(job), "--max_steps", "2", "--runs_root",
                             str(runs_root), cwd=tmp_path)
    output = signal_after(process, job.marker, signal.SIGTERM)
    assert process.returncode == 130, output[-3000:]
    assert "step 1/" not in output, "the signal came after training began; the test needs it before"
    (error,) = error_lines(output)
    assert "interrupted before the first checkpoint: removed" in error and "SIGTERM" in error, error
    assert list(runs_root.iterdir()) == []


# Case 9: a full disk while saving gives one line with the folder and the space needed, and no partial checkpoint.

@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of a given size (root only, as these tests run here); skipped where mounting is not allowed."""
    mounted = []

    def mount(size: str) -> Path:
        folder = tmp_path / f"disk-{size}"
        folder.mkdir()
        result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs here ({result.stderr.strip()}); the full-disk test needs one")
        mounted.append(folder)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@JOBS
@pytest.mark.parametrize("save, size", [("checkpoint-2", "150m"), ("the final weights", "300m")])
def test_case_09_a_full_disk_while_saving_names_the_folder_and_the_space_needed(job, small_data, tmp_path, small_disk,
                                                                               save, size):
    # The bundled model's checkpoint is about 261 MB (weights 87, Adam state 173): 150 MB fails inside it,
    # 300 MB holds checkpoint-2 but not the finished run's weights beside it.
    runs_root = small_disk(size)
    result = run_script(job.script, *data_flags(small_data), *small(job), "--max_steps", "2",
                        "--runs_root", str(runs_root), cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    (line,) = error_lines(result.stderr)
    assert "no space left on the disk of" in line and "MB are free there" in line, line
    assert re.search(r"it needs about (2[5-9]\d|8\d|9\d) MB", line), line
    runs = list(runs_root.glob(f"{job.run_prefix}*"))
    if save == "checkpoint-2":  # No earlier checkpoint: the run folder goes, nothing half-written stays.
        assert "while saving checkpoint-2" in line and "start the run again" in line, line
        assert runs == []
    else:
        (run_dir,) = runs
        assert f"python {job.script} <same settings> --resume_from_checkpoint {run_dir / 'checkpoint-2'}" in line, line
        assert not (run_dir / "model.safetensors").exists() and (run_dir / "checkpoint-2" / "trainer_state.json").is_file()


# Case 14: a checkpoint cut short by a kill while saving is named as such, whichever way the run is resumed.

@JOBS
def test_case_14_a_checkpoint_cut_short_while_saving_gets_one_consistent_message(job, request, small_data, tmp_path):
    runs_root = tmp_path / "outputs"
    run_dir = interrupted_copy(finished_run(job, request), runs_root / f"{job.run_prefix}20260101-090000")
    shutil.rmtree(run_dir / "checkpoint-4")
    cut = run_dir / "checkpoint-2"
    (cut / "trainer_state.json").unlink()  # The Trainer writes it last: a kill mid-save leaves none.
    flags = [*data_flags(small_data), *job.trained]
    tries = {"latest": ["--resume_from_checkpoint", "latest", "--runs_root", str(runs_root)],
             "latest in --output_dir": ["--resume_from_checkpoint", "latest", "--output_dir", str(run_dir)],
             "the path": ["--resume_from_checkpoint", str(cut)],
             "the same --output_dir": ["--output_dir", str(run_dir)]}
    for name, how in tries.items():
        line = refusal(run_script(job.script, *flags, *how, cwd=tmp_path))
        assert f"{cut} is an incomplete checkpoint (no trainer_state.json): its save was cut short" in line, (name, line)
        assert f"has no complete checkpoint to resume from: delete the folder {run_dir} and start a new run" in line

    # With an earlier complete checkpoint, the message points at it, and `latest` resumes from it.
    second = interrupted_copy(finished_run(job, request), tmp_path / "second")
    (second / "checkpoint-4" / "trainer_state.json").unlink()
    line = refusal(run_script(job.script, *flags, "--resume_from_checkpoint", str(second / "checkpoint-4"), cwd=tmp_path))
    assert f"resume from its last complete checkpoint with --resume_from_checkpoint {second / 'checkpoint-2'}" in line
    resumed = run_script(job.script, *flags, "--resume_from_checkpoint", "latest", "--output_dir", str(second),
                         cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "removing " in resumed.stderr and "resuming from checkpoint-2" in resumed.stderr
    assert json.loads((second / "training_info.json").read_text(encoding="utf-8"))["final_step"] == 4


# Issue #32, case 12: each trainer refuses the other's checkpoint before it writes anything.

@JOBS
def test_a_checkpoint_of_the_other_job_is_refused_before_anything_is_written(job, request, small_data, tmp_path):
    other = EMBEDDER if job is RERANKER else RERANKER
    run_dir = interrupted_copy(finished_run(other, request), tmp_path / "other")
    checkpoint = run_dir / "checkpoint-2"
    assert checkpoint_kind(checkpoint) == other.kind
    before = sorted(path.name for path in run_dir.rglob("*"))
    line = refusal(run_script(job.script, *data_flags(small_data), *job.trained, "--resume_from_checkpoint",
                              str(checkpoint), cwd=tmp_path))
    assert f"is a checkpoint of a {other.kind} run, and this is the {job.kind} job ({job.script})" in line, line
    assert sorted(path.name for path in run_dir.rglob("*")) == before


# Issue #32, case 2: a second process resuming a run that is still training is refused; its checkpoint is untouched.

@JOBS
def test_a_run_in_use_is_refused_and_a_killed_holder_leaves_no_lock(job, request, small_data, tmp_path):
    from reranker_kit.finetune.run_folders import RunLock

    run_dir = interrupted_copy(finished_run(job, request), tmp_path / "busy")
    saving = run_dir / "checkpoint-6"
    saving.mkdir()  # What the first process is writing right now: no trainer_state.json yet.
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from reranker_kit.finetune.run_folders import RunLock; "
                               f"lock = RunLock(Path({str(run_dir)!r})).acquire(); print('locked', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    line = refusal(run_script(job.script, *data_flags(small_data), *job.trained, "--resume_from_checkpoint", "latest",
                              "--output_dir", str(run_dir), cwd=tmp_path))
    assert f"{run_dir} is in use: process {holder.pid} is training in it now" in line, line
    assert saving.is_dir()  # Not removed as "cut short" from under the process writing it.
    holder.kill()
    holder.wait()
    RunLock(run_dir).acquire().release()  # The kernel dropped the killed holder's lock.


# Issue #32, case 8: a checkpoint missing its optimizer, scheduler or random state is never resumed with fresh state.

@JOBS
@pytest.mark.parametrize("removed", ["optimizer.pt", "scheduler.pt", "rng_state.pth"])
def test_a_checkpoint_without_its_training_state_is_refused_not_resumed_fresh(job, request, small_data, tmp_path,
                                                                            removed):
    run_dir = interrupted_copy(finished_run(job, request), tmp_path / "stripped")
    (run_dir / "checkpoint-4" / removed).unlink()
    flags = [*data_flags(small_data), *job.trained]
    for how in (["--resume_from_checkpoint", "latest", "--output_dir", str(run_dir)],
                ["--resume_from_checkpoint", str(run_dir / "checkpoint-4")]):
        line = refusal(run_script(job.script, *flags, *how, cwd=tmp_path))
        assert f"checkpoint-4 is an incomplete checkpoint (no {removed}): its save finished" in line, line
        assert f"start a new run from its weights with --base_model {run_dir / 'checkpoint-4'}" in line, line
    assert (run_dir / "checkpoint-4" / "model.safetensors").is_file()  # Nothing of it was removed.


# Issue #32, case 19: the same base model given by its folder resumes, said once; another model is refused once.

@JOBS
def test_the_same_base_model_by_its_folder_resumes_and_says_so_once(job, request, small_data, tmp_path):
    from reranker_kit.basics.model_files import resolve_model_name

    run_dir = interrupted_copy(finished_run(job, request), tmp_path / "cut")
    folder = resolve_model_name("bundled-minilm")
    trained = [folder if flag == "bundled-minilm" else flag for flag in job.trained]
    resumed = run_script(job.script, *data_flags(small_data), *trained, "--resume_from_checkpoint", "latest",
                         "--output_dir", str(run_dir), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    said = [line for line in resumed.stderr.splitlines() if "by another name" in line]
    assert len(said) == 1 and f"--base_model {folder}" in said[0], said
    assert " WARNING " not in "\n".join(line for line in resumed.stderr.splitlines() if "base_model" in line)
