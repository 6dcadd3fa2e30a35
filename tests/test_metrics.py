"""Tests for reranker_kit.metrics: hand-computed cases plus hypothesis properties."""

from __future__ import annotations

import math
import random
import unicodedata
from collections.abc import Callable, Collection, Hashable, Sequence

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from reranker_kit.metrics import (
    METRIC_NAMES,
    SUPPORT_THRESHOLD,
    answer_can_be_judged,
    context_precision_at_k,
    context_recall_at_k,
    evaluate_rankings,
    f1_score,
    hit_at_k,
    map_at_k,
    mrr_at_k,
    ndcg_at_k,
    per_query_metrics,
    precision_at_k,
    recall_at_k,
)

RankingMetric = Callable[[Sequence[Hashable], Collection[Hashable], int], float]

RANKING_METRICS: dict[str, RankingMetric] = {
    "hit": hit_at_k,
    "recall": recall_at_k,
    "precision": precision_at_k,
    "map": map_at_k,
    "mrr": mrr_at_k,
    "ndcg": ndcg_at_k,
    "context_precision": context_precision_at_k,
}

ALL_ZERO = {name: 0.0 for name in RANKING_METRICS}

# --------------------------------------------------------------------------
# Hand-computed ranking metrics
# --------------------------------------------------------------------------
# Each case: (ranked_ids, relevant_ids, k, expected value per metric).
# Notation: rel_i = 1 if the document at rank i is relevant; P@i = precision@i.
HAND_CASES: dict[str, tuple[list[int], set[int], int, dict[str, float]]] = {
    # Top 3 = [7, 1, 2], relevant at rank 1 only.
    # precision = 1/3; AP = P@1 / 1 = 1; RR = 1/1; DCG = 1/log2(2) = 1 = IDCG.
    "one_relevant_rank1": (
        [7, 1, 2], {7}, 3,
        {"hit": 1.0, "recall": 1.0, "precision": 1 / 3, "map": 1.0,
         "mrr": 1.0, "ndcg": 1.0, "context_precision": 1.0},
    ),
    # Top 3 = [1, 2, 7], relevant at rank 3 only.
    # precision = 1/3; AP = P@3 / 1 = (1/3) / 1; RR = 1/3;
    # DCG = 1/log2(4) = 0.5, IDCG (min(3, 1) = 1 doc) = 1 -> nDCG = 0.5.
    "one_relevant_rank3": (
        [1, 2, 7], {7}, 3,
        {"hit": 1.0, "recall": 1.0, "precision": 1 / 3, "map": 1 / 3,
         "mrr": 1 / 3, "ndcg": 0.5, "context_precision": 1 / 3},
    ),
    # Same ranking cut at k = 2: the relevant document at rank 3 falls out.
    "one_relevant_rank3_cut_at_2": ([1, 2, 7], {7}, 2, ALL_ZERO),
    # The relevant document is never retrieved.
    "one_relevant_not_retrieved": ([1, 2, 3], {7}, 3, ALL_ZERO),
    # Relevant {2, 5, 9}, ranked [5, 1, 2, 7, 9] -> rel = [1, 0, 1, 0, 1].
    # k = 1: top [5]; recall 1/3; precision 1/1; AP = P@1 / 1 = 1;
    #        DCG = 1, IDCG (min(1, 3) = 1 doc) = 1.
    "several_k1": (
        [5, 1, 2, 7, 9], {2, 5, 9}, 1,
        {"hit": 1.0, "recall": 1 / 3, "precision": 1.0, "map": 1.0,
         "mrr": 1.0, "ndcg": 1.0, "context_precision": 1.0},
    ),
    # k = 3: top [5, 1, 2]; 2 relevant found -> recall 2/3, precision 2/3;
    #        AP = (P@1 + P@3) / 2 = (1 + 2/3) / 2 = 5/6;
    #        DCG = 1/log2(2) + 1/log2(4) = 1.5;
    #        IDCG = 1 + 1/log2(3) + 1/log2(4) = 2.1309297...;
    #        nDCG = 1.5 / 2.1309297 = 0.7039181.
    "several_k3": (
        [5, 1, 2, 7, 9], {2, 5, 9}, 3,
        {"hit": 1.0, "recall": 2 / 3, "precision": 2 / 3, "map": 5 / 6,
         "mrr": 1.0, "ndcg": 0.7039181, "context_precision": 5 / 6},
    ),
    # k = 5: all 3 relevant found -> recall 1, precision 3/5;
    #        AP = (1 + 2/3 + 3/5) / 3 = (15 + 10 + 9) / 45 = 34/45;
    #        DCG = 1.5 + 1/log2(6) = 1.8868528; IDCG = 2.1309297;
    #        nDCG = 0.8854599.
    "several_k5": (
        [5, 1, 2, 7, 9], {2, 5, 9}, 5,
        {"hit": 1.0, "recall": 1.0, "precision": 3 / 5, "map": 34 / 45,
         "mrr": 1.0, "ndcg": 0.8854599, "context_precision": 34 / 45},
    ),
    # k = 10 > 5 ranked: same as k = 5 except precision divides by k:
    #        precision = 3/10.
    "several_k_beyond_list": (
        [5, 1, 2, 7, 9], {2, 5, 9}, 10,
        {"hit": 1.0, "recall": 1.0, "precision": 3 / 10, "map": 34 / 45,
         "mrr": 1.0, "ndcg": 0.8854599, "context_precision": 34 / 45},
    ),
    # Relevant {2, 5, 9}, none of the top 3 [1, 3, 4] is relevant.
    "several_none_retrieved": ([1, 3, 4], {2, 5, 9}, 3, ALL_ZERO),
    # k = 5 but only 2 ranked: precision = 1/5 (empty slots are misses);
    # IDCG uses min(5, 1) = 1 document, so nDCG = 1.
    "k_beyond_list": (
        [7, 1], {7}, 5,
        {"hit": 1.0, "recall": 1.0, "precision": 1 / 5, "map": 1.0,
         "mrr": 1.0, "ndcg": 1.0, "context_precision": 1.0},
    ),
    # Nothing ranked at all.
    "empty_ranking": ([], {7}, 3, ALL_ZERO),
    # [1, 1, 1, 7] de-duplicates to [1, 7]: the relevant doc is at rank 2.
    # precision = 1/2; AP = P@2 / 1 = 1/2; RR = 1/2;
    # DCG = 1/log2(3) = 0.6309298, IDCG = 1 -> nDCG = 0.6309298.
    "duplicate_irrelevant_ids": (
        [1, 1, 1, 7], {7}, 2,
        {"hit": 1.0, "recall": 1.0, "precision": 1 / 2, "map": 1 / 2,
         "mrr": 1 / 2, "ndcg": 0.6309298, "context_precision": 1 / 2},
    ),
    # [7, 7, 7] de-duplicates to [7]: one relevant hit, not three.
    # precision = 1/3 (not 3/3); recall = 1/1; AP = 1; nDCG = 1.
    "duplicate_relevant_id": (
        [7, 7, 7], {7}, 3,
        {"hit": 1.0, "recall": 1.0, "precision": 1 / 3, "map": 1.0,
         "mrr": 1.0, "ndcg": 1.0, "context_precision": 1.0},
    ),
    # [5, 5, 2] de-duplicates to [5, 2]; k = 2 -> both relevant.
    # recall = 2/3; precision = 2/2; AP = (1 + 1) / 2 = 1;
    # DCG = 1 + 1/log2(3) = IDCG (min(2, 3) = 2 docs) -> nDCG = 1.
    "duplicate_among_several": (
        [5, 5, 2], {2, 5, 9}, 2,
        {"hit": 1.0, "recall": 2 / 3, "precision": 1.0, "map": 1.0,
         "mrr": 1.0, "ndcg": 1.0, "context_precision": 1.0},
    ),
}


@pytest.mark.parametrize(
    ("ranked", "relevant", "k", "metric", "expected"),
    [
        pytest.param(ranked, relevant, k, name, expected[name], id=f"{case}-{name}")
        for case, (ranked, relevant, k, expected) in HAND_CASES.items()
        for name in RANKING_METRICS
    ],
)
def test_ranking_metric_hand_computed(
    ranked: list[int], relevant: set[int], k: int, metric: str, expected: float
) -> None:
    assert RANKING_METRICS[metric](ranked, relevant, k) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("metric", RANKING_METRICS.values(), ids=RANKING_METRICS.keys())
def test_ranking_metric_accepts_any_relevant_collection(metric: RankingMetric) -> None:
    # Callers may pass a list (even with repeats); it is treated as a set.
    assert metric([5, 1, 2], [2, 5, 9, 9], 3) == metric([5, 1, 2], {2, 5, 9}, 3)


@pytest.mark.parametrize("k", [0, -1])
@pytest.mark.parametrize("metric", RANKING_METRICS.values(), ids=RANKING_METRICS.keys())
def test_ranking_metric_rejects_non_positive_k(metric: RankingMetric, k: int) -> None:
    with pytest.raises(ValueError, match="k must be a positive integer"):
        metric([1, 2, 3], {1}, k)


@pytest.mark.parametrize("metric", RANKING_METRICS.values(), ids=RANKING_METRICS.keys())
def test_ranking_metric_rejects_empty_relevant(metric: RankingMetric) -> None:
    with pytest.raises(ValueError, match="relevant_ids must contain at least one"):
        metric([1, 2, 3], set(), 3)


@pytest.mark.parametrize("metric", RANKING_METRICS.values(), ids=RANKING_METRICS.keys())
def test_ranking_metric_rejects_non_integer_k(metric: RankingMetric) -> None:
    with pytest.raises(TypeError, match="k must be an integer"):
        metric([1, 2, 3], {1}, 2.0)  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# f1_score
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("precision", "recall", "expected"),
    [
        (1.0, 1.0, 1.0),
        (0.0, 0.0, 0.0),  # defined as 0, not a division by zero
        (0.0, 1.0, 0.0),
        (0.5, 1.0, 2 / 3),  # 2 * 0.5 * 1 / 1.5
        (0.75, 1.0, 6 / 7),  # 2 * 0.75 / 1.75
    ],
)
def test_f1_score_hand_computed(precision: float, recall: float, expected: float) -> None:
    assert f1_score(precision, recall) == pytest.approx(expected)


@pytest.mark.parametrize(("precision", "recall"), [(-0.1, 0.5), (0.5, 1.1), (math.nan, 0.5)])
def test_f1_score_rejects_out_of_range(precision: float, recall: float) -> None:
    with pytest.raises(ValueError, match="must be in \\[0, 1\\]"):
        f1_score(precision, recall)


# --------------------------------------------------------------------------
# context_recall (lexical judge)
# --------------------------------------------------------------------------

# Two sentences. Distinct tokens:
#   S1 "câu lạc bộ họp ở phòng a" -> {câu, lạc, bộ, họp, ở, phòng, a} (7)
#   S2 "trưởng ban là chị lan"   -> {trưởng, ban, là, chị, lan}      (5)
VI_ANSWER = "Câu lạc bộ họp ở phòng A. Trưởng ban là chị Lan."
VI_CONTEXTS = [
    # Covers {bộ, họp, ở, phòng, a} of S1 = 5/7 >= 0.7 -> S1 supported. Two of
    # the five shared tokens ("ở", "a") are one character long: dropping
    # one-character tokens would leave 3/5 = 0.6 and S1 would NOT be supported.
    "Ban cán bộ họp ở phòng A vào thứ bảy",
    # Covers all 5 tokens of S2.
    "Chị Lan là trưởng ban truyền thông",
]


@pytest.mark.parametrize(
    ("contexts", "answer", "k", "expected"),
    [
        # k = 1: only the first context -> S1 supported, S2 not -> 1/2.
        pytest.param(VI_CONTEXTS, VI_ANSWER, 1, 0.5, id="vietnamese_k1"),
        # k = 2: both sentences supported -> 2/2.
        pytest.param(VI_CONTEXTS, VI_ANSWER, 2, 1.0, id="vietnamese_k2"),
        # k beyond the list behaves like k = 2.
        pytest.param(VI_CONTEXTS, VI_ANSWER, 10, 1.0, id="vietnamese_k_beyond"),
        # Reversed order, k = 1: only S2's context -> 1/2.
        pytest.param(VI_CONTEXTS[::-1], VI_ANSWER, 1, 0.5, id="vietnamese_reversed_k1"),
        # "Ý kiến ở đây" -> {ý, kiến, ở, đây}; context has {ý, ở, đây}: 3/4 >= 0.7.
        pytest.param(["ý ở đây"], "Ý kiến ở đây", 1, 1.0, id="one_char_syllables_above_threshold"),
        # Context has {ý, ở}: 2/4 < 0.7 -> unsupported.
        pytest.param(["ý ở"], "Ý kiến ở đây", 1, 0.0, id="one_char_syllables_below"),
        # Exactly the threshold (7 of 10 tokens) counts as supported.
        pytest.param(["a b c d e f g"], "a b c d e f g h i j", 1, 1.0, id="exactly_at_threshold"),
        # Context has only {ý}: 1/4 < 0.7 -> unsupported.
        pytest.param(["ý"], "Ý kiến ở đây", 1, 0.0, id="one_char_syllable_alone"),
        # No contexts: nothing is supported.
        pytest.param([], VI_ANSWER, 3, 0.0, id="no_contexts"),
        # Six sentences split on . ! ? ; and a newline; the context supports
        # "a", "c" and "e" -> 3/6.
        pytest.param(["a c e"], "a. b! c? d; e\nf", 1, 0.5, id="sentence_separators"),
        # Token-less pieces ("-") are not sentences: "x. - . y" has 2 -> 1/2.
        pytest.param(["x"], "x. - . y", 1, 0.5, id="tokenless_piece_ignored"),
        # Identical texts count once, so k = 2 reaches the second distinct one.
        pytest.param(["a b", "a b", "c d"], "c d", 2, 1.0, id="duplicate_contexts"),
        # Contexts are joined with a separator: "abc" + "def" must not form
        # the token "abcdef".
        pytest.param(["abc", "def"], "abcdef", 2, 0.0, id="no_token_fusion"),
    ],
)
def test_context_recall_hand_computed(
    contexts: list[str], answer: str, k: int, expected: float
) -> None:
    assert context_recall_at_k(contexts, answer, k) == pytest.approx(expected)


def test_context_recall_matches_decomposed_vietnamese() -> None:
    # Text pasted from some editors arrives in NFD (base letter + combining
    # marks); it must score like the precomposed NFC form.
    nfd_answer = unicodedata.normalize("NFD", VI_ANSWER)
    assert nfd_answer != VI_ANSWER
    assert context_recall_at_k(VI_CONTEXTS, nfd_answer, 2) == pytest.approx(1.0)


def test_support_threshold() -> None:
    assert SUPPORT_THRESHOLD == 0.7


@pytest.mark.parametrize("answer", ["", " ...!?;\n "])
def test_context_recall_refuses_an_answer_without_words(answer: str) -> None:
    # Nothing to judge: scoring it 0 would pull every ranker's mean down alike (issue #32); callers leave it out.
    assert not answer_can_be_judged(answer)
    with pytest.raises(ValueError, match="no word to judge"):
        context_recall_at_k(VI_CONTEXTS, answer, 2)


@pytest.mark.parametrize("k", [0, -3])
def test_context_recall_rejects_non_positive_k(k: int) -> None:
    with pytest.raises(ValueError, match="k must be a positive integer"):
        context_recall_at_k(VI_CONTEXTS, VI_ANSWER, k)


# --------------------------------------------------------------------------
# evaluate_rankings / per_query_metrics
# --------------------------------------------------------------------------


def test_evaluate_averages_over_queries_counting_misses_as_zero() -> None:
    rankings = {"q1": [1, 2, 3], "q2": [4, 5, 6]}
    relevant = {"q1": {1}, "q2": {9}}  # q2 retrieves nothing relevant
    result = evaluate_rankings(rankings, relevant, ks=(3,))
    # q1: hit 1, recall 1, precision 1/3, mrr 1; q2: all 0.
    assert result["hit@3"] == pytest.approx(0.5)
    assert result["recall@3"] == pytest.approx(0.5)
    assert result["precision@3"] == pytest.approx(1 / 6)
    assert result["mrr@3"] == pytest.approx(0.5)
    assert result["ndcg@3"] == pytest.approx(0.5)
    assert result["map@3"] == pytest.approx(0.5)
    assert result["context_precision@3"] == pytest.approx(0.5)


def test_evaluate_f1_uses_averaged_precision_and_recall() -> None:
    rankings = {"q1": [1, 2], "q2": [9, 8]}
    relevant = {"q1": {1, 2}, "q2": {9}}
    # k = 2.  q1: P = 2/2 = 1, R = 2/2 = 1, F1 = 1.
    #         q2: P = 1/2,     R = 1/1 = 1, F1 = 2 * 0.5 / 1.5 = 2/3.
    # Mean of per-query F1 = (1 + 2/3) / 2 = 5/6 = 0.8333...
    # Averaged P = 3/4, averaged R = 1 -> F1 = 2 * 0.75 / 1.75 = 6/7 = 0.8571...
    result = evaluate_rankings(rankings, relevant, ks=(2,))
    assert result["precision@2"] == pytest.approx(3 / 4)
    assert result["recall@2"] == pytest.approx(1.0)
    assert result["f1@2"] == pytest.approx(6 / 7)
    assert result["f1@2"] != pytest.approx(5 / 6)


def test_evaluate_default_keys_without_texts() -> None:
    result = evaluate_rankings({"q": [1, 2]}, {"q": {2}})
    expected = {
        f"{name}@{k}" for name in METRIC_NAMES if name != "context_recall" for k in (3, 5, 7)
    }
    assert set(result) == expected


@pytest.mark.parametrize(
    ("doc_texts", "answers"),
    [
        pytest.param(None, None, id="neither"),
        pytest.param({1: "a"}, None, id="texts_only"),
        pytest.param(None, {"q": "a"}, id="answers_only"),
    ],
)
def test_evaluate_omits_context_recall_without_texts_and_answers(
    doc_texts: dict[int, str] | None, answers: dict[str, str] | None
) -> None:
    result = evaluate_rankings(
        {"q": [1]}, {"q": {1}}, ks=(1,), doc_texts=doc_texts, answers=answers,
        metrics=("hit", "context_recall"),
    )
    assert result == {"hit@1": 1.0}


def test_evaluate_context_recall_vietnamese_end_to_end() -> None:
    doc_texts = {10: VI_CONTEXTS[0], 20: VI_CONTEXTS[1], 30: "Lịch sinh hoạt tháng sau"}
    # Doc 10 is duplicated; de-duplicated ranking is [10, 30, 20].
    rankings = {"q1": [10, 10, 30, 20], "q2": [30]}
    relevant = {"q1": {10, 20}, "q2": {20}}
    answers = {"q1": VI_ANSWER, "q2": "Chị Lan là trưởng ban."}
    result = evaluate_rankings(
        rankings, relevant, ks=(1, 3), doc_texts=doc_texts, answers=answers,
        metrics=("context_recall",),
    )
    # q1: k=1 -> [10] supports S1 only -> 1/2; k=3 -> [10, 30, 20] -> 2/2.
    # q2: [30] shares no token with "chị lan là trưởng ban" -> 0 at both k.
    assert result == {
        "context_recall@1": pytest.approx((0.5 + 0.0) / 2),
        "context_recall@3": pytest.approx((1.0 + 0.0) / 2),
    }


def test_evaluate_only_f1_requested() -> None:
    result = evaluate_rankings({"q": [1, 2]}, {"q": {1}}, ks=(2,), metrics=("f1",))
    # P = 1/2, R = 1 -> F1 = 2/3; precision and recall are not reported.
    assert result == {"f1@2": pytest.approx(2 / 3)}


def test_evaluate_reports_mismatched_query_ids() -> None:
    rankings = {q: [1] for q in "abcdefg"}
    relevant = {"z": {1}}
    with pytest.raises(ValueError) as excinfo:
        evaluate_rankings(rankings, relevant)
    message = str(excinfo.value)
    # At most 5 ids per side are named; the rest are counted.
    for qid in "abcde":
        assert repr(qid) in message
    assert "'f'" not in message and "'g'" not in message
    assert "2 more" in message
    assert "'z'" in message


def test_evaluate_rejects_empty_rankings() -> None:
    with pytest.raises(ValueError, match="rankings is empty"):
        evaluate_rankings({}, {})


def test_evaluate_rejects_query_without_relevant_docs() -> None:
    with pytest.raises(ValueError, match="'q2' has no relevant"):
        evaluate_rankings({"q1": [1], "q2": [2]}, {"q1": {1}, "q2": set()})


def test_evaluate_rejects_unknown_metric() -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        evaluate_rankings({"q": [1]}, {"q": {1}}, metrics=("hit", "bleu"))


def test_evaluate_rejects_non_positive_k() -> None:
    with pytest.raises(ValueError, match="k must be a positive integer"):
        evaluate_rankings({"q": [1]}, {"q": {1}}, ks=(3, 0))


def test_evaluate_rejects_missing_doc_text_in_top_k() -> None:
    with pytest.raises(ValueError, match="no text for document id"):
        evaluate_rankings(
            {"q": [1, 2]}, {"q": {1}}, ks=(2,), doc_texts={1: "a"}, answers={"q": "a"}
        )


def test_evaluate_ignores_missing_doc_text_below_cutoff() -> None:
    # Doc 2 is ranked below every k, so its text is never needed.
    result = evaluate_rankings(
        {"q": [1, 2]}, {"q": {1}}, ks=(1,), doc_texts={1: "a"}, answers={"q": "a"},
        metrics=("context_recall",),
    )
    assert result == {"context_recall@1": 1.0}


def test_evaluate_rejects_missing_answer() -> None:
    with pytest.raises(ValueError, match="answers is missing"):
        evaluate_rankings(
            {"q1": [1], "q2": [1]}, {"q1": {1}, "q2": {1}},
            doc_texts={1: "a"}, answers={"q1": "a"},
        )


def test_per_query_metrics_has_no_f1_and_matches_functions() -> None:
    rows = per_query_metrics({"q": [5, 1, 2, 7, 9]}, {"q": {2, 5, 9}}, ks=(3,))
    assert not any(key.startswith("f1@") for key in rows["q"])
    for name, fn in RANKING_METRICS.items():
        assert rows["q"][f"{name}@3"] == fn([5, 1, 2, 7, 9], {2, 5, 9}, 3)


# --------------------------------------------------------------------------
# Property-based tests
# --------------------------------------------------------------------------

PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)

doc_ids = st.integers(min_value=0, max_value=15)
rankings_st = st.lists(doc_ids, max_size=20)  # duplicates allowed on purpose
relevant_st = st.sets(doc_ids, min_size=1, max_size=8)
k_st = st.integers(min_value=1, max_value=25)

# Vietnamese letters (several one-character syllables) plus every separator.
VI_ALPHABET = "aăâbcdđeêghiklmnoôơpqrstuưvxyàảãáạởýỳữ ĐÝ.!?;\n"
texts_st = st.text(alphabet=VI_ALPHABET, max_size=40)


def first_occurrences(ranked: Sequence[int]) -> list[int]:
    """Independent oracle for de-duplication (keep the first occurrence)."""
    seen: set[int] = set()
    kept = []
    for doc_id in ranked:
        if doc_id not in seen:
            seen.add(doc_id)
            kept.append(doc_id)
    return kept


@PROPERTY_SETTINGS
@given(ranked=rankings_st, relevant=relevant_st, k=k_st)
def test_every_ranking_metric_is_in_unit_interval(
    ranked: list[int], relevant: set[int], k: int
) -> None:
    for fn in RANKING_METRICS.values():
        assert 0.0 <= fn(ranked, relevant, k) <= 1.0


@PROPERTY_SETTINGS
@given(ranked=rankings_st, relevant=relevant_st, k=k_st)
def test_hit_is_at_least_mrr(ranked: list[int], relevant: set[int], k: int) -> None:
    assert hit_at_k(ranked, relevant, k) >= mrr_at_k(ranked, relevant, k)


@PROPERTY_SETTINGS
@given(ranked=rankings_st, relevant=relevant_st, k1=k_st, k2=k_st)
def test_recall_and_hit_are_monotone_in_k(
    ranked: list[int], relevant: set[int], k1: int, k2: int
) -> None:
    small, large = sorted((k1, k2))
    assert recall_at_k(ranked, relevant, small) <= recall_at_k(ranked, relevant, large)
    assert hit_at_k(ranked, relevant, small) <= hit_at_k(ranked, relevant, large)


@PROPERTY_SETTINGS
@given(ranked=rankings_st, relevant=relevant_st, k=k_st)
def test_precision_times_k_counts_relevant_in_top_k(
    ranked: list[int], relevant: set[int], k: int
) -> None:
    count = sum(doc_id in relevant for doc_id in first_occurrences(ranked)[:k])
    assert precision_at_k(ranked, relevant, k) * k == pytest.approx(count)


@PROPERTY_SETTINGS
@given(
    relevant=relevant_st,
    others=st.lists(st.integers(min_value=100, max_value=120), max_size=10),
    order=st.randoms(use_true_random=False),
    k=k_st,
)
def test_ndcg_is_one_when_relevant_fill_top_ranks(
    relevant: set[int], others: list[int], order: random.Random, k: int
) -> None:
    top = sorted(relevant)
    order.shuffle(top)  # any order among the relevant documents is ideal
    assert ndcg_at_k(top + others, relevant, k) == pytest.approx(1.0)


@PROPERTY_SETTINGS
@given(ranked=rankings_st, relevant=relevant_st, k=k_st)
def test_duplicates_do_not_change_any_metric(
    ranked: list[int], relevant: set[int], k: int
) -> None:
    deduped = first_occurrences(ranked)
    for fn in RANKING_METRICS.values():
        assert fn(ranked, relevant, k) == fn(deduped, relevant, k)


@PROPERTY_SETTINGS
@given(ranked=rankings_st, relevant=relevant_st, k=k_st)
def test_map_equals_context_precision_under_club_definitions(
    ranked: list[int], relevant: set[int], k: int
) -> None:
    assert map_at_k(ranked, relevant, k) == context_precision_at_k(ranked, relevant, k)


@PROPERTY_SETTINGS
@given(contexts=st.lists(texts_st, max_size=5), answer=texts_st, k1=k_st, k2=k_st)
def test_context_recall_is_bounded_and_monotone_in_k(
    contexts: list[str], answer: str, k1: int, k2: int
) -> None:
    assume(answer_can_be_judged(answer))
    small, large = sorted((k1, k2))
    low = context_recall_at_k(contexts, answer, small)
    high = context_recall_at_k(contexts, answer, large)
    assert 0.0 <= low <= high <= 1.0


@PROPERTY_SETTINGS
@given(
    data=st.dictionaries(
        st.integers(min_value=0, max_value=50),
        st.tuples(rankings_st, relevant_st),
        min_size=1,
        max_size=6,
    ),
    ks=st.lists(k_st, min_size=1, max_size=3),
)
def test_evaluate_is_mean_of_per_query_and_f1_is_harmonic(
    data: dict[int, tuple[list[int], set[int]]], ks: list[int]
) -> None:
    rankings = {qid: ranked for qid, (ranked, _) in data.items()}
    relevant = {qid: rel for qid, (_, rel) in data.items()}
    result = evaluate_rankings(rankings, relevant, ks=ks)
    rows = per_query_metrics(rankings, relevant, ks=ks)
    for key, value in result.items():
        assert 0.0 <= value <= 1.0
        if not key.startswith("f1@"):
            mean = sum(row[key] for row in rows.values()) / len(rows)
            assert value == pytest.approx(mean)
    for k in ks:
        p, r = result[f"precision@{k}"], result[f"recall@{k}"]
        # A harmonic mean lies between its two inputs.
        assert min(p, r) - 1e-12 <= result[f"f1@{k}"] <= max(p, r) + 1e-12
