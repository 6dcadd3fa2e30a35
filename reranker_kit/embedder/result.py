"""What one embedder run produced, as typed objects passed from the trainer to the run folder and CV."""

from dataclasses import dataclass

from reranker_kit.embedder.dev_evaluation import EncoderDevMetrics

# Which encoder a finished run saved, and why.
FINE_TUNED_WINS = "fine_tuned"  # It beat the base encoder on the dev metric.
BASE_KEPT = "base_kept"  # It did not: the saved model is the base encoder.
NO_DEV = "no_dev_queries"  # --dev_ratio 0: nothing to judge by; the last step is saved.
NOT_SELECTED = "not_selected"  # Cross-validation: the fold measures, it does not choose; the last step is saved.


@dataclass(frozen=True)
class EmbedderDev:
    """The base and the saved encoder's first-stage metrics on the dev queries, and the verdict."""

    base: EncoderDevMetrics
    fine_tuned: EncoderDevMetrics  # The trained encoder (best checkpoint when chosen), even when the base was kept.
    metric_for_best_model: str
    verdict: str

    @property
    def saved(self) -> EncoderDevMetrics:
        return self.base if self.verdict == BASE_KEPT else self.fine_tuned


@dataclass(frozen=True)
class EmbedderResult:
    """Everything the run folder records about a finished embedder run."""

    dev: EmbedderDev | None  # None without dev queries.
    verdict: str
    train_metrics: dict
    log_history: list[dict]
    best_checkpoint: str | None
    base_model: dict
    device: str
    peak_memory_gib: dict[str, float]
    final_step: int
    train_rows: int
