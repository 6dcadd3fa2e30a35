"""The reranker's Trainer: a loss object, evaluation by reranking the dev queries, saves that survive a full disk.

The callbacks both jobs run with are `finetune.trainer`'s.
"""

import logging
from pathlib import Path

from transformers import Trainer

from reranker_kit.basics.files import share_like_other_files
from reranker_kit.finetune.trainer import checkpoint_save_guard, disk_full_as_error
from reranker_kit.run_folder import WEIGHT_FILES
from reranker_kit.training.dataset import MODEL_INPUT_KEYS

logger = logging.getLogger(__name__)


class RerankerTrainer(Trainer):
    """A Trainer with the reranker loss and an `evaluate` that reranks the dev queries.

    `resume_hint` is the command that resumes this run, for the message of a save that filled the disk.
    """

    def __init__(self, *args, loss, dev_evaluator=None, resume_hint: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.loss = loss  # A training.losses object: loss(logits, batch).
        self.dev_evaluator = dev_evaluator
        self.resume_hint = resume_hint

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
        with checkpoint_save_guard(Path(self.args.output_dir), self.state.global_step, self.model, self.resume_hint):
            super()._save_checkpoint(model, trial)

    def save_final_model(self, run_dir: Path) -> None:
        """The finished run's weights and Trainer state; a full disk removes the partial weights and says so."""
        needed = sum(p.numel() * p.element_size() for p in self.model.parameters())

        def remove_partial_weights():
            for name in WEIGHT_FILES:
                (run_dir / name).unlink(missing_ok=True)

        with disk_full_as_error(run_dir, needed, remove_partial_weights, self.resume_hint):
            self.save_model(str(run_dir))
            self.save_state()

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
