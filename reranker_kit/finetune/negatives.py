"""Hard and random negative mining for the training pairs.

Each (query, relevant document) becomes one training group: the positive plus `num_hard` negatives
sampled from the query's top `hard_top_k` first-stage hits and `num_random` from the rest of the corpus.
A document relevant to the query is never used as its negative, nor a copy of one (a corpus document
with the same text, `data.loading.same_text_groups`): its text would be labelled both ways. Sampling from
the top-k pool rather than taking the very top hits avoids training on the unlabelled near-duplicates of a
positive.

With a judge (`finetune.false_negatives`), likely false negatives are filtered *before* a group's hard
negatives are final, as sentence-transformers' `mine_hard_negatives` does: each group walks its pool in a
seeded random order and keeps the first `num_hard` candidates the judge lets through, so a filtered group
still gets the count asked for while the pool lasts; groups that come up short are counted and named.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from reranker_kit.data.loading import Query
from reranker_kit.retrieval.base import Retriever

logger = logging.getLogger(__name__)


# judge(query, positive id, candidate ids) -> one bool per candidate: True keeps it as a hard negative.
Judge = Callable[[list[tuple[str, int, int]]], list[bool]]


def effective_hard_top_k(requested: int, num_documents: int) -> int:
    """`hard_neg_top_k` capped at the corpus size, with a warning when the cap applies."""
    if requested > num_documents:
        logger.warning("`hard_neg_top_k` %d is larger than the corpus; using all %d documents", requested, num_documents)
        return num_documents
    return requested


@dataclass(frozen=True)
class TrainingGroup:
    """One positive document of a query and the negatives drawn for it."""

    query: str
    positive_id: int
    hard_negative_ids: tuple[int, ...]
    random_negative_ids: tuple[int, ...]

    @property
    def negative_ids(self) -> tuple[int, ...]:
        return self.hard_negative_ids + self.random_negative_ids


@dataclass
class MiningReport:
    """Counts of what was built, and the requests that could only be met in part."""

    queries: int = 0
    positive_pairs: int = 0
    hard_negative_pairs: int = 0
    random_negative_pairs: int = 0
    false_negatives_dropped: int = 0  # Hard candidates a teacher judged relevant (`filter_false_negatives`).
    candidates_judged: int = 0  # Hard candidates the teacher scored.
    shortfalls: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"queries": self.queries, "positive_pairs": self.positive_pairs,
                "hard_negative_pairs": self.hard_negative_pairs,
                "random_negative_pairs": self.random_negative_pairs,
                "false_negatives_dropped": self.false_negatives_dropped, "groups_short": len(self.shortfalls)}


def mine_training_groups(queries: Sequence[Query], index: Retriever, doc_ids: Sequence[int],
                         num_hard: int, num_random: int, hard_top_k: int, seed: int,
                         same_text: Sequence[Sequence[int]] = (), judge: Judge | None = None
                         ) -> tuple[list[TrainingGroup], MiningReport]:
    """Builds one group per (query, relevant document), deterministically from `seed`.

    Args:
        queries: labelled queries; their relevant ids must be in `doc_ids`.
        index: a first-stage retriever over the documents, in the order of `doc_ids`.
        doc_ids: the document id at each index position.
        num_hard, num_random: negatives of each kind per group.
        hard_top_k: size of the pool of top first-stage hits (positives excluded) hard negatives come from.
        seed: seeds the sampling.
        same_text: groups of document ids that share one text; a copy of a positive is never a negative.
        judge: filters hard candidates before they are taken (likely false negatives out); None takes them all.
    """
    rng = np.random.default_rng(seed)
    report = MiningReport(queries=len(queries))
    copies_of = {doc_id: set(group) for group in same_text for doc_id in group}
    never_negative = [set(query.relevant_ids).union(*(copies_of.get(doc_id, ()) for doc_id in query.relevant_ids))
                      for query in queries]
    most_excluded = max(map(len, never_negative), default=0)
    ranked_positions, _ = index.top_k([query.text for query in queries], hard_top_k + most_excluded)
    doc_ids = np.asarray(doc_ids)
    groups, orders = [], []
    for query, positions, positives in zip(queries, ranked_positions, never_negative):
        ranked_ids = [int(doc_id) for doc_id in doc_ids[positions] if doc_id not in positives]
        hard_pool = ranked_ids[:hard_top_k]
        not_random = positives | set(hard_pool)
        for positive_id in query.relevant_ids:
            # Without a judge the first num_hard of a random order are the sample; a judge walks further.
            order = _sample(rng, hard_pool, len(hard_pool) if judge else num_hard)
            random = _sample_outside(rng, doc_ids, not_random, num_random)
            groups.append(TrainingGroup(query.text, positive_id, () if judge else order, random))
            orders.append(order)
    if judge is not None:
        groups = _judged(groups, orders, num_hard, judge, report)
    for group, query_id in zip(groups, (query.qid for query in queries for _ in query.relevant_ids)):
        if len(group.hard_negative_ids) < num_hard or len(group.random_negative_ids) < num_random:
            report.shortfalls.append(f"{query_id}: {len(group.hard_negative_ids)} hard and "
                                     f"{len(group.random_negative_ids)} random negatives (asked {num_hard} and "
                                     f"{num_random})")
        report.positive_pairs += 1
        report.hard_negative_pairs += len(group.hard_negative_ids)
        report.random_negative_pairs += len(group.random_negative_ids)
    if report.shortfalls:
        logger.warning("%d group(s) got fewer negatives than asked, since the corpus has too few non-relevant "
                       "documents outside the hard pool%s; first: %s", len(report.shortfalls),
                       " or the false-negative filter left too few" if judge else "", report.shortfalls[0])
    return groups, report


def _judged(groups: list[TrainingGroup], orders: list[tuple[int, ...]], num_hard: int, judge: Judge,
            report: MiningReport) -> list[TrainingGroup]:
    """Each group's first `num_hard` candidates of its order that the judge keeps, judged in batched rounds."""
    kept: list[list[int]] = [[] for _ in groups]
    walked = [0] * len(groups)
    while True:
        asked = [(index, doc_id) for index, group in enumerate(groups)
                 for doc_id in orders[index][walked[index]:walked[index] + num_hard - len(kept[index])]]
        if not asked:
            break
        verdicts = judge([(groups[index].query, groups[index].positive_id, doc_id) for index, doc_id in asked])
        for (index, doc_id), keep in zip(asked, verdicts):
            walked[index] += 1
            report.candidates_judged += 1
            if keep:
                kept[index].append(doc_id)
            else:
                report.false_negatives_dropped += 1
    return [replace(group, hard_negative_ids=tuple(ids)) for group, ids in zip(groups, kept)]


def _sample_outside(rng: np.random.Generator, doc_ids: np.ndarray, excluded: set[int], count: int) -> tuple[int, ...]:
    """`count` distinct documents not in `excluded` (a subset of `doc_ids`).

    Rejection sampling costs O(count) per query instead of listing the whole corpus, which dominated
    mining on 100k documents; when few documents remain, they are listed and sampled exactly.
    """
    available = len(doc_ids) - len(excluded)
    if count == 0 or available <= 0:
        return ()
    if available < 4 * count:
        pool = [int(doc_id) for doc_id in doc_ids if doc_id not in excluded]
        return _sample(rng, pool, count)
    chosen: list[int] = []
    taken = set(excluded)
    while len(chosen) < count:
        candidate = int(doc_ids[rng.integers(len(doc_ids))])
        if candidate not in taken:
            taken.add(candidate)
            chosen.append(candidate)
    return tuple(chosen)


def _sample(rng: np.random.Generator, pool: list[int], count: int) -> tuple[int, ...]:
    """`count` distinct members of `pool` in a random order (all of it when `count` is its length)."""
    if count == 0 or not pool:
        return ()
    chosen = rng.choice(len(pool), size=min(count, len(pool)), replace=False)
    return tuple(pool[i] for i in chosen)
