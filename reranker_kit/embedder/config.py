"""The embedder job's settings as small frozen dataclasses, grouped like its flags.

The command line (`reranker_kit.commands.train_embedder`) builds them once; nothing below it reads flags.
"""

from dataclasses import asdict, dataclass

from reranker_kit.metrics import CUTOFFS
from reranker_kit.training.config import NegativeSettings
from reranker_kit.training.mining import MiningSettings

LOSSES = ("mnrl", "cached_mnrl")
DEFAULT_EMBEDDER_BASE = "BAAI/bge-m3"
# The dev metrics of a first stage: what it hands the reranker (recall at the reranking depth) and how high.
FIRST_STAGE_METRICS = ("hit", "mrr", "recall")


@dataclass(frozen=True)
class DataSettings:
    corpus_csv: str
    train_xlsx: str
    sheet: str | None = None  # --sheet (issue #32): which sheet of train_xlsx, where several have the columns.
    dev_ratio: float = 0.2
    augment_with_answers: bool = True
    pseudo_queries_per_document: int = 4
    cv_folds: int = 0


@dataclass(frozen=True)
class ModelSettings:
    base_model: str = DEFAULT_EMBEDDER_BASE
    max_seq_length: int = 512
    freeze_word_embeddings: bool = False


@dataclass(frozen=True)
class OptimisationSettings:
    loss: str = "mnrl"
    mini_batch_size: int = 16  # cached_mnrl only: texts per forward pass.
    batch_size: int = 32
    gradient_accumulation_steps: int = 1
    epochs: float = 3
    lr: float = 2e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    seed: int = 42
    fp16: bool = False
    bf16: bool = False
    gradient_checkpointing: bool = False
    max_steps: int = -1
    dataloader_num_workers: int = 0


@dataclass(frozen=True)
class EvaluationSettings:
    metric_for_best_model: str = "recall@20"
    hybrid_metric: str = "mrr@5"
    dev_top_n: int = 20  # The reranking depth: recall here is what a reranker behind the encoder can find.
    eval_steps: int = 100
    save_steps: int = 100
    save_total_limit: int = 2
    logging_steps: int = 10
    early_stopping_patience: int = 0
    eval_batch_size: int = 32
    # False under cross-validation: the held-out fold measures, it must not also pick the checkpoint.
    select_on_dev: bool = True

    @property
    def cutoffs(self) -> tuple[int, ...]:
        return tuple(sorted({*CUTOFFS, self.dev_top_n}))


@dataclass(frozen=True)
class OutputSettings:
    runs_root: str = "outputs"
    output_dir: str | None = None
    resume_from_checkpoint: str | None = None
    cv_keep_models: bool = False
    report_to: str = "none"


@dataclass(frozen=True)
class EmbedderSettings:
    data: DataSettings
    negatives: NegativeSettings
    model: ModelSettings
    optimisation: OptimisationSettings
    evaluation: EvaluationSettings
    output: OutputSettings

    def as_dict(self) -> dict:
        """Every setting by group, as training_info.json records them."""
        return asdict(self)


def mining_settings(settings: EmbedderSettings) -> MiningSettings:
    """What `training.mining.mine` reads, from the embedder's groups (no command line inside)."""
    return MiningSettings(negatives=settings.negatives, seed=settings.optimisation.seed,
                          dev_top_n=settings.evaluation.dev_top_n, train_xlsx=settings.data.train_xlsx,
                          base_model=settings.model.base_model, max_seq_length=settings.model.max_seq_length,
                          eval_batch_size=settings.evaluation.eval_batch_size)
