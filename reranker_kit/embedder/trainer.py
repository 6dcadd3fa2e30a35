"""The embedder's loss, dev evaluator and SentenceTransformerTrainer, set up from its settings.

The loss is chosen in one place (`EmbedderLoss`): MultipleNegativesRankingLoss over (query, positive, hard
negatives) with every other row of the batch as more negatives, or its cached (GradCache) variant, which
embeds the batch in mini-batches without gradients first, so a large batch (the in-batch negatives) fits a
small GPU at the cost of a second forward pass. The batch sampler never puts one text twice in a batch:
a repeated document would be another row's positive and this row's "negative" at once. The callbacks and
the TrainingArguments mapping are `finetune.trainer`'s, as the reranker's are.
"""

from dataclasses import dataclass
from pathlib import Path

from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
from sentence_transformers.base.evaluation import BaseEvaluator
from sentence_transformers.sentence_transformer.training_args import BatchSamplers
from transformers import EarlyStoppingCallback

from reranker_kit.basics.files import share_like_other_files
from reranker_kit.embedder.arguments import EmbedderSettings
from reranker_kit.embedder.dev_evaluation import FirstStageDev
from reranker_kit.finetune.run_folders import JobKind
from reranker_kit.finetune.trainer import (
    checkpoint_save_guard,
    eval_interval,
    kit_callbacks,
    replace_default_callbacks,
    trainer_arguments,
)
from reranker_kit.retrieval.dense import SentenceEncoder


@dataclass(frozen=True)
class EmbedderLoss:
    """The training loss: `mnrl` (MultipleNegativesRankingLoss) or `cached_mnrl` (its GradCache form)."""

    name: str = "mnrl"
    mini_batch_size: int = 16

    def build(self, model):
        from sentence_transformers.sentence_transformer.losses import (
            CachedMultipleNegativesRankingLoss,
            MultipleNegativesRankingLoss,
        )

        if self.name == "cached_mnrl":
            return CachedMultipleNegativesRankingLoss(model, mini_batch_size=self.mini_batch_size)
        return MultipleNegativesRankingLoss(model)


class RetrievalEvaluator(BaseEvaluator):
    """The encoder alone as a first stage over the whole corpus, on the dev queries (`FirstStageDev`)."""

    def __init__(self, dev: FirstStageDev, metric: str):
        super().__init__()
        self.dev, self.primary_metric, self.greater_is_better = dev, metric, True

    def __call__(self, model, output_path=None, epoch: int = -1, steps: int = -1) -> dict[str, float]:
        return self.dev.dense_metrics(SentenceEncoder(model, "training", identity=""))


class EmbedderTrainer(SentenceTransformerTrainer):
    """sentence-transformers' Trainer with the kit's saves: no half-written checkpoint on a full disk."""

    def __init__(self, *args, resume_hint: str = "", **kwargs):
        super().__init__(*args, **kwargs)
        self.resume_hint = resume_hint

    def _save_checkpoint(self, model, trial):
        with checkpoint_save_guard(Path(self.args.output_dir), self.state.global_step, self.model, self.resume_hint):
            super()._save_checkpoint(model, trial)

    def _save(self, output_dir: str | None = None, state_dict=None):
        super()._save(output_dir, state_dict)
        share_like_other_files(output_dir if output_dir is not None else self.args.output_dir)


def load_trainer(settings: EmbedderSettings, model, train_dataset, dev: FirstStageDev | None, run_dir: Path,
                 prompts: dict[str, str] | None, select_best: bool, started: float, kind: JobKind):
    """The trainer with the kit's callbacks; also the interrupt callback."""
    has_dev = dev is not None
    evaluator = RetrievalEvaluator(dev, settings.evaluation.metric_for_best_model) if has_dev else None
    arguments = trainer_arguments(
        SentenceTransformerTrainingArguments, settings, run_dir, eval_interval(settings, len(train_dataset), has_dev),
        has_dev, select_best, batch_sampler=BatchSamplers.NO_DUPLICATES,
        prompts=prompts)  # Per column: the query prompt for anchors, the document prompt for documents.
    loss = EmbedderLoss(settings.optimisation.loss, settings.optimisation.mini_batch_size)
    trainer = EmbedderTrainer(model=model, args=arguments, train_dataset=train_dataset, loss=loss.build(model),
                              evaluator=evaluator, resume_hint=kind.resume_command())
    callbacks, interrupt = kit_callbacks(settings.model.base_model, started, kind.name)
    if settings.evaluation.early_stopping_patience and has_dev:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=settings.evaluation.early_stopping_patience))
    replace_default_callbacks(trainer, callbacks)
    return trainer, interrupt
