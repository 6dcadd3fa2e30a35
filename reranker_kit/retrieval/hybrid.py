"""Hybrid first stage: BM25 and a dense bi-encoder, their scores min-max normalised per query and summed.

`fused = w * normalise(dense) + (1 - w) * normalise(bm25)` over every document, with `basics.scores.normalise`
(the normalisations that also fuse the first stage with the reranker), w = 0.5. Min-max, not reciprocal
ranks: on the sample (bench/QUALITY.md) it beat reciprocal rank fusion on every hit@k and mrr@k, on the
train folds and on the test file, and kept recall at the reranking depth at least BM25's, which RRF did
not. Ranks discard how sure each side is, so a weak dense side's near-arbitrary order counted as much as
BM25's confident one; min-max keeps a clear winner's lead within the query.
"""

from collections.abc import Sequence

import numpy as np

from reranker_kit.basics.scores import normalise
from reranker_kit.retrieval.base import batched_top_k
from reranker_kit.retrieval.dense import DenseIndex
from reranker_kit.retrieval.lexical import LexicalIndex

HYBRID_FUSION = "minmax"
HYBRID_DENSE_WEIGHT = 0.5
QUERY_BATCH_SIZE = 256


class HybridIndex:
    """BM25 and dense scores of every document, normalised within the query and summed with weights.

    Args:
        lexical, dense: two indexes over the same documents, in the same order.
        fusion: a `basics.scores.normalise` method ("minmax", "zscore" or "rrf").
        dense_weight: the dense side's weight w in [0, 1].
    """

    def __init__(self, lexical: LexicalIndex, dense: DenseIndex, fusion: str = HYBRID_FUSION,
                 dense_weight: float = HYBRID_DENSE_WEIGHT):
        if lexical.num_documents != dense.num_documents:
            raise ValueError("the lexical and dense indexes must cover the same documents")
        self.lexical, self.dense, self.fusion, self.dense_weight = lexical, dense, fusion, dense_weight
        self.num_documents = lexical.num_documents

    def score(self, queries: Sequence[str]) -> np.ndarray:
        """Fused scores of every document for each query, shape (queries, documents)."""
        lexical, dense = self.lexical.score(queries), self.dense.score(queries)
        return np.asarray([self.dense_weight * normalise(dense_row, self.fusion)
                           + (1.0 - self.dense_weight) * normalise(lexical_row, self.fusion)
                           for lexical_row, dense_row in zip(lexical, dense)],
                          dtype=np.float32).reshape(len(queries), self.num_documents)

    def top_k(self, queries: Sequence[str], k: int, batch_size: int = QUERY_BATCH_SIZE
              ) -> tuple[np.ndarray, np.ndarray]:
        """The k best documents per query by fused score, best first; ties keep the lower position first."""
        return batched_top_k(self.score, queries, k, self.num_documents, batch_size)
