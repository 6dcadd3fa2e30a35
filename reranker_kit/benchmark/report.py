"""main.py's report: metric tables on stdout, and metrics.csv, metrics.json and charts on disk."""

import logging
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from reranker_kit.basics.errors import KitError
from reranker_kit.basics.files import check_writable_folder, write_file_atomic, write_json_atomic
from reranker_kit.reports.html_report import HTML_REPORT_FILE
from reranker_kit.reports.tables import metrics_table

logger = logging.getLogger("main")










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
    from reranker_kit.reports.plots import plot_metrics_by_k  # Defers matplotlib until a report is written.

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
