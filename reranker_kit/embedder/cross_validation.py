"""Cross-validation of the first stage: BM25, the base and the fine-tuned encoder alone and in the hybrid.

Each fold's encoder is trained on the other folds' queries and measured on its own (which never picks its
checkpoint); each fold's hybrid weight is the one the kit's rule chooses on the *other* folds' held-out
queries, pooled (`training.cross_validation.held_out_fusion`), as a user would ship it blind.
"""

import statistics
from pathlib import Path

from reranker_kit.basics.files import write_json_atomic
from reranker_kit.embedder.result import EmbedderResult
from reranker_kit.training.cross_validation import held_out_fusion

FIRST_STAGES = ("bm25", "dense_base", "dense_fine_tuned", "hybrid_base", "hybrid_fine_tuned")


def fold_metrics(results: list[EmbedderResult]) -> tuple[list[dict[str, dict[str, float]]], dict[str, list[str]]]:
    """({first stage: metrics} per fold, the hybrid settings used per fold)."""
    hybrid_base = held_out_fusion([result.dev.base.hybrid for result in results])
    hybrid_fine = held_out_fusion([result.dev.fine_tuned.hybrid for result in results])
    folds = [{"bm25": result.dev.base.bm25, "dense_base": result.dev.base.dense,
              "dense_fine_tuned": result.dev.fine_tuned.dense, "hybrid_base": base[1], "hybrid_fine_tuned": fine[1]}
             for result, base, fine in zip(results, hybrid_base, hybrid_fine)]
    return folds, {"hybrid_base": [key for key, _ in hybrid_base], "hybrid_fine_tuned": [key for key, _ in hybrid_fine]}


def summarize_folds(results: list[EmbedderResult]) -> dict:
    """Per first stage and metric: every fold's value, their mean and standard deviation; the settings used."""
    folds, settings = fold_metrics(results)
    summary: dict = {"folds": len(folds), "queries_per_fold": [result.dev.base.hybrid.queries for result in results],
                     "hybrid_settings": settings, "first_stages": {}}
    for stage in FIRST_STAGES:
        summary["first_stages"][stage] = {
            metric: {"folds": [fold[stage][metric] for fold in folds],
                     "mean": statistics.fmean(fold[stage][metric] for fold in folds),
                     "std": statistics.stdev([fold[stage][metric] for fold in folds]) if len(folds) > 1 else 0.0}
            for metric in folds[0][stage]}
    return summary


def summary_table(summary: dict, metrics: tuple[str, ...]) -> str:
    """Markdown: mean ± std per first stage, then every fold's value."""
    stages = summary["first_stages"]
    lines = ["| first stage | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
    for stage, values in stages.items():
        lines.append(f"| {stage} | " + " | ".join(f"{values[m]['mean']:.3f} ± {values[m]['std']:.3f}" for m in metrics)
                     + " |")
    lines += ["", "| fold | queries | " + " | ".join(f"{stage} {metric}" for metric in metrics for stage in stages) + " |",
              "|---" * (len(metrics) * len(stages) + 2) + "|"]
    for fold in range(summary["folds"]):
        cells = [f"{stages[stage][metric]['folds'][fold]:.3f}" for metric in metrics for stage in stages]
        lines.append(f"| {fold + 1} | {summary['queries_per_fold'][fold]} | " + " | ".join(cells) + " |")
    settings = summary["hybrid_settings"]
    lines += ["", f"Hybrid dense weights chosen on the other folds: base {', '.join(settings['hybrid_base'])}; "
              f"fine-tuned {', '.join(settings['hybrid_fine_tuned'])}."]
    return "\n".join(lines)


def table_metrics(arguments: dict) -> tuple[str, ...]:
    return ("hit@3", "mrr@5", f"recall@{arguments['evaluation']['dev_top_n']}")


def write_cv_report(cv_dir: Path, summary: dict, arguments: dict) -> None:
    table = summary_table(summary, table_metrics(arguments))
    print(f"\n{table}\n")
    (cv_dir / "cv_results.md").write_text(f"# First-stage cross-validation ({summary['folds']} folds)\n\n{table}\n",
                                          encoding="utf-8")
    write_json_atomic(cv_dir / "cv_results.json", {"arguments": arguments, "summary": summary})
