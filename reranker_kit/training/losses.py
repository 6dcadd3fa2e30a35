"""The reranker losses, as objects the Trainer calls: `loss(logits, batch)`; the dataset's shape follows from them.

`BinaryCrossEntropyLoss` scores each (query, document) pair on its own against a 0/1 label.
`ListwiseSoftmaxLoss` scores a query's positive together with its negatives and applies softmax
cross-entropy with the positive as the target, as FlagEmbedding trains its rerankers: the model only has
to rank the positive above its negatives, not reach absolute probabilities. Both compute on fp32 logits,
which fp16 autocast needs for a stable loss.
"""

import torch
import torch.nn.functional as F

from reranker_kit.training.arguments import LOSS_NAMES


class BinaryCrossEntropyLoss:
    """One row per pair, labelled 1 (the positive) or 0 (a negative)."""

    name = "bce"
    rows_are_groups = False

    def __call__(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits.view(-1).float(), batch["labels"].float())


class ListwiseSoftmaxLoss:
    """One row per group (the positive first, then its negatives); the batch records each group's size."""

    name = "listwise"
    rows_are_groups = True

    def __call__(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        groups = torch.split(logits.view(-1).float(), batch["group_sizes"].tolist())
        return torch.stack([-torch.log_softmax(group, dim=0)[0] for group in groups]).mean()


LOSSES = {loss.name: loss for loss in (BinaryCrossEntropyLoss, ListwiseSoftmaxLoss)}
assert tuple(LOSSES) == LOSS_NAMES, "training.arguments.LOSS_NAMES (the loss choices) must list every loss here"


def loss_from_name(name: str) -> BinaryCrossEntropyLoss | ListwiseSoftmaxLoss:
    """The one place a `loss` name becomes a loss object."""
    return LOSSES[name]()
