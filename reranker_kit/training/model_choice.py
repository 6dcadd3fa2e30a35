"""After training: keep the fine-tuned weights only where the dev queries say they beat the base model.

The most common complaint about fine-tuning a strong reranker on ~100 queries is that it came out worse
than the untouched base. So the base model is a candidate too. The candidates are weight-space blends
`(1 - a) * base + a * fine_tuned` (WiSE-FT, Wortsman et al. 2022): a = 0 is the base, a = 1 the trained
weights; with a base whose ranking head was never trained (the bundled MiniLM) blending means nothing
and only a = 0 and a = 1 compete. Each candidate reranks the dev queries; the guarded one-standard-error
rule (`metrics.paired.one_standard_error_choice`, fusion's rule) picks the candidate nearest the base
whose loss against the best is within one standard error of their paired per-query difference. What the
run then says of its training is `finetune.verdict`'s: the paired interval of trained - base decides
between gain, loss and within noise, whatever weights the rule kept.
"""

import logging
from dataclasses import dataclass, field

from reranker_kit.finetune.verdict import Verdict, judged
from reranker_kit.metrics.conventions import CUTOFFS
from reranker_kit.metrics.paired import compare_paired, one_standard_error_choice
from reranker_kit.models.weight_ensembling import ALPHAS, describe_alpha, interpolated_model

logger = logging.getLogger(__name__)

RULE = ("the candidate nearest the base whose dev {metric} is within one standard error of the best "
        "(guard: hit@k and mrr@k at least the base's)")
# A base whose ranking head was never trained scores pairs at random: it is measured, never kept.
UNTRAINED_BASE_RULE = "the trained weights: the base has no trained ranking head, so its scores mean nothing"


@dataclass(frozen=True)
class ModelChoice:
    """Which weights a run saved, and the dev evidence: every candidate's means and the paired comparison."""

    alpha: float  # 1.0: the trained weights; 0.0: the base model.
    verdict: Verdict
    metric: str
    rule: str
    queries: int
    best_alpha: float  # The best candidate before moving toward the base.
    weight_ensembling: bool  # Whether blends between 0 and 1 were candidates.
    dev_metrics_by_alpha: dict[str, dict[str, float]]
    base_per_query: dict[str, list[float]] = field(default_factory=dict, repr=False)  # {metric: values}, dev order.

    @property
    def label(self) -> str:
        return describe_alpha(self.alpha)

    def as_json(self) -> dict:
        return {"alpha": self.alpha, "verdict": self.verdict.verdict, "saved": self.label, "metric": self.metric,
                "rule": self.rule, "queries": self.queries, "best_alpha": self.best_alpha,
                "weight_ensembling": self.weight_ensembling, "dev_metrics_by_alpha": self.dev_metrics_by_alpha,
                "trained_vs_base": self.verdict.trained_vs_base}


def _key(alpha: float) -> str:
    return f"{alpha:g}"


def choose_weights(per_query_for, base_model, trained_model, metric: str, weight_ensembling: bool,
                   base_head_trained: bool = True, ks=CUTOFFS):
    """(the chosen model, its ModelChoice). `per_query_for(model)` gives {metric: per-query values}.

    The base and the trained model are left as they are; a blend is a new model. A base without a trained
    head is measured (the verdict compares with it) but never kept: saving it would ship a random head.
    """
    alphas = ALPHAS if weight_ensembling else (0.0, 1.0)
    models = {0.0: base_model, 1.0: trained_model}
    tables = {}
    for alpha in alphas:
        model = models.get(alpha) or interpolated_model(base_model, trained_model, alpha)
        tables[alpha] = per_query_for(model)
        if alpha not in models:
            models[alpha] = model
        logger.info("dev %s of the %s weights: %.4f", metric, describe_alpha(alpha),
                    sum(tables[alpha][metric]) / len(tables[alpha][metric]))
    guarded = [f"{name}@{k}" for name in ("hit", "mrr") for k in ks]
    choice = one_standard_error_choice(tables, metric, baseline=0.0, guarded=guarded)
    chosen = choice.chosen if base_head_trained else 1.0
    comparison = compare_paired(tables[1.0][metric], tables[0.0][metric])
    result = ModelChoice(alpha=chosen, verdict=judged(describe_alpha(chosen), metric, comparison),
                         metric=metric, rule=RULE.format(metric=metric) if base_head_trained else UNTRAINED_BASE_RULE,
                         queries=len(tables[0.0][metric]), best_alpha=choice.best, weight_ensembling=weight_ensembling,
                         dev_metrics_by_alpha={_key(alpha): means for alpha, means in choice.means.items()},
                         base_per_query=tables[0.0])
    return models[chosen], result
