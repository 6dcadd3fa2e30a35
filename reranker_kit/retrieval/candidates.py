"""The first stage's output: each query's top documents and their scores (`Candidates`)."""

from collections.abc import Sequence
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
