"""The embedder's cross-validation report: BM25, the base and the fine-tuned encoder alone and in the hybrid.

Each fold's encoder is trained on the other folds' queries and measured on its own (which never picks its
checkpoint); each fold's hybrid weight is the one the kit's rule chooses on the *other* folds' held-out
queries, pooled (`finetune.cross_validation.held_out_fusion`), as a user would ship it blind. The loop
itself is `finetune.cross_validation`.
"""

import statistics
from dataclasses import dataclass
from pathlib import Path

from reranker_kit.embedder.dev_evaluation import HYBRID_SHRINK
from reranker_kit.embedder.result import EmbedderDev
from reranker_kit.finetune.cross_validation import held_out_fusion, write_cv_files

FIRST_STAGES = ("bm25", "dense_base", "dense_fine_tuned", "hybrid_base", "hybrid_fine_tuned")


@dataclass(frozen=True)
class EmbedderFoldResult:
    """What cross-validation keeps of a finished fold: the base and trained encoder's held-out metrics."""

    dev: EmbedderDev

    def as_json(self) -> dict:
        return {"dev": self.dev.as_json()}

    @classmethod
    def from_json(cls, payload: dict) -> "EmbedderFoldResult":
        return cls(EmbedderDev.from_json(payload["dev"]))


def fold_metrics(results: list[EmbedderFoldResult]) -> tuple[list[dict[str, dict[str, float]]], dict[str, list[str]]]:
    """({first stage: metrics} per fold, the hybrid settings used per fold)."""
    hybrid_base = held_out_fusion([result.dev.base.hybrid for result in results], shrink=HYBRID_SHRINK)
    hybrid_fine = held_out_fusion([result.dev.fine_tuned.hybrid for result in results], shrink=HYBRID_SHRINK)
    folds = [{"bm25": result.dev.base.bm25, "dense_base": result.dev.base.dense,
              "dense_fine_tuned": result.dev.fine_tuned.dense, "hybrid_base": base[1], "hybrid_fine_tuned": fine[1]}
             for result, base, fine in zip(results, hybrid_base, hybrid_fine)]
    return folds, {"hybrid_base": [key for key, _ in hybrid_base], "hybrid_fine_tuned": [key for key, _ in hybrid_fine]}


def summarize_folds(results: list[EmbedderFoldResult]) -> dict:
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


def write_embedder_cv_report(cv_dir: Path, results: list[EmbedderFoldResult], arguments: dict) -> None:
    summary = summarize_folds(results)
    table = summary_table(summary, ("hit@3", "mrr@5", f"recall@{arguments['dev_top_n']}"))
    write_cv_files(cv_dir, f"First-stage cross-validation ({summary['folds']} folds)", table,
                   {"arguments": arguments, "summary": summary})
