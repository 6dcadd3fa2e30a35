"""The training job's settings as typed, frozen groups, one per flag group of `fine_tune_reranker.py`.

The command line builds a `TrainingConfig` once, after its checks (`commands.reranker_flags`, which also
holds every default and help text: the one place a flag is defined); every function below it takes the
group it needs. `as_arguments()` gives back the flat flag-name mapping that
training_info.json has always recorded under "arguments", so run folders written before and after this
change read the same.
"""

from dataclasses import asdict, dataclass, fields

# The --loss choices; training.losses holds one loss object per name (checked there at import).
LOSS_NAMES = ("bce", "listwise")


@dataclass(frozen=True)
class DataSettings:
    corpus_csv: str
    train_xlsx: str
    sheet: str | None  # --sheet (issue #32): which sheet of train_xlsx, where several have the columns.
    dev_ratio: float
    augment_with_answers: bool
    pseudo_queries_per_document: int


@dataclass(frozen=True)
class NegativeSettings:
    num_hard_negatives: int
    num_random_negatives: int
    hard_neg_top_k: int
    hard_neg_method: str
    embedding_model: str
    embedding_cache_dir: str
    expand_documents: bool
    candidates: str | None
    filter_false_negatives: bool
    false_negative_margin: float
    max_false_negative_share: float
    teacher_model: str | None


@dataclass(frozen=True)
class ModelSettings:
    base_model: str
    max_seq_length: int
    freeze_word_embeddings: bool
    weight_ensembling: str  # "auto": blend base and trained weights when the base has a trained head; "off".
    lora_r: int  # 0: full fine-tuning.
    lora_alpha: float
    lora_dropout: float


@dataclass(frozen=True)
class OptimisationSettings:
    loss: str
    batch_size: int
    gradient_accumulation_steps: int
    epochs: float
    lr: float
    warmup_ratio: float
    weight_decay: float
    seed: int
    fp16: bool
    bf16: bool
    gradient_checkpointing: bool
    max_steps: int
    dataloader_num_workers: int


@dataclass(frozen=True)
class EvaluationSettings:
    eval_steps: int
    save_steps: int
    save_total_limit: int
    logging_steps: int
    metric_for_best_model: str
    early_stopping_patience: int
    dev_top_n: int
    eval_batch_size: int
    cv_folds: int
    cv_keep_models: bool


@dataclass(frozen=True)
class OutputSettings:
    output_dir: str | None
    runs_root: str
    resume_from_checkpoint: str | None
    report_to: str
    push_to_hub: bool
    hub_model_id: str | None
    hub_private_repo: bool
    hub_dataset_id: str | None


GROUPS = {"data": DataSettings, "negatives": NegativeSettings, "model": ModelSettings,
          "optimisation": OptimisationSettings, "evaluation": EvaluationSettings, "output": OutputSettings}


@dataclass(frozen=True)
class TrainingConfig:
    """Every setting of one training job, grouped as the command line groups its flags."""

    data: DataSettings
    negatives: NegativeSettings
    model: ModelSettings
    optimisation: OptimisationSettings
    evaluation: EvaluationSettings
    output: OutputSettings

    @classmethod
    def from_arguments(cls, arguments: dict, defaults: dict | None = None) -> "TrainingConfig":
        """From a flat {flag name: value} mapping (the parsed flags); a name no group knows is refused.

        `defaults` fills the flags a run folder of an older kit did not record (the parser's defaults).
        """
        known = {item.name for group in GROUPS.values() for item in fields(group)}
        unknown = sorted(set(arguments) - known)
        if unknown:
            raise ValueError(f"no settings group holds {', '.join(unknown)}; add it to reranker_kit/training/config.py")
        values = {**(defaults or {}), **arguments}
        return cls(**{name: group(**{item.name: values[item.name] for item in fields(group)})
                      for name, group in GROUPS.items()})

    def as_arguments(self) -> dict:
        """The flat {flag name: value} mapping training_info.json records under "arguments"."""
        return {key: value for name in GROUPS for key, value in asdict(getattr(self, name)).items()}
