"""Fusing first-stage and reranker scores, and choosing how much to trust the reranker.

A fused score is `weight * reranker + (1 - weight) * first stage`, both normalised within the query by
one of three methods: `minmax` (0 to 1), `zscore` (mean 0, spread 1: a first stage that is sure of its
top document keeps a large lead), or `rrf` (reciprocal ranks, blind to scores). Weight 0 is the first
stage alone, weight 1 the reranker alone.

Choosing the setting on held-out queries (`choose_fusion`): among the settings whose hit@k and mrr@k
are all at least the first stage's, take the best `metric`, then shrink its weight toward the first stage
twice. First while the loss stays within one standard error of the per-query difference (disagreeing
queries: the one-standard-error rule); then by the amount of evidence, w * n / (n + PRIOR_QUERIES), as if
PRIOR_QUERIES more queries had shown the first stage alone right. Labelled queries are often harder for
the first stage than the ones users ask later, so a weight tuned on a few of them trusts the reranker too
much on easy new queries; bench/QUALITY.md measures this (the shift experiment).
"""

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

import numpy as np

from reranker_kit.basics.scores import normalise
from reranker_kit.metrics import CUTOFFS, per_query_metrics
from reranker_kit.pipeline import rank
from reranker_kit.retrieval.candidates import Candidates

FUSION_WEIGHTS = tuple(step / 10 for step in range(11))
FUSION_METHODS = ("minmax", "zscore", "rrf")
# A setting must keep these at least at the first stage's, at every cut-off.
GUARDED_METRICS = ("hit", "mrr")
# The weight of the first stage's side in the evidence shrinkage, in queries: 20 dev queries (a 20% split
# of a 100-query file) halve the weight; 100 pooled cross-validation queries keep 5/6 of it.
PRIOR_QUERIES = 20
SHRINK_RULE = "best under the guard, shrunk toward the first stage within one standard error, then by n / (n + {})"
BEST_RULE = "best under the guard"


@dataclass(frozen=True)
class FusionChoice:
    """How the reranker is fused with the first stage, chosen on held-out queries, and the evidence."""

    weight: float
    method: str  # One of FUSION_METHODS.
    metric: str
    rule: str
    queries: int  # Held-out queries the choice was made on.
    best_setting: str  # The best setting before shrinking, "method:weight".
    fused_dev_metrics: dict[str, float]
    dev_metrics_by_setting: dict[str, dict[str, float]]
    # {setting: {qid: {metric: value}}}: lets cross-validation pool the folds' held-out queries.
    per_query_by_setting: dict = field(default_factory=dict, repr=False)

    def as_json(self) -> dict:
        """What fusion.json records (the per-query values stay in memory)."""
        return {item.name: getattr(self, item.name) for item in fields(self) if item.name != "per_query_by_setting"}


def setting_key(method: str, weight: float) -> str:
    return f"{method}:{weight:.1f}"


def parse_setting(key: str) -> tuple[str, float]:
    method, weight = key.split(":")
    return method, float(weight)




def fuse(first_stage: np.ndarray, reranker: np.ndarray, weight: float, method: str = "minmax") -> np.ndarray:
    """weight * reranker + (1 - weight) * first stage, each normalised within the query by `method`."""
    return weight * normalise(reranker, method) + (1.0 - weight) * normalise(first_stage, method)


def fused_scores(candidates: Candidates, reranker_scores: dict[str, np.ndarray], weight: float,
                 method: str = "minmax") -> dict[str, np.ndarray]:
    return {qid: fuse(candidates.first_stage_scores[qid], reranker_scores[qid], weight, method)
            for qid in candidates.ids}


def _means(per_query: dict[str, dict[str, float]]) -> dict[str, float]:
    rows = list(per_query.values())
    return {name: math.fsum(row[name] for row in rows) / len(rows) for name in rows[0]}


def _standard_error(per_query_best: dict, per_query_other: dict, metric: str) -> float:
    differences = [per_query_best[qid][metric] - per_query_other[qid][metric] for qid in per_query_best]
    return statistics.stdev(differences) / math.sqrt(len(differences)) if len(differences) > 1 else 0.0


def _within_one_standard_error(best: str, safe: list[str], means: dict, per_query: dict, metric: str) -> str:
    """The smallest weight of the best setting's method whose loss is within one standard error."""
    method, best_weight = parse_setting(best)
    for weight in (w for w in FUSION_WEIGHTS if w < best_weight):
        key = setting_key(method, weight)
        if key in safe and means[best][metric] - means[key][metric] <= _standard_error(per_query[best], per_query[key],
                                                                                        metric):
            return key
    return best


def guarded_settings(means: dict[str, dict[str, float]], ks: Sequence[int] = CUTOFFS) -> list[str]:
    """The settings whose mean hit@k and mrr@k are all at least the first stage's (weight 0 among `means`)."""
    first_stage = next(means[key] for key in means if parse_setting(key)[1] == 0.0)
    guarded = [f"{name}@{k}" for name in GUARDED_METRICS for k in ks]
    return [key for key, values in means.items() if all(values[name] >= first_stage[name] - 1e-12 for name in guarded)]


def best_setting(keys: Sequence[str], means: dict[str, dict[str, float]], metric: str) -> str:
    """The best `metric` among `keys`; ties go to the lower weight, then the earlier method."""
    return max(keys, key=lambda key: (means[key][metric], -parse_setting(key)[1],
                                      -FUSION_METHODS.index(parse_setting(key)[0])))


def choose_fusion(per_query_by_setting: dict[str, dict[str, dict[str, float]]], metric: str,
                  ks: Sequence[int] = CUTOFFS, shrink: bool = True, prior_queries: int = PRIOR_QUERIES) -> FusionChoice:
    """The fusion setting for held-out queries' per-query metrics, {setting_key: {qid: {metric: value}}}.

    Weight 0 (the first stage alone) must be among the settings; it is always allowed.
    """
    means = {key: _means(rows) for key, rows in per_query_by_setting.items()}
    safe = guarded_settings(means, ks)
    best = best_setting(safe, means, metric)
    chosen = _within_one_standard_error(best, safe, means, per_query_by_setting, metric) if shrink else best
    queries = len(next(iter(per_query_by_setting.values())))
    if shrink:
        method, weight = parse_setting(chosen)
        # The grid weight nearest the shrunk value (ties down) that still passes the guard (0 always does).
        cap = weight * queries / (queries + prior_queries) + 0.05 - 1e-9
        chosen = max((key for key in safe if parse_setting(key)[0] == method and parse_setting(key)[1] <= cap),
                     key=lambda key: parse_setting(key)[1], default=setting_key(method, 0.0))
    method, weight = parse_setting(chosen)
    rule = SHRINK_RULE.format(prior_queries) if shrink else BEST_RULE
    return FusionChoice(weight=weight, method=method, metric=metric, rule=rule, queries=queries, best_setting=best,
                        fused_dev_metrics=means[chosen], dev_metrics_by_setting=means,
                        per_query_by_setting=per_query_by_setting)


def per_query_by_setting(candidates: Candidates, reranker_scores: dict[str, np.ndarray], relevant: dict,
                         ks: Sequence[int] = CUTOFFS, metrics: Sequence[str] = ("hit", "mrr", "ndcg")) -> dict:
    """{setting_key: {qid: {metric: value}}} for every fusion method and weight, from one scoring."""
    return {setting_key(method, weight): per_query_metrics(
                rank(fused_scores(candidates, reranker_scores, weight, method), candidates), relevant, ks, metrics=metrics)
            for method in FUSION_METHODS for weight in FUSION_WEIGHTS}
