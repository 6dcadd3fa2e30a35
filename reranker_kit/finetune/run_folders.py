"""Opening the folder a fine-tuning run writes: a new one, or the interrupted one it resumes, for either job.

One path for both jobs: a new run gets a folder of its own; a resume finds its checkpoint (given, or
`latest`), refuses one that was cut short while saving, belongs to the other job, to a fold, or to a
finished run, checks the base model, removes the cut-short saves after it, and takes the folder's lock
first, so a second process never touches a run that is still training. A run stopped before its first
checkpoint leaves nothing behind; one stopped later keeps its folder and says how to go on.
Cross-validation folders and their folds open here too.
"""

import fcntl
import logging
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from reranker_kit.basics.distributed import is_main_process
from reranker_kit.basics.errors import CheckpointError, KitError
from reranker_kit.basics.files import check_writable_folder
from reranker_kit.finetune.progress import check_base_model, read_checkpoint_progress
from reranker_kit.finetune.settings import OutputSettings
from reranker_kit.finetune.starts import read_starts
from reranker_kit.run_folder import (
    CHECKPOINT_PATTERN,
    CV_RESULTS_FILE,
    checkpoint_folders,
    checkpoints,
    create_run_dir,
    describe_incomplete,
    discard_unstarted_run,
    fold_of,
    incomplete_checkpoints,
    is_checkpoint,
    is_complete,
    newest_unfinished_cross_validation,
    newest_unfinished_run_with_checkpoint,
    resume_advice,
    was_cut_short,
)

logger = logging.getLogger(__name__)

LOCK_FILE = ".lock"
# A checkpoint saved by a sentence-transformers Trainer holds the model's module list; a reranker's does not.
EMBEDDER_CHECKPOINT_FILE = "modules.json"


@dataclass(frozen=True)
class JobKind:
    """What tells one job's run folders from the other's: names, the script, the checkpoint's shape."""

    name: str  # "reranker" or "embedder", recorded in each checkpoint and in training_info.json.
    run_prefix: str
    cv_prefix: str
    script: str  # The command a message tells the user to run again.

    def resume_command(self) -> str:
        return f"python {self.script} <same settings> `resume_from_checkpoint`"


def checkpoint_kind(checkpoint: Path) -> str:
    """The job a checkpoint belongs to: as its progress file records it, else by its files."""
    recorded = read_checkpoint_progress(checkpoint).get("kind")
    if recorded:
        return recorded
    return "embedder" if (checkpoint / EMBEDDER_CHECKPOINT_FILE).is_file() else "reranker"


class RunLock:
    """An exclusive lock on a run folder for as long as this process trains in it.

    `flock` on `<run folder>/.lock`: the kernel drops it when the process ends however it ends, so a killed
    run never leaves a lock behind (only the file, which locks nothing); it keeps the holder's process id for
    the message.
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self.handle = None

    def acquire(self) -> "RunLock":
        handle = open(self.path, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise CheckpointError(f"{self.path.parent} is in use: process {holder} is training in it now. Wait for it "
                                  "to finish (or stop it with Ctrl-C, which saves a checkpoint), then resume") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self.handle = handle
        return self

    def release(self) -> None:
        if self.handle is not None:
            # Removed while still held, then closed: a process that opened it before cannot lock it until then,
            # and one that opens it after makes a new file. No lock file stays in a finished run.
            self.path.unlink(missing_ok=True)
            self.handle.close()
            self.handle = None


# Locks this process holds, by folder: released when the job ends (or the process does).
_held: dict[Path, RunLock] = {}


def lock_run(run_dir: Path) -> None:
    """Takes `run_dir`'s lock for this process (once per folder); a folder in use is refused."""
    key = Path(run_dir).resolve()
    if key not in _held and is_main_process():
        _held[key] = RunLock(run_dir).acquire()


def release_runs() -> None:
    for lock in _held.values():
        lock.release()
    _held.clear()


def open_run(output: OutputSettings, base_model: str, kind: JobKind) -> tuple[Path, Path | None]:
    """The run folder and, when resuming, the checkpoint to resume from (the folder locked either way).

    A new run always gets a folder of its own; resuming writes into the interrupted run's folder. A refusal
    lets the lock go at once.
    """
    try:
        return _open_run(output, base_model, kind)
    except BaseException:
        release_runs()
        raise


def _open_run(output: OutputSettings, base_model: str, kind: JobKind) -> tuple[Path, Path | None]:
    if output.resume_from_checkpoint is None:
        run_dir = new_run_dir(output.runs_root, output.output_dir, kind)
        lock_run(run_dir)
        return run_dir, None
    if output.resume_from_checkpoint == "latest":
        run_dir = (Path(output.output_dir) if output.output_dir is not None
                   else newest_unfinished_run_with_checkpoint(output.runs_root, kind.run_prefix))
        if run_dir is None:
            raise CheckpointError(f"`resume_from_checkpoint` latest: no unfinished {kind.name} run with a checkpoint "
                                  f"under {output.runs_root}; start a new run instead")
        lock_run(run_dir)
        checkpoint = last_complete_checkpoint(run_dir, "`resume_from_checkpoint` latest", kind)
    else:
        checkpoint = given_checkpoint(Path(output.resume_from_checkpoint), kind, cross_validating=False)
        run_dir = checkpoint.parent
        if output.output_dir is not None and Path(output.output_dir).resolve() != run_dir.resolve():
            raise CheckpointError(f"`output_dir` {output.output_dir} differs from the folder of the checkpoint "
                                  f"({run_dir}); drop `output_dir`, a resumed run continues in its own folder")
        lock_run(run_dir)
    check_resumable(run_dir, checkpoint, base_model, kind)
    logger.info("resuming %s from %s", run_dir, checkpoint.name)
    return run_dir, checkpoint


def check_resumable(run_dir: Path, checkpoint: Path, base_model: str, kind: JobKind) -> None:
    """A finished run is not resumed; the base model must be the run's; saves cut short after it go."""
    if is_complete(run_dir):
        raise CheckpointError(f"{run_dir} finished already; to train further, start a new run with "
                              f"`base_model` {run_dir}")
    check_base_model(checkpoint, base_model)
    remove_cut_saves_after(checkpoint)


def new_run_dir(runs_root: str | Path, output_dir: str | None, kind: JobKind) -> Path:
    """A new <prefix>* folder under `runs_root`, or the `output_dir` given, which must be new or empty."""
    if output_dir is None:
        check_writable_folder(runs_root, "`runs_root`")
        return create_run_dir(runs_root, prefix=kind.run_prefix)
    run_dir = Path(output_dir)
    check_writable_folder(run_dir, "`output_dir`")
    if run_dir.exists() and any(run_dir.iterdir()):
        cut = checkpoint_folders(run_dir)
        if cut and not checkpoints(run_dir):
            raise KitError(f"`output_dir` {run_dir} holds an unfinished run: {describe_incomplete(cut[-1])}; "
                           f"{resume_advice(run_dir)}, or give a new `output_dir`")
        raise KitError(f"`output_dir` {run_dir} already holds files; give a new folder, or resume that run "
                       "with `resume_from_checkpoint` latest")
    run_dir.mkdir(parents=True, exist_ok=True)
    return run_dir


def given_checkpoint(checkpoint: Path, kind: JobKind, cross_validating: bool) -> Path:
    """An explicit `resume_from_checkpoint`, checked: complete, this job's, and a fold only when cross-validating."""
    if checkpoint.is_dir() and CHECKPOINT_PATTERN.match(checkpoint.name) and not is_checkpoint(checkpoint):
        raise CheckpointError(f"`resume_from_checkpoint` {describe_incomplete(checkpoint)}; "
                              f"{resume_advice(checkpoint.parent)}")
    if not is_checkpoint(checkpoint):
        raise CheckpointError(
            f"`resume_from_checkpoint` {checkpoint} is not a Trainer checkpoint (a checkpoint-N folder with "
            "trainer_state.json, config.json and the weights). To start from a model's weights only, pass it "
            "as `base_model` instead.")
    found = checkpoint_kind(checkpoint)
    if found != kind.name:
        raise CheckpointError(f"`resume_from_checkpoint` {checkpoint} is a checkpoint of a {found} run, and this is "
                              f"the {kind.name} job ({kind.script}); resume it with the {found}'s own script, or "
                              f"give a {kind.name} checkpoint")
    fold = fold_of(checkpoint.parent)
    if fold is not None and not cross_validating:
        cv_dir, number = fold
        folds = (read_starts(cv_dir)[:1] or [{}])[0].get("arguments", {}).get("cv_folds", "N")
        raise CheckpointError(f"{checkpoint} belongs to fold {number} of the cross-validation {cv_dir}, which "
                              f"resumes as a whole: keep `cv_folds` {folds} and the other settings of that run, with "
                              f"`resume_from_checkpoint` {checkpoint} (or latest)")
    if fold is None and cross_validating:
        raise CheckpointError(f"`cv_folds` resumes a cross-validation: {checkpoint} is no fold-N checkpoint of a "
                              f"{kind.cv_prefix}* folder; pass one, or `resume_from_checkpoint` latest")
    return checkpoint


def last_complete_checkpoint(run_dir: Path, asked: str, kind: JobKind) -> Path:
    """The newest complete checkpoint of an unfinished run of this job; refuses, saying what to do, without one."""
    found, folders = checkpoints(run_dir), checkpoint_folders(run_dir)
    if folders and not is_checkpoint(folders[-1]) and not was_cut_short(folders[-1]):
        # Its save finished, then files went: going back to an older one would throw its steps away unasked.
        raise CheckpointError(f"{asked}: {describe_incomplete(folders[-1])}")
    if not found and folders:
        raise CheckpointError(f"{asked}: {describe_incomplete(folders[-1])}; {resume_advice(run_dir)}")
    if not found:
        raise CheckpointError(f"{asked}: {run_dir} holds no checkpoint-N folder; start a new run instead")
    return given_checkpoint(found[-1], kind, cross_validating=fold_of(run_dir) is not None)


def remove_cut_saves_after(checkpoint: Path) -> None:
    """Removes the checkpoint folders after `checkpoint` whose save was cut short: the Trainer saves them again."""
    step = int(CHECKPOINT_PATTERN.match(checkpoint.name).group(1))
    for folder in incomplete_checkpoints(checkpoint.parent):
        if int(CHECKPOINT_PATTERN.match(folder.name).group(1)) > step:
            logger.warning("removing %s; resuming from %s", describe_incomplete(folder), checkpoint.name)
            shutil.rmtree(folder)


def how_to_go_on(run_dir: Path, kind: JobKind) -> str:
    """The resume command for a kept run folder: a cross-validation by `latest`, a run by its last checkpoint."""
    found = checkpoints(run_dir)
    if run_dir.name.startswith(kind.cv_prefix) or found:
        return f"resume with: {kind.resume_command()} {found[-1] if found else 'latest'}"
    return resume_advice(run_dir)


@contextmanager
def removed_if_stopped_early(run_dir: Path, keep_folder: bool, kind: JobKind) -> Iterator[None]:
    """An error or Ctrl-C before the first checkpoint removes what the new run wrote: nothing to resume is left.

    A folder with a checkpoint or a finished fold (a resumed run, a stop between two folds) is kept as it
    is, and the interruption's message says how to resume it. The folder's lock goes when the job ends.
    """
    try:
        yield
    except KeyboardInterrupt as interrupt:
        cause = f" ({interrupt})" if str(interrupt) else ""  # "interrupted by SIGTERM"; empty for Ctrl-C.
        if not is_main_process():
            raise
        if discard_unstarted_run(run_dir, keep_folder):
            raise KeyboardInterrupt(f"interrupted before the first checkpoint: removed what this run wrote in "
                                    f"{run_dir}; nothing to resume{cause}") from None
        if str(interrupt).startswith("interrupted by") or not str(interrupt):
            raise KeyboardInterrupt(f"interrupted{cause}: kept {run_dir}; {how_to_go_on(run_dir, kind)}") from None
        raise
    except Exception:
        if is_main_process():
            discard_unstarted_run(run_dir, keep_folder)
        raise
    finally:
        release_runs()


def open_cross_validation(output: OutputSettings, kind: JobKind) -> tuple[Path, Path | None]:
    """(the cross-validation folder, the fold checkpoint given explicitly or None): a new one, or one to go on with."""
    try:
        return _open_cross_validation(output, kind)
    except BaseException:
        release_runs()
        raise


def _open_cross_validation(output: OutputSettings, kind: JobKind) -> tuple[Path, Path | None]:
    if output.output_dir:
        raise KitError("`cv_folds` runs in a folder of its own under `runs_root`: drop `output_dir`")
    check_writable_folder(output.runs_root, "`runs_root`")
    if output.resume_from_checkpoint is None:
        cv_dir = create_run_dir(output.runs_root, prefix=kind.cv_prefix)
        lock_run(cv_dir)
        return cv_dir, None
    if output.resume_from_checkpoint == "latest":
        cv_dir = newest_unfinished_cross_validation(output.runs_root, kind.cv_prefix)
        if cv_dir is None:
            raise CheckpointError(f"`resume_from_checkpoint` latest with `cv_folds`: no unfinished cross-validation "
                                  f"under {output.runs_root} (a {kind.cv_prefix}* folder without {CV_RESULTS_FILE} "
                                  "that holds a fold checkpoint or a finished fold); start a new one without "
                                  "`resume_from_checkpoint`")
        given = None
    else:
        given = given_checkpoint(Path(output.resume_from_checkpoint), kind, cross_validating=True)
        cv_dir = given.parent.parent
        if (cv_dir / CV_RESULTS_FILE).is_file():
            raise CheckpointError(f"{cv_dir} finished already (it holds {CV_RESULTS_FILE}); start a new "
                                  "cross-validation without `resume_from_checkpoint`")
    lock_run(cv_dir)
    logger.info("resuming the cross-validation %s", cv_dir)
    return cv_dir, given


def fold_checkpoint(fold_dir: Path, given: Path | None, base_model: str, kind: JobKind) -> Path | None:
    """The checkpoint an unfinished fold goes on from; a fold without one starts over in an emptied folder."""
    found = checkpoints(fold_dir) if fold_dir.is_dir() else []
    checkpoint = given if given is not None and given.parent == fold_dir else (found[-1] if found else None)
    if checkpoint is None:
        if fold_dir.exists():
            logger.warning("%s holds no complete checkpoint: the fold starts over", fold_dir)
            shutil.rmtree(fold_dir)
        fold_dir.mkdir()
        return None
    given_checkpoint(checkpoint, kind, cross_validating=True)
    check_base_model(checkpoint, base_model)
    remove_cut_saves_after(checkpoint)
    logger.info("resuming %s from %s", fold_dir.name, checkpoint.name)
    return checkpoint
