"""What real club files hold, driven through the CLIs: each is refused with one clear line, or accepted
with a warning that says what was done (issue: the club's real files)."""

import json
import shutil
import unicodedata

import pandas as pd
import pytest

from reranker_kit.basics.text import analyze
from reranker_kit.data.loading import load_corpus, load_queries, parse_ground_truth
from reranker_kit.data.splits import fold_splits, merge_duplicate_queries, split_queries
from reranker_kit.retrieval import LexicalIndex

from conftest import run_script, write_corpus, write_queries

CORPUS = [(1, "CLB tuyển thành viên vào tháng 9."), (2, "Buổi sinh hoạt vào tối thứ Tư."),
          (3, "Phí thành viên là 100.000 đồng mỗi kỳ."), (5, "Team AI làm chatbot hoà nhạc."), (8, "Team Web làm web.")]


def row(query="CLB tuyển khi nào ạ?", truth=1, answer="Tháng 9.", difficulty=1) -> dict:
    return {"Query": query, "Ground truth document": truth, "Ground truth answer": answer, "Difficulty": difficulty}


def train(tmp_path, corpus_path, queries_path, *flags):
    return run_script("fine_tune_reranker.py", "--corpus_csv", str(corpus_path), "--train_xlsx", str(queries_path),
                      "--base_model", "bundled-minilm", *flags, cwd=tmp_path)


REFUSED = {  # case: (corpus rows, query rows, expected fragment)
    "1_5 is not id 15": (CORPUS, [row(truth="1_5")] * 3, "'1_5' is not a document id"),
    "1e1 is not id 10": (CORPUS, [row(truth="1e1")] * 3, "'1e1' is not a document id"),
    "full-width digits": (CORPUS, [row(truth="１５")] * 3, "'１５' is not a document id"),
    "inf ground truth": (CORPUS, [row(truth="inf")] * 3, "'inf' is not a document id"),
    "nan ground truth": (CORPUS, [row(truth="nan")] * 3, "'nan' is not a document id"),
    "zero-width query": (CORPUS, [row(), row(query="\u200b\u200b \u200b")], "row 3: 'Query' is empty"),
    "ids with gaps": (CORPUS, [row(truth=4)] * 3, "5 documents with ids between 1 and 8, not all numbers in between"),
    "one-document corpus": (CORPUS[:1], [row(truth=1)] * 3, "the corpus needs at least 2 documents"),
    "all documents relevant": (CORPUS[:2], [row(truth="1, 2"), row(truth=1)], "needs at least 3 documents"),
    "one query with a dev split": (CORPUS, [row()], "pass --dev_ratio 0"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_training_cli_refuses_with_one_clear_line(tmp_path, case):
    corpus_rows, query_rows, fragment = REFUSED[case]
    result = train(tmp_path, write_corpus(tmp_path / "c.csv", corpus_rows), write_queries(tmp_path / "q.xlsx", query_rows))
    assert result.returncode == 2, result.stderr[-2000:]
    error_lines = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(error_lines) == 1 and fragment in error_lines[0], result.stderr[-2000:]
    assert "Traceback" not in result.stderr and not (tmp_path / "outputs").exists()


def test_ground_truth_parser_reads_only_ascii_whole_numbers():
    assert parse_ground_truth("15, 37") == (15, 37) and parse_ground_truth("5.0") == (5,)
    for cell in ("1_5", "1e1", "１５", "inf", "nan", "0x1"):
        with pytest.raises(ValueError, match="is not a document id"):
            parse_ground_truth(cell)


def test_header_typed_in_decomposed_unicode_is_read(tmp_path):
    path = tmp_path / "c.csv"
    pd.DataFrame(CORPUS, columns=["STT", unicodedata.normalize("NFD", "Văn bản")]).to_csv(path, index=False)
    assert list(load_corpus(path)) == [1, 2, 3, 5, 8]


def test_semicolon_separated_corpus_is_read_with_a_warning(tmp_path, caplog):
    path = tmp_path / "c.csv"
    pd.DataFrame(CORPUS, columns=["STT", "Văn bản"]).to_csv(path, index=False, sep=";")
    assert load_corpus(path)[3] == "Phí thành viên là 100.000 đồng mỗi kỳ."
    assert "';'-separated" in caplog.text


def test_queries_on_a_later_sheet_are_read_with_a_warning(tmp_path, caplog):
    path = tmp_path / "q.xlsx"
    with pd.ExcelWriter(path) as writer:
        pd.DataFrame({"Ghi chú": ["bảng tính của nhóm"]}).to_excel(writer, sheet_name="Notes", index=False)
        pd.DataFrame([row(truth=3)]).to_excel(writer, sheet_name="Data", index=False)
    corpus = load_corpus(write_corpus(tmp_path / "c.csv", CORPUS))
    assert [query.relevant_ids for query in load_queries(path, corpus)] == [(3,)]
    assert "reading sheet 'Data'" in caplog.text


def test_no_sheet_with_the_columns_names_the_sheets(tmp_path):
    path = tmp_path / "q.xlsx"
    with pd.ExcelWriter(path) as writer:
        pd.DataFrame({"a": [1]}).to_excel(writer, sheet_name="One", index=False)
        pd.DataFrame({"b": [2]}).to_excel(writer, sheet_name="Two", index=False)
    result = run_script("main.py", "--corpus_csv", str(write_corpus(tmp_path / "c.csv", CORPUS)), "--eval_xlsx",
                        str(path), "--reranker", "none", cwd=tmp_path)
    assert result.returncode == 2 and "no sheet of ['One', 'Two'] has them all" in result.stderr


def test_both_tone_mark_placements_meet_in_the_index():
    assert analyze("hòa khóa thủy") == analyze("hoà khoá thuỷ")
    index = LexicalIndex(["Lớp học khoá mới", "Tiệc hòa nhạc cuối năm"], method="bm25")
    assert index.top_k(["hoà nhạc"], 1)[0][0, 0] == 1 and index.top_k(["khóa"], 1)[0][0, 0] == 0


def test_repeated_queries_are_merged_and_never_split_across_sides(tmp_path, caplog):
    rows = [row(query=f"câu hỏi số {i}", truth=1 + i % 2) for i in range(10)]
    rows += [row(query="CLB tuyển khi nào ạ?", truth=1), row(query="clb  tuyển khi nào ạ?", truth="1, 3")]
    caplog.set_level("INFO", logger="reranker_kit.data.splits")  # A note: merging is the remedy (issue #34).
    corpus = load_corpus(write_corpus(tmp_path / "c.csv", CORPUS))
    merged = merge_duplicate_queries(load_queries(write_queries(tmp_path / "q.xlsx", rows), corpus))
    assert len(merged) == 11 and merged[-1].relevant_ids == (1, 3)
    assert "rows 12, 13" in caplog.text
    for seed in range(20):
        train_side, dev_side = split_queries(merged, 0.3, seed)
        assert not {query.text.lower() for query in train_side} & {query.text.lower() for query in dev_side}
    dev_folds = [dev for _, dev in fold_splits(merged, 4, 0)]
    assert sorted(query.qid for dev in dev_folds for query in dev) == sorted(query.qid for query in merged)


def test_main_warns_when_evaluated_queries_were_trained_on(trained_run, small_data, tmp_path):
    run_dir, _ = trained_run
    info = json.loads((run_dir / "training_info.json").read_text())
    trained_texts = pd.read_excel(info["train_xlsx"])["Query"].tolist()
    evaluated = write_queries(tmp_path / "new_queries.xlsx", [row(query=trained_texts[0], truth=trained_row_truth(info)),
                                                              row(query="một câu hỏi mới hoàn toàn", truth=1)])
    result = run_script("main.py", "--corpus_csv", str(small_data["corpus"]), "--eval_xlsx", str(evaluated),
                        "--reranker", str(run_dir), "--pretrained_reranker", "none", "--top_n", "5",
                        "--max_length", "96", "--runs_root", str(tmp_path / "o"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "new_queries: 1 of 2 queries also appear in the training file" in result.stderr


def trained_row_truth(info: dict) -> str:
    truth = pd.read_excel(info["train_xlsx"])["Ground truth document"].tolist()[0]
    return str(truth)


@pytest.mark.parametrize("content", ['{"weight": 7}', '{"weight": "NaN"}', "not json", '{"method": "magic", "weight": 0.5}',
                                     '{"w": 0.5}', "[0.5]"])
def test_a_bad_fusion_file_is_ignored_with_a_warning_naming_it(trained_run, small_data, tmp_path, content):
    run_dir = tmp_path / trained_run[0].name
    shutil.copytree(trained_run[0], run_dir, ignore=shutil.ignore_patterns("checkpoint-*"))
    (run_dir / "fusion.json").write_text(content, encoding="utf-8")
    output_json = tmp_path / "report.json"
    result = run_script("main.py", "--corpus_csv", str(small_data["corpus"]), "--eval_xlsx", str(small_data["test"]),
                        "--reranker", str(run_dir), "--pretrained_reranker", "none", "--top_n", "5", "--max_length",
                        "96", "--runs_root", str(tmp_path / "o"), "--output_json", str(output_json), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"ignoring {run_dir / 'fusion.json'}" in result.stderr
    assert [run["name"] for run in json.loads(output_json.read_text())["runs"]] == ["first_stage", "fine_tuned"]


def test_main_warns_when_the_fusion_was_chosen_on_other_candidates(trained_run, small_data, tmp_path):
    run_dir = trained_run[0]
    assert {key: json.loads((run_dir / "fusion.json").read_text())[key]
            for key in ("retriever", "top_n", "expanded_documents")} == {"retriever": "bm25", "top_n": 5,
                                                                        "expanded_documents": False}
    common = ["--corpus_csv", str(small_data["corpus"]), "--eval_xlsx", str(small_data["test"]), "--reranker",
              str(run_dir), "--pretrained_reranker", "none", "--max_length", "96", "--runs_root", str(tmp_path / "o")]
    same = run_script("main.py", *common, "--top_n", "5", cwd=tmp_path)
    assert same.returncode == 0, same.stderr[-2000:]
    assert "chosen on dev candidates unlike" not in same.stderr
    deeper = run_script("main.py", *common, "--top_n", "8", cwd=tmp_path)
    assert deeper.returncode == 0, deeper.stderr[-2000:]
    assert f"{run_dir}/fusion.json: the fusion weight was chosen on dev candidates unlike" in deeper.stderr
    assert "top_n 5 there, 8 here" in deeper.stderr
