"""Hybrid first stage: BM25 and a dense bi-encoder fused per query by reciprocal rank fusion.

`fused = w * normalise(dense) + (1 - w) * normalise(bm25)` over every document, with `fusion.normalise`
(the same normalisations that fuse the first stage with the reranker). Reciprocal ranks (`rrf`) are the
default because they are blind to the two score scales: BM25 scores grow with query length and rare terms,
cosine similarities sit in a narrow band that differs from model to model, and a min-max or z-score
weight tuned for one pair of scales does not carry over to the club's own embedding model. bench/QUALITY.md
compares the three normalisations on the sample.
"""

from collections.abc import Sequence

import numpy as np

from reranker_kit.fusion import normalise
from reranker_kit.retrieval.base import batched_top_k
from reranker_kit.retrieval.dense import DenseIndex
from reranker_kit.retrieval.lexical import LexicalIndex

HYBRID_FUSION = "rrf"
HYBRID_DENSE_WEIGHT = 0.5
QUERY_BATCH_SIZE = 256


class HybridIndex:
    """BM25 and dense scores of every document, normalised within the query and summed with weights.

    Args:
        lexical, dense: two indexes over the same documents, in the same order.
        fusion: a `fusion.normalise` method ("rrf", "minmax" or "zscore").
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
