"""Retrieve-then-rerank: first-stage candidates, reranker scores, optional score fusion, rankings.

The dev evaluation during training and `main.py` both go through these functions, so the dev metric
that picks a checkpoint measures exactly the pipeline the benchmark reports.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from reranker_kit.data.loading import Query
from reranker_kit.retrieval.base import Retriever


@dataclass
class Candidates:
    """Each query's first-stage top documents (best first) and their first-stage scores."""

    ids: dict[str, list[int]]
    first_stage_scores: dict[str, np.ndarray]


def retrieve_candidates(index: Retriever, doc_ids: Sequence[int], queries: Sequence[Query], top_n: int
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


def rank(scores_by_query: dict[str, np.ndarray], candidates: Candidates) -> dict[str, list[int]]:
    """Candidates sorted by score, best first; ties keep the first-stage order."""
    rankings = {}
    for qid, candidate_ids in candidates.ids.items():
        order = np.argsort(-scores_by_query[qid], kind="stable")
        rankings[qid] = [candidate_ids[i] for i in order]
    return rankings
