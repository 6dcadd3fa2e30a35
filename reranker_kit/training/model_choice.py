"""After training: keep the fine-tuned weights only where the dev queries say they beat the base model.

The most common complaint about fine-tuning a strong reranker on ~100 queries is that it came out worse
than the untouched base. So the base model is a candidate too. The candidates are weight-space blends
`(1 - a) * base + a * fine_tuned` (WiSE-FT, Wortsman et al. 2022): a = 0 is the base, a = 1 the trained
weights; with a base whose ranking head was never trained (the bundled MiniLM) blending means nothing
and only a = 0 and a = 1 compete. Each candidate reranks the dev queries; the guarded one-standard-error
rule (`metrics.paired.one_standard_error_choice`, fusion's rule) picks the candidate nearest the base
whose loss against the best is within one standard error of their paired per-query difference. A run
whose choice is a = 0 says "no gain" everywhere a user looks, and saves the base.
"""

import logging
from dataclasses import dataclass, field

from reranker_kit.metrics.conventions import CUTOFFS
from reranker_kit.metrics.paired import compare_paired, one_standard_error_choice
from reranker_kit.models.weight_ensembling import ALPHAS, describe_alpha, interpolated_model

logger = logging.getLogger(__name__)

GAIN, NO_GAIN = "gain", "no gain"
RULE = ("the candidate nearest the base whose dev {metric} is within one standard error of the best "
        "(guard: hit@k and mrr@k at least the base's)")


@dataclass(frozen=True)
class ModelChoice:
    """Which weights a run saved, and the dev evidence: every candidate's means and the paired comparison."""

    alpha: float  # 1.0: the trained weights; 0.0: the base model.
    verdict: str  # GAIN or NO_GAIN.
    metric: str
    rule: str
    queries: int
    best_alpha: float  # The best candidate before moving toward the base.
    weight_ensembling: bool  # Whether blends between 0 and 1 were candidates.
    dev_metrics_by_alpha: dict[str, dict[str, float]]
    trained_vs_base: dict  # metrics.paired.PairedComparison.as_json() of the trained weights against the base.
    base_per_query: dict[str, list[float]] = field(default_factory=dict, repr=False)  # {metric: values}, dev order.

    @property
    def label(self) -> str:
        return describe_alpha(self.alpha)

    def as_json(self) -> dict:
        return {"alpha": self.alpha, "verdict": self.verdict, "saved": self.label, "metric": self.metric,
                "rule": self.rule, "queries": self.queries, "best_alpha": self.best_alpha,
                "weight_ensembling": self.weight_ensembling, "dev_metrics_by_alpha": self.dev_metrics_by_alpha,
                "trained_vs_base": self.trained_vs_base}

    def log_line(self) -> str:
        if self.verdict == NO_GAIN:
            return (f"verdict: no gain. The trained weights did not beat the base model on the {self.queries} dev "
                    f"queries by more than one standard error of {self.metric}; the run saves the base model")
        return (f"verdict: gain. Saved the {self.label} weights ({self.metric} "
                f"{self.dev_metrics_by_alpha[_key(self.alpha)][self.metric]:.4f} against the base's "
                f"{self.dev_metrics_by_alpha[_key(0.0)][self.metric]:.4f} on {self.queries} dev queries)")


def _key(alpha: float) -> str:
    return f"{alpha:g}"


def choose_weights(per_query_for, base_model, trained_model, metric: str, weight_ensembling: bool,
                   ks=CUTOFFS):
    """(the chosen model, its ModelChoice). `per_query_for(model)` gives {metric: per-query values}.

    The base and the trained model are left as they are; a blend is a new model.
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
    comparison = compare_paired(tables[1.0][metric], tables[0.0][metric])
    result = ModelChoice(alpha=choice.chosen, verdict=GAIN if choice.chosen > 0 else NO_GAIN, metric=metric,
                         rule=RULE.format(metric=metric), queries=len(tables[0.0][metric]), best_alpha=choice.best,
                         weight_ensembling=weight_ensembling,
                         dev_metrics_by_alpha={_key(alpha): means for alpha, means in choice.means.items()},
                         trained_vs_base=comparison.as_json(), base_per_query=tables[0.0])
    return models[choice.chosen], result
