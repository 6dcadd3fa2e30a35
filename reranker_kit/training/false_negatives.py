"""Dropping mined hard negatives that are probably relevant documents nobody labelled (false negatives).

The club's files mark one to three relevant documents per query, and a corpus of club announcements often
holds another document that answers the query too; training the reranker to push it down teaches it to
be wrong. A hard negative is kept only if a teacher reranker's probability for it is at most
`(1 - margin) x` the probability of its group's positive: the relative margin of sentence-transformers'
`mine_hard_negatives` and NV-Retriever's "TopK-PercPos" (margin 0.05: at most 95% of the positive's score).
Probabilities (the sigmoid of the logit) keep a relative margin meaningful for logits of either sign.
"""

from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from reranker_kit.basics.scores import sigmoid
from reranker_kit.training.negatives import TrainingGroup


def filter_false_negatives(groups: Sequence[TrainingGroup], corpus: dict[int, str],
                           score_pairs: Callable[[list[tuple[str, str]]], Sequence[float]], margin: float
                           ) -> tuple[list[TrainingGroup], int]:
    """(groups without their likely false negatives, how many hard negatives were dropped).

    Every distinct (query, document) pair is scored once, in one call. Random negatives are kept: they
    were drawn outside the first stage's top hits, where an unlabelled relevant document rarely is.
    """
    keys = list(dict.fromkeys((group.query, doc_id) for group in groups
                              for doc_id in (group.positive_id, *group.hard_negative_ids)))
    if not keys:
        return list(groups), 0
    probabilities = sigmoid(np.asarray(score_pairs([(query, corpus[doc_id]) for query, doc_id in keys]), dtype=np.float64))
    probability = dict(zip(keys, probabilities))
    kept_groups, dropped = [], 0
    for group in groups:
        ceiling = probability[(group.query, group.positive_id)] * (1.0 - margin)
        kept = tuple(doc_id for doc_id in group.hard_negative_ids if probability[(group.query, doc_id)] <= ceiling)
        dropped += len(group.hard_negative_ids) - len(kept)
        kept_groups.append(replace(group, hard_negative_ids=kept))
    return kept_groups, dropped
