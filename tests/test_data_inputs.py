"""Issue #32, fourth pass, the data files: unanswerable queries in context recall, several sheets in the
schema, copied corpus documents, query files that are not .xlsx, encrypted workbooks, and the shipped sample
running without a warning about itself (issue #34)."""

import json
import logging
from dataclasses import replace

import pandas as pd
import pytest

from reranker_kit.basics.errors import DataError
from reranker_kit.commands import benchmark_flags, train_embedder, train_reranker
from reranker_kit.commands.settings_flags import settings_from_namespace
from reranker_kit.data.loading import load_corpus, load_queries, same_text_groups
from reranker_kit.data.splits import merge_duplicate_queries, query_key
from reranker_kit.embedder.arguments import EmbedderSettings
from reranker_kit.finetune.mining import MiningSettings, mine
from reranker_kit.finetune.settings import NegativeSettings
from reranker_kit.metrics import context_recall_at_k, evaluate_rankings
from reranker_kit.training.arguments import RerankerSettings

from conftest import CORPUS_CSV, TEST_XLSX, TRAIN_XLSX, run_script, write_corpus, write_queries

CORPUS = [(1, "CLB tuyển thành viên vào tháng 9 hằng năm."), (2, "Buổi sinh hoạt vào tối thứ Tư ở phòng 302."),
          (3, "Phí thành viên là 100.000 đồng mỗi kỳ."), (4, "Team AI làm chatbot cho CLB."),
          (5, "Team Web làm trang web của CLB.")]


def query_row(query="CLB tuyển khi nào ạ?", truth=1, answer="CLB tuyển vào tháng 9.", difficulty=1) -> dict:
    return {"Query": query, "Ground truth document": truth, "Ground truth answer": answer, "Difficulty": difficulty}


def main_py(tmp_path, corpus, *flags):
    return run_script("main.py", "--corpus_csv", str(corpus), "--reranker", "none", "--runs_root",
                      str(tmp_path / "outputs"), *flags, cwd=tmp_path)


# Case 6: an empty 'Ground truth answer' cannot be judged; it is left out of context_recall and counted.

def test_context_recall_averages_only_the_queries_with_an_answer():
    rankings, relevant = {"a": [3, 1], "b": [3, 1]}, {"a": [3], "b": [3]}
    texts = {1: "Tháng 9.", 3: "Phí thành viên là 100.000 đồng mỗi kỳ."}
    judged = evaluate_rankings(rankings, relevant, (1,), texts, {"a": "Phí thành viên 100.000 đồng.", "b": ""},
                               metrics=("hit", "context_recall"))
    assert judged == {"hit@1": 1.0, "context_recall@1": 1.0}  # Not 0.5: b's empty answer is not a miss.
    none_judged = evaluate_rankings(rankings, relevant, (1,), texts, {"a": " ", "b": "..."},
                                    metrics=("hit", "context_recall"))
    assert none_judged == {"hit@1": 1.0}  # No figure at all rather than 0.0000 for every ranker.


def test_context_recall_of_an_answer_without_words_is_refused():
    with pytest.raises(ValueError, match="no word to judge"):
        context_recall_at_k(["Tháng 9."], "  ", 3)


def test_main_py_warns_and_counts_the_queries_context_recall_leaves_out(tmp_path):
    corpus = write_corpus(tmp_path / "c.csv", CORPUS)
    queries = write_queries(tmp_path / "q.xlsx", [
        query_row(), query_row(query="phí bao nhiêu", truth=3, answer=""),
        query_row(query="sinh hoạt hôm nào", truth=2, answer=None, difficulty=2)])
    result = main_py(tmp_path, corpus, "--eval_xlsx", str(queries), "--output_json", str(tmp_path / "m.json"))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "q: 2 of 3 queries have no 'Ground truth answer' (rows 3, 4)" in result.stderr
    report = json.loads((tmp_path / "m.json").read_text())
    (overall,) = report["runs"]
    assert overall["context_recall_left_out"] == 2 and overall["metrics"]["context_recall@3"] == 1.0
    by_level = {row["difficulty"]: row for row in report["by_difficulty"]}
    assert by_level[2]["context_recall_left_out"] == 1 and "context_recall@3" not in by_level[2]["metrics"]


# Case 7: two sheets in the schema (an old draft beside the final) are refused unless --sheet names one.

def two_sheet_workbook(path, first="Draft", second="Final"):
    columns = ["Query", "Ground truth document", "Ground truth answer", "Difficulty"]
    with pd.ExcelWriter(path) as writer:
        pd.DataFrame([query_row(query="bản nháp cũ")], columns=columns).to_excel(writer, sheet_name=first, index=False)
        pd.DataFrame([query_row(), query_row(query="phí bao nhiêu", truth=3)], columns=columns).to_excel(
            writer, sheet_name=second, index=False)
    return path


def test_two_sheets_with_the_columns_need_sheet(tmp_path):
    path = two_sheet_workbook(tmp_path / "q.xlsx")
    corpus = load_corpus(write_corpus(tmp_path / "c.csv", CORPUS))
    with pytest.raises(DataError, match=r"q.xlsx: sheets \['Draft', 'Final'\] all have the columns .* Pass `sheet`"):
        load_queries(path, corpus)
    assert [query.text for query in load_queries(path, corpus, sheet="Final")] == ["CLB tuyển khi nào ạ?", "phí bao nhiêu"]
    assert [query.text for query in load_queries(path, corpus, sheet="Draft")] == ["bản nháp cũ"]
    with pytest.raises(DataError, match=r"has no sheet 'Finl' \(`sheet`\) and sheets \['Draft', 'Final'\]"):
        load_queries(path, corpus, sheet="Finl")


def test_sheet_names_a_sheet_without_the_columns_or_one_the_file_lacks(tmp_path, caplog):
    path = tmp_path / "q.xlsx"
    with pd.ExcelWriter(path) as writer:
        pd.DataFrame({"Ghi chú": ["x"]}).to_excel(writer, sheet_name="Notes", index=False)
        pd.DataFrame([query_row()]).to_excel(writer, sheet_name="Queries", index=False)
    corpus = load_corpus(write_corpus(tmp_path / "c.csv", CORPUS))
    with pytest.raises(DataError, match=r"sheet 'Notes' \(`sheet`\) lacks the column\(s\) \['Query', .*sheets with "
                                        r"them all: \['Queries'\]"):
        load_queries(path, corpus, sheet="Notes")
    # One file of several may be the one with two sheets: --sheet leaves the others readable.
    caplog.set_level(logging.INFO, logger="reranker_kit.data.loading")
    assert len(load_queries(path, corpus, sheet="Final")) == 1
    assert "no sheet 'Final' (`sheet`); reading 'Queries'" in caplog.text  # The scripts show it as --sheet.


def test_sheet_is_a_flag_of_main_py_and_both_training_clis(tmp_path):
    assert benchmark_flags.build_parser().parse_args(["--sheet", "Final"]).sheet == "Final"
    reranker_args = train_reranker.build_parser().parse_args(["--sheet", "Final"])
    assert settings_from_namespace(RerankerSettings, reranker_args).data.sheet == "Final"
    embedder_args = train_embedder.build_parser().parse_args(["--sheet", "Final"])
    assert settings_from_namespace(EmbedderSettings, embedder_args).data.sheet == "Final"
    corpus = write_corpus(tmp_path / "c.csv", CORPUS)
    queries = two_sheet_workbook(tmp_path / "q.xlsx")
    refused = main_py(tmp_path, corpus, "--eval_xlsx", str(queries))
    assert refused.returncode == 2 and "Pass --sheet" in refused.stderr and "Traceback" not in refused.stderr
    chosen = main_py(tmp_path, corpus, "--eval_xlsx", str(queries), "--sheet", "Final")
    assert chosen.returncode == 0, chosen.stderr[-2000:]
    assert "=== q (2 queries) ===" in chosen.stdout and "reading sheet 'Final' of ['Draft', 'Final']" in chosen.stderr


def test_training_cli_refuses_two_sheets_without_sheet(tmp_path):
    result = run_script("fine_tune_reranker.py", "--corpus_csv", str(write_corpus(tmp_path / "c.csv", CORPUS)),
                        "--train_xlsx", str(two_sheet_workbook(tmp_path / "q.xlsx")), "--base_model", "bundled-minilm",
                        cwd=tmp_path)
    assert result.returncode == 2 and "Pass --sheet" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "outputs").exists()


# Case 10: two documents with one text; a copy is never mined as a negative of its twin.

def test_copied_documents_are_named_once_with_their_rows(tmp_path, caplog):
    rows = CORPUS + [(6, "Phí thành viên là 100.000 đồng mỗi kỳ."), (7, "  team ai làm  chatbot cho CLB.")]
    corpus = load_corpus(write_corpus(tmp_path / "c.csv", rows))
    assert same_text_groups(corpus) == [(3, 6), (4, 7)]
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "c.csv: 2 text(s) appear more than once: STT 3, 6 (rows 4, 7); STT 4, 7 (rows 5, 8)" in warnings[0]


def test_mining_never_makes_a_copy_of_the_positive_its_negative(tmp_path):
    rows = CORPUS + [(6, "Phí thành viên là 100.000 đồng mỗi kỳ.")]
    corpus = load_corpus(write_corpus(tmp_path / "c.csv", rows))
    queries = load_queries(write_queries(tmp_path / "q.xlsx", [query_row(query="phí thành viên mỗi kỳ", truth=3)]),
                           corpus)
    negatives = NegativeSettings(num_hard_negatives=2, num_random_negatives=2, hard_neg_top_k=2, hard_neg_method="bm25",
                                 embedding_model="bundled-minilm", embedding_cache_dir=str(tmp_path / "cache"),
                                 expand_documents=False, candidates=None, filter_false_negatives=False,
                                 false_negative_margin=0.0, max_false_negative_share=1.0, teacher_model=None)
    settings = MiningSettings(negatives=negatives, seed=0, dev_top_n=5, train_xlsx="q.xlsx", base_model="bundled-minilm",
                              max_seq_length=64, eval_batch_size=8)
    for seed in range(5):  # Document 6 is the top BM25 hit after the positive: id-only exclusion always took it.
        mined = mine(replace(settings, seed=seed), corpus, queries, queries, [])
        (group,) = mined.train_groups
        assert 6 not in group.negative_ids and len(group.negative_ids) == 4, group


# Case 11 and case 17: query files that are not .xlsx, and encrypted workbooks.

XLSX_BYTES_HELP = "save it as an Excel Workbook (.xlsx)"


@pytest.mark.parametrize("name, content, message", [
    ("q.xls", "ole", "this is an Excel 97-2003 workbook (.xls format), which the kit does not read"),
    ("q.csv", "csv", "query files are .xlsx workbooks and this is a CSV file"),
    ("queries", "csv", "query files are .xlsx workbooks and this is a file without an extension"),
    ("q.xls", "xlsx", "holds an .xlsx workbook, but its name does not end in .xlsx. Rename it to q.xlsx"),
    ("queries", "xlsx", "holds an .xlsx workbook, but its name does not end in .xlsx. Rename it to queries.xlsx"),
    ("q.xlsx", "ole", "this is an Excel 97-2003 workbook (.xls format)"),
    ("q.xlsx", "encrypted", "the workbook is password-protected (encrypted), so its cells cannot be read. Open it, "
                            "remove the password"),
])
def test_query_files_that_are_not_plain_xlsx_are_named_with_the_fix(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_bytes(workbook_bytes(tmp_path, content))
    with pytest.raises(DataError) as error:
        load_queries(path, {1: "a"})
    assert str(error.value).startswith(f"{path}: {message}")
    if content in ("ole", "csv"):
        assert XLSX_BYTES_HELP in str(error.value)


def workbook_bytes(tmp_path, content: str) -> bytes:
    """The bytes of a query file: a CSV export, a real .xlsx, that .xlsx encrypted, or an OLE file that is not one."""
    if content == "csv":
        return "Query,Ground truth document,Ground truth answer,Difficulty\nCLB tuyển khi nào,1,Tháng 9.,1\n".encode()
    plain = write_queries(tmp_path / "plain.xlsx", [query_row()])
    if content == "xlsx":
        return plain.read_bytes()
    import io

    from msoffcrypto.format.ooxml import OOXMLFile  # Test-only (requirements.txt): Excel's own encryption.

    encrypted = io.BytesIO()
    with open(plain, "rb") as handle:
        OOXMLFile(handle).encrypt("mật khẩu", encrypted)
    if content == "encrypted":
        return encrypted.getvalue()
    # An OLE file without the encrypted stream, as an Excel 97-2003 workbook is: the same container, renamed stream.
    return encrypted.getvalue().replace("EncryptedPackage".encode("utf-16-le"), "Workbook\0\0\0\0\0\0\0\0".encode("utf-16-le"))


@pytest.mark.parametrize("script, flag, name, content", [
    ("main.py", "--eval_xlsx", "q.csv", "csv"),
    ("main.py", "--eval_xlsx", "queries", "xlsx"),
    ("fine_tune_reranker.py", "--train_xlsx", "q.xls", "ole"),
    ("fine_tune_reranker.py", "--train_xlsx", "q.xlsx", "encrypted"),
])
def test_scripts_refuse_them_with_one_line_and_exit_2(tmp_path, script, flag, name, content):
    path = tmp_path / name
    path.write_bytes(workbook_bytes(tmp_path, content))
    extra = ["--reranker", "none"] if script == "main.py" else ["--base_model", "bundled-minilm"]
    result = run_script(script, "--corpus_csv", str(write_corpus(tmp_path / "c.csv", CORPUS)), flag, str(path), *extra,
                        cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"{path}: " in result.stderr and "Traceback" not in result.stderr and "InvalidFileException" not in result.stderr
    assert not (tmp_path / "outputs").exists()


# Issue #34: the shipped sample loads, merges and evaluates without a warning about itself.

def test_the_shipped_sample_raises_no_warning(caplog):
    caplog.set_level(logging.INFO)
    corpus = load_corpus(CORPUS_CSV)
    train, test = load_queries(TRAIN_XLSX, corpus), load_queries(TEST_XLSX, corpus)
    merged = merge_duplicate_queries(train)
    assert len(merged) == 97  # Three questions asked twice, as in real club files: a note, not a warning.
    assert "train_data_proptit.xlsx: 3 repeated queries (rows 27, 29; 38, 40; 48, 50)" in caplog.text
    assert [record.getMessage() for record in caplog.records if record.levelno >= logging.WARNING] == []
    # main.py warns when an evaluated query was trained on; the sample's test file is held out, so it never does.
    assert not {query_key(query.text) for query in test} & {query_key(query.text) for query in train}
    assert same_text_groups(corpus) == []
