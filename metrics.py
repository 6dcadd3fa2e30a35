"""Retrieval and reranking metrics for the club's RAG chatbot.

Every ranking metric is computed per query and then averaged over queries.
Ranks start at 1. ``ranked_ids`` is a sequence of document ids, best first;
``relevant_ids`` is a non-empty collection of relevant document ids.

Conventions shared by all metrics:

* A document id that appears several times in ``ranked_ids`` is counted once:
  only its first occurrence is kept and later copies are removed *before* the
  list is cut at ``k`` (so a duplicate never takes up a slot in the top k).
* ``k`` may be larger than the ranked list, and the ranked list may be empty.
* ``k < 1`` or an empty relevant set raises ``ValueError``; a non-integer
  ``k`` raises ``TypeError``.

``context_recall`` has no LLM judge available, so it uses a documented
lexical judge instead (see :func:`context_recall_at_k`).
"""

from __future__ import annotations

import math
import numbers
import re
import unicodedata
from collections.abc import Callable, Collection, Hashable, Mapping, Sequence

METRIC_NAMES: tuple[str, ...] = (
    "hit",
    "recall",
    "precision",
    "f1",
    "map",
    "mrr",
    "ndcg",
    "context_precision",
    "context_recall",
)

# Share of a sentence's distinct tokens that must appear in the contexts for
# the lexical judge to call the sentence "supported".
# 0.7 was measured on the sample data (k = 3): the ground-truth documents support 0.99 of the answers'
# sentences, shuffled first-stage candidates 0.36; at 0.5 common function words (của, là, và, được)
# already let those shuffled candidates reach 0.62.
SUPPORT_THRESHOLD: float = 0.7

# Sentence boundaries for the lexical judge; ";" and newlines count because
# the club's answers are often written as lists or clauses.
_SENTENCE_SPLIT = re.compile(r"[.!?;\n]+")
# ``str`` patterns are Unicode-aware, so \w matches Vietnamese letters such as
# "ở" and "ý"; one-character tokens are kept on purpose because many
# Vietnamese syllables are a single character.
_TOKEN = re.compile(r"\w+")

# How many ids an error message lists before summarising the rest.
_MAX_IDS_IN_MESSAGE = 5


# --------------------------------------------------------------------------
# Validation and shared helpers
# --------------------------------------------------------------------------


def _check_k(k: int) -> None:
    """Raise unless ``k`` is a positive integer cutoff."""
    # bool is an Integral too, but k=True is almost certainly a caller bug.
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"k must be an integer, got {type(k).__name__} {k!r}")
    if k < 1:
        raise ValueError(f"k must be a positive integer (k >= 1), got {k!r}")


def _as_relevant_set(relevant_ids: Collection[Hashable]) -> frozenset[Hashable]:
    """Return the relevant ids as a set, rejecting an empty collection."""
    relevant = frozenset(relevant_ids)
    if not relevant:
        # Recall, MAP and nDCG all divide by (a function of) |relevant|, so an
        # empty set has no meaningful score; fail loudly instead of guessing.
        raise ValueError("relevant_ids must contain at least one document id")
    return relevant


def _dedupe(items: Sequence[Hashable]) -> list[Hashable]:
    """Drop repeated items, keeping each one's first occurrence in order."""
    return list(dict.fromkeys(items))


def _relevance_flags(
    ranked_ids: Sequence[Hashable], relevant_ids: Collection[Hashable], k: int
) -> list[bool]:
    """Binary relevance of the de-duplicated top-k ranking, best first."""
    _check_k(k)
    relevant = _as_relevant_set(relevant_ids)
    return [doc_id in relevant for doc_id in _dedupe(ranked_ids)[:k]]


def _mean_precision_at_relevant_ranks(flags: Sequence[bool]) -> float:
    """Mean of precision@i over the ranks i whose document is relevant."""
    hits = 0
    precisions: list[float] = []
    for rank, is_relevant in enumerate(flags, start=1):
        if is_relevant:
            hits += 1
            precisions.append(hits / rank)
    if not precisions:
        return 0.0
    return math.fsum(precisions) / len(precisions)


# --------------------------------------------------------------------------
# Ranking metrics (one query)
# --------------------------------------------------------------------------


def hit_at_k(
    ranked_ids: Sequence[Hashable], relevant_ids: Collection[Hashable], k: int
) -> float:
    r"""Hit rate at k: whether any relevant document is in the top k.

    .. math::

        \operatorname{Hit@k} = \mathbb{1}\left[\,|R \cap D_k| > 0\,\right]

    where :math:`R` is the relevant set and :math:`D_k` the top-k documents.

    Args:
        ranked_ids: Document ids, best first. Duplicates are counted once.
        relevant_ids: Non-empty collection of relevant document ids.
        k: Cutoff, ``k >= 1``; may exceed the length of ``ranked_ids``.

    Returns:
        1.0 if a relevant document is ranked in the top k, else 0.0.

    Raises:
        ValueError: If ``k < 1`` or ``relevant_ids`` is empty.
    """
    return 1.0 if any(_relevance_flags(ranked_ids, relevant_ids, k)) else 0.0


def recall_at_k(
    ranked_ids: Sequence[Hashable], relevant_ids: Collection[Hashable], k: int
) -> float:
    r"""Recall at k: share of the relevant documents found in the top k.

    .. math::

        \operatorname{Recall@k} = \frac{|R \cap D_k|}{|R|}

    Args:
        ranked_ids: Document ids, best first. Duplicates are counted once.
        relevant_ids: Non-empty collection of relevant document ids.
        k: Cutoff, ``k >= 1``; may exceed the length of ``ranked_ids``.

    Returns:
        Recall in [0, 1].

    Raises:
        ValueError: If ``k < 1`` or ``relevant_ids`` is empty.
    """
    flags = _relevance_flags(ranked_ids, relevant_ids, k)
    return sum(flags) / len(frozenset(relevant_ids))


def precision_at_k(
    ranked_ids: Sequence[Hashable], relevant_ids: Collection[Hashable], k: int
) -> float:
    r"""Precision at k: share of the k slots that hold a relevant document.

    .. math::

        \operatorname{Precision@k} = \frac{|R \cap D_k|}{k}

    The denominator is always ``k``, even when fewer than k documents were
    ranked: an empty slot counts as a miss, so short rankings are not rewarded.

    Args:
        ranked_ids: Document ids, best first. Duplicates are counted once.
        relevant_ids: Non-empty collection of relevant document ids.
        k: Cutoff, ``k >= 1``; may exceed the length of ``ranked_ids``.

    Returns:
        Precision in [0, 1].

    Raises:
        ValueError: If ``k < 1`` or ``relevant_ids`` is empty.
    """
    return sum(_relevance_flags(ranked_ids, relevant_ids, k)) / k


def map_at_k(
    ranked_ids: Sequence[Hashable], relevant_ids: Collection[Hashable], k: int
) -> float:
    r"""Average precision at k (MAP@k once averaged over queries).

    .. math::

        \operatorname{AP@k} = \frac{1}{|R \cap D_k|}
            \sum_{i=1}^{k} \operatorname{Precision@i} \cdot \operatorname{rel}_i

    with :math:`\operatorname{rel}_i \in \{0, 1\}` and AP@k = 0 when no
    relevant document is in the top k. Following the club's definition the
    sum is divided by the number of relevant documents *found* in the top k,
    not by :math:`|R|` or :math:`\min(k, |R|)`; with that choice it coincides
    with :func:`context_precision_at_k`.

    Args:
        ranked_ids: Document ids, best first. Duplicates are counted once.
        relevant_ids: Non-empty collection of relevant document ids.
        k: Cutoff, ``k >= 1``; may exceed the length of ``ranked_ids``.

    Returns:
        Average precision in [0, 1].

    Raises:
        ValueError: If ``k < 1`` or ``relevant_ids`` is empty.
    """
    flags = _relevance_flags(ranked_ids, relevant_ids, k)
    return _mean_precision_at_relevant_ranks(flags)


def mrr_at_k(
    ranked_ids: Sequence[Hashable], relevant_ids: Collection[Hashable], k: int
) -> float:
    r"""Reciprocal rank at k (MRR@k once averaged over queries).

    .. math::

        \operatorname{RR@k} = \frac{1}{\min\{\, i \le k : \operatorname{rel}_i = 1 \,\}}

    and RR@k = 0 when no relevant document is in the top k.

    Args:
        ranked_ids: Document ids, best first. Duplicates are counted once.
        relevant_ids: Non-empty collection of relevant document ids.
        k: Cutoff, ``k >= 1``; may exceed the length of ``ranked_ids``.

    Returns:
        Reciprocal rank in [0, 1].

    Raises:
        ValueError: If ``k < 1`` or ``relevant_ids`` is empty.
    """
    for rank, is_relevant in enumerate(
        _relevance_flags(ranked_ids, relevant_ids, k), start=1
    ):
        if is_relevant:
            return 1.0 / rank
    return 0.0


def ndcg_at_k(
    ranked_ids: Sequence[Hashable], relevant_ids: Collection[Hashable], k: int
) -> float:
    r"""Normalized discounted cumulative gain at k with binary relevance.

    .. math::

        \operatorname{DCG@k} = \sum_{i=1}^{k} \frac{\operatorname{rel}_i}{\log_2(i + 1)},
        \qquad
        \operatorname{IDCG@k} = \sum_{i=1}^{\min(k, |R|)} \frac{1}{\log_2(i + 1)},
        \qquad
        \operatorname{nDCG@k} = \frac{\operatorname{DCG@k}}{\operatorname{IDCG@k}}

    Args:
        ranked_ids: Document ids, best first. Duplicates are counted once.
        relevant_ids: Non-empty collection of relevant document ids.
        k: Cutoff, ``k >= 1``; may exceed the length of ``ranked_ids``.

    Returns:
        nDCG in [0, 1].

    Raises:
        ValueError: If ``k < 1`` or ``relevant_ids`` is empty.
    """
    flags = _relevance_flags(ranked_ids, relevant_ids, k)
    dcg = math.fsum(
        1.0 / math.log2(rank + 1)
        for rank, is_relevant in enumerate(flags, start=1)
        if is_relevant
    )
    ideal_hits = min(k, len(frozenset(relevant_ids)))
    # No clamp needed: each DCG term is at most the IDCG term of the same
    # index and fsum rounds correctly, so DCG <= IDCG holds in floating point.
    idcg = math.fsum(1.0 / math.log2(rank + 1) for rank in range(1, ideal_hits + 1))
    return dcg / idcg


def context_precision_at_k(
    ranked_ids: Sequence[Hashable], relevant_ids: Collection[Hashable], k: int
) -> float:
    r"""Context precision at k: rank-weighted precision of retrieved contexts.

    .. math::

        \operatorname{ContextPrecision@k} =
            \frac{\sum_{i=1}^{k} \operatorname{Precision@i} \cdot \operatorname{rel}_i}
                 {\sum_{i=1}^{k} \operatorname{rel}_i}

    i.e. the mean of precision@i over the ranks i <= k that hold a relevant
    context, and 0 when none does. This rewards rankings that put the useful
    contexts first, which is what the generator sees. Under the club's
    definitions it equals :func:`map_at_k`; both are kept so reports can use
    the RAG vocabulary and the IR vocabulary side by side.

    Args:
        ranked_ids: Document ids, best first. Duplicates are counted once.
        relevant_ids: Non-empty collection of relevant document ids.
        k: Cutoff, ``k >= 1``; may exceed the length of ``ranked_ids``.

    Returns:
        Context precision in [0, 1].

    Raises:
        ValueError: If ``k < 1`` or ``relevant_ids`` is empty.
    """
    flags = _relevance_flags(ranked_ids, relevant_ids, k)
    return _mean_precision_at_relevant_ranks(flags)


# --------------------------------------------------------------------------
# Context recall (lexical judge)
# --------------------------------------------------------------------------


def _tokenize(text: str) -> list[str]:
    """Lowercase Unicode word tokens of ``text``, one-character ones included."""
    # NFC first: decomposed Vietnamese (base letter + combining marks) would
    # otherwise be split apart by \w, because combining marks are not word
    # characters, and would never match the same word typed precomposed.
    return _TOKEN.findall(unicodedata.normalize("NFC", text).lower())


def _split_sentences(text: str) -> list[str]:
    """Split ``text`` on ``. ! ? ;`` and newlines, dropping empty pieces."""
    pieces = (piece.strip() for piece in _SENTENCE_SPLIT.split(text))
    return [piece for piece in pieces if piece]


def _is_supported(sentence_tokens: set[str], context_tokens: set[str]) -> bool:
    """Whether at least ``SUPPORT_THRESHOLD`` of a sentence's tokens are in context."""
    overlap = len(sentence_tokens & context_tokens)
    return overlap / len(sentence_tokens) >= SUPPORT_THRESHOLD


def context_recall_at_k(context_texts: Sequence[str], answer: str, k: int) -> float:
    r"""Context recall at k: share of answer sentences the top-k contexts support.

    .. math::

        \operatorname{ContextRecall@k} =
            \frac{|\{\, s \in S(a) : \operatorname{supported}(s, C_k) \,\}|}{|S(a)|}

    No LLM judge is available, so support is judged lexically:

    1. :math:`S(a)`: the answer is split into sentences on ``.``, ``!``,
       ``?``, ``;`` and newlines; empty pieces and pieces without any token
       are dropped (a token-less piece such as ``"-"`` has nothing to support).
    2. Text is NFC-normalised, lowercased and tokenised with the Unicode
       regex ``\w+``. One-character tokens are kept, because many Vietnamese
       syllables ("ở", "ý") are a single character.
    3. :math:`C_k` is the set of tokens of the top-k contexts concatenated.
       A sentence :math:`s` is supported when
       :math:`|T(s) \cap C_k| / |T(s)| \ge` ``SUPPORT_THRESHOLD`` (0.7), with
       :math:`T(s)` the distinct tokens of :math:`s`.

    An answer with no tokens scores 0. Identical context texts are counted
    once (first occurrence kept), mirroring how duplicated ids are handled.

    Args:
        context_texts: Texts of the ranked contexts, best first.
        answer: Ground-truth answer.
        k: Cutoff, ``k >= 1``; may exceed the number of contexts.

    Returns:
        Context recall in [0, 1].

    Raises:
        ValueError: If ``k < 1``.
    """
    _check_k(k)
    sentence_token_sets = [
        tokens
        for tokens in (set(_tokenize(s)) for s in _split_sentences(answer))
        if tokens
    ]
    if not sentence_token_sets:
        return 0.0
    top_contexts = _dedupe(context_texts)[:k]
    # Joining with a newline keeps the last word of one context from fusing
    # with the first word of the next into a token that exists in neither.
    context_tokens = set(_tokenize("\n".join(top_contexts)))
    supported = sum(_is_supported(t, context_tokens) for t in sentence_token_sets)
    return supported / len(sentence_token_sets)


# --------------------------------------------------------------------------
# Aggregate metrics
# --------------------------------------------------------------------------


def f1_score(precision: float, recall: float) -> float:
    r"""Harmonic mean of precision and recall.

    .. math::

        F_1 = \frac{2 \cdot P \cdot R}{P + R}, \qquad F_1 = 0 \text{ if } P = R = 0

    ``evaluate_rankings`` feeds it the precision@k and recall@k *averaged over
    queries*, so F1@k is an aggregate-level score, not a mean of per-query F1.

    Args:
        precision: Precision in [0, 1].
        recall: Recall in [0, 1].

    Returns:
        F1 in [0, 1].

    Raises:
        ValueError: If ``precision`` or ``recall`` is outside [0, 1].
    """
    for name, value in (("precision", precision), ("recall", recall)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    if precision + recall == 0.0:
        return 0.0
    return 2.0 * precision * recall / (precision + recall)


RankingMetric = Callable[[Sequence[Hashable], Collection[Hashable], int], float]

# Metrics computed from ids alone; f1 and context_recall are handled apart
# because one is aggregate-level and the other needs texts.
_RANKING_METRICS: dict[str, RankingMetric] = {
    "hit": hit_at_k,
    "recall": recall_at_k,
    "precision": precision_at_k,
    "map": map_at_k,
    "mrr": mrr_at_k,
    "ndcg": ndcg_at_k,
    "context_precision": context_precision_at_k,
}


def _format_ids(ids: set[Hashable]) -> str:
    """Render up to ``_MAX_IDS_IN_MESSAGE`` ids, noting how many were left out."""
    try:
        ordered = sorted(ids)  # type: ignore[type-var]
    except TypeError:
        # Mixed id types (e.g. int and str) cannot be compared; repr order is
        # still deterministic, which keeps error messages reproducible.
        ordered = sorted(ids, key=repr)
    shown = ", ".join(repr(i) for i in ordered[:_MAX_IDS_IN_MESSAGE])
    extra = len(ordered) - _MAX_IDS_IN_MESSAGE
    return f"[{shown}]" + (f" and {extra} more" if extra > 0 else "")


def _check_query_ids(
    rankings: Mapping[Hashable, Sequence[Hashable]],
    relevant: Mapping[Hashable, Collection[Hashable]],
) -> None:
    """Raise ``ValueError`` unless both mappings cover the same, non-empty query set."""
    if not rankings:
        raise ValueError("rankings is empty: there are no queries to evaluate")
    missing_in_relevant = set(rankings) - set(relevant)
    missing_in_rankings = set(relevant) - set(rankings)
    if missing_in_relevant or missing_in_rankings:
        raise ValueError(
            "rankings and relevant must have the same query ids; "
            f"{len(missing_in_relevant)} query id(s) missing from relevant: "
            f"{_format_ids(missing_in_relevant)}; "
            f"{len(missing_in_rankings)} query id(s) missing from rankings: "
            f"{_format_ids(missing_in_rankings)}"
        )


def _check_metric_names(metrics: Sequence[str]) -> None:
    """Raise ``ValueError`` on metric names this module does not know."""
    unknown = [name for name in metrics if name not in METRIC_NAMES]
    if unknown:
        raise ValueError(
            f"unknown metric name(s) {unknown}; expected names from {METRIC_NAMES}"
        )


def _context_texts(
    qid: Hashable,
    ranked_ids: Sequence[Hashable],
    doc_texts: Mapping[int, str],
    depth: int,
) -> list[str]:
    """Texts of the de-duplicated top-``depth`` documents of one query."""
    top_ids = _dedupe(ranked_ids)[:depth]
    # Only the documents that can reach a top-k cut need a text, so a corpus
    # that lacks texts for deep candidates is still usable.
    missing = {doc_id for doc_id in top_ids if doc_id not in doc_texts}
    if missing:
        raise ValueError(
            f"doc_texts has no text for document id(s) {_format_ids(missing)} "
            f"ranked for query {qid!r}"
        )
    return [doc_texts[doc_id] for doc_id in top_ids]


def _add_context_recall(
    results: dict[Hashable, dict[str, float]],
    rankings: Mapping[Hashable, Sequence[Hashable]],
    ks: Sequence[int],
    doc_texts: Mapping[int, str],
    answers: Mapping[Hashable, str],
) -> None:
    """Add ``context_recall@k`` for every query and k to ``results`` in place."""
    missing_answers = set(rankings) - set(answers)
    if missing_answers:
        raise ValueError(f"answers is missing query id(s) {_format_ids(missing_answers)}")
    if not ks:
        return
    for qid, ranked in rankings.items():
        texts = _context_texts(qid, ranked, doc_texts, max(ks))
        for k in ks:
            results[qid][f"context_recall@{k}"] = context_recall_at_k(texts, answers[qid], k)


def per_query_metrics(
    rankings: Mapping[Hashable, Sequence[int]],
    relevant: Mapping[Hashable, Collection[int]],
    ks: Sequence[int] = (3, 5, 7),
    doc_texts: Mapping[int, str] | None = None,
    answers: Mapping[Hashable, str] | None = None,
    metrics: Sequence[str] = METRIC_NAMES,
) -> dict[Hashable, dict[str, float]]:
    """Compute every requested metric at every k for each query.

    Keys of the inner dicts look like ``"hit@3"`` or ``"context_precision@7"``.
    ``"f1"`` is skipped because it is defined only at the aggregate level (see
    :func:`evaluate_rankings`). ``"context_recall"`` is included only when both
    ``doc_texts`` and ``answers`` are given; otherwise it is silently left out.

    Args:
        rankings: Query id -> ranked document ids, best first.
        relevant: Query id -> relevant document ids (non-empty).
        ks: Cutoffs, each ``>= 1``.
        doc_texts: Document id -> text, needed for context_recall.
        answers: Query id -> ground-truth answer, needed for context_recall.
        metrics: Names from ``METRIC_NAMES``.

    Returns:
        Query id -> {"<metric>@<k>": value}.

    Raises:
        ValueError: On mismatched or empty query ids, an empty relevant set,
            ``k < 1``, an unknown metric name, or a missing answer or document
            text needed for context_recall.
    """
    _check_query_ids(rankings, relevant)
    _check_metric_names(metrics)
    for k in ks:
        _check_k(k)
    for qid, rel in relevant.items():
        if len(rel) == 0:
            raise ValueError(f"query {qid!r} has no relevant document ids")

    names = list(dict.fromkeys(m for m in metrics if m in _RANKING_METRICS))
    results: dict[Hashable, dict[str, float]] = {
        qid: {
            f"{name}@{k}": _RANKING_METRICS[name](ranked, relevant[qid], k)
            for name in names
            for k in ks
        }
        for qid, ranked in rankings.items()
    }
    if "context_recall" in metrics and doc_texts is not None and answers is not None:
        _add_context_recall(results, rankings, ks, doc_texts, answers)
    return results


def _mean_over_queries(rows: Mapping[Hashable, Mapping[str, float]]) -> dict[str, float]:
    """Average each metric key over all queries (every query has every key)."""
    keys = next(iter(rows.values())).keys()
    return {key: math.fsum(row[key] for row in rows.values()) / len(rows) for key in keys}


def evaluate_rankings(
    rankings: Mapping[Hashable, Sequence[int]],
    relevant: Mapping[Hashable, Collection[int]],
    ks: Sequence[int] = (3, 5, 7),
    doc_texts: Mapping[int, str] | None = None,
    answers: Mapping[Hashable, str] | None = None,
    metrics: Sequence[str] = METRIC_NAMES,
) -> dict[str, float]:
    """Average the requested metrics over all queries, at every k.

    Every query counts, including those with no relevant document retrieved
    (they score 0), so the averages are not inflated by skipping hard queries.
    ``f1@k`` is :func:`f1_score` of the *averaged* precision@k and recall@k.
    ``context_recall@k`` is present only when ``doc_texts`` and ``answers``
    are both given.

    Args:
        rankings: Query id -> ranked document ids, best first.
        relevant: Query id -> relevant document ids (non-empty).
        ks: Cutoffs, each ``>= 1``.
        doc_texts: Document id -> text, needed for context_recall.
        answers: Query id -> ground-truth answer, needed for context_recall.
        metrics: Names from ``METRIC_NAMES``.

    Returns:
        {"<metric>@<k>": mean value}, e.g. ``{"hit@3": 0.8, "f1@3": 0.41}``.

    Raises:
        ValueError: As :func:`per_query_metrics`.
    """
    _check_metric_names(metrics)
    # f1 is derived from averaged precision and recall, so those two must be
    # computed even when the caller did not ask to see them.
    needed = [m for m in metrics if m != "f1"]
    if "f1" in metrics:
        needed += ["precision", "recall"]
    rows = per_query_metrics(rankings, relevant, ks, doc_texts, answers, needed)
    means = _mean_over_queries(rows)

    results: dict[str, float] = {}
    for name in dict.fromkeys(metrics):
        for k in ks:
            key = f"{name}@{k}"
            if name == "f1":
                results[key] = f1_score(means[f"precision@{k}"], means[f"recall@{k}"])
            elif key in means:  # context_recall is absent without texts/answers
                results[key] = means[key]
    return results
