"""The benchmark's metric tables: rankers as columns, one table per query file and one per difficulty level.

main.py prints them and report.html renders them, from these same functions and with the same headings and
keys, so the screen and the page read alike. `tags` marks every table of a file ({file: "in-sample: ..."});
`labels` renames rankers for display ({"pretrained": "pretrained (untrained head)"}), never in the JSON.
"""

import pandas as pd

TABLE_METRICS = ("hit", "recall", "precision", "f1", "map", "mrr", "ndcg", "context_precision", "context_recall")
# One line under each table's heading saying how to read it (the console and report.html show the same).
METRICS_KEY = ("columns are rankers, rows a metric at cut-off k, averaged over the file's queries (0 to 1, higher "
               "is better)")
DIFFICULTY_KEY = "each Difficulty level's queries alone; a level with few queries moves a lot per query"
COMPARISON_KEY = ("a - b: ranker a's mean minus ranker b's on the same queries, with its 95% paired bootstrap "
                  "interval, the paired randomization p-value and the query count; * marks a difference significant "
                  "at 0.05 (p < 0.05 and the interval excludes 0); without * it is within noise")


def in_sample_tags(report: dict) -> dict[str, str]:
    """{file: its in-sample tag} for the files whose queries the fine-tuned run trained on."""
    return {name: overlap["tag"] for name, overlap in (report.get("training_overlap") or {}).items()
            if overlap.get("in_sample")}


def metrics_table(runs: list[dict], dataset: str, ks) -> pd.DataFrame:
    """Metrics as rows (hit@3, ...), rankers as columns, for one dataset."""
    columns = {run["name"]: run["metrics"] for run in runs if run["dataset"] == dataset}
    index = [f"{metric}@{k}" for metric in TABLE_METRICS for k in ks]
    return pd.DataFrame(columns, index=[key for key in index if key in next(iter(columns.values()))])


def labelled(table: pd.DataFrame, labels: dict[str, str] | None) -> pd.DataFrame:
    return table.rename(columns=labels) if labels else table


def print_table(title: str, tag: str | None, key: str, table: pd.DataFrame) -> None:
    """A heading, the file's in-sample tag on a line of its own when it has one, the key, then the table."""
    print(f"\n=== {title} ===" + (f"\n[{tag}]" if tag else "") + f"\n({key})")
    print(table.to_string(float_format=lambda value: f"{value:.4f}"))


def print_tables(runs: list[dict], ks, tags: dict[str, str] | None = None, labels: dict[str, str] | None = None) -> None:
    for dataset in dict.fromkeys(run["dataset"] for run in runs):
        count = next(run["queries"] for run in runs if run["dataset"] == dataset)
        print_table(f"{dataset} ({count} queries)", (tags or {}).get(dataset), METRICS_KEY,
                    labelled(metrics_table(runs, dataset, ks), labels))


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


def print_difficulty_tables(rows: list[dict], ks, tags: dict[str, str] | None = None,
                            labels: dict[str, str] | None = None) -> None:
    for dataset in dict.fromkeys(row["dataset"] for row in rows):
        print_table(f"{dataset} by difficulty", (tags or {}).get(dataset), DIFFICULTY_KEY,
                    labelled(difficulty_table(rows, dataset, ks), labels))


# The comparison table shows these; metrics.json holds every compared metric.
COMPARISON_TABLE_METRICS = ("hit", "mrr")


def comparison_table(rows: list[dict], dataset: str, labels: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per (pair, metric) of one dataset: the mean paired difference a - b, its 95% interval, p, n.

    `*` marks a difference significant at 0.05 (p < 0.05 and the interval excludes 0).
    """
    labels = labels or {}
    cells = {}
    for row in rows:
        if row["dataset"] != dataset or not row["metric"].startswith(tuple(f"{name}@" for name in COMPARISON_TABLE_METRICS)):
            continue
        low, high = row["ci_low"], row["ci_high"]
        interval = "[-inf, +inf]" if low is None or high is None else f"[{low:+.3f}, {high:+.3f}]"
        cells[f"{labels.get(row['a'], row['a'])} - {labels.get(row['b'], row['b'])} {row['metric']}"] = {
            "difference": f"{row['mean_difference']:+.3f}", "95% interval": interval, "p": f"{row['p_value']:.3f}",
            "queries": row["n_queries"], "significant": "*" if row["significant"] else ""}
    return pd.DataFrame.from_dict(cells, orient="index")


def print_comparison_tables(rows: list[dict], tags: dict[str, str] | None = None,
                            labels: dict[str, str] | None = None) -> None:
    for dataset in dict.fromkeys(row["dataset"] for row in rows):
        print_table(f"{dataset}: paired differences (a - b)", (tags or {}).get(dataset), COMPARISON_KEY,
                    comparison_table(rows, dataset, labels))


def print_verdict(verdict: dict) -> None:
    """The run's dev record and main.py's own statements, one line each, under the rule they follow."""
    lines = ([verdict["run"]["text"]] if verdict.get("run") else []) + [row["text"] for row in verdict["statements"]]
    if verdict.get("recommendation"):
        lines.append(verdict["recommendation"]["text"])
    if not lines:
        return
    print(f"\n=== verdict: {verdict['rule']} ===")
    print("\n".join([*lines, *verdict.get("notes", [])]))


def print_report(report: dict) -> None:
    """Every table of main.py's report, each file's in-sample tag on each, then the verdict."""
    tags, labels = in_sample_tags(report), report.get("labels") or {}
    print_tables(report["runs"], report["k"], tags, labels)
    print_difficulty_tables(report["by_difficulty"], report["k"], tags, labels)
    print_comparison_tables(report["comparisons"], tags, labels)
    print_verdict(report["verdict"])
