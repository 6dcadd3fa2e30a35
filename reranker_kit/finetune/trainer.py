"""The Trainer glue both jobs use: precision, evaluation intervals, the TrainingArguments mapped from the
settings, the kit's callbacks, saves that survive a full disk, and peak memory.

Both the reranker's `Trainer` and the embedder's `SentenceTransformerTrainer` are transformers Trainers, so
one set of callbacks serves both: a stop signal saves a checkpoint and ends training, the last step is
judged too, each checkpoint records the base model and the time so far, and log entries become log lines.
"""

import logging
import math
import resource
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path

import torch
from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from reranker_kit.basics.distributed import world_size
from reranker_kit.basics.errors import DiskFullError
from reranker_kit.basics.exits import STOP_SIGNALS, raise_if_interrupted
from reranker_kit.basics.files import folder_bytes, free_bytes, is_disk_full
from reranker_kit.finetune.progress import write_checkpoint_progress
from reranker_kit.finetune.settings import JobSettings
from reranker_kit.run_folder import checkpoints

logger = logging.getLogger(__name__)


def choose_precision(fp16: bool, bf16: bool) -> tuple[bool, bool]:
    """The mixed precision the hardware supports; asking for more warns and trains in full precision."""
    if not (fp16 or bf16):
        return False, False
    if not torch.cuda.is_available():
        logger.warning("`%s` needs a CUDA GPU and none is available: training in full precision (fp32)",
                       "fp16" if fp16 else "bf16")
        return False, False
    if bf16 and not torch.cuda.is_bf16_supported(including_emulation=False):
        logger.warning("`bf16` needs compute capability 8.0 or newer (this GPU: %s); training in full precision. "
                       "Use `fp16` on this GPU.", ".".join(map(str, torch.cuda.get_device_capability())))
        return False, False
    return fp16, bf16


def eval_interval(settings: JobSettings, train_rows: int, has_dev: bool) -> tuple[int, int]:
    """`eval_steps` and `save_steps`, shortened to one epoch on small data so every epoch is judged.

    An epoch counts the rows every process takes per optimizer step (torchrun: several processes).
    """
    optimisation, evaluation = settings.optimisation, settings.evaluation
    rows_per_step = optimisation.batch_size * optimisation.gradient_accumulation_steps * world_size()
    steps_per_epoch = max(math.ceil(train_rows / rows_per_step), 1)
    if has_dev and evaluation.eval_steps > steps_per_epoch:
        logger.info("`eval_steps` %d is longer than an epoch (%d optimizer steps): evaluating and saving every %d "
                    "steps so the best checkpoint can be chosen", evaluation.eval_steps, steps_per_epoch,
                    steps_per_epoch)
        return steps_per_epoch, steps_per_epoch
    return evaluation.eval_steps, evaluation.save_steps


def trainer_arguments(arguments_class, settings: JobSettings, run_dir: Path, intervals: tuple[int, int],
                      has_dev: bool, select_best: bool, **specific):
    """`arguments_class` (TrainingArguments or a subclass) from the settings.

    Every setting whose field names a Trainer field (`setting(..., trainer=...)`) passes as it is; what
    needs a decision is here once: precision for the hardware, the intervals, where trackers write, which
    checkpoint is loaded at the end. `specific` adds a job's own (the reranker's length grouping, say).
    """
    mapped = {item.metadata["trainer"]: getattr(getattr(settings, group.name), item.name)
              for group in fields(settings) for item in fields(getattr(settings, group.name)) if item.metadata["trainer"]}
    fp16, bf16 = choose_precision(settings.optimisation.fp16, settings.optimisation.bf16)
    use_cuda = torch.cuda.is_available()
    report_to = settings.output.report_to
    return arguments_class(
        **mapped, output_dir=str(run_dir), fp16=fp16, bf16=bf16, data_seed=settings.optimisation.seed,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        eval_strategy="steps" if has_dev else "no", eval_steps=intervals[0], save_strategy="steps",
        save_steps=intervals[1], load_best_model_at_end=select_best,
        metric_for_best_model=settings.evaluation.metric_for_best_model if select_best else None,
        greater_is_better=True, logging_first_step=True,
        report_to=report_to if report_to in ("none", "all") else [report_to],
        logging_dir=str(run_dir / "runs"),  # Tracker event files stay inside the run folder.
        dataloader_pin_memory=use_cuda,
        # use_cpu lets accelerate see a CPU torchrun launch as multi-process (gloo) data parallelism.
        use_cpu=not use_cuda,
        # The Trainer's progress bar (with its ETA) on stderr; log lines go through logging instead of dict prints.
        disable_tqdm=False, **specific)


def peak_memory_gib() -> dict[str, float]:
    peaks = {"process_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}  # Linux reports KiB.
    if torch.cuda.is_available():
        peaks["cuda_allocated"] = torch.cuda.max_memory_allocated() / 2**30
    return peaks


def kit_callbacks(base_model: str, started: float, kind: str) -> tuple[list[TrainerCallback], "GracefulInterruptCallback"]:
    """The callbacks every kit Trainer runs with, and the interrupt callback among them (to ask if it fired)."""
    interrupt = GracefulInterruptCallback()
    return [interrupt, EvaluateAtEndCallback(), CheckpointProgressCallback(base_model, started, kind),
            LoggingProgressCallback()], interrupt


@contextmanager
def disk_full_as_error(target: Path, needed_bytes: int, remove_partial, resume_hint: str) -> Iterator[None]:
    """Turns a save that ran out of disk into a DiskFullError naming the folder and the space needed.

    `remove_partial` removes what the failed save left; any other failure keeps its traceback (a bug).
    `resume_hint` is the job's command with its resume setting (the script differs by job).
    """
    try:
        yield
    except Exception as error:  # torch and safetensors report a full disk with their own error types.
        remove_partial()
        if not is_disk_full(error, target, needed_bytes):
            raise
        run_dir = target.parent if target.name.startswith(PREFIX_CHECKPOINT_DIR) else target
        saved = checkpoints(run_dir)
        then = (f"then resume with: {resume_hint} {saved[-1]}" if saved
                else "then start the run again (it had no earlier checkpoint, so its folder is removed)")
        raise DiskFullError(
            f"no space left on the disk of {run_dir} while saving {target.name}: removed the partial save; it needs "
            f"about {needed_bytes / 2**20:.0f} MB and {free_bytes(run_dir) / 2**20:.0f} MB are free there. Free "
            f"space (`save_total_limit` 1 keeps fewer checkpoints) or give `runs_root` on a larger disk, {then}"
        ) from None


def checkpoint_bytes(run_dir: str | Path, model) -> int:
    """A checkpoint's size: the previous one's, else the weights and the Adam state of the trainable ones."""
    previous = checkpoints(run_dir)
    if previous:
        return folder_bytes(previous[-1])
    parameters = list(model.parameters())
    return (sum(p.numel() * p.element_size() for p in parameters)
            + sum(2 * p.numel() * 4 for p in parameters if p.requires_grad))  # exp_avg and exp_avg_sq, fp32.


@contextmanager
def checkpoint_save_guard(run_dir: Path, step: int, model, resume_hint: str) -> Iterator[None]:
    """Around the Trainer's checkpoint save: a full disk leaves no half-written checkpoint-N behind."""
    checkpoint = Path(run_dir) / f"{PREFIX_CHECKPOINT_DIR}-{step}"
    with disk_full_as_error(checkpoint, checkpoint_bytes(run_dir, model), lambda: shutil.rmtree(checkpoint, True),
                            resume_hint):
        yield


class EvaluateAtEndCallback(TrainerCallback):
    """Evaluates and saves at the last step too, so the final weights compete for best checkpoint."""

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step >= state.max_steps and args.eval_strategy != "no":
            control.should_evaluate = True
            control.should_save = True
        return control


class GracefulInterruptCallback(TrainerCallback):
    """The first Ctrl-C (SIGINT) or SIGTERM saves a checkpoint at the end of the current step and stops.

    A second Ctrl-C interrupts at once, as usual.
    """

    def __init__(self):
        self.interrupted = False
        self._previous_handlers = {}

    def on_train_begin(self, args, state, control, **kwargs):
        raise_if_interrupted()  # A Ctrl-C while the model loaded stops here, before the first step.
        for signum in STOP_SIGNALS:
            self._previous_handlers[signum] = signal.signal(signum, self._request_stop)

    def on_train_end(self, args, state, control, **kwargs):
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)

    def _request_stop(self, signum, frame):
        if self.interrupted and signum == signal.SIGINT:
            raise KeyboardInterrupt
        logger.warning("%s received: saving a checkpoint after this step, then stopping "
                       "(press Ctrl-C again to abort without saving)", signal.Signals(signum).name)
        self.interrupted = True

    def on_step_end(self, args, state, control, **kwargs):
        if self.interrupted:
            control.should_save = True
            control.should_training_stop = True
        return control


class CheckpointProgressCallback(TrainerCallback):
    """Records in each checkpoint the base model, the job's kind and the wall time so far (all sessions).

    A resume checks the base model and the kind before loading, and adds the time.
    """

    def __init__(self, base_model: str, started: float, kind: str):
        self.base_model, self.started, self.kind = base_model, started, kind

    def on_save(self, args, state, control, **kwargs):
        checkpoint = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if state.is_world_process_zero and checkpoint.is_dir():
            write_checkpoint_progress(checkpoint, self.base_model, time.time() - self.started, self.kind)


class LoggingProgressCallback(ProgressCallback):
    """The Trainer's tqdm bar (steps done, rate, ETA), with each log entry as one `logging` line.

    The stock callback prints the raw dict (`{'loss': 0.6039, 'grad_norm': ...}`); run under
    `tqdm.contrib.logging.logging_redirect_tqdm` so the lines do not break the bar.
    """

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        values = ", ".join(f"{key} {_format_value(value)}" for key, value in logs.items() if key != "total_flos")
        logger.info("step %d/%d: %s", state.global_step, state.max_steps, values)


def _format_value(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def replace_default_callbacks(trainer, callbacks: list[TrainerCallback]) -> None:
    """The kit's callbacks in place of the Trainer's dict printer and plain progress bar."""
    from transformers.trainer_callback import PrinterCallback

    for default in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(default)
    for callback in callbacks:
        trainer.add_callback(callback)
