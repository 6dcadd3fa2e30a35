"""Paired statistics of two rankers on the same queries (reranker_kit/metrics/paired.py)."""

import dataclasses
import json
import math
import re
import time
import warnings

import numpy as np
import pytest
from scipy import stats

from reranker_kit.metrics.paired import (
    RESAMPLES,
    SEED,
    compare_metric_tables,
    compare_paired,
    format_comparison,
    one_standard_error_choice,
    per_query_columns,
    significance_marker,
)

# Hand-made per-query mrr@5 of a fine-tuned (a) and a base (b) reranker on 12 queries.
TUNED = [1.0, 0.5, 1.0, 0.333, 1.0, 0.0, 1.0, 0.25, 1.0, 0.5, 0.2, 1.0]
BASE = [0.5, 0.5, 0.333, 0.333, 1.0, 0.0, 0.5, 0.25, 1.0, 0.2, 0.2, 0.5]


def test_bootstrap_and_permutation_figures_equal_scipys_own_with_the_same_seed():
    a, b = np.array(TUNED), np.array(BASE)
    result = compare_paired(TUNED, BASE)
    interval = stats.bootstrap((a - b,), np.mean, n_resamples=RESAMPLES, method="percentile", vectorized=True,
                               rng=np.random.default_rng(SEED)).confidence_interval
    permutation = stats.permutation_test((a, b), lambda x, y, axis: np.mean(x - y, axis=axis),
                                         permutation_type="samples", vectorized=True, n_resamples=RESAMPLES,
                                         alternative="two-sided", rng=np.random.default_rng(SEED))
    assert (result.ci_low, result.ci_high) == (interval.low, interval.high)
    assert result.p_value == permutation.pvalue
    assert result.mean_difference == pytest.approx(np.mean(a - b))
    assert result.standard_error == pytest.approx(np.std(a - b, ddof=1) / math.sqrt(12))
    assert (result.n_queries, result.mean_a, result.mean_b) == (12, pytest.approx(a.mean()), pytest.approx(b.mean()))


def test_one_query_of_thirty_moving_from_0_to_1_is_not_marked_significant():
    base = [1.0] * 20 + [0.0] * 10
    tuned = list(base)
    tuned[25] = 1.0
    result = compare_paired(tuned, base)
    assert result.mean_difference == pytest.approx(1 / 30)
    assert result.ci_low <= 0 <= result.ci_high
    assert result.p_value > 0.5
    assert not result.significant
    assert significance_marker(result) == ""


def test_a_consistent_gain_is_marked_and_formatted_on_one_line():
    rng = np.random.default_rng(3)
    base = rng.random(40)
    result = compare_paired(base + 0.1 + rng.normal(0, 0.02, 40), base)
    assert result.significant and result.ci_low > 0 and result.p_value < 0.001
    line = format_comparison(result)
    assert re.fullmatch(r"\+0\.\d{3} \[\+0\.\d\d, \+0\.\d\d\] p<0\.001 n=40 \*", line), line
    assert significance_marker(result) == "*"
    assert format_comparison(result, marker=False).endswith("n=40")


def test_the_formatter_reads_like_the_issue_example():
    comparison = dataclasses.replace(compare_paired([1.0, 0.0], [0.0, 0.0]), mean_difference=0.0333, ci_low=-0.03,
                                     ci_high=0.1, p_value=0.5, n_queries=30, significant=False)
    assert format_comparison(comparison) == "+0.033 [-0.03, +0.10] p=0.50 n=30"


def test_identical_vectors_give_a_zero_interval_p_one_and_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = compare_paired([0.5, 1.0, 0.0, 0.25], [0.5, 1.0, 0.0, 0.25])
    assert (result.mean_difference, result.ci_low, result.ci_high, result.p_value) == (0.0, 0.0, 0.0, 1.0)
    assert result.standard_error == 0.0 and not result.significant
    assert format_comparison(result) == "+0.000 [+0.00, +0.00] p=1.00 n=4"


def test_the_same_gain_on_every_query_has_a_point_interval_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = compare_paired([1.0] * 10, [0.0] * 10)
    assert (result.ci_low, result.ci_high, result.standard_error) == (1.0, 1.0, 0.0)
    assert result.p_value < 0.01 and result.significant


def test_one_query_is_never_significant_and_stays_json_safe():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = compare_paired([1.0], [0.0])
    assert result.n_queries == 1 and result.mean_difference == 1.0
    assert (result.ci_low, result.ci_high, result.standard_error) == (-math.inf, math.inf, math.inf)
    assert result.p_value == 1.0 and not result.significant
    record = json.loads(json.dumps(result.as_json(), allow_nan=False))
    assert record["ci_low"] is None and record["mean_difference"] == 1.0


def test_empty_and_unequal_inputs_are_refused_with_the_lengths_named():
    with pytest.raises(ValueError, match="empty"):
        compare_paired([], [])
    with pytest.raises(ValueError, match="a has 3 values, b has 2"):
        compare_paired([1, 0, 1], [1, 0])
    with pytest.raises(ValueError, match="finite"):
        compare_paired([1, float("nan")], [1, 0])


def test_the_figures_are_reproducible_and_fast_for_100_queries():
    rng = np.random.default_rng(0)
    a, b = rng.random(100), rng.random(100)
    started = time.perf_counter()
    first = compare_paired(a, b)
    elapsed = time.perf_counter() - started
    assert compare_paired(a, b) == first
    assert elapsed < 1.0  # < 0.5 s on an idle core; slack for the shared machine


def test_metric_tables_compare_the_headline_metrics_both_hold():
    tuned = {"hit@3": [1, 1, 0], "mrr@5": [1, 0.5, 0], "recall@3": [1, 1, 0]}
    base = {"hit@3": [1, 0, 0], "mrr@5": [0.5, 0.5, 0], "recall@3": [1, 0, 0]}
    comparisons = compare_metric_tables(tuned, base)
    assert list(comparisons) == ["hit@3", "mrr@5"]
    assert comparisons["hit@3"].mean_difference == pytest.approx(1 / 3)
    assert list(compare_metric_tables(tuned, base, metrics=["recall@3"])) == ["recall@3"]
    with pytest.raises(ValueError, match="ndcg@3"):
        compare_metric_tables(tuned, base, metrics=["ndcg@3"])


def test_per_query_rows_become_columns_in_one_query_order():
    rows = {"q2": {"hit@3": 0.0, "mrr@3": 0.0}, "q1": {"hit@3": 1.0, "mrr@3": 0.5}}
    assert per_query_columns(rows, ["q1", "q2"]) == {"hit@3": [1.0, 0.0], "mrr@3": [0.5, 0.0]}
    with pytest.raises(ValueError, match="q3"):
        per_query_columns(rows, ["q1", "q3"])


def _table(mrr: list[float], hit: list[float]) -> dict[str, list[float]]:
    return {"mrr@5": mrr, "hit@3": hit}


def test_the_one_standard_error_rule_falls_back_toward_the_baseline_within_noise():
    hit = [1.0] * 10
    base = [0.5] * 5 + [1.0] * 5
    candidates = {0.0: _table(base, hit), 0.5: _table([1.0, 0.5, 0.75] + base[3:], hit),
                  1.0: _table([1.0, 1.0] + base[2:], hit)}
    choice = one_standard_error_choice(candidates, "mrr@5", guarded=("hit@3",))
    assert choice.best == 1.0
    # The baseline loses 0.1 (standard error 0.067): too much. 0.5 loses 0.025 (standard error 0.058): chosen.
    assert choice.chosen == 0.5 and choice.guarded == (0.0, 0.5, 1.0)


def test_the_rule_never_picks_a_candidate_that_loses_a_guarded_metric():
    base = _table([0.5] * 10, [1.0] * 10)
    better_mrr_worse_hit = _table([1.0] * 10, [1.0] * 9 + [0.0])
    choice = one_standard_error_choice({0.0: base, 1.0: better_mrr_worse_hit}, "mrr@5", guarded=("hit@3",))
    assert (choice.chosen, choice.best, choice.guarded) == (0.0, 0.0, (0.0,))
    with pytest.raises(ValueError, match="baseline"):
        one_standard_error_choice({1.0: base}, "mrr@5", guarded=("hit@3",))


def test_with_one_query_the_rule_keeps_the_baseline():
    candidates = {0.0: _table([0.0], [1.0]), 1.0: _table([1.0], [1.0])}
    assert one_standard_error_choice(candidates, "mrr@5", guarded=("hit@3",)).chosen == 0.0
