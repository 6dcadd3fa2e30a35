"""Retrieve-then-rerank: first-stage candidates, reranker scores, optional score fusion, rankings.

The dev evaluation during training and `main.py` both go through these functions, so the dev metric
that picks a checkpoint measures exactly the pipeline the benchmark reports.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from data_loading import Query
from retrieval import LexicalIndex


@dataclass
class Candidates:
    """Each query's first-stage top documents (best first) and their first-stage scores."""

    ids: dict[str, list[int]]
    first_stage_scores: dict[str, np.ndarray]


def retrieve_candidates(index: LexicalIndex, doc_ids: Sequence[int], queries: Sequence[Query], top_n: int
                        ) -> Candidates:
    positions, scores = index.top_k([query.text for query in queries], top_n)
    return Candidates(
        ids={query.qid: [doc_ids[p] for p in row] for query, row in zip(queries, positions)},
        first_stage_scores={query.qid: row for query, row in zip(queries, scores)},
    )


def rerank_scores(score_pairs: Callable[[list[tuple[str, str]]], np.ndarray], queries: Sequence[Query],
                  candidates: Candidates, corpus: dict[int, str]) -> dict[str, np.ndarray]:
    """Scores every (query, candidate) pair in one call, so batches sort by length across queries."""
    pairs = [(query.text, corpus[doc_id]) for query in queries for doc_id in candidates.ids[query.qid]]
    flat = np.asarray(score_pairs(pairs), dtype=np.float32)
    by_query, start = {}, 0
    for query in queries:
        count = len(candidates.ids[query.qid])
        by_query[query.qid] = flat[start:start + count]
        start += count
    return by_query


def fuse(first_stage: np.ndarray, reranker: np.ndarray, weight: float) -> np.ndarray:
    """weight * reranker + (1 - weight) * first stage, each min-max normalised within the query.

    Per-query normalisation puts BM25 scores (unbounded, query-dependent) and logits on one scale;
    weight 1 is the reranker alone, weight 0 the first stage alone.
    """
    return weight * _min_max(reranker) + (1.0 - weight) * _min_max(first_stage)


def rank(scores_by_query: dict[str, np.ndarray], candidates: Candidates) -> dict[str, list[int]]:
    """Candidates sorted by score, best first; ties keep the first-stage order."""
    rankings = {}
    for qid, candidate_ids in candidates.ids.items():
        order = np.argsort(-scores_by_query[qid], kind="stable")
        rankings[qid] = [candidate_ids[i] for i in order]
    return rankings


def fused_scores(candidates: Candidates, reranker_scores: dict[str, np.ndarray], weight: float
                 ) -> dict[str, np.ndarray]:
    return {qid: fuse(candidates.first_stage_scores[qid], reranker_scores[qid], weight) for qid in candidates.ids}


def choose_fusion_weight(metrics_by_weight: dict[str, dict[str, float]], metric: str, ks: Sequence[int]) -> str:
    """The weight (a key such as "0.3") with the best `metric` among those no worse than the first stage.

    "No worse" means hit@k and mrr@k at every k at least those of weight 0 (the first stage alone), so a
    weak reranker cannot trade the top hit for a better average. Ties go to the smaller weight.
    """
    first_stage = metrics_by_weight["0.0"]
    guarded = [f"{name}@{k}" for name in ("hit", "mrr") for k in ks]
    safe = [weight for weight, metrics in metrics_by_weight.items()
            if all(metrics[key] >= first_stage[key] - 1e-12 for key in guarded)]
    return max(safe, key=lambda weight: (metrics_by_weight[weight][metric], -float(weight)))


def _min_max(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return values
    spread = values.max() - values.min()
    return (values - values.min()) / spread if spread > 0 else np.zeros_like(values)
