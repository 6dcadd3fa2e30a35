"""What one training run produced, as typed objects passed from the trainer to the run folder and CV."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING

from reranker_kit.fusion import FusionChoice

if TYPE_CHECKING:  # Only the annotation: training.model_choice imports torch, and the CLIs import this module.
    from reranker_kit.training.model_choice import ModelChoice


@dataclass(frozen=True)
class DataSummary:
    """How much data the run saw: documents, queries on each side, and the mined pairs."""

    documents: int
    train_queries: int  # Labelled queries on the training side.
    augmented_train_queries: int  # The same plus answers and corpus sentences used as queries.
    dev_queries: int
    train_pairs: dict
    dev_pairs: dict
    answer_queries: int = 0  # Ground-truth answers used as extra training queries.
    corpus_sentence_queries: int = 0  # Corpus sentences used as extra training queries.
    dev_candidates_from_file: bool = False  # Whether a dev query's candidates came from --candidates.

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class DevMetrics:
    """Dev-query metrics of each ranker: first stage, pretrained model, fine-tuned model, fused."""

    fine_tuned: dict[str, float]
    pretrained: dict[str, float]
    first_stage: dict[str, float]
    fused: dict[str, float]
    metric_for_best_model: str
    # {ranker: {metric: per-query values}}, the dev queries in one order: the paired statistics' input,
    # pooled over folds by cross-validation.
    per_query: dict[str, dict[str, list[float]]] = field(default_factory=dict)


@dataclass(frozen=True)
class FoldResult:
    """What cross-validation keeps of a finished fold: its dev metrics and fusion choice, with per-query values."""

    dev: DevMetrics
    fusion: FusionChoice

    def as_json(self) -> dict:
        return {"dev": asdict(self.dev), "fusion": asdict(self.fusion)}

    @classmethod
    def from_json(cls, payload: dict) -> FoldResult:
        return cls(dev=DevMetrics(**payload["dev"]), fusion=FusionChoice(**payload["fusion"]))


@dataclass(frozen=True)
class TrainingResult:
    """Everything `training.outputs.write_finished_run` records about a finished run."""

    dev: DevMetrics | None  # None when no dev queries were held out.
    fusion: FusionChoice | None
    train_metrics: dict
    log_history: list[dict]
    best_checkpoint: str | None
    base_model: dict
    device: str
    world_size: int
    peak_memory_gib: dict[str, float]
    is_main_process: bool = True
    final_step: int | None = None  # The optimizer step the saved weights' run ended at.
    hub_model_id: str | None = None  # The Hub repository the Trainer created, with --push_to_hub.
    model_choice: ModelChoice | None = None  # Base, trained or blended weights, chosen on the dev queries.
