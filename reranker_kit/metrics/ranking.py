"""The club's retrieval metrics for one query, and their averages over a query set.

Conventions (`conventions.py` enforces them) for every function here:
- `ranked_ids` are document ids, best first; ranks start at 1. A repeated id counts once: later copies
  are dropped before the list is cut at k, so a duplicate never takes a top-k slot.
- `relevant_ids` is a non-empty collection; an empty one raises ValueError (recall, MAP and nDCG divide
  by a function of it). `k` is an integer >= 1 (TypeError / ValueError otherwise) and may exceed the
  ranked list, which may be empty.
- Every metric returns a float in [0, 1]; a query whose relevant documents are all missed scores 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence

from reranker_kit.metrics.context_recall import answer_can_be_judged, context_recall_at_k
from reranker_kit.metrics.conventions import CUTOFFS, check_k, dedupe

METRIC_NAMES: tuple[str, ...] = ("hit", "recall", "precision", "f1", "map", "mrr", "ndcg", "context_precision",
                                 "context_recall")
# How many ids an error message lists before summarising the rest.
_MAX_IDS_IN_MESSAGE = 5


def _relevance_flags(ranked_ids: Sequence[Hashable], relevant_ids: Collection[Hashable], k: int) -> list[bool]:
    check_k(k)
    relevant = frozenset(relevant_ids)
    if not relevant:
        raise ValueError("relevant_ids must contain at least one document id")
    return [doc_id in relevant for doc_id in dedupe(ranked_ids)[:k]]


def hit_at_k(ranked_ids, relevant_ids, k: int) -> float:
    """1 if any relevant document is in the top k, else 0."""
    return 1.0 if any(_relevance_flags(ranked_ids, relevant_ids, k)) else 0.0


def recall_at_k(ranked_ids, relevant_ids, k: int) -> float:
    """|relevant ∩ top k| / |relevant|."""
    return sum(_relevance_flags(ranked_ids, relevant_ids, k)) / len(frozenset(relevant_ids))


def precision_at_k(ranked_ids, relevant_ids, k: int) -> float:
    """|relevant ∩ top k| / k; an empty slot of a short ranking counts as a miss."""
    return sum(_relevance_flags(ranked_ids, relevant_ids, k)) / k


def map_at_k(ranked_ids, relevant_ids, k: int) -> float:
    """Σ_{i<=k} precision@i · rel_i / |relevant ∩ top k| (0 when none is found).

    The club divides by the relevant documents *found* in the top k, not by |relevant| (ranx does the
    latter), so its MAP@k is the mean precision at the ranks that hold a relevant document.
    """
    hits, precisions = 0, []
    for rank, is_relevant in enumerate(_relevance_flags(ranked_ids, relevant_ids, k), start=1):
        if is_relevant:
            hits += 1
            precisions.append(hits / rank)
    return math.fsum(precisions) / len(precisions) if precisions else 0.0


# The club's LLM-free context precision (mean of precision@i over the ranks i <= k holding a relevant
# context) is the same formula as its MAP@k; reports keep both names so RAG and IR readers find theirs.
context_precision_at_k = map_at_k


def mrr_at_k(ranked_ids, relevant_ids, k: int) -> float:
    """1 / rank of the first relevant document in the top k (0 when none is)."""
    for rank, is_relevant in enumerate(_relevance_flags(ranked_ids, relevant_ids, k), start=1):
        if is_relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(ranked_ids, relevant_ids, k: int) -> float:
    """Binary-relevance DCG@k = Σ rel_i / log2(i + 1), over the ideal DCG of min(k, |relevant|) hits."""
    flags = _relevance_flags(ranked_ids, relevant_ids, k)
    dcg = math.fsum(1.0 / math.log2(rank + 1) for rank, is_relevant in enumerate(flags, start=1) if is_relevant)
    ideal_hits = min(k, len(frozenset(relevant_ids)))
    # Each DCG term is at most the IDCG term of the same index and fsum rounds correctly: no clamp needed.
    return dcg / math.fsum(1.0 / math.log2(rank + 1) for rank in range(1, ideal_hits + 1))


def f1_score(precision: float, recall: float) -> float:
    """2PR / (P + R), 0 when both are 0; evaluate_rankings feeds it the averaged precision@k and recall@k."""
    for name, value in (("precision", precision), ("recall", recall)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    return 0.0 if precision + recall == 0.0 else 2.0 * precision * recall / (precision + recall)


RankingMetric = Callable[[Sequence[Hashable], Collection[Hashable], int], float]
# Metrics computed from ids alone; f1 is aggregate-level and context_recall needs texts.
ID_METRICS: dict[str, RankingMetric] = {"hit": hit_at_k, "recall": recall_at_k, "precision": precision_at_k,
                                        "map": map_at_k, "mrr": mrr_at_k, "ndcg": ndcg_at_k,
                                        "context_precision": context_precision_at_k}


def _format_ids(ids: set[Hashable]) -> str:
    try:
        ordered = sorted(ids)  # type: ignore[type-var]
    except TypeError:
        ordered = sorted(ids, key=repr)  # Mixed id types: repr order keeps messages reproducible.
    shown = ", ".join(repr(i) for i in ordered[:_MAX_IDS_IN_MESSAGE])
    extra = len(ordered) - _MAX_IDS_IN_MESSAGE
    return f"[{shown}]" + (f" and {extra} more" if extra > 0 else "")


def _check_inputs(rankings: Mapping, relevant: Mapping, ks: Sequence[int], metrics: Sequence[str]) -> None:
    """The run's and the ground truth's query ids must match before anything is computed."""
    if not rankings:
        raise ValueError("rankings is empty: there are no queries to evaluate")
    missing_in_relevant, missing_in_rankings = set(rankings) - set(relevant), set(relevant) - set(rankings)
    if missing_in_relevant or missing_in_rankings:
        raise ValueError("rankings and relevant must have the same query ids; "
                         f"{len(missing_in_relevant)} query id(s) missing from relevant: {_format_ids(missing_in_relevant)}; "
                         f"{len(missing_in_rankings)} query id(s) missing from rankings: {_format_ids(missing_in_rankings)}")
    unknown = [name for name in metrics if name not in METRIC_NAMES]
    if unknown:
        raise ValueError(f"unknown metric name(s) {unknown}; expected names from {METRIC_NAMES}")
    for k in ks:
        check_k(k)
    for qid, ids in relevant.items():
        if len(ids) == 0:
            raise ValueError(f"query {qid!r} has no relevant document ids")


def _context_recall(qid, ranked: Sequence[int], ks: Sequence[int], doc_texts: Mapping[int, str], answer: str
                    ) -> dict[str, float]:
    top_ids = dedupe(ranked)[:max(ks)]
    # Only documents that can reach a top-k cut need a text, so deep candidates may lack one.
    missing = {doc_id for doc_id in top_ids if doc_id not in doc_texts}
    if missing:
        raise ValueError(f"doc_texts has no text for document id(s) {_format_ids(missing)} ranked for query {qid!r}")
    texts = [doc_texts[doc_id] for doc_id in top_ids]
    return {f"context_recall@{k}": context_recall_at_k(texts, answer, k) for k in ks}


def per_query_metrics(rankings: Mapping[Hashable, Sequence[int]], relevant: Mapping[Hashable, Collection[int]],
                      ks: Sequence[int] = CUTOFFS, doc_texts: Mapping[int, str] | None = None,
                      answers: Mapping[Hashable, str] | None = None, metrics: Sequence[str] = METRIC_NAMES
                      ) -> dict[Hashable, dict[str, float]]:
    """{query id: {"hit@3": ..., ...}} for every requested metric and k.

    f1 is skipped (it is aggregate-level); context_recall is added only when doc_texts and answers are
    both given, and only to the queries whose answer can be judged (`answer_can_be_judged`). Raises
    ValueError on mismatched query ids and the input errors above.
    """
    _check_inputs(rankings, relevant, ks, metrics)
    names = [name for name in dict.fromkeys(metrics) if name in ID_METRICS]
    results = {qid: {f"{name}@{k}": ID_METRICS[name](ranked, relevant[qid], k) for name in names for k in ks}
               for qid, ranked in rankings.items()}
    if "context_recall" in metrics and doc_texts is not None and answers is not None:
        missing_answers = set(rankings) - set(answers)
        if missing_answers:
            raise ValueError(f"answers is missing query id(s) {_format_ids(missing_answers)}")
        for qid, ranked in rankings.items():
            if ks and answer_can_be_judged(answers[qid]):
                results[qid].update(_context_recall(qid, ranked, ks, doc_texts, answers[qid]))
    return results


def evaluate_rankings(rankings: Mapping[Hashable, Sequence[int]], relevant: Mapping[Hashable, Collection[int]],
                      ks: Sequence[int] = CUTOFFS, doc_texts: Mapping[int, str] | None = None,
                      answers: Mapping[Hashable, str] | None = None, metrics: Sequence[str] = METRIC_NAMES
                      ) -> dict[str, float]:
    """{"hit@3": mean, ...}: each metric averaged over every query, a query that found nothing counting 0.

    f1@k is f1_score of the *averaged* precision@k and recall@k; context_recall@k needs doc_texts and answers,
    and is the mean over the queries whose answer can be judged (absent when none can).
    """
    unknown = [name for name in metrics if name not in METRIC_NAMES]
    if unknown:
        raise ValueError(f"unknown metric name(s) {unknown}; expected names from {METRIC_NAMES}")
    # f1 comes from the averaged precision and recall, so those two are computed even when not shown.
    needed = [name for name in metrics if name != "f1"] + (["precision", "recall"] if "f1" in metrics else [])
    rows = per_query_metrics(rankings, relevant, ks, doc_texts, answers, needed)
    # Every query holds every key except context_recall, which only queries with an answer to judge hold.
    means = {}
    for key in dict.fromkeys(key for row in rows.values() for key in row):
        values = [row[key] for row in rows.values() if key in row]
        means[key] = math.fsum(values) / len(values)
    results: dict[str, float] = {}
    for name in dict.fromkeys(metrics):
        for k in ks:
            key = f"{name}@{k}"
            if name == "f1":
                results[key] = f1_score(means[f"precision@{k}"], means[f"recall@{k}"])
            elif key in means:  # context_recall is absent without texts and answers
                results[key] = means[key]
    return results
