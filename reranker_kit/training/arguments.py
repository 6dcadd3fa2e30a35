"""`fine_tune_reranker.py`'s settings: the shared groups of `finetune.settings` with the reranker's own fields.

Each field is defined once here or there (its flag, default and help come from it); `RerankerSettings` is
the job's one frozen object of groups.
"""

from dataclasses import dataclass

from reranker_kit.finetune.settings import (
    MAY_DIFFER,
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
from reranker_kit.metrics import CUTOFFS, DEV_RANKING_METRICS

# The `loss` choices; training.losses holds one loss object per name (checked there at import).
LOSS_NAMES = ("bce", "listwise")
WEIGHT_ENSEMBLING_CHOICES = ("auto", "off")


@dataclass(frozen=True)
class RerankerData(DataSettings):
    """data"""

    # Two sentences a document on a CPU: the corpus sentences are what lets a fresh head learn (QUALITY.md, 5).
    pseudo_queries_per_document: int = setting(4, DataSettings.__dataclass_fields__["pseudo_queries_per_document"]
                                               .metadata["help"], on_cpu=2, card=True)


@dataclass(frozen=True)
class RerankerNegatives(NegativeSettings):
    """negatives"""

    teacher_model: str | None = setting(None, "Reranker that judges false negatives (default: `base_model`, useful "
                                        "only when it already ranks, such as namdp-ptit/ViRanker).")


@dataclass(frozen=True)
class RerankerModel(ModelSettings):
    """model"""

    base_model: str = setting("namdp-ptit/ViRanker", "Hub id, local model folder, or 'bundled-e5' for the bundled "
                              "offline model. A checkpoint folder here warm-starts from its weights only.")
    max_seq_length: int = setting(512, "Token budget of a (query, document) pair.", on_cpu=128, card=True)
    weight_ensembling: str = setting("auto", "auto: after training, blend base and trained weights (WiSE-FT, a in 0, "
                                     ".25, .5, .75, 1) when the base has a trained ranking head, and keep the blend "
                                     "the dev queries support; off: only the base and the trained weights compete.",
                                     choices=WEIGHT_ENSEMBLING_CHOICES)
    lora_r: int = setting(0, "Train LoRA adapters of this rank (and the classification head in full) instead of "
                          "every weight; the saved run is an ordinary merged model folder. 0: full fine-tuning.")
    lora_alpha: float = setting(16.0, "LoRA scaling (alpha / r scales the update).")
    lora_dropout: float = setting(0.1, "Dropout on the LoRA adapters' input.")

    def validate(self) -> None:
        super().validate()
        require(self.lora_r >= 0 and 0 <= self.lora_dropout < 1 and self.lora_alpha > 0, "lora_r",
                "`lora_r` must be 0 (off) or more, `lora_dropout` in [0, 1) and `lora_alpha` positive")
        require(not (self.lora_r and self.freeze_word_embeddings), "freeze_word_embeddings",
                "`freeze_word_embeddings` is implied by `lora_r` (only adapters and the head train): drop it")


@dataclass(frozen=True)
class RerankerOptimisation(OptimisationSettings):
    """training"""

    batch_size: int = setting(4, "Pairs per device batch (bce) or groups per device batch (listwise).",
                              trainer="per_device_train_batch_size", on_cpu=16, card=True)
    gradient_accumulation_steps: int = setting(8, "Batches per optimizer step.", trainer="gradient_accumulation_steps",
                                               on_cpu=1, card=True)
    epochs: float = setting(5.0, "Passes over the training pairs.", trainer="num_train_epochs", on_cpu=1.0, card=True)
    lr: float = setting(2e-5, "Peak learning rate.", trainer="learning_rate", on_cpu=5e-5, card=True)
    loss: str = setting("bce", "bce: each pair against a 0/1 label. listwise: softmax over a positive and its "
                        "negatives.", choices=LOSS_NAMES, card=True)


@dataclass(frozen=True)
class RerankerEvaluation(EvaluationSettings):
    """evaluation and checkpoints"""

    def validate(self) -> None:
        super().validate()
        name, _, k = self.metric_for_best_model.partition("@")
        require(name in DEV_RANKING_METRICS and k in {str(value) for value in CUTOFFS}, "metric_for_best_model",
                f"`metric_for_best_model` must be one of {DEV_RANKING_METRICS} at a k in {CUTOFFS} (such as mrr@5), "
                f"got {self.metric_for_best_model!r}")


@dataclass(frozen=True)
class RerankerOutput(OutputSettings):
    """experiment tracking and the Hugging Face Hub"""

    push_to_hub: bool = setting(False, "Push the finished run (weights, tokenizer, model card, metrics) to the Hugging "
                                "Face Hub; checkpoints are pushed as they are saved. Needs `huggingface-cli login` or "
                                "HF_TOKEN.", resume=MAY_DIFFER)
    hub_model_id: str | None = setting(None, "Hub repository, such as your-name/viranker-proptit; default: the run "
                                       "folder's name under your account. Also named in the model card.",
                                       resume=MAY_DIFFER)
    hub_private_repo: bool = setting(False, "Create the Hub repository as private.", resume=MAY_DIFFER)
    hub_dataset_id: str | None = setting(None, "Hub dataset id of the training data, listed under 'datasets' in the "
                                         "model card's metadata.", resume=MAY_DIFFER)


@dataclass(frozen=True)
class RerankerSettings(JobSettings):
    """Every setting of one reranker fine-tuning job."""

    data: RerankerData
    negatives: RerankerNegatives
    model: RerankerModel
    optimisation: RerankerOptimisation
    evaluation: RerankerEvaluation
    output: RerankerOutput

    def validate(self) -> None:
        super().validate()
        require(not (self.output.push_to_hub and self.evaluation.cv_folds), "push_to_hub",
                "`push_to_hub` pushes one finished run; cross-validation (`cv_folds`) keeps no model to push")

    def ignored(self) -> dict[str, str]:
        ignored = super().ignored()
        rules = {"lora_alpha": (not self.model.lora_r, "only matters with `lora_r` N"),
                 "lora_dropout": (not self.model.lora_r, "only matters with `lora_r` N"),
                 "hub_private_repo": (not self.output.push_to_hub, "only matters with `push_to_hub`")}
        return {**ignored, **{name: why for name, (unused, why) in rules.items() if unused}}
