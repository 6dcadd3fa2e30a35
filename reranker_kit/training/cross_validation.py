"""K-fold cross-validation over queries: the summary of the folds' dev metrics, with their spread.

With about 100 queries a single 20-query dev split is noisy; the mean and spread over folds say how
much of a difference between recipes is real.
"""

import json
import logging
import statistics
from pathlib import Path

from reranker_kit.basics.files import write_file_atomic, write_json_atomic
from reranker_kit.fusion import FusionChoice, choose_fusion, setting_key
from reranker_kit.metrics import CUTOFFS, DEV_RANKING_METRICS
from reranker_kit.metrics.paired import compare_rankers, comparisons_as_json, format_comparison, per_query_columns
from reranker_kit.run_folder import CV_RESULTS_FILE
from reranker_kit.training.result import FoldResult

logger = logging.getLogger(__name__)

# A finished fold's dev metrics and fusion choice with their per-query values: enough to rebuild the report
# when an interrupted cross-validation is resumed, after the fold's weights were removed.
FOLD_RESULT_FILE = "fold_result.json"

RANKERS = ("first_stage", "pretrained", "fine_tuned", "fused")
SUMMARY_METRICS = tuple(f"{metric}@{k}" for metric in DEV_RANKING_METRICS for k in CUTOFFS)


def held_out_fusion(fusions: list[FusionChoice]) -> list[tuple[str, dict[str, float]]]:
    """Each fold's fused metrics at the setting chosen on the *other* folds' held-out queries, pooled.

    A fold's own choice is tuned on the very queries it is scored on, which flatters fusion; the choice
    made on the other folds' queries is what a user would ship blind.
    """
    chosen = []
    for fold, fusion in enumerate(fusions):
        others = [other for position, other in enumerate(fusions) if position != fold] or [fusion]
        pooled = {key: {qid: row for other in others for qid, row in other.per_query_by_setting[key].items()}
                  for key in fusion.per_query_by_setting}
        pick = choose_fusion(pooled, fusion.metric)
        key = setting_key(pick.method, pick.weight)
        chosen.append((key, fusion.dev_metrics_by_setting[key]))
    return chosen


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


def write_cv_report(cv_dir: Path, summary: dict, arguments: dict, comparisons: dict | None = None) -> None:
    """cv_results.md (the tables) and cv_results.json (the summary, the comparisons and the flags of the run)."""
    table = summary_table(summary)
    if comparisons:
        table += "\n\nPaired over the pooled held-out queries of every fold:\n\n" + comparison_table(comparisons)
    print(f"\n{table}\n")
    folds = len(next(iter(summary["fine_tuned"].values()))["folds"])
    write_file_atomic(cv_dir / "cv_results.md", lambda path: path.write_text(
        f"# Cross-validation ({folds} folds)\n\n{table}\n", encoding="utf-8"))
    write_json_atomic(cv_dir / CV_RESULTS_FILE, {"arguments": arguments, "summary": summary,
                                                   "comparisons": comparisons_as_json(comparisons or {})})


def write_fold_result(fold_dir: Path, result: FoldResult) -> None:
    write_json_atomic(fold_dir / FOLD_RESULT_FILE, result.as_json())


def read_fold_result(fold_dir: Path) -> FoldResult | None:
    """A finished fold's result; None when the fold did not finish (or its file does not parse: it trains again)."""
    path = fold_dir / FOLD_RESULT_FILE
    if not path.is_file():
        return None
    try:
        return FoldResult.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as problem:
        logger.warning("ignoring %s (%s): the fold trains again", path, problem)
        return None
