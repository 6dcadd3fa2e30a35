"""The embedder's loss, dev evaluator and SentenceTransformerTrainer, set up from the typed settings.

The loss is chosen in one place (`EmbedderLoss`): MultipleNegativesRankingLoss over (query, positive, hard
negatives) with every other row of the batch as more negatives, or its cached (GradCache) variant, which
embeds the batch in mini-batches without gradients first, so a large batch (the in-batch negatives) fits a
small GPU at the cost of a second forward pass. The batch sampler never puts one text twice in a batch:
a repeated document would be another row's positive and this row's "negative" at once.
"""

import math
from dataclasses import dataclass
from pathlib import Path

from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
from sentence_transformers.base.evaluation import BaseEvaluator
from sentence_transformers.sentence_transformer.training_args import BatchSamplers
from transformers import EarlyStoppingCallback
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from reranker_kit.embedder.config import EvaluationSettings, OptimisationSettings, OutputSettings
from reranker_kit.embedder.dev_evaluation import FirstStageDev
from reranker_kit.retrieval.dense import SentenceEncoder
from reranker_kit.training.run import choose_precision
from reranker_kit.training.trainer import (
    EvaluateAtEndCallback,
    GracefulInterruptCallback,
    LoggingProgressCallback,
)


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


def eval_interval(evaluation: EvaluationSettings, rows_per_step: int, train_rows: int, has_dev: bool
                  ) -> tuple[int, int]:
    """--eval_steps and --save_steps, shortened to one epoch on small data so every epoch is judged."""
    steps_per_epoch = max(math.ceil(train_rows / rows_per_step), 1)
    if has_dev and evaluation.eval_steps > steps_per_epoch:
        return steps_per_epoch, steps_per_epoch
    return evaluation.eval_steps, evaluation.save_steps


def training_arguments(optimisation: OptimisationSettings, evaluation: EvaluationSettings, output: OutputSettings,
                       run_dir: Path, intervals: tuple[int, int], has_dev: bool, prompts: dict[str, str] | None = None
                       ) -> SentenceTransformerTrainingArguments:
    import torch

    fp16, bf16 = choose_precision(optimisation.fp16, optimisation.bf16)
    select = has_dev and evaluation.select_on_dev
    return SentenceTransformerTrainingArguments(
        output_dir=str(run_dir), per_device_train_batch_size=optimisation.batch_size,
        gradient_accumulation_steps=optimisation.gradient_accumulation_steps, num_train_epochs=optimisation.epochs,
        max_steps=optimisation.max_steps, learning_rate=optimisation.lr, warmup_ratio=optimisation.warmup_ratio,
        weight_decay=optimisation.weight_decay, fp16=fp16, bf16=bf16,
        gradient_checkpointing=optimisation.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False},
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        prompts=prompts,  # Per column: the query prompt for anchors, the document prompt for documents.
        eval_strategy="steps" if has_dev else "no", eval_steps=intervals[0],
        save_strategy="steps", save_steps=intervals[1], save_total_limit=evaluation.save_total_limit,
        load_best_model_at_end=select, metric_for_best_model=evaluation.metric_for_best_model if select else None,
        greater_is_better=True, logging_steps=evaluation.logging_steps, logging_first_step=True,
        report_to=output.report_to if output.report_to in ("none", "all") else [output.report_to],
        logging_dir=str(run_dir / "runs"), seed=optimisation.seed, data_seed=optimisation.seed,
        dataloader_num_workers=optimisation.dataloader_num_workers, dataloader_pin_memory=torch.cuda.is_available(),
        use_cpu=not torch.cuda.is_available(), disable_tqdm=False,
    )


def build_trainer(model, train_dataset, arguments: SentenceTransformerTrainingArguments, loss: EmbedderLoss,
                  evaluator: RetrievalEvaluator | None, early_stopping_patience: int
                  ) -> tuple[SentenceTransformerTrainer, GracefulInterruptCallback]:
    """The trainer with the kit's callbacks (Ctrl-C saves a checkpoint, the last step is judged too)."""
    interrupt = GracefulInterruptCallback()
    callbacks = [interrupt, EvaluateAtEndCallback()]
    if early_stopping_patience and evaluator is not None:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=early_stopping_patience))
    trainer = SentenceTransformerTrainer(model=model, args=arguments, train_dataset=train_dataset,
                                         loss=loss.build(model), evaluator=evaluator, callbacks=callbacks)
    for default in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(default)
    trainer.add_callback(LoggingProgressCallback())
    return trainer, interrupt
