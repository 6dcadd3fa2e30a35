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


# The comparison table shows these; metrics.json holds every compared metric.
COMPARISON_TABLE_METRICS = ("hit", "mrr")


def comparison_table(rows: list[dict], dataset: str) -> pd.DataFrame:
    """One row per (pair, metric) of one dataset: the mean paired difference a - b, its 95% interval, p, n.

    `*` marks a difference significant at 0.05 (p < 0.05 and the interval excludes 0).
    """
    cells = {}
    for row in rows:
        if row["dataset"] != dataset or not row["metric"].startswith(tuple(f"{name}@" for name in COMPARISON_TABLE_METRICS)):
            continue
        low, high = row["ci_low"], row["ci_high"]
        interval = "[-inf, +inf]" if low is None or high is None else f"[{low:+.3f}, {high:+.3f}]"
        cells[f"{row['a']} - {row['b']} {row['metric']}"] = {
            "difference": f"{row['mean_difference']:+.3f}", "95% interval": interval, "p": f"{row['p_value']:.3f}",
            "queries": row["n_queries"], "significant": "*" if row["significant"] else ""}
    return pd.DataFrame.from_dict(cells, orient="index")


def print_comparison_tables(rows: list[dict]) -> None:
    for dataset in dict.fromkeys(row["dataset"] for row in rows):
        print(f"\n=== {dataset}: paired differences (a - b; * significant at 0.05) ===")
        print(comparison_table(rows, dataset).to_string())
