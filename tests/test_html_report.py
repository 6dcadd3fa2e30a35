"""main.py's report.html: written beside metrics.csv, self-contained, and working in a real browser (Chromium).

The evaluation here is of a run whose dev_metrics.json records the issue #34 case: "gain" on a trained-minus-base
interval that crosses zero. The console, metrics.json and the page must say "within noise", mark the run's
training file in-sample on every table, and open the query browser on the fine-tuned reranker.
"""

import html
import json
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
# The dev interval of issue #34: +0.178 on 19 queries, [-0.037, +0.392]; the run wrote "verdict: gain" beside it.
ISSUE_TRAINED_VS_BASE = {"n_queries": 19, "mean_a": 0.61, "mean_b": 0.43, "mean_difference": 0.178,
                         "standard_error": 0.1, "ci_low": -0.037, "ci_high": 0.392, "p_value": 0.11, "significant": False}
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


def test_a_row_whose_own_list_lacks_a_relevant_document_is_rendered():
    """The quick start's case: the base encoder's hybrid ranks its own candidates, so a document the first stage
    found may be missing from that row; the page says so instead of failing to render."""
    corpus = {doc_id: f"tài liệu số {doc_id}" for doc_id in range(1, 6)}
    queries = [Query(qid="q0", text="câu hỏi", relevant_ids=(3,), answer="", difficulty=1, source="t.xlsx", row=2)]
    rankings = {("first_stage", "test"): {"q0": [1, 2, 3]}, ("hybrid_base", "test"): {"q0": [4, 5, 1]}}
    report = {"k": [3], "retriever": "hybrid", "top_n": 3, "fine_tuned_reranker": None, "pretrained_reranker": None,
              "fusion_weight": None, "by_difficulty": [],
              "runs": [{"name": name, "dataset": "test", "queries": 1, "difficulty": None,
                        "metrics": {"hit@3": 1.0, "mrr@3": 0.3}} for name in ("first_stage", "hybrid_base")]}
    page = render_html_report(report, {"test": queries}, rankings, corpus, charts={})
    assert "doc 3 rank 3 → not in its top 3 (↓)" in page and 'data-status-0="hurt"' in page


@pytest.fixture(scope="module")
def main_report(small_data, trained_run, tmp_path_factory):
    run_dir, _ = trained_run
    workdir = tmp_path_factory.mktemp("html")
    runs_root = workdir / "outputs"
    copied = shutil.copytree(run_dir, runs_root / run_dir.name)
    dev = json.loads((copied / "dev_metrics.json").read_text(encoding="utf-8"))
    dev.update(verdict="gain", saved_weights="fine-tuned", trained_vs_base=ISSUE_TRAINED_VS_BASE)
    (copied / "dev_metrics.json").write_text(json.dumps(dev), encoding="utf-8")
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


def test_main_reads_the_runs_verdict_by_its_interval(main_report):
    """The run recorded "gain" on an interval that crosses zero: main.py says what was kept and that it is noise."""
    report_dir, result = main_report
    assert "verdict gain" not in result.stderr and "verdict: gain" not in result.stderr
    assert "verdict within noise: the run kept the fine-tuned weights; trained - base dev mrr@5 +0.178 [-0.037, " \
           "+0.392] on its 19 dev queries (the interval covers 0: not a measured gain)" in result.stderr
    verdict_block = result.stdout[result.stdout.index("=== verdict:"):]
    assert "verdict within noise: the run kept the fine-tuned weights" in verdict_block
    report = json.loads((report_dir / "metrics.json").read_text(encoding="utf-8"))
    assert report["verdict"]["run"]["verdict"] == report["verdict"]["run"]["finding"] == "within noise"
    for statement in report["verdict"]["statements"]:  # main.py's own: "gain" only above an interval excluding 0.
        row = next(row for row in report["comparisons"] if (row["dataset"], row["a"], row["b"], row["metric"]) == (
            statement["dataset"], statement["a"], statement["b"], statement["metric"]))
        assert (statement["finding"] == "gain") == (row["significant"] and row["ci_low"] > 0)


def test_every_table_of_the_runs_training_file_is_marked_in_sample(main_report, trained_run):
    report_dir, result = main_report
    info = json.loads((trained_run[0] / "training_info.json").read_text(encoding="utf-8"))
    report = json.loads((report_dir / "metrics.json").read_text(encoding="utf-8"))
    train = report["training_overlap"]["train"]
    assert train["in_sample"] and train["is_training_file"] and train["exact"]
    assert train["dev_queries"] > 0 and train["training_queries"] + train["dev_queries"] == train["queries"]
    # Rows, not distinct queries: a repeated query counts on each of its rows.
    assert train["training_queries"] >= info["data"]["train_queries"] and train["dev_queries"] >= info["data"][
        "dev_queries"]
    tag = f"[in-sample: the fine-tuned run trained on {train['training_queries']} of these {train['queries']} queries]"
    # Console: the metrics, difficulty and paired-difference tables of the training file, each with the tag.
    headings = re.findall(r"^=== (train[^=]*) ===\n(.*)$", result.stdout, re.MULTILINE)
    assert [title for title, _ in headings] == [f"train ({train['queries']} queries)", "train by difficulty",
                                                "train: paired differences (a - b)"]
    assert all(line == tag for _, line in headings)
    # JSON and CSV: every row of the file says how many of its queries were trained on.
    rows = [row for row in report["runs"] + report["by_difficulty"] if row["dataset"] == "train"]
    assert {row["training_queries"] for row in report["runs"] if row["dataset"] == "train"} == {
        train["training_queries"]}
    assert all(0 <= row["training_queries"] <= row["queries"] for row in rows)
    assert all(row["in_sample"] for row in report["comparisons"] if row["dataset"] == "train")
    assert "training_queries" in (report_dir / "metrics.csv").read_text(encoding="utf-8").splitlines()[0]
    page = (report_dir / "report.html").read_text(encoding="utf-8")
    assert page.count(html.escape(tag)) == 6  # The section, its three tables, the chart and the query list.


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
        "first_stage", "pretrained (untrained head)", "fine_tuned",  # The bundled base has no trained head.
        section.locator("select.ranker option").all_inner_texts()[-1]]
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


def test_the_page_opens_on_the_verdict_every_table_has_a_heading_and_a_key(main_report, browser):
    report_dir, _ = main_report
    page = browser.new_page()
    page.goto((report_dir / "report.html").as_uri())
    verdict = page.locator("#verdict")
    assert verdict.locator("h2").inner_text() == "Verdict"
    assert "gain only where the 95% paired interval excludes 0" in verdict.locator(".key").inner_text()
    assert "verdict within noise: the run kept the fine-tuned weights" in verdict.locator("li").first.inner_text()
    assert "train is the run's training file" in verdict.inner_text()
    # Every table of every file: a heading right above it and a one-line key between them.
    tables = page.locator("section.dataset table.metrics")
    assert tables.count() == 6  # Metrics, by difficulty and paired differences, for train and for test.
    pairs = tables.evaluate_all("""tables => tables.map(table => {
        const key = table.previousElementSibling, heading = key && key.previousElementSibling;
        return [heading && heading.tagName, heading && heading.innerText, key && key.className, key && key.innerText];
    })""")
    assert [(tag, key_class) for tag, _, key_class, _ in pairs] == [("H3", "key")] * 6
    differences = [(heading, key) for _, heading, _, key in pairs if heading.startswith("Paired differences")]
    assert len(differences) == 2
    for heading, key in differences:
        assert heading.startswith("Paired differences (a − b)")
        assert key.startswith("a - b: ranker a's mean minus ranker b's on the same queries")
        assert "* marks a difference significant at 0.05" in key
    train = page.locator("section.dataset", has=page.locator("h2", has_text="train ("))
    assert train.locator("h3 .in-sample").count() == 5 and train.locator("h2 .in-sample").count() == 1


def test_the_query_browser_opens_on_the_fine_tuned_reranker(main_report, browser):
    report_dir, _ = main_report
    page = browser.new_page()
    page.goto((report_dir / "report.html").as_uri())
    for section in page.locator("section.dataset").all():
        chosen = section.locator("select.ranker")
        assert chosen.evaluate("select => select.options[select.selectedIndex].text") == "fine_tuned"
        assert section.locator("li.selected").first.inner_text().split(" by ")[1].startswith("fine_tuned:")


def test_an_untrained_pretrained_row_is_labelled_so_on_the_page(browser, tmp_path):
    corpus = {doc_id: f"tài liệu số {doc_id}" for doc_id in range(1, 4)}
    queries = [Query(qid="q0", text="câu hỏi", relevant_ids=(2,), answer="", difficulty=1, source="t.xlsx", row=2)]
    rankings = {(name, "test"): {"q0": [1, 2, 3]} for name in ("first_stage", "pretrained", "fine_tuned")}
    report = {"k": [3], "retriever": "bm25", "top_n": 3, "fine_tuned_reranker": "run", "pretrained_reranker": "base",
              "fusion_weight": None, "by_difficulty": [], "labels": {"pretrained": "pretrained (untrained head)"},
              "runs": [{"name": name, "dataset": "test", "queries": 1, "difficulty": None,
                        "metrics": {"hit@3": 1.0, "mrr@3": 0.5}} for name in ("first_stage", "pretrained", "fine_tuned")]}
    path = tmp_path / "report.html"
    path.write_text(render_html_report(report, {"test": queries}, rankings, corpus, charts={}), encoding="utf-8")
    page = browser.new_page()
    page.goto(path.as_uri())
    assert page.locator("table.metrics thead th").all_inner_texts()[1:] == ["first_stage", "pretrained (untrained head)",
                                                                            "fine_tuned"]
    assert page.locator("select.ranker option").all_inner_texts() == ["pretrained (untrained head)", "fine_tuned"]
    assert page.locator("select.ranker").input_value() == "1"


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
