"""main.py's report.html: written beside metrics.csv, self-contained, and working in a real browser (Chromium)."""

import re
import shutil
import warnings
from html.parser import HTMLParser
from pathlib import Path

import pytest

from reranker_kit.data.loading import Query
from reranker_kit.reports.html_report import query_change, reciprocal_rank, render_html_report

from conftest import run_script

CHROMIUM = Path("/usr/bin/chromium")
# The flags a closed network needs (/work/.library/env/machines/python.md): no background connections.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def test_helped_and_hurt_follow_the_first_relevant_document():
    assert reciprocal_rank([4, 5, 6], relevant=(6,)) == pytest.approx(1 / 3)
    assert reciprocal_rank([4, 5], relevant=(9,)) == 0.0
    assert query_change([1, 2, 3], [3, 1, 2], relevant=(3,)) == ("helped", pytest.approx(1 - 1 / 3))
    assert query_change([3, 1, 2], [1, 2, 3], relevant=(3,)) == ("hurt", pytest.approx(1 / 3 - 1))
    assert query_change([1, 2, 3], [1, 3, 2], relevant=(1, 2)) == ("unchanged", 0.0)  # The first one stays first.
    assert query_change([1, 2], [2, 1], relevant=(7,)) == ("unchanged", 0.0)  # Missed by the first stage.


@pytest.fixture(scope="module")
def main_report(small_data, trained_run, tmp_path_factory):
    run_dir, _ = trained_run
    workdir = tmp_path_factory.mktemp("html")
    runs_root = workdir / "outputs"
    shutil.copytree(run_dir, runs_root / run_dir.name)
    result = run_script("main.py", "--corpus_csv", str(small_data["corpus"]), "--eval_xlsx", str(small_data["train"]),
                        "--eval_xlsx", str(small_data["test"]), "--top_n", "5", "--max_length", "96", "--runs_root",
                        str(runs_root), "--report_dir", str(workdir / "report"), cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir / "report", result


def test_main_shows_progress_while_scoring(main_report):
    _, result = main_report
    assert re.search(r"INFO main: fine_tuned: reranking train \(\d+ pairs\)", result.stderr)
    assert re.search(r"reranking: +\d+%\|.*\| \d+/\d+ \[", result.stderr)  # The tqdm bar, on stderr.
    assert "reranking:" not in result.stdout and "=== train" in result.stdout


def test_report_html_sits_beside_metrics_csv_and_needs_nothing_from_outside(main_report):
    report_dir, _ = main_report
    assert (report_dir / "metrics.csv").is_file() and (report_dir / "report.html").is_file()
    text = (report_dir / "report.html").read_text(encoding="utf-8")
    references = re.findall(r'(?:src|href)="([^"]*)"', text)
    assert references and all(ref.startswith(("data:image/png;base64,", "#")) for ref in references)
    assert text.count("data:image/png;base64,") == 2  # One chart per query file, embedded.
    assert "<link" not in text and "@import" not in text


class _Cards(HTMLParser):
    """The query cards' data attributes, read without any script (what the filter must agree with)."""

    def __init__(self):
        super().__init__()
        self.cards = []

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "div" and attributes.get("class") == "query":
            self.cards.append(attributes)


def launch_chromium(playwright):
    if not CHROMIUM.is_file():
        reason = ("NO BROWSER: /usr/bin/chromium is missing, so report.html was NOT opened in a browser. Install "
                  "Debian's chromium (apt-get install chromium), as .ci/run does.")
        warnings.warn(reason)
        pytest.skip(reason)
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="NO BROWSER DRIVER: pip install playwright "
                                   "(requirements.txt has it)")
    with sync_api.sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


def test_report_renders_in_chromium_and_the_hurt_filter_shows_exactly_the_hurt_queries(main_report, browser,
                                                                                        small_data):
    report_dir, _ = main_report
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto((report_dir / "report.html").as_uri())
    section = page.locator("section.dataset").first
    assert section.locator("table.metrics").first.locator("tbody tr").count() == 27  # 9 metrics x k = 3, 5, 7.
    assert section.locator("table.metrics").first.locator("thead th").all_inner_texts()[1:] == [
        "first_stage", "pretrained", "fine_tuned", section.locator("select.ranker option").all_inner_texts()[-1]]
    # The paired differences: a table of its own, each row with its interval, p-value and query count.
    differences = section.locator("table.metrics").filter(has_text="95% interval")
    assert differences.count() == 1 and "fine_tuned - first_stage hit@3" in differences.inner_text()
    assert differences.locator("thead th").all_inner_texts()[1:] == ["difference", "95% interval", "p", "queries",
                                                                    "significant"]
    cards = section.locator(".query")
    parser = _Cards()
    parser.feed(section.inner_html())
    assert cards.count() == len(parser.cards) > 0 and section.locator(".query:visible").count() == cards.count()

    ranker = section.locator("select.ranker").input_value()
    expected = sorted(int(card["data-order"]) for card in parser.cards if card[f"data-status-{ranker}"] == "hurt")
    section.locator('button[data-filter="hurt"]').click()
    shown = sorted(int(order) for order in section.locator(".query:visible").evaluate_all(
        "cards => cards.map(card => card.dataset.order)"))
    assert shown == expected
    assert section.locator('button[data-filter="hurt"] .count').inner_text() == str(len(expected))
    assert section.locator(".shown").inner_text() == str(len(expected))
    assert errors == []


def test_filter_and_sort_on_a_report_with_known_changes(browser, tmp_path):
    """Three queries a reranker helped, hurt and left alone: each filter shows one, sorting orders by change."""
    corpus = {doc_id: f"tài liệu số {doc_id}" for doc_id in range(1, 7)}
    queries = [Query(qid=f"q{i}", text=f"câu hỏi {i}", relevant_ids=(relevant,), answer="", difficulty=1,
                     source="test.xlsx", row=i + 2) for i, relevant in enumerate((3, 1, 2))]
    rankings = {("first_stage", "test"): {"q0": [1, 2, 3], "q1": [1, 2, 3], "q2": [1, 2, 3]},
                ("fine_tuned", "test"): {"q0": [3, 1, 2], "q1": [2, 3, 1], "q2": [1, 2, 3]}}
    report = {"k": [3], "retriever": "bm25", "top_n": 3, "fine_tuned_reranker": "run", "pretrained_reranker": None,
              "fusion_weight": None, "by_difficulty": [],
              "runs": [{"name": name, "dataset": "test", "queries": 3, "difficulty": None,
                        "metrics": {"hit@3": 1.0, "mrr@3": 0.5}} for name in ("first_stage", "fine_tuned")]}
    path = tmp_path / "report.html"
    path.write_text(render_html_report(report, {"test": queries}, rankings, corpus, charts={}), encoding="utf-8")
    page = browser.new_page()
    page.goto(path.as_uri())
    visible_text = lambda: page.locator(".query:visible b").all_inner_texts()  # noqa: E731
    for status, query in (("helped", "câu hỏi 0"), ("hurt", "câu hỏi 1"), ("unchanged", "câu hỏi 2")):
        page.locator(f'button[data-filter="{status}"]').click()
        assert visible_text() == [query], status
    assert "doc 1 rank 1 → 3 (↓2)" in page.locator(".query", has_text="câu hỏi 1").inner_text()
    page.locator('button[data-filter="all"]').click()
    page.locator("select.sort").select_option("hurt")
    assert visible_text() == ["câu hỏi 1", "câu hỏi 2", "câu hỏi 0"]
    page.locator("select.sort").select_option("helped")
    assert visible_text() == ["câu hỏi 0", "câu hỏi 2", "câu hỏi 1"]
    assert page.locator("td.rel").count() == 6  # Each query's relevant document, in both columns.
