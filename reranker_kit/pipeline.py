"""Retrieve-then-rerank: reranker scores over the first stage's candidates, and the rankings they give.

The dev evaluation during training and `main.py` both go through these functions, so the dev metric
that picks a checkpoint measures exactly the pipeline the benchmark reports.
"""

from collections.abc import Callable, Sequence

import numpy as np

from reranker_kit.data.loading import Query
from reranker_kit.retrieval.candidates import Candidates


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


def rank(scores_by_query: dict[str, np.ndarray], candidates: Candidates) -> dict[str, list[int]]:
    """Candidates sorted by score, best first; ties keep the first-stage order."""
    rankings = {}
    for qid, candidate_ids in candidates.ids.items():
        order = np.argsort(-scores_by_query[qid], kind="stable")
        rankings[qid] = [candidate_ids[i] for i in order]
    return rankings
