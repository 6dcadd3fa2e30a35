"""main.py's report: metric tables on stdout, and metrics.csv, metrics.json and charts on disk."""

import logging
from pathlib import Path

import pandas as pd

from reranker_kit.run_folder import write_json_atomic

logger = logging.getLogger("main")
TABLE_METRICS = ("hit", "recall", "precision", "f1", "map", "mrr", "ndcg", "context_precision", "context_recall")


def metrics_table(runs: list[dict], dataset: str, ks) -> pd.DataFrame:
    """Metrics as rows (hit@3, ...), rankers as columns, for one dataset."""
    columns = {run["name"]: run["metrics"] for run in runs if run["dataset"] == dataset}
    index = [f"{metric}@{k}" for metric in TABLE_METRICS for k in ks]
    return pd.DataFrame(columns, index=[key for key in index if key in next(iter(columns.values()))])


def print_tables(runs: list[dict], ks) -> None:
    for dataset in dict.fromkeys(run["dataset"] for run in runs):
        count = next(run["queries"] for run in runs if run["dataset"] == dataset)
        print(f"\n=== {dataset} ({count} queries) ===")
        print(metrics_table(runs, dataset, ks).to_string(float_format=lambda value: f"{value:.4f}"))


def difficulty_table(rows: list[dict], dataset: str, ks) -> pd.DataFrame:
    """hit and mrr at the middle k for each difficulty level of one dataset, rankers as columns."""
    k = sorted(ks)[len(ks) // 2]
    cells: dict[str, dict[str, float]] = {}
    for row in rows:
        if row["dataset"] != dataset:
            continue
        for metric in ("hit", "mrr"):
            label = f"difficulty {row['difficulty']} ({row['queries']} queries) {metric}@{k}"
            cells.setdefault(row["name"], {})[label] = row["metrics"][f"{metric}@{k}"]
    return pd.DataFrame(cells)


def print_difficulty_tables(rows: list[dict], ks) -> None:
    for dataset in dict.fromkeys(row["dataset"] for row in rows):
        print(f"\n=== {dataset} by difficulty ===")
        print(difficulty_table(rows, dataset, ks).to_string(float_format=lambda value: f"{value:.4f}"))


def chart_path(report_dir: Path, dataset: str) -> Path:
    return report_dir / f"metrics_by_k_{dataset}.png"


def write_report(report: dict, report_dir: Path, output_json: Path | None, ks) -> None:
    from reranker_kit.reports.plots import plot_metrics_by_k

    report_dir.mkdir(parents=True, exist_ok=True)
    flat = [{"ranker": row["name"], "dataset": row["dataset"], "difficulty": row["difficulty"] or "all",
             "queries": row["queries"], **row["metrics"]} for row in report["runs"] + report["by_difficulty"]]
    pd.DataFrame(flat).to_csv(report_dir / "metrics.csv", index=False)
    write_json_atomic(report_dir / "metrics.json", report)
    if output_json is not None:
        output_json.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(output_json, report)
    for dataset in dict.fromkeys(run["dataset"] for run in report["runs"]):
        plot_metrics_by_k(metrics_table(report["runs"], dataset, ks), ks, dataset, chart_path(report_dir, dataset))
    logger.info("report written to %s (metrics.csv, metrics.json, metrics_by_k_*.png)%s", report_dir,
                f" and {output_json}" if output_json else "")
