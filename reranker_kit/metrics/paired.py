"""Paired statistics for two rankers scored on the same queries: is the difference real, and how large?

Each query gives one value per ranker (its hit@3, mrr@5, ...), so the two vectors are paired by query
and only the per-query differences `d = a - b` carry the evidence. For them this module reports:

- the mean difference and its standard error, `stdev(d) / sqrt(n)`;
- a 95% paired bootstrap interval of the mean difference (`scipy.stats.bootstrap` on `d`, percentile
  method). Percentile, not BCa: ranking metrics on tiny query sets give differences that are mostly
  exactly 0 and take few values, and there BCa's jackknife acceleration is unstable (one query of 30
  moving 0 -> 1 on hit@3 gets a BCa upper bound of 0.167, five queries' worth, where the resamples' own
  97.5th percentile is 0.100);
- a two-sided paired randomization test (`scipy.stats.permutation_test(permutation_type="samples")`:
  each query's two values swap places, exactly when 2^n is within the resample budget);
- `significant`: p < 0.05 *and* the interval excludes 0. The two use different resamplings and can
  disagree near the edge; asking both keeps a borderline result unmarked.

Everything is seeded (`SEED`), so a report reads the same figures every time. No correction for testing
several metrics at once is applied: with 9 headline metrics, one marked at p just under 0.05 is weak.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from reranker_kit.metrics.conventions import CUTOFFS, DEV_RANKING_METRICS

SEED = 0
# 9,999 resamples put the Monte Carlo error of p near 0.05 at about 0.002, of the interval's bounds well
# under the third decimal printed; both tests together take about 0.2 s for 100 queries.
RESAMPLES = 9999
CONFIDENCE_LEVEL = 0.95
SIGNIFICANCE_LEVEL = 0.05
SIGNIFICANCE_MARKER = "*"
HEADLINE_METRICS: tuple[str, ...] = tuple(f"{name}@{k}" for name in DEV_RANKING_METRICS for k in CUTOFFS)
# What a candidate must keep at least at the baseline's mean (fusion.py guards the same: hit and mrr at every k).
GUARDED_METRICS: tuple[str, ...] = tuple(f"{name}@{k}" for name in ("hit", "mrr") for k in CUTOFFS)


@dataclass(frozen=True)
class PairedComparison:
    """Ranker a against ranker b on the same queries; `mean_difference` is mean(a - b).

    With one query nothing bounds the difference: the interval and the standard error are infinite and
    p is 1. When every query differs by the same amount (identical rankers included) the interval is that
    amount at both ends and the standard error is 0.
    """

    n_queries: int
    mean_a: float
    mean_b: float
    mean_difference: float
    standard_error: float
    ci_low: float
    ci_high: float
    p_value: float
    significant: bool

    def as_json(self) -> dict:
        """The fields for a JSON report; an infinite bound (one query) becomes null."""
        return {name: None if isinstance(value, float) and not math.isfinite(value) else value
                for name, value in asdict(self).items()}


@dataclass(frozen=True)
class OneStandardErrorChoice:
    """The candidate the guarded one-standard-error rule picks, and what it was picked from."""

    chosen: float
    best: float  # The best `metric` under the guard, before moving toward the baseline.
    metric: str
    guarded: tuple[float, ...]  # The candidates that kept every guarded metric at least at the baseline's.
    means: dict[float, dict[str, float]]


def paired_differences(a: Sequence[float], b: Sequence[float]) -> np.ndarray:
    """a - b per query, after checking both hold the same, non-zero number of finite values."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"per-query values must be flat sequences, got shapes {a.shape} and {b.shape}")
    if a.size != b.size:
        raise ValueError(f"paired values need one value per query from each ranker: a has {a.size} values, "
                         f"b has {b.size}; score both rankers on the same queries")
    if a.size == 0:
        raise ValueError("no queries to compare: both per-query vectors are empty")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("per-query values must be finite numbers (a NaN usually means a query without "
                         "relevant documents slipped through)")
    return a - b


def paired_standard_error(differences: Sequence[float]) -> float:
    """stdev(d) / sqrt(n), the standard error of the mean paired difference; infinite for one query."""
    differences = np.asarray(differences, dtype=np.float64)
    if differences.size < 2:
        return math.inf
    return float(np.std(differences, ddof=1) / math.sqrt(differences.size))


def bootstrap_interval(differences: np.ndarray, seed: int = SEED, resamples: int = RESAMPLES,
                       confidence_level: float = CONFIDENCE_LEVEL) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean of `differences` (resampling queries)."""
    if differences.size < 2:
        return -math.inf, math.inf
    if np.ptp(differences) == 0:  # every resample has the same mean; scipy would warn and return NaN
        return float(differences[0]), float(differences[0])
    from scipy.stats import bootstrap

    result = bootstrap((differences,), np.mean, n_resamples=resamples, method="percentile", vectorized=True,
                       confidence_level=confidence_level, rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def _mean_difference(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(a - b, axis=axis)


def randomization_p_value(a: np.ndarray, b: np.ndarray, seed: int = SEED, resamples: int = RESAMPLES) -> float:
    """Two-sided p of the paired randomization test of mean(a - b) (each query's pair may swap)."""
    if not np.any(a != b):
        return 1.0  # every arrangement gives 0: nothing to test
    from scipy.stats import permutation_test

    result = permutation_test((a, b), _mean_difference, permutation_type="samples", vectorized=True,
                              n_resamples=resamples, alternative="two-sided", rng=np.random.default_rng(seed))
    return float(result.pvalue)


def compare_paired(a: Sequence[float], b: Sequence[float], seed: int = SEED,
                   resamples: int = RESAMPLES) -> PairedComparison:
    """Compares ranker a with ranker b from their per-query values on the same queries, in the same order.

    Args:
        a: one value per query for ranker a (e.g. the fine-tuned reranker's mrr@5).
        b: the same queries' values for ranker b (e.g. the base model's).
        seed: seeds both resamplings, so the same inputs always give the same figures.
        resamples: bootstrap and randomization resamples each.

    Returns:
        A PairedComparison of mean(a - b).

    Raises:
        ValueError: the vectors differ in length (both lengths named), are empty or hold non-finite values.

    Example:
        >>> compare_paired([1, 1, 0, 1], [0, 1, 0, 1]).mean_difference
        0.25
    """
    differences = paired_differences(a, b)
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    low, high = bootstrap_interval(differences, seed, resamples)
    p_value = randomization_p_value(a, b, seed, resamples) if differences.size > 1 else 1.0
    excludes_zero = low > 0 or high < 0
    return PairedComparison(n_queries=int(differences.size), mean_a=float(np.mean(a)), mean_b=float(np.mean(b)),
                            mean_difference=float(np.mean(differences)),
                            standard_error=paired_standard_error(differences), ci_low=low, ci_high=high,
                            p_value=p_value, significant=bool(p_value < SIGNIFICANCE_LEVEL and excludes_zero))


def compare_metric_tables(table_a: Mapping[str, Sequence[float]], table_b: Mapping[str, Sequence[float]],
                          metrics: Sequence[str] | None = None, seed: int = SEED,
                          resamples: int = RESAMPLES) -> dict[str, PairedComparison]:
    """{metric: PairedComparison} for per-query tables {metric: values in one query order} of two rankers.

    Args:
        table_a: ranker a's per-query values by metric name ("hit@3": [...]).
        table_b: ranker b's, the queries in the same order.
        metrics: which to compare; by default the HEADLINE_METRICS both tables hold, else every shared one.

    Raises:
        ValueError: a requested metric is missing from a table, or a metric's vectors differ in length.
    """
    if metrics is None:
        shared = [name for name in table_a if name in table_b]
        metrics = [name for name in HEADLINE_METRICS if name in shared] or shared
    missing = [name for name in metrics if name not in table_a or name not in table_b]
    if missing:
        raise ValueError(f"metric(s) {missing} missing from a table; table a has {sorted(table_a)}, "
                         f"table b has {sorted(table_b)}")
    return {name: compare_paired(table_a[name], table_b[name], seed, resamples) for name in metrics}


def per_query_columns(per_query: Mapping, query_ids: Sequence) -> dict[str, list[float]]:
    """{metric: values in `query_ids` order} from `per_query_metrics`' {query id: {metric: value}}."""
    missing = [qid for qid in query_ids if qid not in per_query]
    if missing:
        raise ValueError(f"{len(missing)} query id(s) have no per-query metrics, e.g. {missing[:5]}")
    names = per_query[query_ids[0]] if query_ids else {}
    return {name: [float(per_query[qid][name]) for qid in query_ids] for name in names}


def significance_marker(comparison: PairedComparison) -> str:
    """SIGNIFICANCE_MARKER for a significant difference, else an empty string."""
    return SIGNIFICANCE_MARKER if comparison.significant else ""


def format_comparison(comparison: PairedComparison, marker: bool = True) -> str:
    """One line such as `+0.033 [-0.03, +0.10] p=0.50 n=30`, with ` *` appended when significant."""
    p_value = comparison.p_value
    p_text = f"p={p_value:.2f}" if p_value >= 0.01 else f"p={p_value:.3f}" if p_value >= 0.001 else "p<0.001"
    line = (f"{comparison.mean_difference:+.3f} [{comparison.ci_low:+.2f}, {comparison.ci_high:+.2f}] "
            f"{p_text} n={comparison.n_queries}")
    return f"{line} {SIGNIFICANCE_MARKER}" if marker and comparison.significant else line


def one_standard_error_choice(per_query_by_candidate: Mapping[float, Mapping[str, Sequence[float]]], metric: str,
                              baseline: float = 0.0, guarded: Sequence[str] = GUARDED_METRICS
                              ) -> OneStandardErrorChoice:
    """The guarded one-standard-error rule over ordered candidates, `baseline` the one to fall back on.

    Among the candidates whose mean of every `guarded` metric is at least the baseline's, take the best
    mean `metric` (ties to the candidate nearest the baseline), then the candidate nearest the baseline
    whose loss against that best is within one standard error of their paired per-query difference.
    This is fusion.choose_fusion's guard and first shrinking step, for any numeric candidates (a WiSE-FT
    alpha, baseline 0.0 = the base model); fusion's own helpers cannot take them as they are (its keys
    round weights to one decimal and its tie-break needs a fusion method). With one query the standard
    error is infinite, so the rule falls back to the nearest guarded candidate: the baseline.

    Args:
        per_query_by_candidate: {candidate: {metric name: per-query values, same query order for all}}.
        metric: the metric to maximise, e.g. "mrr@5".
        baseline: the candidate that is always allowed; it must be among the keys.
        guarded: metrics no chosen candidate may lose on average against the baseline.
    """
    if baseline not in per_query_by_candidate:
        raise ValueError(f"the baseline {baseline} must be among the candidates {sorted(per_query_by_candidate)}")
    needed = [metric, *(name for name in guarded if name != metric)]
    for candidate, table in per_query_by_candidate.items():
        missing = [name for name in needed if name not in table]
        if missing:
            raise ValueError(f"candidate {candidate} has no per-query values for {missing}")
    means = {candidate: {name: math.fsum(values) / len(values) for name, values in table.items()}
             for candidate, table in per_query_by_candidate.items()}
    safe = [candidate for candidate in means
            if all(means[candidate][name] >= means[baseline][name] - 1e-12 for name in guarded)]
    distance = {candidate: abs(candidate - baseline) for candidate in safe}
    best = max(safe, key=lambda candidate: (means[candidate][metric], -distance[candidate]))
    chosen = best
    for candidate in sorted((c for c in safe if distance[c] < distance[best]), key=distance.__getitem__):
        loss = means[best][metric] - means[candidate][metric]
        differences = paired_differences(per_query_by_candidate[best][metric],
                                         per_query_by_candidate[candidate][metric])
        if loss <= paired_standard_error(differences) + 1e-12:  # A tie with one standard error is within it.
            chosen = candidate
            break
    return OneStandardErrorChoice(chosen=chosen, best=best, metric=metric, guarded=tuple(sorted(safe)), means=means)


# The comparisons a report makes: what fine-tuning gained over its base and over the first stage, and
# what fusing gained over the first stage.
COMPARED_PAIRS = (("fine_tuned", "pretrained"), ("fine_tuned", "first_stage"), ("fused", "first_stage"))


def compare_rankers(per_query_by_ranker: Mapping[str, Mapping[str, Sequence[float]]],
                    pairs: Sequence[tuple[str, str]] = COMPARED_PAIRS, metrics: Sequence[str] | None = None,
                    seed: int = SEED) -> dict[str, dict[str, PairedComparison]]:
    """{"a_vs_b": {metric: PairedComparison}} for each pair whose two rankers both have per-query values."""
    return {f"{a}_vs_{b}": compare_metric_tables(per_query_by_ranker[a], per_query_by_ranker[b], metrics, seed)
            for a, b in pairs if per_query_by_ranker.get(a) and per_query_by_ranker.get(b)}


def comparisons_as_json(comparisons: Mapping[str, Mapping[str, PairedComparison]]) -> dict:
    """{pair: {metric: the comparison's JSON fields}} for a report file."""
    return {pair: {metric: comparison.as_json() for metric, comparison in by_metric.items()}
            for pair, by_metric in comparisons.items()}
