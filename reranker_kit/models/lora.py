"""LoRA for the cross-encoder through peft: low-rank adapters on the encoder, the ranking head trained whole.

LoRA (Hu et al., 2021) freezes the pretrained weights and learns a rank-r update `B @ A * alpha / r` beside
each chosen linear layer. On a few dozen labelled queries that moves the model less than full fine-tuning
(fewer ways to forget what the base knew) and needs no gradient or optimizer state for the frozen weights
(bench/bench_lora.py measures how much). The classification head is not adapted but trained whole (peft's
`modules_to_save`): a fresh head (the bundled MiniLM) must be learnt outright, and a trained one (ViRanker)
is small. `merge_lora` folds the adapters back into the weights and swaps the trained head copy in, so the
saved folder is an ordinary sequence-classification model that `Reranker`, FlagEmbedding's `FlagReranker`
and sentence-transformers' `CrossEncoder` load as they load any run (sentence-transformers #3980 was a LoRA
cross-encoder whose saved head was the untrained one).

Layer names (BERT, the bundled MiniLM, and XLM-RoBERTa, ViRanker and bge-reranker-v2-m3, share them):
attention `query`, `key`, `value`, `attention.output.dense`; feed-forward `intermediate.dense` and
`output.dense`. The bare name `dense` is never targeted: it would also catch the head's `classifier.dense`
(XLM-R) and the pooler's `pooler.dense` (BERT), which are trained whole instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

ATTENTION_MODULES: tuple[str, ...] = ("query", "key", "value", "attention.output.dense")
FEED_FORWARD_MODULES: tuple[str, ...] = ("intermediate.dense", "output.dense")
# BERT's classifier reads the pooler's output (a dense layer + tanh over [CLS]), so the pooler is the first
# half of its head, as XLM-R's classifier.dense is; both are trained whole.
POOLER_MODULE = "pooler"


@dataclass(frozen=True)
class ParameterCounts:
    """How many parameters a model has and how many of them an optimizer would update."""

    trainable: int
    total: int

    @property
    def trainable_share(self) -> float:
        return self.trainable / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"{self.trainable:,} of {self.total:,} parameters trainable ({self.trainable_share:.2%})"


def parameter_counts(model: torch.nn.Module) -> ParameterCounts:
    """Trainable and total parameters (shared tensors counted once)."""
    unique = {id(parameter): parameter for parameter in model.parameters()}.values()
    return ParameterCounts(trainable=sum(p.numel() for p in unique if p.requires_grad),
                           total=sum(p.numel() for p in unique))


def head_module_names(model: torch.nn.Module) -> list[str]:
    """The modules outside the encoder that hold weights (the classification head), plus BERT's pooler.

    BERT and XLM-R sequence classifiers both call their head `classifier` (BERT: one Linear; XLM-R:
    `dense` + `out_proj`); the names are read from the model so another architecture's head is found too.
    """
    encoder_name = model.base_model_prefix
    heads = [name for name, child in model.named_children()
             if name != encoder_name and any(True for _ in child.parameters())]
    if getattr(getattr(model, encoder_name, None), POOLER_MODULE, None) is not None:
        heads.append(POOLER_MODULE)
    if not heads:
        raise ValueError(f"{type(model).__name__} has no classification head beside its encoder {encoder_name!r}; "
                         "load it with AutoModelForSequenceClassification (load_cross_encoder does)")
    return heads


def apply_lora(model: torch.nn.Module, r: int = 8, alpha: float = 16, dropout: float = 0.1,
               target_modules: list[str] | None = None, feed_forward: bool = False):
    """Wraps a sequence-classification cross-encoder with LoRA adapters; the head stays fully trainable.

    peft changes `model` in place (its linear layers gain adapters); copy it first to keep the original.

    Args:
        model: a one-logit `AutoModelForSequenceClassification` (as `load_cross_encoder` returns).
        r: the rank of each update.
        alpha: the update's scale is alpha / r (peft's `lora_alpha`).
        dropout: dropout on the adapters' input.
        target_modules: the layer names to adapt (suffixes of module names); by default ATTENTION_MODULES,
            plus FEED_FORWARD_MODULES when `feed_forward`.
        feed_forward: also adapt the feed-forward layers.

    Returns:
        A peft `PeftModelForSequenceClassification`; `parameter_counts` tells its trainable share.

    Example:
        >>> model, tokenizer, _ = load_cross_encoder("bundled-minilm")
        >>> lora_model = apply_lora(model, r=16)
        >>> print(parameter_counts(lora_model))
    """
    from peft import LoraConfig, TaskType, get_peft_model

    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise ValueError(f"the LoRA rank r must be a positive integer, got {r!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"LoRA dropout must be in [0, 1), got {dropout!r}")
    targets = list(target_modules or ATTENTION_MODULES + (FEED_FORWARD_MODULES if feed_forward else ()))
    config = LoraConfig(task_type=TaskType.SEQ_CLS, r=r, lora_alpha=alpha, lora_dropout=dropout,
                        target_modules=targets, modules_to_save=head_module_names(model), bias="none")
    return get_peft_model(model, config)


def merge_lora(peft_model) -> torch.nn.Module:
    """The adapters folded into the weights and the trained head copy in place: a plain transformers model.

    peft's `merge_and_unload` does both (it swaps each `modules_to_save` wrapper for the adapter's trained
    copy); the result is checked to hold no peft layer, so saving it writes a standard model folder.
    """
    merged = peft_model.merge_and_unload()
    leftovers = [name for name, _ in merged.named_parameters() if "lora_" in name or "modules_to_save" in name
                 or "original_module" in name or "base_layer" in name]
    if leftovers:
        raise RuntimeError(f"merging left peft weights behind ({leftovers[:3]}); this peft version unloads "
                           "differently: save the adapters with peft_model.save_pretrained instead")
    return merged


def save_merged(peft_model, tokenizer, folder: str | Path) -> Path:
    """Merges the adapters and saves model and tokenizer as a standard sequence-classification folder.

    Example:
        >>> save_merged(lora_model, tokenizer, "outputs/reranker-lora-merged")
        >>> Reranker(model_name="outputs/reranker-lora-merged")
    """
    folder = Path(folder)
    merged = merge_lora(peft_model)
    merged.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
