"""What every metric shares: the cut-offs the club reports, the check of k, repeated ids counted once."""

import numbers
from collections.abc import Hashable, Sequence

# The club reports every metric at these cut-offs.
CUTOFFS: tuple[int, ...] = (3, 5, 7)
# Ranking metrics that the dev evaluation reports and that can pick a checkpoint or a fusion weight.
DEV_RANKING_METRICS: tuple[str, ...] = ("hit", "mrr", "ndcg")


def check_k(k: int) -> None:
    # bool is an Integral too, but k=True is almost certainly a caller bug.
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"k must be an integer, got {type(k).__name__} {k!r}")
    if k < 1:
        raise ValueError(f"k must be a positive integer (k >= 1), got {k!r}")


def dedupe(items: Sequence[Hashable]) -> list[Hashable]:
    """The items without repeats, each at its first position."""
    return list(dict.fromkeys(items))
