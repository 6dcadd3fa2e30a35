"""main.py's report: metric tables on stdout, and metrics.csv, metrics.json and charts on disk."""

import logging
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from reranker_kit.errors import KitError
from reranker_kit.reports.html_report import HTML_REPORT_FILE
from reranker_kit.run_folder import check_writable_folder, write_file_atomic, write_json_atomic

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
    return report_dir / f"metrics_by_k_{dataset.replace('/', '_')}.png"  # a/queries: a name, not a folder.


def check_report_destinations(report_dir: str | None, runs_root: str, output_json: str | None) -> None:
    """Fails before any scoring when a report file could not be written, so no scoring is thrown away."""
    check_writable_folder(report_dir or runs_root, "--report_dir" if report_dir else "--runs_root")
    if output_json is not None:
        path = Path(output_json)
        if path.is_dir():
            raise KitError(f"--output_json {path} is a folder; give a file path such as {path / 'metrics.json'}")
        check_writable_folder(path.parent, f"--output_json {path}: its folder")


def write_report(report: dict, report_dir: Path, output_json: Path | None, ks,
                 html_page: Callable[[], str] | None = None) -> None:
    """Writes each report file atomically; one that cannot be written is named and never stops the others.

    `html_page` renders report_dir/report.html (`reports.html_report.render_html_report`); it runs last,
    because the page embeds the charts written before it.
    """
    from reranker_kit.reports.plots import plot_metrics_by_k

    flat = pd.DataFrame([{"ranker": row["name"], "dataset": row["dataset"], "difficulty": row["difficulty"] or "all",
                          "queries": row["queries"], **row["metrics"]} for row in report["runs"] + report["by_difficulty"]])
    writers = {report_dir / "metrics.json": lambda path: write_json_atomic(path, report),
               report_dir / "metrics.csv": lambda path: write_file_atomic(path, lambda temporary: flat.to_csv(
                   temporary, index=False))}
    if output_json is not None:
        writers[output_json] = lambda path: write_json_atomic(path, report)
    for dataset in dict.fromkeys(run["dataset"] for run in report["runs"]):
        table = metrics_table(report["runs"], dataset, ks)
        writers[chart_path(report_dir, dataset)] = lambda path, table=table, dataset=dataset: (
            write_file_atomic(path, lambda temporary: plot_metrics_by_k(table, ks, dataset, temporary)))
    if html_page is not None:
        writers[report_dir / HTML_REPORT_FILE] = lambda path: write_file_atomic(
            path, lambda temporary: temporary.write_text(html_page(), encoding="utf-8"))
    failed, written = [], []
    for path, write in writers.items():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write(path)
            written.append(str(path))
        except OSError as problem:
            failed.append(f"{path} ({problem.strerror or problem})")
    if failed:
        raise KitError(f"could not write {'; '.join(failed)}; written: {', '.join(written) or 'nothing'}")
    logger.info("report written to %s (metrics.csv, metrics.json, metrics_by_k_*.png%s)%s", report_dir,
                f", {HTML_REPORT_FILE}" if html_page is not None else "", f" and {output_json}" if output_json else "")
