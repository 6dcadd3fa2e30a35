"""Loading and validating the club's corpus CSV and query XLSX files.

All three scripts read their data through this module, so a file that breaks the schema fails the same
way everywhere: a `DataError` naming the file, the row (spreadsheet numbering: the header is row 1) and
the fix, before anything is trained or written.
"""

import csv
import logging
import math
import numbers
import os
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from reranker_kit.basics.errors import DataError
from reranker_kit.basics.text import clean_unicode, normalize_text

logger = logging.getLogger(__name__)

CORPUS_ID_COLUMN = "STT"
CORPUS_TEXT_COLUMN = "Văn bản"
QUERY_COLUMN = "Query"
GROUND_TRUTH_COLUMN = "Ground truth document"
ANSWER_COLUMN = "Ground truth answer"
DIFFICULTY_COLUMN = "Difficulty"
CORPUS_COLUMNS = (CORPUS_ID_COLUMN, CORPUS_TEXT_COLUMN)
QUERY_COLUMNS = (QUERY_COLUMN, GROUND_TRUTH_COLUMN, ANSWER_COLUMN, DIFFICULTY_COLUMN)
# The first data row of a spreadsheet or CSV is row 2: row 1 holds the header.
FIRST_DATA_ROW = 2
ID_PATTERN = re.compile(r"[0-9]+(?:\.0*)?")
# How far down a sheet the header is looked for, under title rows.
HEADER_SEARCH_ROWS = 10
# Columns whose merged cells mean one value for every row under them: a level label.
FILL_DOWN_COLUMNS = (DIFFICULTY_COLUMN,)
# Separators a spreadsheet program may save a "CSV" with, depending on the locale.
CSV_SEPARATORS = (",", ";", "\t")
# The workbook formats openpyxl opens; it refuses any other name with a traceback of its own.
XLSX_SUFFIXES = (".xlsx", ".xlsm", ".xltx", ".xltm")
# An OLE compound file: an Excel 97-2003 workbook, or an .xlsx that a password encrypted into one.
OLE_SIGNATURE = bytes.fromhex("d0cf11e0a1b11ae1")
# The stream an encrypted Office file keeps its workbook in; OLE names its streams in UTF-16.
ENCRYPTED_STREAM = "EncryptedPackage".encode("utf-16-le")


@dataclass(frozen=True)
class Query:
    """One labelled query of a query file."""

    qid: str
    text: str
    relevant_ids: tuple[int, ...]
    answer: str
    # A level label for the per-level tables: a whole number (1 to 4 in the club's files) or a short text.
    difficulty: int | str | None
    source: str
    row: int


def parse_ground_truth(cell: object) -> tuple[int, ...]:
    """Parses a `Ground truth document` cell: `5`, `5.0`, `"5"`, `"15, 37"` or `"15,37"`.

    Returns:
        The document ids in the order written, without repeats.

    Raises:
        ValueError: the cell is empty or holds something other than whole document ids.
    """
    if isinstance(cell, bool) or cell is None:
        raise ValueError(f"expected document ids, got {cell!r}")
    if isinstance(cell, numbers.Number):
        return (_whole_number(cell),)
    pieces = [piece.strip() for piece in str(cell).split(",")]
    if not any(pieces):
        raise ValueError("the cell is empty")
    ids = []
    for piece in pieces:
        if not piece:
            raise ValueError(f"{cell!r} has an empty item between commas")
        # ASCII digits only: float() would also read "1_5" as 15, "1e1" as 10 and full-width "１５" as 15.
        if not ID_PATTERN.fullmatch(piece):
            raise ValueError(f"{piece!r} is not a document id (write whole numbers in ASCII digits, such as 15)")
        ids.append(_whole_number(float(piece)))
    return tuple(dict.fromkeys(ids))


def _whole_number(value: numbers.Number) -> int:
    if isinstance(value, float) and math.isnan(value):
        raise ValueError("the cell is empty")  # Blank spreadsheet cells arrive as NaN.
    if isinstance(value, float) and math.isinf(value):
        raise ValueError(f"{value!r} is not a document id")
    if value != int(value) or value < 1:
        raise ValueError(f"{value!r} is not a positive whole document id")
    return int(value)


def load_corpus(path: str | Path) -> dict[int, str]:
    """Reads the corpus CSV (`STT`, `Văn bản`) into {document id: text}, in file order.

    Raises:
        DataError: missing or unreadable file, missing column, empty corpus, an `STT` that is not a
            positive integer or is repeated, an empty document.
    """
    path = Path(path)
    frame = _read_csv(path, CORPUS_COLUMNS)
    if frame.empty:
        raise DataError(f"{path}: the corpus has no documents. Add rows with columns {list(CORPUS_COLUMNS)}.")
    documents: dict[int, str] = {}
    first_row_of: dict[int, int] = {}
    for offset, (raw_id, raw_text) in enumerate(zip(frame[CORPUS_ID_COLUMN], frame[CORPUS_TEXT_COLUMN])):
        row = FIRST_DATA_ROW + offset
        try:
            (doc_id,) = parse_ground_truth(raw_id)
        except ValueError:
            raise DataError(
                f"{path}, row {row}: {CORPUS_ID_COLUMN} is {raw_id!r}; it must be one positive integer "
                "document id."
            ) from None
        if doc_id in documents:
            raise DataError(
                f"{path}, row {row}: {CORPUS_ID_COLUMN} {doc_id} repeats row {first_row_of[doc_id]}. "
                f"Give every document its own {CORPUS_ID_COLUMN}."
            )
        text = _clean_text(raw_text)
        if not text:
            raise DataError(
                f"{path}, row {row}: document {doc_id} has an empty '{CORPUS_TEXT_COLUMN}'. "
                "Fill in its text or delete the row."
            )
        documents[doc_id] = text
        first_row_of[doc_id] = row
    _warn_about_same_texts(documents, first_row_of, path)
    return documents


def text_key(text: str) -> str:
    """What makes two texts the same: equal after normalisation, case and spacing aside.

    Repeated queries (`splits.merge_duplicate_queries`) and copied documents are found with it.
    """
    return " ".join(normalize_text(text).casefold().split())


def same_text_groups(corpus: dict[int, str]) -> list[tuple[int, ...]]:
    """The ids of documents that share one text (`text_key`), a tuple per text held by two or more."""
    ids_of: dict[str, list[int]] = {}
    for doc_id, text in corpus.items():
        ids_of.setdefault(text_key(text), []).append(doc_id)
    return [tuple(ids) for ids in ids_of.values() if len(ids) > 1]


def _warn_about_same_texts(corpus: dict[int, str], row_of: dict[int, int], path: Path) -> None:
    """One warning for every set of copies: a copy ties with its twin and counts as a miss when it ranks first."""
    groups = same_text_groups(corpus)
    if not groups:
        return
    listed = "; ".join(f"{CORPUS_ID_COLUMN} {', '.join(map(str, ids))} (rows {', '.join(str(row_of[i]) for i in ids)})"
                       for ids in groups)
    logger.warning("%s: %d text(s) appear more than once: %s. A copy ties with the document it repeats, and a query "
                   "labelled with one counts the other as a miss; mining never makes a copy a negative of its twin. "
                   "Keep one document of each and point 'Ground truth document' at it", path, len(groups), listed)


def load_queries(path: str | Path, corpus: dict[int, str], sheet: str | None = None) -> list[Query]:
    """Reads a query XLSX in the club's schema and checks its ground truth against the corpus.

    `sheet` names the sheet to read where several have the columns (`--sheet`); a workbook without a
    sheet of that name is read from its only sheet with the columns.

    Raises:
        DataError: missing, unreadable, encrypted or non-.xlsx file, missing column, several sheets with
            the columns and no `sheet`, no rows, an empty query, an unparsable or unknown ground-truth id.
            Difficulty never refuses a file: it is only a label.
    """
    path = Path(path)
    frame, first_data_row = _read_xlsx(path, QUERY_COLUMNS, sheet)
    if frame.empty:
        raise DataError(f"{path}: the file has a header but no queries. Add rows under {list(QUERY_COLUMNS)}.")
    queries = []
    for offset, record in enumerate(frame.to_dict("records")):
        row = first_data_row + offset
        text = _clean_text(record[QUERY_COLUMN])
        if not text:
            raise DataError(f"{path}, row {row}: '{QUERY_COLUMN}' is empty. Write the query or delete the row.")
        try:
            relevant_ids = parse_ground_truth(record[GROUND_TRUTH_COLUMN])
        except ValueError as problem:
            raise DataError(
                f"{path}, row {row}: cannot read '{GROUND_TRUTH_COLUMN}' ({problem}). Write one id (5) or "
                "several separated by commas (15, 37)."
            ) from None
        unknown = [doc_id for doc_id in relevant_ids if doc_id not in corpus]
        if unknown:
            raise DataError(
                f"{path}, row {row}: ground-truth document {', '.join(map(str, unknown))} is not an "
                f"{CORPUS_ID_COLUMN} of the corpus ({describe_ids(corpus)}). Fix the id or add the document "
                "to the corpus CSV."
            )
        queries.append(
            Query(
                qid=f"{path.stem}:{row}",
                text=text,
                relevant_ids=relevant_ids,
                answer=_clean_text(record[ANSWER_COLUMN]),
                difficulty=_parse_difficulty(record[DIFFICULTY_COLUMN]),
                source=path.name,
                row=row,
            )
        )
    return queries


def _parse_difficulty(cell: object) -> int | str | None:
    """A whole number stays a number (`2`, `2.0`, `"3"`); anything else is kept as a text label."""
    text = _clean_text(cell)
    if not text:
        return None  # Difficulty only groups the report; a query without one still counts.
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if math.isfinite(number) and number == int(number) else text


def difficulty_order(level: int | str) -> tuple:
    """Sorts levels as people read them: numbers ascending, then text labels alphabetically."""
    return (0, level, "") if isinstance(level, int) else (1, 0, level)


def display_names(paths: list[str | Path]) -> list[str]:
    """A name per query file for reports: its stem, with parent folders added until no two files share one.

    `a/queries.xlsx` and `b/queries.xlsx` become `a/queries` and `b/queries`, so neither overwrites the
    other's results; the same file given twice is numbered (`queries (2)`).
    """
    parts = [Path(os.path.abspath(path)).with_suffix("").parts[1:] for path in paths]
    depth = [1] * len(parts)
    while True:
        names = ["/".join(file_parts[-level:]) for file_parts, level in zip(parts, depth)]
        deeper = [i for i, name in enumerate(names) if depth[i] < len(parts[i]) and any(
            other == name and parts[j] != parts[i] for j, other in enumerate(names))]
        if not deeper:
            break
        for i in deeper:
            depth[i] += 1
    return [name if names[:i].count(name) == 0 else f"{name} ({names[:i].count(name) + 1})"
            for i, name in enumerate(names)]


def describe_ids(corpus: dict[int, str]) -> str:
    low, high = min(corpus), max(corpus)
    if len(corpus) == high - low + 1:
        return f"ids {low}..{high}"
    return f"{len(corpus)} documents with ids between {low} and {high}, not all numbers in between"


def _require_file(path: Path, flag: str) -> None:
    if not path.is_file():
        raise DataError(f"{path}: file not found. Check the path given with {flag}.")


def _normalised_header(frame: pd.DataFrame) -> pd.DataFrame:
    # NFC and no zero-width characters: a header typed in decomposed Unicode looks the same but differs.
    frame.columns = [clean_unicode(str(column)).strip() for column in frame.columns]
    return frame


def _read_csv(path: Path, expected: tuple[str, ...]) -> pd.DataFrame:
    """The corpus CSV; a ;- or tab-separated export is read too, with a warning."""
    _require_file(path, "`corpus_csv`")
    try:
        # utf-8-sig: Excel writes a byte-order mark in front of CSV exports.
        with open(path, encoding="utf-8-sig") as handle:
            header = clean_unicode(handle.readline())
        separator = next((sep for sep in CSV_SEPARATORS if set(expected) <= {c.strip() for c in header.split(sep)}), ",")
        if separator != ",":
            logger.warning("%s: reading it as %r-separated (its header is); save it with commas to silence this",
                           path, separator)
        names = [name.strip() for name in next(csv.reader([header], delimiter=separator), [])]
        _refuse_repeated_columns(names, expected, path, lambda i: str(i + 1))
        frame = pd.read_csv(path, dtype=object, keep_default_na=False, encoding="utf-8-sig", sep=separator)
    except UnicodeDecodeError:
        raise DataError(f"{path}: not readable as a UTF-8 CSV file: it is not UTF-8 text. Save it again as "
                        "'CSV UTF-8' (Excel) or UTF-8 (other editors).") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError, OSError) as problem:
        reason = " ".join(str(problem).split())  # One line: pandas messages carry line breaks.
        raise DataError(f"{path}: not readable as a UTF-8 CSV file ({type(problem).__name__}: {reason}). Save it "
                        f"again as a comma-separated UTF-8 CSV with columns {list(expected)}.") from None
    return _checked_columns(_normalised_header(frame), expected, path)


def _read_xlsx(path: Path, expected: tuple[str, ...], sheet: str | None = None) -> tuple[pd.DataFrame, int]:
    """(the sheet with the expected columns, its first data row); the sheet is checked cell by cell first.

    openpyxl shows what pandas hides: the header row under title rows, repeated column names, merged
    cells and formulas without a saved value (all of which pandas reads as other columns or blank cells).
    """
    _require_file(path, "the query-file flag")
    _refuse_other_formats(path)
    try:
        from openpyxl import load_workbook
        from openpyxl.utils.exceptions import InvalidFileException

        workbook = load_workbook(path, data_only=True)  # Saved values; merged ranges need a full (not read-only) load.
        sheet_name, header_row = _find_header(workbook, expected, path, sheet)
        worksheet = workbook[sheet_name]
        columns = _expected_positions(worksheet, header_row, expected, path)
        filled = _merged_cells(worksheet, header_row, columns, path)
        _refuse_formulas_without_values(load_workbook(path, read_only=True)[sheet_name], worksheet, header_row,
                                        columns, path)
        # keep_default_na=False: a cell holding the text "nan" or "NA" is text, not a blank.
        frame = pd.read_excel(path, dtype=object, engine="openpyxl", sheet_name=sheet_name, header=header_row - 1,
                              keep_default_na=False, na_values=[""])
    except (zipfile.BadZipFile, InvalidFileException, ValueError, KeyError, OSError) as problem:
        reason = " ".join(str(problem).split())
        raise DataError(f"{path}: not readable as an .xlsx workbook ({type(problem).__name__}: {reason}). "
                        "Save it again as an .xlsx workbook.") from None
    frame = _normalised_header(frame)
    for (row, column), value in filled.items():
        if 0 <= row - header_row - 1 < len(frame):
            frame.loc[frame.index[row - header_row - 1], column] = value
    return frame, header_row + 1


def _refuse_other_formats(path: Path) -> None:
    """An encrypted workbook, an Excel 97-2003 one, a CSV or a file without an extension, each named as such.

    openpyxl decides by the file name and would stop with its own traceback; an encrypted .xlsx is not a
    zip archive at all but an OLE file like the old .xls format, so the bytes tell those two apart.
    """
    save_as = "Open it in Excel or LibreOffice and save it as an Excel Workbook (.xlsx), then give that file."
    try:
        with open(path, "rb") as handle:
            is_ole = handle.read(len(OLE_SIGNATURE)) == OLE_SIGNATURE
        encrypted = is_ole and ENCRYPTED_STREAM in path.read_bytes()
    except OSError as problem:
        raise DataError(f"{path}: cannot be read ({problem.strerror or problem}). Check the file's permissions.") from None
    if encrypted:
        raise DataError(f"{path}: the workbook is password-protected (encrypted), so its cells cannot be read. Open it, "
                        "remove the password (Excel: File > Info > Protect Workbook > Encrypt with Password, clear it) "
                        "and save it again as .xlsx.")
    if is_ole:
        raise DataError(f"{path}: this is an Excel 97-2003 workbook (.xls format), which the kit does not read. {save_as}")
    suffix = path.suffix.lower()
    if suffix in XLSX_SUFFIXES:
        return
    if zipfile.is_zipfile(path):
        raise DataError(f"{path}: holds an .xlsx workbook, but its name does not end in .xlsx. Rename it to "
                        f"{path.with_suffix('.xlsx').name}.")
    kind = {"": "a file without an extension", ".xls": "an Excel 97-2003 workbook (.xls)",
            ".csv": "a CSV file"}.get(suffix, f"a {suffix} file")
    raise DataError(f"{path}: query files are .xlsx workbooks and this is {kind}. {save_as}")


def _header_cells(sheet, row: int) -> list[str]:
    cells = next(sheet.iter_rows(min_row=row, max_row=row, values_only=True), ())
    return ["" if value is None else clean_unicode(str(value)).strip() for value in cells]


def _find_header(workbook, expected: tuple[str, ...], path: Path, sheet: str | None = None) -> tuple[str, int]:
    """(sheet, header row): the sheet with all expected columns in one of its first rows.

    Several such sheets (a draft and a final copy) are refused unless `sheet` names one. Title rows above
    the header are skipped with a warning; a workbook without the columns is refused, naming the row that
    holds some of them when one does.
    """
    found = {}  # sheet -> (row, names present), for the best row of each sheet
    for worksheet in workbook.worksheets:
        rows = {row: set(_header_cells(worksheet, row)) & set(expected) for row in range(1, HEADER_SEARCH_ROWS + 1)}
        best = max(rows, key=lambda row: (len(rows[row]), -row))
        found[worksheet.title] = best, rows[best]
    complete = [name for name, (_, present) in found.items() if present == set(expected)]
    chosen = _chosen_sheet(complete, found, expected, path, sheet)
    if chosen is not None:
        best = found[chosen][0]
        if chosen != workbook.worksheets[0].title and len(complete) == 1:
            logger.warning("%s: the first sheet %r lacks the columns %s; reading sheet %r, which has them", path,
                           workbook.worksheets[0].title, list(expected), chosen)
        elif len(found) > 1:
            logger.info("%s: reading sheet %r of %s", path, chosen, list(found))
        if best > 1:
            logger.warning("%s: sheet %r has its header on row %d (the rows above look like titles); reading "
                           "from there, so row numbers below are the sheet's own", path, chosen, best)
        return chosen, best
    first = workbook.worksheets[0].title
    row, present = found[first]
    missing = [column for column in expected if column not in present]
    if present and row > 1:
        raise DataError(f"{path}: missing column(s) {missing}: row {row} of sheet {first!r} holds "
                        f"{[column for column in expected if column in present]} but not {missing}. Add them to that "
                        f"header row; expected columns {list(expected)}.")
    where = f" (no sheet of {list(found)} has them all)" if len(found) > 1 else ""
    header = [name for name in _header_cells(workbook[first], 1) if name]
    raise DataError(f"{path}: missing column(s) {missing}{where}. Expected columns {list(expected)}; found {header}.")


def _chosen_sheet(complete: list[str], found: dict, expected: tuple[str, ...], path: Path, sheet: str | None
                  ) -> str | None:
    """The sheet to read among those with every column (`complete`); None when there is none."""
    if sheet is not None and sheet in found:
        if sheet not in complete:
            missing = [column for column in expected if column not in found[sheet][1]]
            others = f"; sheets with them all: {complete}" if complete else ""
            raise DataError(f"{path}: sheet {sheet!r} (`sheet`) lacks the column(s) {missing}{others}. Give `sheet` "
                            "the sheet that holds the queries.")
        return sheet
    if len(complete) > 1:
        named = f"has no sheet {sheet!r} (`sheet`) and " if sheet is not None else ""
        raise DataError(f"{path}: {named}sheets {complete} all have the columns {list(expected)}, so which holds the "
                        "queries is unclear. Pass `sheet` with one of those names, or delete the sheets you do not "
                        "mean (an old draft).")
    if sheet is not None and complete:
        logger.info("%s: no sheet %r (`sheet`); reading %r, its only sheet with the columns", path, sheet, complete[0])
    return complete[0] if complete else None


def _expected_positions(sheet, header_row: int, expected: tuple[str, ...], path: Path) -> dict[str, int]:
    """{expected column: its 1-based column index}; a column named twice is refused with both letters."""
    from openpyxl.utils import get_column_letter

    names = _header_cells(sheet, header_row)
    _refuse_repeated_columns(names, expected, path, lambda i: get_column_letter(i + 1), f" of sheet {sheet.title!r}")
    return {column: names.index(column) + 1 for column in expected}


def _refuse_repeated_columns(names: list[str], expected: tuple[str, ...], path: Path, position: Callable[[int], str],
                             where: str = "") -> None:
    for column in expected:
        positions = [position(i) for i, name in enumerate(names) if name == column]
        if len(positions) > 1:
            raise DataError(f"{path}: column '{column}' appears twice in the header (columns "
                            f"{' and '.join(positions)}{where}); delete or rename one, so the kit reads the one you "
                            "mean instead of the first.")


def _merged_cells(sheet, header_row: int, columns: dict[str, int], path: Path) -> dict[tuple[int, str], object]:
    """{(row, column): value} to fill in for merged Difficulty cells; merged cells elsewhere are refused.

    A merged Difficulty reads as one level over its rows, so each row gets it (with a warning); merged
    queries, ground truth or answers would give one row the value and the others a blank.
    """
    filled = {}
    for merged in sheet.merged_cells.ranges:
        first_row = max(merged.min_row, header_row + 1)
        hit = [name for name, index in columns.items() if merged.min_col <= index <= merged.max_col]
        if merged.max_row <= header_row or not hit:
            continue  # Titles above the header, or columns the kit does not read.
        rows = f"rows {first_row}-{merged.max_row}" if merged.max_row > first_row else f"row {first_row}"
        if hit != list(FILL_DOWN_COLUMNS) or merged.min_col != merged.max_col:
            raise DataError(f"{path}: {rows} of {', '.join(map(repr, hit))} are merged ({merged.coord}); unmerge the "
                            "cells and fill each row with its own value.")
        value = sheet.cell(merged.min_row, merged.min_col).value
        logger.warning("%s: %s of '%s' are merged (%s); each row gets the merged value %r", path, rows, hit[0],
                       merged.coord, value)
        filled.update({(row, hit[0]): value for row in range(first_row, merged.max_row + 1)})
    return filled


def _refuse_formulas_without_values(formulas, values, header_row: int, columns: dict[str, int], path: Path) -> None:
    """A formula a script wrote (openpyxl, pandas) has no saved value until a spreadsheet program computes it."""
    for cells in formulas.iter_rows(min_row=header_row + 1):
        for name, index in columns.items():
            cell = cells[index - 1] if index <= len(cells) else None
            if cell is not None and cell.data_type == "f" and values.cell(cell.row, index).value is None:
                formula = cell.value if isinstance(cell.value, str) else getattr(cell.value, "text", cell.value)
                raise DataError(f"{path}, row {cell.row}: '{name}' holds the formula {formula} with no saved value "
                                "(the file was written by a program that does not compute formulas). Open and save "
                                "the file in Excel or LibreOffice so formulas get values.")


def _checked_columns(frame: pd.DataFrame, expected: tuple[str, ...], path: Path, sheets: list[str] | None = None
                     ) -> pd.DataFrame:
    missing = [column for column in expected if column not in frame.columns]
    if missing:
        where = f" (no sheet of {sheets} has them all)" if sheets and len(sheets) > 1 else ""
        raise DataError(f"{path}: missing column(s) {missing}{where}. Expected columns {list(expected)}; found "
                        f"{list(frame.columns)}.")
    return frame


def _clean_text(cell: object) -> str:
    """The cell as text in one Unicode form, without zero-width characters or surrounding space."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return ""
    return clean_unicode(str(cell)).strip()
