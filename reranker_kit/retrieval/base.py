"""What every first-stage retriever offers: `top_k(queries, k) -> (positions, scores)`, best first.

A retriever indexes a fixed list of documents once. Mining (`training/negatives.py`), the dev evaluation
during training and `main.py` (both through `pipeline.retrieve_candidates`) take any retriever.
"""

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np


class Retriever(Protocol):
    num_documents: int

    def top_k(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k best documents per query, best first, as (positions, scores), both (queries, k)."""


def select_top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's k highest scores, best first, as (positions, scores); ties keep the lower position first."""
    num_documents = scores.shape[1]
    if k < num_documents:
        candidates = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        candidates = np.tile(np.arange(num_documents), (len(scores), 1))
    candidate_scores = np.take_along_axis(scores, candidates, axis=1)
    order = np.lexsort((candidates, -candidate_scores), axis=1)
    return np.take_along_axis(candidates, order, axis=1), np.take_along_axis(candidate_scores, order, axis=1)


def batched_top_k(score: Callable[[Sequence[str]], np.ndarray], queries: Sequence[str], k: int, num_documents: int,
                  batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """`select_top_k` over `score(batch)` a batch of queries at a time, so memory never grows with all queries
    times all documents; k is capped at the number of documents."""
    k = min(k, num_documents)
    positions = np.empty((len(queries), k), dtype=np.int64)
    scores = np.empty((len(queries), k), dtype=np.float32)
    for start in range(0, len(queries), batch_size):
        batch = slice(start, start + batch_size)
        positions[batch], scores[batch] = select_top_k(score(queries[batch]), k)
    return positions, scores
