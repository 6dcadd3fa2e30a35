"""`fine_tune_embedder.py`'s settings: the shared groups of `finetune.settings` with the embedder's own fields."""

from dataclasses import dataclass
from typing import ClassVar

from reranker_kit.finetune.settings import (
    DataSettings,
    EvaluationSettings,
    JobSettings,
    ModelSettings,
    NegativeSettings,
    OptimisationSettings,
    OutputSettings,
    require,
    setting,
)
from reranker_kit.metrics import CUTOFFS

LOSS_NAMES = ("mnrl", "cached_mnrl")
DEFAULT_EMBEDDER_BASE = "BAAI/bge-m3"
# The dev metrics of a first stage: what it hands the reranker (recall at the reranking depth) and how high.
FIRST_STAGE_METRICS = ("hit", "mrr", "recall")


@dataclass(frozen=True)
class EmbedderData(DataSettings):
    """data"""

    # On a CPU, the recipe measured on the club's real files (the e5 issue): answers, no corpus sentences.
    pseudo_queries_per_document: int = setting(4, DataSettings.__dataclass_fields__["pseudo_queries_per_document"]
                                               .metadata["help"], on_cpu=0, card=True)


@dataclass(frozen=True)
class EmbedderNegatives(NegativeSettings):
    """negatives"""

    # In-batch negatives already give every query the other rows' documents: one mined hard negative a row.
    num_hard_negatives: int = setting(1, "Hard negatives per training row (beside every other row's documents).",
                                      card=True)
    num_random_negatives: int = setting(0, "Random negatives per training row.", card=True)
    teacher_model: str | None = setting(None, "Reranker that judges false negatives; needed with "
                                        "`filter_false_negatives` (a bi-encoder base is no judge of pairs).")

    allows_no_negatives: ClassVar[bool] = True  # (query, positive) rows learn from in-batch negatives alone.

    def validate(self) -> None:
        super().validate()
        require(not self.filter_false_negatives or self.teacher_model, "filter_false_negatives",
                "`filter_false_negatives` needs `teacher_model`: a reranker that already ranks (such as "
                "namdp-ptit/ViRanker or a fine-tuned reranker run); a bi-encoder base is no judge of pairs")


@dataclass(frozen=True)
class EmbedderModel(ModelSettings):
    """model"""

    base_model: str = setting(DEFAULT_EMBEDDER_BASE, "Sentence-transformers model to fine-tune: Hub id, folder, or "
                              "'bundled-e5' offline.")
    max_seq_length: int = setting(512, "Token budget of one query or document.", on_cpu=128, card=True)


@dataclass(frozen=True)
class EmbedderOptimisation(OptimisationSettings):
    """training"""

    batch_size: int = setting(32, "Rows per device batch; each row's query sees every other row's documents as "
                              "negatives.", trainer="per_device_train_batch_size", on_cpu=16, card=True)
    gradient_accumulation_steps: int = setting(1, "Batches per optimizer step (does not add in-batch negatives; use "
                                               "cached_mnrl for that).", trainer="gradient_accumulation_steps",
                                               card=True)
    epochs: float = setting(3.0, "Passes over the training rows.", trainer="num_train_epochs", on_cpu=1.0, card=True)
    lr: float = setting(2e-5, "Peak learning rate.", trainer="learning_rate", on_cpu=3e-5, card=True)
    seed: int = setting(42, "Seeds the split, the negatives and the shuffling.", trainer="seed", card=True)
    loss: str = setting("mnrl", "mnrl: MultipleNegativesRankingLoss; cached_mnrl: its GradCache form, for large "
                        "batches on a small GPU (`mini_batch_size` texts per forward pass).", choices=LOSS_NAMES,
                        card=True)
    mini_batch_size: int = setting(16, "Texts per forward pass of cached_mnrl.")

    def validate(self) -> None:
        super().validate()
        require(self.mini_batch_size >= 1, "mini_batch_size", f"`mini_batch_size` must be 1 or more, got "
                f"{self.mini_batch_size}")


@dataclass(frozen=True)
class EmbedderEvaluation(EvaluationSettings):
    """evaluation and checkpoints"""

    metric_for_best_model: str = setting("recall@20", "Dev first-stage metric that picks the checkpoint and judges "
                                         "the trained encoder against its base: hit@k, mrr@k or recall@k, k in 3, 5, 7 "
                                         "or `dev_top_n`.", card=True)
    hybrid_metric: str = setting("mrr@5", "Dev metric the hybrid's dense weight is chosen on (the best weight whose "
                                 "hit@k and mrr@k stay at least BM25's).")
    dev_top_n: int = setting(20, "The reranking depth (main.py's `top_n`): dev recall is also reported at it.")

    def validate(self) -> None:
        super().validate()
        for name, allowed in (("metric_for_best_model", {*CUTOFFS, self.dev_top_n}), ("hybrid_metric", set(CUTOFFS))):
            metric, _, k = getattr(self, name).partition("@")
            require(metric in FIRST_STAGE_METRICS and k.isdigit() and int(k) in allowed, name,
                    f"`{name}` must be one of {FIRST_STAGE_METRICS} at a k in {sorted(allowed)} (such as recall@20), "
                    f"got {getattr(self, name)!r}")


@dataclass(frozen=True)
class EmbedderSettings(JobSettings):
    """Every setting of one embedder fine-tuning job."""

    data: EmbedderData
    negatives: EmbedderNegatives
    model: EmbedderModel
    optimisation: EmbedderOptimisation
    evaluation: EmbedderEvaluation
    output: OutputSettings

    def ignored(self) -> dict[str, str]:
        ignored = super().ignored()
        if self.optimisation.loss != "cached_mnrl":
            ignored["mini_batch_size"] = "only matters with `loss` cached_mnrl"
        return ignored
