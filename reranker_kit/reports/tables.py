"""The benchmark's metric tables: rankers as columns, one table per query file and one per difficulty level.

main.py prints them and report.html renders them, from these same functions.
"""

import pandas as pd

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
