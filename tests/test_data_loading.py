"""Loading the club's files: accepted ground-truth formats and every bad input, in the loader and the CLIs."""

import pytest

from reranker_kit.basics.errors import DataError
from reranker_kit.data.loading import difficulty_order, load_corpus, load_queries, parse_ground_truth

from conftest import CORPUS_CSV, TEST_XLSX, TRAIN_XLSX, run_script, write_corpus, write_queries

GOOD_CORPUS = [(1, "CLB tuyển thành viên vào tháng 9."), (2, "Buổi sinh hoạt vào tối thứ Tư."),
               (3, "Phí thành viên là 100.000 đồng mỗi kỳ."), (15, "Team AI làm chatbot."), (37, "Team Web làm web.")]


def query_row(query="CLB tuyển khi nào ạ?", truth=1, answer="Tháng 9.", difficulty=1) -> dict:
    return {"Query": query, "Ground truth document": truth, "Ground truth answer": answer, "Difficulty": difficulty}


@pytest.mark.parametrize("cell, expected", [
    (5, (5,)), (5.0, (5,)), ("5", (5,)), ("5.0", (5,)), ("15, 37", (15, 37)), ("15,37", (15, 37)),
    ("71, 72, 74", (71, 72, 74)), (" 15 ,37 ", (15, 37)), ("15, 15, 37", (15, 37)),
])
def test_ground_truth_formats(cell, expected):
    assert parse_ground_truth(cell) == expected


@pytest.mark.parametrize("cell", ["", "  ", float("nan"), None, "abc", "15; 37", "15,,37", "5.5", 5.5, 0, -3, "1,", True])
def test_ground_truth_rejects(cell):
    with pytest.raises(ValueError):
        parse_ground_truth(cell)


def test_shipped_sample_loads():
    corpus = load_corpus(CORPUS_CSV)
    train = load_queries(TRAIN_XLSX, corpus)
    test = load_queries(TEST_XLSX, corpus)
    assert len(corpus) == 99 and list(corpus) == list(range(1, 100))
    assert len(train) == 100 and len(test) == 30
    # Like real club files, a few queries repeat inside the train file, so merging is exercised on the shipped
    # data; the test file is held out (a test query in the train file makes main.py warn, issue #34).
    assert len({query.text for query in train}) == 97
    assert not {query.text for query in train} & {query.text for query in test}
    for queries in (train, test):
        assert sum(len(query.relevant_ids) > 1 for query in queries) >= len(queries) / 3
        assert {query.difficulty for query in queries} == {1, 2, 3, 4}
    assert sum(len(text) > 1500 for text in corpus.values()) >= 3
    assert all(query.answer for query in train + test)


@pytest.mark.parametrize("cell, level", [(4, 4), (7, 7), ("2", 2), (3.0, 3), ("khó", "khó"), ("2.5", "2.5"),
                                         ("  dễ ", "dễ"), (None, None), ("", None)])
def test_difficulty_is_a_label_never_a_reason_to_refuse(tmp_path, cell, level):
    corpus = load_corpus(write_corpus(tmp_path / "c.csv", GOOD_CORPUS))
    (query,) = load_queries(write_queries(tmp_path / "q.xlsx", [query_row(difficulty=cell)]), corpus)
    assert query.difficulty == level


def test_difficulty_levels_sort_numbers_first_then_labels():
    assert sorted(["khó", 10, 2, "dễ", 1], key=difficulty_order) == [1, 2, 10, "dễ", "khó"]


def test_ground_truth_read_back_from_xlsx(tmp_path):
    corpus = load_corpus(write_corpus(tmp_path / "c.csv", GOOD_CORPUS))
    path = write_queries(tmp_path / "q.xlsx", [query_row(truth=3), query_row(truth=3.0), query_row(truth="15, 37"),
                                               query_row(truth="15,37"), query_row(truth="1")])
    assert [query.relevant_ids for query in load_queries(path, corpus)] == [(3,), (3,), (15, 37), (15, 37), (1,)]


def corpus_case(tmp_path, rows):
    return write_corpus(tmp_path / "corpus.csv", rows)


BAD_CORPORA = {
    "duplicated STT": ([(1, "a"), (2, "b"), (1, "c")], ["row 4", "STT 1 repeats row 2"]),
    "empty document": ([(1, "a"), (2, "   ")], ["row 3", "empty"]),
    "non-integer STT": ([(1, "a"), ("x", "b")], ["row 3", "'x'"]),
    "empty corpus": ([], ["no documents"]),
}


@pytest.mark.parametrize("case", list(BAD_CORPORA))
def test_bad_corpus(tmp_path, case):
    rows, fragments = BAD_CORPORA[case]
    path = corpus_case(tmp_path, rows)
    with pytest.raises(DataError) as error:
        load_corpus(path)
    assert str(path) in str(error.value)
    for fragment in fragments:
        assert fragment in str(error.value)


def test_corpus_missing_column_lists_expected_and_found(tmp_path):
    path = tmp_path / "corpus.csv"
    path.write_text("id,text\n1,a\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"missing column.*'Văn bản'.*found \['id', 'text'\]"):
        load_corpus(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_corpus(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="file not found"):
        load_queries(tmp_path / "nope.xlsx", {1: "a"})


def test_not_a_csv(tmp_path):
    path = tmp_path / "corpus.csv"
    path.write_bytes(b"\xff\xfe\x00\x81binary\x00garbage")
    with pytest.raises(DataError, match="not readable as a UTF-8 CSV"):
        load_corpus(path)


def test_not_an_xlsx(tmp_path):
    path = tmp_path / "queries.xlsx"
    path.write_text("Query,Ground truth document\nabc,1\n", encoding="utf-8")
    with pytest.raises(DataError, match="not readable as an .xlsx workbook"):
        load_queries(path, {1: "a"})


BAD_QUERIES = {
    "empty query": ([query_row(), query_row(query="   ")], ["row 3", "'Query' is empty"]),
    "NaN query": ([query_row(query=None)], ["row 2", "'Query' is empty"]),
    "unknown ground truth": ([query_row(truth="2, 99")], ["row 2", "99", "not an STT"]),
    "unparsable ground truth": ([query_row(truth="hai")], ["row 2", "cannot read 'Ground truth document'"]),
    "empty ground truth": ([query_row(truth=None)], ["row 2", "cannot read"]),
    "no rows": ([], ["no queries"]),
}


@pytest.mark.parametrize("case", list(BAD_QUERIES))
def test_bad_queries(tmp_path, case):
    rows, fragments = BAD_QUERIES[case]
    corpus = load_corpus(write_corpus(tmp_path / "c.csv", GOOD_CORPUS))
    path = write_queries(tmp_path / "queries.xlsx", rows)
    with pytest.raises(DataError) as error:
        load_queries(path, corpus)
    assert str(path) in str(error.value)
    for fragment in fragments:
        assert fragment in str(error.value)


def test_queries_missing_column(tmp_path):
    import pandas as pd

    path = tmp_path / "queries.xlsx"
    pd.DataFrame({"Query": ["a"], "Answer": ["b"]}).to_excel(path, index=False)
    with pytest.raises(DataError, match=r"missing column.*'Ground truth document'.*found \['Query', 'Answer'\]"):
        load_queries(path, {1: "a"})


def bad_input_files(tmp_path, case):
    """(corpus path, query path, expected message fragment) for one foundation bad-input case."""
    corpus_rows, query_rows, fragment = GOOD_CORPUS, [query_row()], None
    if case in BAD_CORPORA:
        corpus_rows, fragments = BAD_CORPORA[case]
        fragment = fragments[-1]
    elif case in BAD_QUERIES:
        query_rows, fragments = BAD_QUERIES[case]
        fragment = fragments[-1]
    corpus = write_corpus(tmp_path / "corpus.csv", corpus_rows)
    queries = write_queries(tmp_path / "queries.xlsx", query_rows)
    if case == "missing corpus file":
        corpus, fragment = tmp_path / "absent.csv", "file not found"
    elif case == "missing query file":
        queries, fragment = tmp_path / "absent.xlsx", "file not found"
    elif case == "corpus is not a CSV":
        corpus.write_bytes(b"\xff\xfe\x00\x81binary")
        fragment = "not readable as a UTF-8 CSV"
    elif case == "queries are not an XLSX":
        queries.write_text("Query\nabc\n", encoding="utf-8")
        fragment = "not readable as an .xlsx workbook"
    elif case == "corpus column missing":
        corpus.write_text("id,text\n1,a\n", encoding="utf-8")
        fragment = "missing column(s) ['STT', 'Văn bản']"
    return corpus, queries, fragment


CLI_CASES = [*BAD_CORPORA, *BAD_QUERIES, "missing corpus file", "missing query file", "corpus is not a CSV",
             "queries are not an XLSX", "corpus column missing"]


@pytest.mark.parametrize("case", CLI_CASES)
def test_training_cli_exits_2_on_every_bad_input_and_writes_nothing(tmp_path, case):
    corpus, queries, fragment = bad_input_files(tmp_path, case)
    result = run_script("fine_tune_reranker.py", "--corpus_csv", str(corpus), "--train_xlsx", str(queries),
                        "--base_model", "bundled-minilm", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert fragment in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize("case", ["duplicated STT", "unknown ground truth", "queries are not an XLSX"])
def test_benchmark_cli_exits_2_on_bad_input_and_writes_nothing(tmp_path, case):
    corpus, queries, fragment = bad_input_files(tmp_path, case)
    result = run_script("main.py", "--corpus_csv", str(corpus), "--eval_xlsx", str(queries), "--reranker", "none",
                        cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert fragment in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "outputs").exists()
