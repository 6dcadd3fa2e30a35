"""The user's own first stage: ranked document ids per query, read from a JSONL or CSV file.

JSONL, one object per line:   {"query": "CLB tuyển khi nào ạ?", "doc_ids": [12, 5, 40], "scores": [0.83, 0.79, 0.61]}
CSV, a header and one row per query:   query,doc_ids,scores   with the lists written as "12, 5, 40".

`scores` is optional; without it a document's first-stage score is 1 / rank, which is all that fusion by
reciprocal ranks needs. Every problem is a `DataError` naming the file, the line (JSONL) or row (CSV, the
header is row 1) and the fix, before any model is loaded.
"""

import csv
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reranker_kit.basics.errors import DataError
from reranker_kit.basics.text import clean_unicode
from reranker_kit.data.loading import FIRST_DATA_ROW, Query, describe_ids, parse_ground_truth
from reranker_kit.data.splits import query_key
from reranker_kit.retrieval.candidates import Candidates

logger = logging.getLogger(__name__)

JSONL_EXAMPLE = '{"query": "CLB tuyển khi nào ạ?", "doc_ids": [12, 5, 40], "scores": [0.83, 0.79, 0.61]}'
CSV_COLUMNS = ("query", "doc_ids")


@dataclass(frozen=True)
class RankedList:
    """One query's ranked documents, best first, as the user's retriever returned them."""

    query: str
    doc_ids: tuple[int, ...]
    scores: tuple[float, ...] | None
    where: str  # "line 3" or "row 3": how messages point at it.


def read_candidates_file(path: str | Path, corpus: dict[int, str]) -> list[RankedList]:
    """Reads and checks a candidates file against the corpus: known ids, no empty or repeated lists.

    Raises:
        DataError: a missing or unreadable file, a malformed line, an empty list, an id the corpus lacks,
            a repeated id or query, scores that do not fit the list.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found. Check the path given with `candidates`.")
    if path.suffix.lower() not in (".jsonl", ".json", ".csv"):
        raise DataError(f"{path}: a candidates file must be JSONL (.jsonl, one object per line such as {JSONL_EXAMPLE}) "
                        "or CSV (.csv with columns query, doc_ids and optionally scores)")
    try:
        raw = _read_csv_rows(path) if path.suffix.lower() == ".csv" else _read_jsonl_rows(path)
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text. Save it again as UTF-8.") from None
    if not raw:
        raise DataError(f"{path}: the file holds no ranked lists. Write one line per query: {JSONL_EXAMPLE}")
    lists, first_seen = [], {}
    for where, record in raw:
        ranked = _ranked_list(path, where, record, corpus)
        key = query_key(ranked.query)
        if key in first_seen:
            raise DataError(f"{path}, {where}: the query {ranked.query!r} repeats {first_seen[key]}. Keep one ranked "
                            "list per query.")
        first_seen[key] = where
        lists.append(ranked)
    return lists


def _read_jsonl_rows(path: Path) -> list[tuple[str, dict]]:
    rows = []
    with open(path, encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as problem:
                raise DataError(f"{path}, line {number}: not valid JSON ({problem.msg}). Write one object per line, "
                                f"such as {JSONL_EXAMPLE}") from None
            if not isinstance(record, dict):
                raise DataError(f"{path}, line {number}: expected a JSON object such as {JSONL_EXAMPLE}, got "
                                f"{type(record).__name__}")
            rows.append((f"line {number}", record))
    return rows


def _read_csv_rows(path: Path) -> list[tuple[str, dict]]:
    with open(path, encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle)
        header = [clean_unicode(name or "").strip() for name in reader.fieldnames or []]
        missing = [column for column in CSV_COLUMNS if column not in header]
        if missing:
            raise DataError(f"{path}: missing column(s) {missing}; found {header}. A candidates CSV has columns query, "
                            "doc_ids (ranked ids, best first, such as \"12, 5, 40\") and optionally scores.")
        reader.fieldnames = header
        return [(f"row {FIRST_DATA_ROW + offset}", record) for offset, record in enumerate(reader)]


def _ranked_list(path: Path, where: str, record: dict, corpus: dict[int, str]) -> RankedList:
    query = clean_unicode(str(record.get("query") or "")).strip()
    if not query:
        raise DataError(f"{path}, {where}: 'query' is missing or empty. Give the query text exactly as in the "
                        "evaluated query file.")
    doc_ids = _ids(path, where, record.get("doc_ids"))
    unknown = [doc_id for doc_id in doc_ids if doc_id not in corpus]
    if unknown:
        raise DataError(f"{path}, {where}: document {', '.join(map(str, unknown))} is not an STT of the corpus "
                        f"({describe_ids(corpus)}). Fix the id, or rank the "
                        "corpus the kit evaluates (`corpus_csv`).")
    repeated = sorted({doc_id for doc_id in doc_ids if doc_ids.count(doc_id) > 1})
    if repeated:
        raise DataError(f"{path}, {where}: document {', '.join(map(str, repeated))} appears more than once in the "
                        "list. List each document once, best first.")
    scores = _scores(path, where, record.get("scores"), len(doc_ids))
    return RankedList(query, doc_ids, scores, where)


def _ids(path: Path, where: str, cell) -> tuple[int, ...]:
    if cell is None or cell == "" or cell == []:
        raise DataError(f"{path}, {where}: 'doc_ids' is missing or empty. Give the query's ranked document ids, best "
                        "first (such as [12, 5, 40]), or drop the line.")
    try:
        if isinstance(cell, list):
            ids = [doc_id for item in cell for doc_id in parse_ground_truth(item)]
            if len(ids) != len(cell):
                raise ValueError(f"{cell!r} holds an item that is not one id")
            return tuple(ids)
        # Item by item: parse_ground_truth on the whole cell would drop a repeated id silently.
        return tuple(doc_id for piece in str(cell).split(",") for doc_id in parse_ground_truth(piece.strip()))
    except ValueError as problem:
        raise DataError(f"{path}, {where}: cannot read 'doc_ids' ({problem}). Write whole document ids, best first: "
                        "[12, 5, 40] in JSONL, \"12, 5, 40\" in CSV.") from None


def _scores(path: Path, where: str, cell, count: int) -> tuple[float, ...] | None:
    if cell is None or cell == "":
        return None
    try:
        values = [float(value) for value in (cell if isinstance(cell, list) else str(cell).split(","))]
    except (TypeError, ValueError):
        raise DataError(f"{path}, {where}: 'scores' must be numbers, one per document id, got {cell!r}") from None
    if len(values) != count or not all(math.isfinite(value) for value in values):
        raise DataError(f"{path}, {where}: 'scores' holds {len(values)} value(s) for {count} document id(s), or a value "
                        "that is not a finite number. Give one score per id, or leave scores out.")
    if any(later > earlier for earlier, later in zip(values, values[1:])):
        raise DataError(f"{path}, {where}: 'scores' increase along the list, but doc_ids are best first. If they are "
                        "distances (lower is better), negate them or leave scores out.")
    return tuple(values)


def first_stage_scores(ranked: RankedList, top_n: int) -> np.ndarray:
    """The list's scores, or 1 / rank when the file gives none, for its first `top_n` documents."""
    if ranked.scores is not None:
        return np.asarray(ranked.scores[:top_n], dtype=np.float32)
    return 1.0 / np.arange(1, min(top_n, len(ranked.doc_ids)) + 1, dtype=np.float32)


def candidates_from_file(lists: Sequence[RankedList], datasets: dict[str, list[Query]], path: str | Path, top_n: int
                         ) -> dict[str, Candidates]:
    """Each evaluated file's candidates from the user's ranked lists (the first `top_n` of each).

    Every evaluated query needs a list and every list an evaluated query: a mismatch is a typo or the
    wrong file, and evaluating around it would report a different query set than the user thinks.
    """
    by_key = {query_key(ranked.query): ranked for ranked in lists}
    evaluated = {query_key(query.text) for queries in datasets.values() for query in queries}
    stray = [ranked for ranked in lists if query_key(ranked.query) not in evaluated]
    if stray:
        raise DataError(f"{path}, {stray[0].where}: the query {stray[0].query!r} is in none of the evaluated files "
                        f"({', '.join(datasets)}){f' (and {len(stray) - 1} more lines)' if len(stray) > 1 else ''}. "
                        "Fix its text, drop the line, or add its query file with `eval_xlsx`.")
    for queries in datasets.values():
        missing = [query for query in queries if query_key(query.text) not in by_key]
        if missing:
            raise DataError(f"{missing[0].source}, row {missing[0].row}: the query {missing[0].text!r} has no ranked list "
                            f"in {path}{f' (nor have {len(missing) - 1} more)' if len(missing) > 1 else ''}. Add its "
                            "line, or evaluate only the files the candidates cover with `eval_xlsx`.")
    if any(len(ranked.doc_ids) > top_n for ranked in lists):
        logger.info("%s: reranking the first %d documents of each list (`top_n`)", path, top_n)
    return {name: Candidates(ids={query.qid: list(by_key[query_key(query.text)].doc_ids[:top_n]) for query in queries},
                             first_stage_scores={query.qid: first_stage_scores(by_key[query_key(query.text)], top_n)
                                                 for query in queries})
            for name, queries in datasets.items()}


class RankedListRetriever:
    """The file's ranked lists as a retriever, for mining and the dev candidates of a training run.

    A query with a list gets it, best first, padded with `fallback`'s ranking when shorter than k (padded
    rows then score by 1 / rank); any other query (one the file lacks, an answer or corpus sentence used
    as a training query) gets `fallback`'s ranking.
    """

    def __init__(self, lists: Sequence[RankedList], doc_ids: Sequence[int], fallback):
        self.lists = {query_key(ranked.query): ranked for ranked in lists}
        self.position = {doc_id: position for position, doc_id in enumerate(doc_ids)}
        self.fallback = fallback
        self.num_documents = fallback.num_documents

    def covers(self, queries: Sequence[Query]) -> int:
        return sum(query_key(query.text) in self.lists for query in queries)

    def top_k(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        positions, scores = self.fallback.top_k(queries, k)
        width = positions.shape[1]
        for row, query in enumerate(queries):
            ranked = self.lists.get(query_key(query))
            if ranked is None:
                continue
            own = [self.position[doc_id] for doc_id in ranked.doc_ids[:width]]
            listed = set(own)
            padding = [position for position in positions[row] if position not in listed][:width - len(own)]
            positions[row] = own + padding
            scores[row] = (first_stage_scores(ranked, width) if len(own) == width
                           else 1.0 / np.arange(1, width + 1, dtype=np.float32))
        return positions, scores
