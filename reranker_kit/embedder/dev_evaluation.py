"""First-stage metrics of an encoder on the dev queries: dense alone, BM25 alone and the hybrid at every weight.

Every dev query is ranked over the whole corpus, as main.py's first stage ranks it; a relevant document
outside the top `dev_top_n` (the reranking depth) is lost to the reranker, so recall there is the default
checkpoint metric. The hybrid is scored as `retrieval/hybrid.py` scores it, w * minmax(dense) + (1 - w) *
minmax(bm25) (`fusion.fuse`), at each weight of `fusion.FUSION_WEIGHTS`; weight 0 is BM25 alone and
weight 1 the encoder alone. Its dense weight is chosen by `fusion.choose_fusion`, the kit's guarded rule
(hit@k and mrr@k at least BM25's), taking the best weight without shrinking it toward BM25: no second rule.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from reranker_kit.data.loading import Query
from reranker_kit.embedder.arguments import FIRST_STAGE_METRICS
from reranker_kit.fusion import FUSION_WEIGHTS, FusionChoice, choose_fusion, fuse, setting_key
from reranker_kit.metrics import CUTOFFS, per_query_metrics
from reranker_kit.retrieval.base import select_top_k
from reranker_kit.retrieval.lexical import LexicalIndex

HYBRID_FUSION = "minmax"  # As retrieval/hybrid.py fuses.
# The shrinkage toward the first stage exists for a reranker, which over-trusts itself on easy new queries (the
# shift experiment). For a dense encoder beside BM25 it left the gain on the table: in a CV of bundled-e5 on the
# sample it chose 0.1 to 0.3 where the dev queries' best was 0.6 to 0.8 (bench/QUALITY.md section 8).
HYBRID_SHRINK = False
DENSE_ALONE, BM25_ALONE = setting_key(HYBRID_FUSION, 1.0), setting_key(HYBRID_FUSION, 0.0)


@dataclass(frozen=True)
class EncoderDevMetrics:
    """One encoder's dev metrics: dense alone, the hybrid at the chosen weight, and every setting per query."""

    dense: dict[str, float]
    bm25: dict[str, float]
    hybrid: FusionChoice

    def dense_per_query(self, metric: str) -> list[float]:
        """The encoder alone: each dev query's `metric`, in the dev queries' order (the paired statistics' input)."""
        return [row[metric] for row in self.hybrid.per_query_by_setting[DENSE_ALONE].values()]

    def as_dict(self) -> dict:
        return {"dense": self.dense, "hybrid": self.hybrid.fused_dev_metrics, "hybrid_dense_weight": self.hybrid.weight,
                "hybrid_best_before_shrinking": self.hybrid.best_setting}


class FirstStageDev:
    """The dev queries, the corpus and BM25's scores of every (dev query, document), computed once.

    Args:
        corpus: {document id: text}; dev_queries: the held-out labelled queries.
        ks: the cut-offs to report (3, 5, 7 and the reranking depth).
    """

    def __init__(self, corpus: dict[int, str], dev_queries: Sequence[Query], ks: Sequence[int]):
        self.doc_ids = list(corpus)
        self.documents = [corpus[doc_id] for doc_id in self.doc_ids]
        self.queries = list(dev_queries)
        self.ks = tuple(ks)
        self.relevant = {query.qid: query.relevant_ids for query in self.queries}
        self.bm25_scores = LexicalIndex(self.documents, method="bm25").score([query.text for query in self.queries])

    def dense_scores(self, encoder) -> np.ndarray:
        """Cosine similarity of every document for each dev query; `encoder` as retrieval.dense.SentenceEncoder."""
        documents = encoder.encode(self.documents, "document")
        return encoder.encode([query.text for query in self.queries], "query") @ documents.T

    def per_query_by_weight(self, dense_scores: np.ndarray, weights: Sequence[float] = FUSION_WEIGHTS
                            ) -> dict[str, dict[str, dict[str, float]]]:
        """{setting_key: {qid: {metric: value}}} of the hybrid at each dense weight, over the whole corpus."""
        depth = min(max(self.ks), len(self.doc_ids))
        by_setting = {}
        for weight in weights:
            fused = np.stack([fuse(bm25, dense, weight, HYBRID_FUSION)
                              for bm25, dense in zip(self.bm25_scores, dense_scores)])
            positions, _ = select_top_k(fused, depth)
            rankings = {query.qid: [self.doc_ids[p] for p in row] for query, row in zip(self.queries, positions)}
            by_setting[setting_key(HYBRID_FUSION, weight)] = per_query_metrics(rankings, self.relevant, self.ks,
                                                                               metrics=FIRST_STAGE_METRICS)
        return by_setting

    def evaluate(self, encoder, hybrid_metric: str) -> EncoderDevMetrics:
        """Dense, BM25 and the hybrid at the weight `choose_fusion` picks on `hybrid_metric`."""
        by_setting = self.per_query_by_weight(self.dense_scores(encoder))
        hybrid = choose_fusion(by_setting, hybrid_metric, CUTOFFS, shrink=HYBRID_SHRINK)
        return EncoderDevMetrics(dense=hybrid.dev_metrics_by_setting[DENSE_ALONE],
                                 bm25=hybrid.dev_metrics_by_setting[BM25_ALONE], hybrid=hybrid)

    def dense_metrics(self, encoder) -> dict[str, float]:
        """The encoder alone: what picks the checkpoint."""
        per_query = self.per_query_by_weight(self.dense_scores(encoder), weights=(1.0,))[DENSE_ALONE]
        rows = list(per_query.values())
        return {name: float(np.mean([row[name] for row in rows])) for name in rows[0]}
