"""What one embedder run produced, as typed objects passed from the trainer to the run folder and CV."""

from dataclasses import asdict, dataclass

from reranker_kit.embedder.dev_evaluation import EncoderDevMetrics
from reranker_kit.finetune.verdict import Verdict
from reranker_kit.fusion import FusionChoice


@dataclass(frozen=True)
class EmbedderDev:
    """The base and the trained encoder's first-stage metrics on the dev queries, the metric that judges them."""

    base: EncoderDevMetrics
    fine_tuned: EncoderDevMetrics  # The trained encoder (best checkpoint when chosen), even when the base was kept.
    metric_for_best_model: str

    def saved(self, verdict: Verdict) -> EncoderDevMetrics:
        return self.base if verdict.saved == "base" else self.fine_tuned

    def as_json(self) -> dict:
        return {"base": asdict(self.base), "fine_tuned": asdict(self.fine_tuned),
                "metric_for_best_model": self.metric_for_best_model}

    @classmethod
    def from_json(cls, payload: dict) -> "EmbedderDev":
        def encoder(values: dict) -> EncoderDevMetrics:
            return EncoderDevMetrics(dense=values["dense"], bm25=values["bm25"], hybrid=FusionChoice(**values["hybrid"]))

        return cls(encoder(payload["base"]), encoder(payload["fine_tuned"]), payload["metric_for_best_model"])


@dataclass(frozen=True)
class EmbedderResult:
    """Everything the run folder records about a finished embedder run."""

    dev: EmbedderDev | None  # None without dev queries.
    verdict: Verdict
    train_metrics: dict
    log_history: list[dict]
    best_checkpoint: str | None
    base_model: dict
    device: str
    peak_memory_gib: dict[str, float]
    final_step: int
    train_rows: int
    rows_short_of_negatives: int  # Rows dropped for lacking the negatives asked for.
