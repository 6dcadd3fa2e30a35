"""main.py's report.html: the verdict, the metric tables and charts, and every query before and after reranking.

One self-contained file (styles, script and charts inside, nothing fetched), readable offline. It opens on
the verdict (the run's dev record and main.py's own paired statements, each following its interval) and
the in-sample notes; every table has a heading and a one-line key, and a file whose queries the run
trained on is marked in-sample on each. For each query it shows the first stage's top k beside each
reranker's top k, marks the relevant documents, gives each relevant document's rank before and after,
and says whether reranking helped or hurt the query, so the queries a reranker got wrong can be filtered
and sorted; the browser opens on the fine-tuned reranker. The tables read without script; the script only
filters and sorts.
"""

import base64
import html
from collections.abc import Sequence
from pathlib import Path

from reranker_kit.data.loading import Query
from reranker_kit.metrics import mrr_at_k
from reranker_kit.reports.tables import (
    COMPARISON_KEY,
    DIFFICULTY_KEY,
    METRICS_KEY,
    comparison_table,
    difficulty_table,
    in_sample_tags,
    labelled,
    metrics_table,
)

HTML_REPORT_FILE = "report.html"
FIRST_STAGE = "first_stage"
# The query browser opens on the first of these that was scored: what the run trained, then what it fused.
DEFAULT_RANKERS = ("fine_tuned", "fused_")
SNIPPET_CHARS = 80
STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ccc;padding:.2em .5em;vertical-align:top;font-size:.9em}th{background:#f2f2f2}
.metrics td{text-align:right}.query{border:1px solid #bbb;border-radius:6px;padding:.5em 1em;margin:.8em 0}
.rel{background:#d8f5d0;font-weight:bold}.helped{color:#176b00}.hurt{color:#b00020}.unchanged{color:#666}
.controls button.active{background:#333;color:#fff}td.selected:not(.rel),th.selected{background:#fff4d6}
li.selected{font-weight:bold}.doc{font-size:.85em}.key{color:#555;font-size:.85em;margin:.1em 0 .3em}
.in-sample{color:#8a4b00}#verdict{border:2px solid #444;border-radius:6px;padding:.3em 1em}
#verdict li.gain{color:#176b00}#verdict li.loss{color:#b00020}
img{max-width:100%;width:900px}
"""
SCRIPT = """
function apply(section){
  const ranker=section.querySelector('select.ranker').value, filter=section.dataset.filter||'all';
  const order=section.querySelector('select.sort').value, list=section.querySelector('.queries');
  const cards=[...list.querySelectorAll('.query')], counts={all:cards.length,helped:0,hurt:0,unchanged:0};
  for(const card of cards){
    const status=card.getAttribute('data-status-'+ranker); counts[status]+=1;
    card.hidden=filter!=='all'&&status!==filter;
    card.querySelectorAll('[data-ranker]').forEach(c=>c.classList.toggle('selected',c.dataset.ranker===ranker));
  }
  const delta=c=>parseFloat(c.getAttribute('data-delta-'+ranker));
  const key={file:c=>+c.dataset.order,hurt:c=>delta(c)*1e6+ +c.dataset.order,helped:c=>-delta(c)*1e6+ +c.dataset.order}[order];
  cards.sort((a,b)=>key(a)-key(b)).forEach(c=>list.appendChild(c));
  section.querySelectorAll('button[data-filter]').forEach(b=>{
    b.classList.toggle('active',b.dataset.filter===filter); b.querySelector('.count').textContent=counts[b.dataset.filter];});
  section.querySelector('.shown').textContent=cards.filter(c=>!c.hidden).length;
}
document.querySelectorAll('section.dataset').forEach(section=>{
  section.querySelectorAll('button[data-filter]').forEach(b=>b.addEventListener('click',()=>{
    section.dataset.filter=b.dataset.filter; apply(section);}));
  section.querySelectorAll('select').forEach(s=>s.addEventListener('change',()=>apply(section)));
  apply(section);
});
"""


def reciprocal_rank(ranking: Sequence[int], relevant: Sequence[int]) -> float:
    """1 / rank of the first relevant document in the ranking (all of it, not a cut-off); 0 if none."""
    return mrr_at_k(ranking, relevant, max(len(ranking), 1))


def query_change(first_stage: Sequence[int], reranked: Sequence[int], relevant: Sequence[int]) -> tuple[str, float]:
    """("helped" | "hurt" | "unchanged", change in reciprocal rank of the first relevant document)."""
    delta = reciprocal_rank(reranked, relevant) - reciprocal_rank(first_stage, relevant)
    return ("helped" if delta > 1e-12 else "hurt" if delta < -1e-12 else "unchanged"), delta


def rank_of(ranking: Sequence[int], doc_id: int) -> int | None:
    return ranking.index(doc_id) + 1 if doc_id in ranking else None


def render_html_report(report: dict, datasets: dict[str, list[Query]],
                       rankings: dict[tuple[str, str], dict[str, list[int]]], corpus: dict[int, str],
                       charts: dict[str, Path]) -> str:
    """report.html's page; `rankings` maps (ranker, dataset) to each query's full ranking, best first.

    `benchmark.report.write_report` writes it with the other report files, each atomically.
    """
    ks, labels, tags = report["k"], report.get("labels") or {}, in_sample_tags(report)
    sections = []
    for dataset, queries in datasets.items():
        rankers = [name for name, data in rankings if data == dataset]
        tables = [("Metrics", METRICS_KEY, labelled(metrics_table(report["runs"], dataset, ks), labels)),
                  ("By difficulty", DIFFICULTY_KEY, labelled(difficulty_table(report["by_difficulty"], dataset, ks),
                                                             labels))]
        if report.get("comparisons"):  # Paired differences with their intervals (reports written before: none).
            tables.append(("Paired differences (a − b)", COMPARISON_KEY,
                           comparison_table(report["comparisons"], dataset, labels)))
        tables_html = "".join(_table(title, key, table, tags.get(dataset)) for title, key, table in tables
                              if not table.empty)
        sections.append(_dataset_section(dataset, queries, rankers, rankings, corpus, max(ks), tables_html,
                                         charts.get(dataset), tags.get(dataset), labels))
    shown = sorted({doc_id for ranking in rankings.values() for ids in ranking.values() for doc_id in ids[:max(ks)]})
    page = ["<!DOCTYPE html>", '<html lang="vi"><head><meta charset="utf-8">',
            "<title>Reranking report</title>", f"<style>{STYLE}</style></head><body>",
            "<h1>Retrieve-then-rerank report</h1>", _verdict(report), _summary(report), *sections,
            _documents(shown, corpus), f"<script>{SCRIPT}</script></body></html>"]
    return "\n".join(page)


def _table(title: str, key: str, table, tag: str | None) -> str:
    """A table under its heading (with the file's in-sample tag) and its one-line key."""
    mark = f' <span class="in-sample">[{html.escape(tag)}]</span>' if tag else ""
    return (f"<h3>{html.escape(title)}{mark}</h3><p class=\"key\">{html.escape(key)}</p>"
            + table.to_html(float_format=lambda value: f"{value:.4f}", classes="metrics"))


def _verdict(report: dict) -> str:
    """The run's dev record, main.py's own statements and the in-sample notes, at the top of the page."""
    verdict = report.get("verdict") or {}
    lines = ([("run", verdict["run"])] if verdict.get("run") else []) + [
        ("file", statement) for statement in verdict.get("statements", [])]
    if not lines and not verdict.get("notes"):
        return ""
    items = "".join(f'<li class="{statement["finding"].replace(" ", "-")}" data-kind="{kind}">'
                    f"{html.escape(statement['text'])}</li>" for kind, statement in lines)
    notes = "".join(f'<p class="in-sample">{html.escape(note)}</p>' for note in verdict.get("notes", []))
    recommended = verdict.get("recommendation")
    advice = f'<p id="recommendation"><b>{html.escape(recommended["text"])}</b></p>' if recommended else ""
    return (f'<section id="verdict"><h2>Verdict</h2><p class="key">{html.escape(verdict["rule"])}; '
            f"{html.escape(verdict['metric'])} of each pair, the files with the fewest training queries first.</p>"
            f"<ul>{items}</ul>{advice}{notes}"
            "</section>")


def _summary(report: dict) -> str:
    labels = report.get("labels") or {}
    items = [("first stage", f"{report['retriever']}, top {report['top_n']} candidates reranked"),
             ("fine-tuned reranker", report.get("fine_tuned_reranker") or "none"),
             ("pretrained reranker", (report.get("pretrained_reranker") or "none")
              + (f" (shown as {labels['pretrained']})" if "pretrained" in labels else ""))]
    if report.get("fusion_weight") is not None:
        items.append(("fusion", f"{report['fusion_method']}, reranker weight {report['fusion_weight']:.1f}"))
    rows = "".join(f"<tr><th>{html.escape(name)}</th><td>{html.escape(str(value))}</td></tr>" for name, value in items)
    return (f"<h2>What was compared</h2><table>{rows}</table><p>Metrics are the club's, averaged over queries; a query "
            "whose relevant documents the first stage missed counts as 0. <b>Helped</b> / <b>hurt</b>: the first "
            "relevant document moved up / down the ranking compared with the first stage.</p>")


def default_ranker(rerankers: list[str]) -> int:
    """The query browser's first choice: the fine-tuned reranker, else the fused row, else the first scored."""
    for wanted in DEFAULT_RANKERS:
        for index, name in enumerate(rerankers):
            if name == wanted or (wanted.endswith("_") and name.startswith(wanted)):
                return index
    return 0


def _dataset_section(dataset: str, queries: list[Query], rankers: list[str], rankings: dict, corpus: dict[int, str],
                     k: int, metrics_html: str, chart: Path | None, tag: str | None = None,
                     labels: dict[str, str] | None = None) -> str:
    labels = labels or {}
    rerankers = [name for name in rankers if name != FIRST_STAGE]
    chosen = default_ranker(rerankers)
    options = "".join(f'<option value="{i}"{" selected" if i == chosen else ""}>{html.escape(labels.get(name, name))}'
                      "</option>" for i, name in enumerate(rerankers))
    buttons = "".join(f'<button data-filter="{name}">{name} (<span class="count"></span>)</button>'
                      for name in ("all", "helped", "hurt", "unchanged"))
    cards = "".join(_query_card(position, query, rerankers, rankings, dataset, corpus, k, labels)
                    for position, query in enumerate(queries))
    mark = f' <span class="in-sample">[{html.escape(tag)}]</span>' if tag else ""
    image = (f'<h3>Metrics by k{mark}</h3><p class="key">one panel per metric, one line per ranker: the mean over the '
             f'queries (y) at each cut-off k (x)</p><img alt="metrics by k for {html.escape(dataset)}" '
             f'src="data:image/png;base64,{base64.b64encode(chart.read_bytes()).decode("ascii")}">'
             if chart and chart.is_file() else "")
    controls = (f'<div class="controls">reranker <select class="ranker">{options}</select> {buttons} sort '
                '<select class="sort"><option value="file">file order</option><option value="hurt">most hurt first'
                '</option><option value="helped">most helped first</option></select> '
                '<span class="shown"></span> shown</div>' if rerankers else "<p>No reranker was compared.</p>")
    return (f'<section class="dataset" id="{html.escape(dataset)}" data-filter="all">'
            f"<h2>{html.escape(dataset)} ({len(queries)} queries){mark}</h2>{metrics_html}{image}"
            f"<h3>Queries: top {k} before and after reranking{mark}</h3>"
            '<p class="key">helped / hurt: the first relevant document moved up / down against the first stage, for '
            f"the reranker chosen here</p>{controls}"
            f'<div class="queries">{cards}</div></section>')


def _query_card(position: int, query: Query, rerankers: list[str], rankings: dict, dataset: str,
                corpus: dict[int, str], k: int, labels: dict[str, str]) -> str:
    first = rankings[(FIRST_STAGE, dataset)][query.qid]
    attributes, changes = [], []
    for index, name in enumerate(rerankers):
        reranked = rankings[(name, dataset)][query.qid]
        status, delta = query_change(first, reranked, query.relevant_ids)
        attributes.append(f'data-status-{index}="{status}" data-delta-{index}="{delta:.6f}"')
        moves = ", ".join(_move(doc_id, first, reranked) for doc_id in query.relevant_ids)
        changes.append(f'<li data-ranker="{index}"><span class="{status}">{status}</span> by '
                       f"{html.escape(labels.get(name, name))}: {moves}</li>")
    columns = [FIRST_STAGE, *rerankers]
    header = "".join(f'<th data-ranker="{columns.index(name) - 1}">{html.escape(labels.get(name, name))}</th>'
                     for name in columns)
    rows = "".join(
        f"<tr><td>{rank}</td>" + "".join(_document_cell(rankings[(name, dataset)][query.qid], rank, query.relevant_ids,
                                                        corpus, columns.index(name) - 1) for name in columns) + "</tr>"
        for rank in range(1, k + 1))
    difficulty = f", difficulty {html.escape(str(query.difficulty))}" if query.difficulty is not None else ""
    return (f'<div class="query" data-order="{position}" {" ".join(attributes)}>'
            f"<p><b>{html.escape(query.text)}</b><br><small>row {query.row}{difficulty}; relevant: "
            f"{', '.join(map(str, query.relevant_ids))}</small></p><ul>{''.join(changes)}</ul>"
            f"<table><tr><th>rank</th>{header}</tr>{rows}</table></div>")


def _move(doc_id: int, first: Sequence[int], reranked: Sequence[int]) -> str:
    before, after = rank_of(first, doc_id), rank_of(reranked, doc_id)
    if before is None:
        return f"doc {doc_id} not among the first stage's candidates"
    if after is None:  # Another first stage (the base encoder's hybrid) ranks its own list, which may lack it.
        return f"doc {doc_id} rank {before} → not in its top {len(reranked)} (↓)"
    change = before - after
    arrow = f"↑{change}" if change > 0 else f"↓{-change}" if change < 0 else "="
    return f"doc {doc_id} rank {before} → {after} ({arrow})"


def _document_cell(ranking: Sequence[int], rank: int, relevant: Sequence[int], corpus: dict[int, str],
                   ranker_index: int) -> str:
    if rank > len(ranking):
        return f'<td data-ranker="{ranker_index}"></td>'
    doc_id = ranking[rank - 1]
    text = corpus[doc_id]
    snippet = text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS].rstrip() + "…"
    marker = ' class="rel"' if doc_id in relevant else ""
    return (f'<td data-ranker="{ranker_index}"{marker}><a href="#doc-{doc_id}">{doc_id}</a> '
            f'<span class="doc">{html.escape(snippet)}</span></td>')


def _documents(doc_ids: list[int], corpus: dict[int, str]) -> str:
    rows = "".join(f'<tr id="doc-{doc_id}"><td>{doc_id}</td><td>{html.escape(corpus[doc_id])}</td></tr>'
                   for doc_id in doc_ids)
    return f"<h2>Documents shown above</h2><table><tr><th>STT</th><th>text</th></tr>{rows}</table>"
