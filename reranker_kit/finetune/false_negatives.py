"""Judging mined hard negatives that are probably relevant documents nobody labelled (false negatives).

The club's files mark one to three relevant documents per query, and a corpus of club announcements often
holds another document that answers the query too; training to push it down teaches the model to be
wrong. A hard candidate is kept only if a teacher reranker's probability for it is at most
`(1 - margin) x` the probability of its group's positive: the relative margin of sentence-transformers'
`mine_hard_negatives` and NV-Retriever's "TopK-PercPos" (margin 0.05: at most 95% of the positive's score).
Probabilities (the sigmoid of the logit) keep a relative margin meaningful for logits of either sign.
Mining asks the judge before it takes a candidate (`finetune.negatives`), so a group keeps its count.
"""

from collections.abc import Callable, Sequence

import numpy as np

from reranker_kit.basics.scores import sigmoid


class TeacherJudge:
    """judge(triples) -> keep flags, for (query, positive id, candidate id) triples; each pair is scored once.

    Args:
        corpus: {document id: text}.
        score_pairs: the teacher's scores (logits) of (query, text) pairs, in one call per round.
        margin: the relative margin above.
    """

    def __init__(self, corpus: dict[int, str], score_pairs: Callable[[list[tuple[str, str]]], Sequence[float]],
                 margin: float):
        self.corpus, self.score_pairs, self.margin = corpus, score_pairs, margin
        self.probability: dict[tuple[str, int], float] = {}

    def __call__(self, triples: list[tuple[str, int, int]]) -> list[bool]:
        needed = list(dict.fromkeys(key for query, positive, candidate in triples
                                    for key in ((query, positive), (query, candidate)) if key not in self.probability))
        if needed:
            logits = np.asarray(self.score_pairs([(query, self.corpus[doc_id]) for query, doc_id in needed]),
                                dtype=np.float64)
            self.probability.update(zip(needed, sigmoid(logits)))
        return [self.probability[(query, candidate)] <= self.probability[(query, positive)] * (1.0 - self.margin)
                for query, positive, candidate in triples]
