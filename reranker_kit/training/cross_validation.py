"""The reranker's cross-validation report: each ranker's held-out metrics per fold, their mean and spread, and
the paired differences over the pooled held-out queries (the loop itself is `finetune.cross_validation`)."""

import statistics
from pathlib import Path

from reranker_kit.finetune.cross_validation import held_out_fusion, write_cv_files
from reranker_kit.metrics import CUTOFFS, DEV_RANKING_METRICS
from reranker_kit.metrics.paired import compare_rankers, comparisons_as_json, format_comparison, per_query_columns
from reranker_kit.training.result import FoldResult

RANKERS = ("first_stage", "pretrained", "fine_tuned", "fused")
SUMMARY_METRICS = tuple(f"{metric}@{k}" for metric in DEV_RANKING_METRICS for k in CUTOFFS)


def summarize_folds(results: list[FoldResult]) -> dict:
    """Per ranker and metric: every fold's value, their mean and their standard deviation."""
    held_out = held_out_fusion([result.fusion for result in results])
    per_fold = [{"first_stage": result.dev.first_stage, "pretrained": result.dev.pretrained,
                 "fine_tuned": result.dev.fine_tuned, "fused": fused} for result, (_, fused) in zip(results, held_out)]
    summary = {}
    for ranker in RANKERS:
        summary[ranker] = {}
        for metric in SUMMARY_METRICS:
            values = [fold[ranker][metric] for fold in per_fold]
            summary[ranker][metric] = {"folds": values, "mean": statistics.fmean(values),
                                       "std": statistics.stdev(values) if len(values) > 1 else 0.0}
    summary["fused"]["settings"] = [key for key, _ in held_out]
    return summary


def pooled_comparisons(results: list[FoldResult]) -> dict:
    """Paired differences over every fold's held-out queries pooled (each query held out exactly once).

    The fused ranking of a fold is the one at the setting chosen on the other folds, as in the summary.
    """
    held_out = held_out_fusion([result.fusion for result in results])
    pooled: dict[str, dict[str, list[float]]] = {}
    for result, (key, _) in zip(results, held_out):
        qids = list(next(iter(result.fusion.per_query_by_setting.values())))
        rankers = {**result.dev.per_query, "fused": per_query_columns(result.fusion.per_query_by_setting[key], qids)}
        for ranker, table in rankers.items():
            for metric, values in table.items():
                pooled.setdefault(ranker, {}).setdefault(metric, []).extend(values)
    return compare_rankers(pooled)


def comparison_table(comparisons: dict) -> str:
    """A Markdown table: each comparison's mean paired difference, 95% interval, p-value and query count."""
    lines = ["| comparison | metric | difference [95% interval] p, n |", "|---|---|---|"]
    lines += [f"| {pair.replace('_vs_', ' vs ')} | {metric} | {format_comparison(comparison)} |"
              for pair, by_metric in comparisons.items() for metric, comparison in by_metric.items()
              if metric.startswith(("hit@", "mrr@"))]
    return "\n".join(lines) + "\n\n* significant at 0.05 (paired randomization test, and the interval excludes 0)"


def summary_table(summary: dict) -> str:
    """A Markdown table: rankers as rows, `mean ± std` per metric."""
    header = "| ranker | " + " | ".join(SUMMARY_METRICS) + " |"
    lines = [header, "|" + "---|" * (len(SUMMARY_METRICS) + 1)]
    for ranker, metrics in summary.items():
        if ranker == "fused":
            ranker = f"fused ({', '.join(metrics['settings'])}, each chosen on the other folds)"
        cells = [f"{metrics[name]['mean']:.3f} ± {metrics[name]['std']:.3f}" for name in SUMMARY_METRICS]
        lines.append(f"| {ranker} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_reranker_cv_report(cv_dir: Path, results: list[FoldResult], arguments: dict) -> None:
    """cv_results.md (the tables) and cv_results.json (the summary, the comparisons and the settings of the run)."""
    summary, comparisons = summarize_folds(results), pooled_comparisons(results)
    table = summary_table(summary)
    if comparisons:
        table += "\n\nPaired over the pooled held-out queries of every fold:\n\n" + comparison_table(comparisons)
    write_cv_files(cv_dir, f"Cross-validation ({len(results)} folds)", table,
                   {"arguments": arguments, "summary": summary, "comparisons": comparisons_as_json(comparisons)})


