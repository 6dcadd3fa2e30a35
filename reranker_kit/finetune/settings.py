"""The settings of a fine-tuning job, each defined once: a dataclass field with its default, help and facts.

A field made by `setting(...)` carries everything the kit needs to know about it: the help text the
command line shows (`commands.settings_flags` generates every flag from these fields, as transformers'
HfArgumentParser does), the allowed choices, the `TrainingArguments` field it maps to, its size on a CPU,
whether a resume may change it, and whether the model card shows it. Each side (`training.arguments`,
`embedder.arguments`) declares its job's groups from the shared ones below, overriding a default where
its model needs another; a job's settings are one frozen object of groups (`JobSettings`).

Messages name a setting in backticks (`` `dev_ratio` ``); the command line shows them as flags.
"""

from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import ClassVar

from reranker_kit.basics.errors import SettingError
from reranker_kit.metrics import CUTOFFS
from reranker_kit.retrieval import RETRIEVER_METHODS
from reranker_kit.retrieval.first_stage import DEFAULT_EMBEDDING_CACHE, DEFAULT_EMBEDDING_MODEL, EMBEDDING_METHODS

# What a resume may do with a setting: it must match the first start, it may differ (how fast or where a
# run writes, what it logs, the hardware's precision), or it names a data file compared by content.
SAME, MAY_DIFFER, DATA_FILE = "same", "may differ", "data file"
REPORT_TO_CHOICES = ("none", "tensorboard", "wandb", "trackio", "all")
GROUP_NAMES = ("data", "negatives", "model", "optimisation", "evaluation", "output")


def setting(default, help: str, *, choices=None, trainer: str | None = None, on_cpu=MISSING, resume: str = SAME,
            card: bool = False):
    """A settings field: `default` and `help` as the command line shows them, and what the kit needs to know.

    Args:
        choices: the accepted values, checked by the command line.
        trainer: the `TrainingArguments` field it maps to unchanged (`lr` -> `learning_rate`).
        on_cpu: its value when no GPU is found and the user did not give it (`finetune.cpu_sizing`).
        resume: SAME, MAY_DIFFER or DATA_FILE (`finetune.starts`).
        card: shown in the model card's settings table.
    """
    return field(default=default, metadata={"help": help, "choices": choices, "trainer": trainer, "on_cpu": on_cpu,
                                            "resume": resume, "card": card})


def flat_arguments(arguments: dict) -> dict:
    """{setting: value}, also from the {group: {setting: value}} shape embedder runs recorded before the shared core."""
    flat = {}
    for key, value in arguments.items():
        if isinstance(value, dict) and key in GROUP_NAMES:
            flat.update(value)
        else:
            flat[key] = value
    flat.pop("select_on_dev", None)  # Cross-validation's internal switch, recorded by older embedder runs.
    return flat


def require(condition: bool, setting_name: str, message: str) -> None:
    if not condition:
        raise SettingError(setting_name, message)


@dataclass(frozen=True)
class DataSettings:
    """data"""

    corpus_csv: str = setting("CLB_PROPTIT.csv", "Corpus CSV with columns STT, Văn bản.", resume=DATA_FILE)
    train_xlsx: str = setting("train_data_proptit.xlsx", "Query XLSX with columns Query, Ground truth document, "
                              "Ground truth answer, Difficulty.", resume=DATA_FILE)
    sheet: str | None = setting(None, "Sheet of the query workbook to read when several sheets have the columns.")
    dev_ratio: float = setting(0.2, "Share of queries held out to evaluate and pick the best checkpoint; 0 trains "
                               "on all.", card=True)
    # On by default: answers add well-formed phrasings of the same facts (bench/QUALITY.md).
    augment_with_answers: bool = setting(True, "Also train on each training query's ground-truth answer as an extra "
                                         "query.", card=True)
    # On by default: a head that starts from nothing needs more than ~100 labelled queries (bench/QUALITY.md).
    pseudo_queries_per_document: int = setting(4, "Also train on up to N sentences of every corpus document, each as "
                                               "a query whose relevant document is the one it came from (0: off).",
                                               card=True)

    def validate(self) -> None:
        require(0 <= self.dev_ratio < 1, "dev_ratio", f"`dev_ratio` must be in [0, 1), got {self.dev_ratio}")
        require(self.pseudo_queries_per_document >= 0, "pseudo_queries_per_document",
                f"`pseudo_queries_per_document` must be 0 or more, got {self.pseudo_queries_per_document}")


@dataclass(frozen=True)
class NegativeSettings:
    """negatives"""

    num_hard_negatives: int = setting(2, "Hard negatives per positive pair.", card=True)
    num_random_negatives: int = setting(1, "Random negatives per positive pair.", card=True)
    hard_neg_top_k: int = setting(50, "Hard negatives are sampled from this many top first-stage hits (positives "
                                  "excluded).", card=True)
    hard_neg_method: str = setting("bm25", "First stage that mines hard negatives (and picks dev candidates), as "
                                   "main.py's `retriever`: bm25, tfidf, dense (`embedding_model`) or hybrid (BM25 + "
                                   "dense).", choices=RETRIEVER_METHODS, card=True)
    embedding_model: str = setting(DEFAULT_EMBEDDING_MODEL, "Sentence-transformers model of the dense and hybrid "
                                   "first stages: a Hub id, a folder (a fine_tune_embedder.py run brings its hybrid "
                                   "weight), 'latest' (the newest finished embedder run under `runs_root`), or "
                                   "'bundled-e5' (multilingual-e5-small, offline).")
    embedding_cache_dir: str = setting(DEFAULT_EMBEDDING_CACHE, "Where corpus embeddings are cached, keyed by the "
                                       "documents and the model.", resume=MAY_DIFFER)
    expand_documents: bool = setting(False, "Index each document with the labelled training queries (and answers) "
                                     "that name it; dev queries never.")
    candidates: str | None = setting(None, "Mine from your own retriever's ranked lists (main.py's `candidates` "
                                     "file); queries it lacks use `hard_neg_method`.", resume=DATA_FILE)
    filter_false_negatives: bool = setting(False, "Drop a mined hard negative that `teacher_model` scores within "
                                           "`false_negative_margin` of the query's positive: likely an unlabelled "
                                           "relevant document.")
    false_negative_margin: float = setting(0.05, "Relative margin: a hard negative is kept only if its teacher "
                                           "probability is at most (1 - margin) x the positive's.")
    max_false_negative_share: float = setting(0.5, "Stop when the filter would drop more than this share of the hard "
                                              "negatives: a teacher that drops most of them cannot tell relevant "
                                              "from hard.")
    teacher_model: str | None = setting(None, "Reranker that judges false negatives, one that already ranks (such "
                                        "as namdp-ptit/ViRanker or a finished reranker run).")

    def validate(self) -> None:
        for name in ("num_hard_negatives", "num_random_negatives"):
            require(getattr(self, name) >= 0, name, f"`{name}` must be 0 or more, got {getattr(self, name)}")
        require(self.num_hard_negatives + self.num_random_negatives > 0 or type(self).allows_no_negatives,
                "num_hard_negatives", "no negatives requested: set `num_hard_negatives` or `num_random_negatives` "
                "above 0")
        require(self.hard_neg_top_k >= 1, "hard_neg_top_k", f"`hard_neg_top_k` must be 1 or more, got "
                f"{self.hard_neg_top_k}")
        require(0 < self.max_false_negative_share <= 1, "max_false_negative_share",
                f"`max_false_negative_share` must be in (0, 1], got {self.max_false_negative_share}")
        require(0 <= self.false_negative_margin < 1, "false_negative_margin",
                f"`false_negative_margin` must be in [0, 1), got {self.false_negative_margin}")
        require(not self.teacher_model or self.filter_false_negatives, "teacher_model",
                "`teacher_model` only judges false negatives: add `filter_false_negatives`, or drop it")

    allows_no_negatives: ClassVar[bool] = False

    @property
    def embeds(self) -> bool:
        return self.hard_neg_method in EMBEDDING_METHODS


@dataclass(frozen=True)
class OptimisationSettings:
    """training"""

    batch_size: int = setting(4, "Rows per device batch.", trainer="per_device_train_batch_size", card=True)
    gradient_accumulation_steps: int = setting(8, "Batches per optimizer step.", trainer="gradient_accumulation_steps",
                                               card=True)
    epochs: float = setting(5.0, "Passes over the training rows.", trainer="num_train_epochs", card=True)
    lr: float = setting(2e-5, "Peak learning rate.", trainer="learning_rate", card=True)
    warmup_ratio: float = setting(0.1, "Share of steps with linear warm-up.", trainer="warmup_ratio", card=True)
    weight_decay: float = setting(0.01, "AdamW weight decay.", trainer="weight_decay", card=True)
    seed: int = setting(42, "Seeds the split, the negatives, the head and the shuffling.", trainer="seed", card=True)
    fp16: bool = setting(False, "fp16 mixed precision (a T4); ignored with a warning on a CPU.", resume=MAY_DIFFER,
                         card=True)
    bf16: bool = setting(False, "bf16 mixed precision (Ampere or newer GPUs).", resume=MAY_DIFFER, card=True)
    gradient_checkpointing: bool = setting(False, "Recompute activations: less memory, slower.",
                                           trainer="gradient_checkpointing", resume=MAY_DIFFER)
    max_steps: int = setting(-1, "Stop after this many optimizer steps (-1: use `epochs`).", trainer="max_steps",
                             card=True)
    dataloader_num_workers: int = setting(0, "DataLoader worker processes.", trainer="dataloader_num_workers",
                                          resume=MAY_DIFFER)

    def validate(self) -> None:
        require(not (self.fp16 and self.bf16), "fp16", "`fp16` and `bf16` exclude each other: pick `fp16` on a T4, "
                "`bf16` on Ampere or newer")
        require(0 <= self.warmup_ratio <= 1, "warmup_ratio", f"`warmup_ratio` must be in [0, 1], got "
                f"{self.warmup_ratio}")
        for name in ("weight_decay", "seed", "dataloader_num_workers"):
            require(getattr(self, name) >= 0, name, f"`{name}` must be 0 or more, got {getattr(self, name)}")
        for name in ("batch_size", "gradient_accumulation_steps"):
            require(getattr(self, name) >= 1, name, f"`{name}` must be 1 or more, got {getattr(self, name)}")
        require(self.epochs > 0, "epochs", f"`epochs` must be positive, got {self.epochs}")
        require(self.lr > 0, "lr", f"`lr` must be positive, got {self.lr}")
        require(self.max_steps == -1 or self.max_steps > 0, "max_steps",
                f"`max_steps` must be -1 (use `epochs`) or a positive step count, got {self.max_steps}")


@dataclass(frozen=True)
class ModelSettings:
    """model"""

    base_model: str = setting("namdp-ptit/ViRanker", "Hub id, local model folder, or 'bundled-e5' for the bundled "
                              "offline model.")
    max_seq_length: int = setting(512, "Token budget of one input.", card=True)
    freeze_word_embeddings: bool = setting(False, "Keep the word-embedding matrix fixed: less memory and much faster "
                                           "steps on large vocabularies.", card=True)

    def validate(self) -> None:
        require(self.max_seq_length >= 16, "max_seq_length", f"`max_seq_length` must be at least 16 tokens, got "
                f"{self.max_seq_length}")


@dataclass(frozen=True)
class EvaluationSettings:
    """evaluation and checkpoints"""

    eval_steps: int = setting(100, "Evaluate on the dev queries every N steps (at least once an epoch).")
    save_steps: int = setting(100, "Save a checkpoint every N steps.", resume=MAY_DIFFER)
    save_total_limit: int = setting(2, "Checkpoints kept while training (the best is always kept).",
                                    trainer="save_total_limit", resume=MAY_DIFFER)
    logging_steps: int = setting(10, "Log the training loss every N steps.", trainer="logging_steps",
                                 resume=MAY_DIFFER)
    metric_for_best_model: str = setting("mrr@5", "Dev ranking metric that picks the checkpoint and judges the "
                                         "trained model against its base.", card=True)
    early_stopping_patience: int = setting(0, "Stop after N evaluations without improvement (0: off).")
    dev_top_n: int = setting(20, "First-stage candidates per dev query (as main.py's `top_n`).")
    eval_batch_size: int = setting(32, "Pairs per batch when scoring dev pairs (and the false-negative teacher).",
                                   resume=MAY_DIFFER)
    cv_folds: int = setting(0, "Cross-validate instead: train one model per query fold (N >= 2) and report the mean "
                            "and spread of the held-out metrics; `dev_ratio` is then unused.")
    cv_keep_models: bool = setting(False, "Keep each fold's weights (dropped by default: only metrics stay).",
                                   resume=MAY_DIFFER)

    def validate(self) -> None:
        for name in ("eval_steps", "save_steps", "save_total_limit", "logging_steps", "dev_top_n", "eval_batch_size"):
            require(getattr(self, name) >= 1, name, f"`{name}` must be 1 or more, got {getattr(self, name)}")
        require(self.early_stopping_patience >= 0, "early_stopping_patience",
                f"`early_stopping_patience` must be 0 or more, got {self.early_stopping_patience}")
        require(self.cv_folds == 0 or self.cv_folds >= 2, "cv_folds",
                f"`cv_folds` must be 0 (off) or at least 2, got {self.cv_folds}")

    @property
    def cutoffs(self) -> tuple[int, ...]:
        """The cut-offs dev metrics are reported at: 3, 5, 7 and the reranking depth."""
        return tuple(sorted({*CUTOFFS, self.dev_top_n}))


@dataclass(frozen=True)
class OutputSettings:
    """output"""

    output_dir: str | None = setting(None, "Run folder; default: a new <runs_root>/<kind>-finetuned-YYYYMMDD-HHMMSS. "
                                     "Must be new or empty.", resume=MAY_DIFFER)
    runs_root: str = setting("outputs", "Where new run folders are created.", resume=MAY_DIFFER)
    resume_from_checkpoint: str | None = setting(None, "Continue an interrupted run: a checkpoint-N folder, or "
                                                 "'latest' (newest checkpoint of `output_dir`, else of the newest "
                                                 "unfinished run under `runs_root`).", resume=MAY_DIFFER)
    keep_checkpoints: bool = setting(False, "Keep the intermediate checkpoints (and their optimizer state) once the "
                                     "run has finished; by default a finished run keeps only the model it saved.",
                                     resume=MAY_DIFFER)
    report_to: str = setting("none", "Send the training loss and dev metrics to a tracker (the Trainer's "
                             "integrations): tensorboard writes event files under <run folder>/runs; all: every "
                             "installed tracker.", choices=REPORT_TO_CHOICES, resume=MAY_DIFFER)

    def validate(self) -> None:
        """Nothing to check alone: where a run writes is checked when its folder is opened (`finetune.run_folders`)."""


@dataclass(frozen=True)
class JobSettings:
    """Every setting of one fine-tuning job, one frozen group per part; each side declares its groups."""

    def as_arguments(self) -> dict:
        """The flat {setting name: value} mapping that training_info.json records under "arguments"."""
        return {name: value for group in fields(self) for name, value in asdict(getattr(self, group.name)).items()}

    @classmethod
    def groups(cls) -> dict[str, type]:
        return {group.name: group.type for group in fields(cls)}

    @classmethod
    def setting_fields(cls) -> dict:
        """{setting name: its dataclass field}, every group's, in order."""
        return {item.name: item for group in cls.groups().values() for item in fields(group)}

    @classmethod
    def from_arguments(cls, arguments: dict):
        """From a {setting name: value} mapping; settings it lacks (a run of an older kit) take their defaults.

        Also reads the nested {group: {setting: value}} shape embedder runs recorded before the shared core.
        A name no group knows is refused.
        """
        flat = flat_arguments(arguments)
        unknown = sorted(set(flat) - set(cls.setting_fields()))
        if unknown:
            raise ValueError(f"no settings group of {cls.__name__} holds {', '.join(unknown)}")
        return cls(**{name: group(**{item.name: flat[item.name] for item in fields(group) if item.name in flat})
                      for name, group in cls.groups().items()})

    def with_values(self, values: dict):
        """A copy with some settings changed, by name."""
        changed = {}
        for group in fields(self):
            current = getattr(self, group.name)
            own = {name: value for name, value in values.items() if name in {item.name for item in fields(current)}}
            changed[group.name] = replace(current, **own) if own else current
        return replace(self, **changed)

    def validate(self) -> None:
        """Each group's checks, then the job's checks across groups; a refused value raises SettingError."""
        for group in fields(self):
            getattr(self, group.name).validate()
        evaluation, data = self.evaluation, self.data
        require(data.dev_ratio == 0 or evaluation.save_steps % evaluation.eval_steps == 0, "save_steps",
                f"`save_steps` ({evaluation.save_steps}) must be a multiple of `eval_steps` ({evaluation.eval_steps}) "
                "so the best checkpoint is always saved")

    def ignored(self) -> dict[str, str]:
        """{setting: why} for the settings this job would ignore as set: given by a user, they are refused."""
        rules = {
            "early_stopping_patience": (self.data.dev_ratio == 0 and not self.evaluation.cv_folds,
                                        "needs dev queries to watch, and `dev_ratio` 0 holds none out"),
            "cv_keep_models": (not self.evaluation.cv_folds, "keeps the models of cross-validation folds; add "
                               "`cv_folds` N"),
            "dev_ratio": (bool(self.evaluation.cv_folds), "is unused with `cv_folds`: each fold holds out its own "
                          "queries"),
            "false_negative_margin": (not self.negatives.filter_false_negatives,
                                      "only matters with `filter_false_negatives`"),
            "max_false_negative_share": (not self.negatives.filter_false_negatives,
                                         "only matters with `filter_false_negatives`"),
            "embedding_model": (not self.negatives.embeds, "is used by `hard_neg_method` dense or hybrid, not "
                                f"{self.negatives.hard_neg_method}"),
            "keep_checkpoints": (bool(self.evaluation.cv_folds), "keeps a finished run's checkpoints; "
                                 "cross-validation keeps them with `cv_keep_models`"),
        }
        return {name: why for name, (ignored, why) in rules.items() if ignored}

    def card_settings(self) -> dict:
        """{setting: value} of the settings that shape the model, for the model card (paths left out on purpose)."""
        arguments = self.as_arguments()
        return {name: arguments[name] for name, item in self.setting_fields().items() if item.metadata["card"]}
