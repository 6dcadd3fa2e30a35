"""K-fold cross-validation over queries: the splits, and the summary of the folds' dev metrics.

With about 100 queries a single 20-query dev split is noisy; the mean and spread over folds say how
much of a difference between recipes is real.
"""

import statistics
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from data_loading import Query
from errors import KitError
from pipeline import choose_fusion_weight
from run_dirs import write_json_atomic

# The rankers each fold's dev_metrics.json reports, and where their metrics sit in it.
RANKERS = ("first_stage", "pretrained", "fine_tuned", "fused")
SUMMARY_METRICS = tuple(f"{metric}@{k}" for metric in ("hit", "mrr", "ndcg") for k in (3, 5, 7))


def fold_splits(queries: list[Query], folds: int, seed: int) -> Iterator[tuple[list[Query], list[Query]]]:
    """(train, dev) for each fold; every query is in exactly one dev fold, reproducibly from `seed`."""
    if folds > len(queries):
        raise KitError(f"--cv_folds {folds} is more than the {len(queries)} queries; use fewer folds")
    order = np.random.default_rng(seed).permutation(len(queries))
    for dev_positions in np.array_split(order, folds):
        dev_set = set(dev_positions.tolist())
        yield ([query for position, query in enumerate(queries) if position not in dev_set],
               [query for position, query in enumerate(queries) if position in dev_set])


def ranker_metrics(dev_metrics: dict, fused: dict[str, float]) -> dict[str, dict[str, float]]:
    """Splits one fold's dev_metrics.json into {ranker: {metric: value}}."""
    return {
        "first_stage": dev_metrics["first_stage"],
        "pretrained": dev_metrics["baseline"],
        "fine_tuned": {key: dev_metrics[key] for key in SUMMARY_METRICS},
        "fused": fused,
    }


def held_out_fusion(fusions: list[dict]) -> list[tuple[str, dict[str, float]]]:
    """Each fold's fused metrics at the weight the *other* folds chose.

    A fold's own best weight is tuned on the very queries it is scored on, which flatters fusion; the
    weight that maximises the other folds' mean dev metric is what a user would ship blind.
    """
    metric = fusions[0]["metric"]
    weights = list(fusions[0]["dev_metrics_by_weight"])
    metric_names = list(fusions[0]["dev_metrics_by_weight"][weights[0]])
    ks = sorted({int(name.split("@")[1]) for name in metric_names})
    chosen = []
    for fold, fusion in enumerate(fusions):
        others = [other for position, other in enumerate(fusions) if position != fold] or [fusion]
        mean_by_weight = {weight: {name: statistics.fmean(other["dev_metrics_by_weight"][weight][name] for other in others)
                                   for name in metric_names} for weight in weights}
        weight = choose_fusion_weight(mean_by_weight, metric, ks)
        chosen.append((weight, fusion["dev_metrics_by_weight"][weight]))
    return chosen


def summarize_folds(fold_dev_metrics: list[dict], fusions: list[dict]) -> dict:
    """Per ranker and metric: every fold's value, their mean and their standard deviation."""
    held_out = held_out_fusion(fusions)
    per_fold = [ranker_metrics(metrics, fused) for metrics, (_, fused) in zip(fold_dev_metrics, held_out)]
    summary = {}
    for ranker in RANKERS:
        summary[ranker] = {}
        for metric in SUMMARY_METRICS:
            values = [fold[ranker][metric] for fold in per_fold]
            summary[ranker][metric] = {"folds": values, "mean": statistics.fmean(values),
                                       "std": statistics.stdev(values) if len(values) > 1 else 0.0}
    summary["fused"]["weights"] = [float(weight) for weight, _ in held_out]
    return summary


def summary_table(summary: dict) -> str:
    """A Markdown table: rankers as rows, `mean ± std` per metric."""
    header = "| ranker | " + " | ".join(SUMMARY_METRICS) + " |"
    lines = [header, "|" + "---|" * (len(SUMMARY_METRICS) + 1)]
    for ranker, metrics in summary.items():
        if ranker == "fused":
            ranker = f"fused (weights {', '.join(map(str, metrics['weights']))}, each chosen on the other folds)"
        cells = [f"{metrics[name]['mean']:.3f} ± {metrics[name]['std']:.3f}" for name in SUMMARY_METRICS]
        lines.append(f"| {ranker} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_cv_report(cv_dir: Path, summary: dict, arguments: dict) -> None:
    table = summary_table(summary)
    print(f"\n{table}\n")
    (cv_dir / "cv_results.md").write_text(f"# Cross-validation ({arguments['cv_folds']} folds)\n\n{table}\n",
                                          encoding="utf-8")
    write_json_atomic(cv_dir / "cv_results.json", {"arguments": arguments, "summary": summary})
