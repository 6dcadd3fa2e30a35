"""The Trainer the kit trains with: a loss object, evaluation by reranking the dev queries, and its callbacks."""

import logging
import shutil
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from transformers import Trainer, TrainerCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from reranker_kit.basics.errors import DiskFullError
from reranker_kit.basics.files import folder_bytes, free_bytes, is_disk_full, share_like_other_files
from reranker_kit.basics.interrupts import raise_if_interrupted
from reranker_kit.run_folder import WEIGHT_FILES, checkpoints
from reranker_kit.training.dataset import MODEL_INPUT_KEYS
from reranker_kit.training.progress import write_checkpoint_progress

logger = logging.getLogger(__name__)


class RerankerTrainer(Trainer):
    """A Trainer with the reranker loss and an `evaluate` that reranks the dev queries."""

    def __init__(self, *args, loss, dev_evaluator=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.loss = loss  # A training.losses object: loss(logits, batch).
        self.dev_evaluator = dev_evaluator
        # The Trainer's bar stays; its dict prints give way to log lines.
        for default in (PrinterCallback, ProgressCallback):
            self.remove_callback(default)
        self.add_callback(LoggingProgressCallback())

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # num_items_in_batch: passed by transformers >= 4.46; each micro-batch loss is already a mean.
        model_inputs = {key: value for key, value in inputs.items() if key in MODEL_INPUT_KEYS}
        outputs = model(**model_inputs)
        loss = self.loss(outputs.logits, inputs)
        return (loss, outputs) if return_outputs else loss

    def _save(self, output_dir: str | None = None, state_dict=None):
        # Every save of the weights (checkpoints and the finished run) passes here; safetensors writes them 0600.
        super()._save(output_dir, state_dict)
        share_like_other_files(output_dir if output_dir is not None else self.args.output_dir)

    def _save_checkpoint(self, model, trial):
        # A full disk leaves no half-written checkpoint-N behind: a resume would fail on it, or worse take it.
        checkpoint = Path(self.args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        with disk_full_as_error(checkpoint, self.checkpoint_bytes(), lambda: shutil.rmtree(checkpoint, True)):
            super()._save_checkpoint(model, trial)

    def save_final_model(self, run_dir: Path) -> None:
        """The finished run's weights and Trainer state; a full disk removes the partial weights and says so."""
        needed = sum(p.numel() * p.element_size() for p in self.model.parameters())

        def remove_partial_weights():
            for name in WEIGHT_FILES:
                (run_dir / name).unlink(missing_ok=True)

        with disk_full_as_error(run_dir, needed, remove_partial_weights):
            self.save_model(str(run_dir))
            self.save_state()

    def checkpoint_bytes(self) -> int:
        """A checkpoint's size: the previous one's, else the weights and the Adam state of the trainable ones."""
        previous = checkpoints(self.args.output_dir)
        if previous:
            return folder_bytes(previous[-1])
        parameters = list(self.model.parameters())
        return (sum(p.numel() * p.element_size() for p in parameters)
                + sum(2 * p.numel() * 4 for p in parameters if p.requires_grad))  # exp_avg and exp_avg_sq, fp32.

    def push_to_hub(self, *args, **kwargs):
        # save_model() would push here, before the kit has written its model card and metrics, and the
        # Trainer's card would replace the kit's README.md: the finished run is pushed by reranker_kit.training.hub.
        logger.info("the finished run is pushed once its model card is written")

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        # The eval dataset is the dev queries themselves: the evaluator reranks their candidates.
        if self.dev_evaluator is None:
            return {}
        metrics = {f"{metric_key_prefix}_{name}": value for name, value in self.dev_evaluator(self.model).items()}
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


@contextmanager
def disk_full_as_error(target: Path, needed_bytes: int, remove_partial) -> Iterator[None]:
    """Turns a save that ran out of disk into a DiskFullError naming the folder and the space needed.

    `remove_partial` removes what the failed save left; any other failure keeps its traceback (a bug).
    """
    try:
        yield
    except Exception as error:  # torch and safetensors report a full disk with their own error types.
        remove_partial()
        if not is_disk_full(error, target, needed_bytes):
            raise
        run_dir = target.parent if target.name.startswith(PREFIX_CHECKPOINT_DIR) else target
        saved = checkpoints(run_dir)
        then = (f"then resume with: python fine_tune_reranker.py <same flags> --resume_from_checkpoint {saved[-1]}"
                if saved else "then start the run again (it had no earlier checkpoint, so its folder is removed)")
        raise DiskFullError(
            f"no space left on the disk of {run_dir} while saving {target.name}: removed the partial save; it needs "
            f"about {needed_bytes / 2**20:.0f} MB and {free_bytes(run_dir) / 2**20:.0f} MB are free there. Free "
            f"space (--save_total_limit 1 keeps fewer checkpoints) or give --runs_root on a larger disk, {then}"
        ) from None


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
        for signum in (signal.SIGINT, signal.SIGTERM):
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
    """Records in each checkpoint the base model and the wall time so far (all sessions of the run).

    A resume checks the base model against --base_model before loading, and adds the time.
    """

    def __init__(self, base_model: str, started: float):
        self.base_model = base_model
        self.started = started

    def on_save(self, args, state, control, **kwargs):
        checkpoint = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if state.is_world_process_zero and checkpoint.is_dir():
            write_checkpoint_progress(checkpoint, self.base_model, time.time() - self.started)
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
