"""main.py's report: metric tables on stdout, and metrics.csv, metrics.json and charts on disk.

Where it may write is checked before anything is scored: never over a file or into a folder the
evaluation reads (the corpus, the query files, the candidates file, a model or run folder), and never
into a folder that holds anything but an earlier main.py report. That earlier report is replaced only
with --overwrite_report, and then whole: its charts of files not evaluated again go too.
"""

import logging
import re
from collections.abc import Callable, Sequence
from pathlib import Path

import pandas as pd

from reranker_kit.basics.errors import KitError
from reranker_kit.basics.files import check_writable_folder, write_file_atomic, write_json_atomic
from reranker_kit.reports.html_report import HTML_REPORT_FILE
from reranker_kit.reports.tables import in_sample_tags, metrics_table

logger = logging.getLogger("main")
# The files a report folder holds (write_report); a folder holding only these holds an earlier report.
REPORT_FILE_PATTERN = re.compile(r"^(metrics\.json|metrics\.csv|report\.html|metrics_by_k_.+\.png)$")
# Files a refusal names before summarising.
EXAMPLES = 3


def chart_path(report_dir: Path, dataset: str) -> Path:
    return report_dir / f"metrics_by_k_{dataset.replace('/', '_')}.png"  # a/queries: a name, not a folder.


def check_report_destinations(report_dir: str | None, runs_root: str, output_json: str | None,
                              inputs: Sequence[tuple[str, Path]] = (), overwrite_report: bool = False) -> None:
    """Fails before any scoring when a report file could not be written, or would replace something.

    `inputs` are (what, path) of everything the evaluation reads, e.g. ("the corpus CSV (--corpus_csv)", path).
    """
    check_writable_folder(report_dir or runs_root, "`report_dir`" if report_dir else "`runs_root`")
    if output_json is not None:
        path = Path(output_json)
        if path.is_dir():
            raise KitError(f"`output_json` {path} is a folder; give a file path such as {path / 'metrics.json'}")
        check_writable_folder(path.parent, f"`output_json` {path}: its folder")
        refuse_an_input("`output_json`", path, inputs, is_folder=False)
    if report_dir is not None:
        refuse_an_input("`report_dir`", Path(report_dir), inputs, is_folder=True)
        check_report_folder(Path(report_dir), overwrite_report)


def refuse_an_input(flag: str, destination: Path, inputs: Sequence[tuple[str, Path]], is_folder: bool) -> None:
    """Refuses a destination that is one of the inputs, lies inside an input folder, or (a folder) holds an input."""
    target = destination.resolve()
    for what, path in inputs:
        source = Path(path).resolve()
        if target == source:
            relation = f"is {what},"
        elif source in target.parents:
            relation = f"lies inside {path}, {what},"
        elif is_folder and target in source.parents:
            relation = f"holds {path}, {what},"
        else:
            continue
        raise KitError(f"{flag} {destination} {relation} which this evaluation reads: the report would overwrite "
                       f"or mix into it. Give {flag} a path outside the evaluation's inputs")


def check_report_folder(report_dir: Path, overwrite_report: bool) -> None:
    """An existing --report_dir must be empty, or hold only an earlier report and come with --overwrite_report."""
    entries = sorted(report_dir.iterdir()) if report_dir.is_dir() else []
    if not entries:
        return
    others = [entry.name for entry in entries if not (entry.is_file() and REPORT_FILE_PATTERN.match(entry.name))]
    if others:
        raise KitError(f"`report_dir` {report_dir} already holds files that main.py did not write "
                       f"({describe_names(others)}); give a new or empty folder, or leave `report_dir` out to write "
                       "a new eval-* folder under `runs_root`")
    if not overwrite_report:
        raise KitError(f"`report_dir` {report_dir} holds an earlier evaluation's report "
                       f"({describe_names([entry.name for entry in entries])}); give a new folder, or add "
                       "`overwrite_report` to replace that report (its charts included)")


def describe_names(names: list[str]) -> str:
    return ", ".join(names[:EXAMPLES]) + (f" and {len(names) - EXAMPLES} more" if len(names) > EXAMPLES else "")


def remove_stale_report_files(report_dir: Path, kept: set[Path]) -> list[Path]:
    """Deletes an earlier report's files that this report does not replace (a chart of a file not evaluated again).

    Only files named as a report's are touched; check_report_folder let nothing else be in the folder.
    """
    stale = [path for path in (report_dir.iterdir() if report_dir.is_dir() else ())
             if path.is_file() and REPORT_FILE_PATTERN.match(path.name) and path not in kept]
    for path in stale:
        path.unlink()
    return stale


def write_report(report: dict, report_dir: Path, output_json: Path | None, ks,
                 html_page: Callable[[], str] | None = None) -> None:
    """Writes each report file atomically; one that cannot be written is named and never stops the others.

    `html_page` renders report_dir/report.html (`reports.html_report.render_html_report`); it runs last,
    because the page embeds the charts written before it.
    """
    from reranker_kit.reports.plots import plot_metrics_by_k  # Defers matplotlib until a report is written.

    labels, tags = report.get("labels") or {}, in_sample_tags(report)
    flat = pd.DataFrame([{"ranker": row["name"], "dataset": row["dataset"], "difficulty": row["difficulty"] or "all",
                          "queries": row["queries"], "training_queries": row.get("training_queries"), **row["metrics"]}
                         for row in report["runs"] + report["by_difficulty"]])
    writers = {report_dir / "metrics.json": lambda path: write_json_atomic(path, report),
               report_dir / "metrics.csv": lambda path: write_file_atomic(path, lambda temporary: flat.to_csv(
                   temporary, index=False))}
    if output_json is not None:
        writers[output_json] = lambda path: write_json_atomic(path, report)
    for dataset in dict.fromkeys(run["dataset"] for run in report["runs"]):
        table = metrics_table(report["runs"], dataset, ks)
        writers[chart_path(report_dir, dataset)] = lambda path, table=table, dataset=dataset: (
            write_file_atomic(path, lambda temporary: plot_metrics_by_k(table, ks, dataset, temporary, labels,
                                                                       tags.get(dataset))))
    if html_page is not None:
        writers[report_dir / HTML_REPORT_FILE] = lambda path: write_file_atomic(
            path, lambda temporary: temporary.write_text(html_page(), encoding="utf-8"))
    try:
        stale = remove_stale_report_files(report_dir, set(writers))
    except OSError as problem:
        raise KitError(f"could not remove the earlier report's {problem.filename} ({problem.strerror or problem}); "
                       "remove it yourself, or give a new `report_dir`") from None
    if stale:
        logger.info("removed the earlier report's %s from %s (`overwrite_report`)", describe_names(
            [path.name for path in stale]), report_dir)
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
