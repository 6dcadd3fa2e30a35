"""Issue #26, reliability third pass: each case once went wrong silently or with a traceback.

One test per case, named after it, driven through a script or the API as a user would.
"""

import json
import os
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from openpyxl import Workbook

from reranker_kit.basics.errors import DataError, KitError
from reranker_kit.data.loading import load_corpus, load_queries

from conftest import QUICK, ROOT, data_flags, run_script, write_corpus

HEADER = ["Query", "Ground truth document", "Ground truth answer", "Difficulty"]
CORPUS = [(1, "CLB tuyển thành viên vào tháng 9."), (2, "Buổi sinh hoạt vào tối thứ Tư."),
          (3, "Phí thành viên là 100.000 đồng mỗi kỳ."), (4, "Team AI làm chatbot."), (5, "Team Web làm web.")]
ROWS = [["CLB tuyển khi nào ạ?", 1, "Tháng 9.", 1], ["Sinh hoạt hôm nào?", 2, "Tối thứ Tư.", 2],
        ["Phí bao nhiêu?", 3, "100.000 đồng.", 2], ["Team AI làm gì?", 4, "Chatbot.", 3]]


def write_sheet(path: Path, rows: list[list], header=HEADER, title_rows=(), merged=()) -> Path:
    """An .xlsx written by openpyxl, as a script would: optional title rows above the header, merged ranges."""
    workbook = Workbook()
    sheet = workbook.active
    for title in title_rows:
        sheet.append(title)
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    for cell_range in merged:
        sheet.merge_cells(cell_range)
    workbook.save(path)
    return path


def error_line(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert result.returncode == 2 and len(errors) == 1, result.stderr[-3000:]
    return errors[0]


def evaluate(tmp_path: Path, corpus: Path, *eval_files: Path) -> dict:
    """main.py over the first stage only; returns its metrics.json."""
    flags = ["--corpus_csv", str(corpus), "--reranker", "none", "--top_n", "5", "--report_dir",
             str(tmp_path / "report")]
    for path in eval_files:
        flags += ["--eval_xlsx", str(path)]
    result = run_script("main.py", *flags, cwd=tmp_path)
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-3000:]
    return json.loads((tmp_path / "report" / "metrics.json").read_text(encoding="utf-8"))


# Case 3: a repeated column name is refused, not read as its first copy.

@pytest.mark.parametrize("kind, column, positions", [
    ("queries", "Query", "columns A and E"),
    ("queries", "Ground truth document", "columns B and E"),
    ("corpus", "STT", "columns 1 and 3"),
])
def test_case_03_a_repeated_column_is_refused_with_both_positions(tmp_path, kind, column, positions):
    corpus_path = write_corpus(tmp_path / "c.csv", CORPUS)
    if kind == "corpus":
        corpus_path.write_text("STT,Văn bản,STT\n1,Một,7\n2,Hai,8\n", encoding="utf-8")
        with pytest.raises(DataError) as refused:
            load_corpus(corpus_path)
    else:
        path = write_sheet(tmp_path / "q.xlsx", [row + ["other"] for row in ROWS], header=HEADER + [column])
        with pytest.raises(DataError) as refused:
            load_queries(path, load_corpus(corpus_path))
    message = str(refused.value)
    assert f"'{column}'" in message and positions in message and "twice" in message, message


# Case 6: merged Difficulty cells fill down (with a warning), so no row leaves the per-level tables.

def test_case_06_merged_difficulty_cells_keep_their_level_in_the_tables(tmp_path):
    rows = [ROWS[0], ROWS[1], ROWS[2][:3] + [None], ROWS[3]]  # D3:D4 merged: the level 2 covers rows 3 and 4.
    path = write_sheet(tmp_path / "q.xlsx", rows, merged=["D3:D4"])
    report = evaluate(tmp_path, write_corpus(tmp_path / "c.csv", CORPUS), path)
    levels = {row["difficulty"]: row["queries"] for row in report["by_difficulty"] if row["name"] == "first_stage"}
    assert levels == {1: 1, 2: 2, 3: 1}


# Case 16: merged Query / ground-truth cells, formulas without a saved value, title rows above the header.

def formula_without_value(path: Path) -> Path:
    return write_sheet(path, [ROWS[0], ["=A2", 2, "x", 1], ROWS[2]])  # openpyxl saves no cached value.


CASE_16 = {  # name: (write the query file, fragment of the one error line)
    "merged ground truth": (lambda path: write_sheet(path, [ROWS[0], ROWS[1], ROWS[2][:1] + [None] + ROWS[2][2:]],
                                                     merged=["B3:B4"]),
                            "rows 3-4 of 'Ground truth document' are merged (B3:B4); unmerge the cells"),
    "merged query": (lambda path: write_sheet(path, ROWS[:2] + [[None] + ROWS[2][1:]], merged=["A3:A4"]),
                     "rows 3-4 of 'Query' are merged (A3:A4); unmerge the cells"),
    "formula without a value": (formula_without_value, "row 3: 'Query' holds the formula =A2 with no saved value"),
    "title rows and a missing column": (
        lambda path: write_sheet(path, ROWS, header=HEADER[:3], title_rows=[["Bộ câu hỏi CLB"], []]),
        "row 3 of sheet 'Sheet' holds ['Query', 'Ground truth document', 'Ground truth answer'] but not "
        "['Difficulty']"),
}


@pytest.mark.parametrize("case", list(CASE_16))
def test_case_16_merged_formula_and_title_row_files_get_their_own_message(tmp_path, case):
    write, fragment = CASE_16[case]
    queries = write(tmp_path / "q.xlsx")
    result = run_script("fine_tune_reranker.py", "--corpus_csv", str(write_corpus(tmp_path / "c.csv", CORPUS)),
                        "--train_xlsx", str(queries), "--base_model", "bundled-minilm", cwd=tmp_path)
    line = error_line(result)
    assert fragment in line and "the cell is empty" not in line, line
    if case == "formula without a value":
        assert "Open and save the file in Excel or LibreOffice so formulas get values" in line
    assert not (tmp_path / "outputs").exists()


def test_case_16_a_header_under_title_rows_is_found_with_a_warning(tmp_path, caplog):
    path = write_sheet(tmp_path / "q.xlsx", ROWS, title_rows=[["Bộ câu hỏi CLB"], ["Tháng 9"]])
    queries = load_queries(path, load_corpus(write_corpus(tmp_path / "c.csv", CORPUS)))
    assert [(query.row, query.relevant_ids) for query in queries] == [(4, (1,)), (5, (2,)), (6, (3,)), (7, (4,))]
    assert "header on row 3" in caplog.text


# Cases 7 and 18: the Reranker API.

@pytest.fixture(scope="module")
def bundled_reranker():
    from reranker_kit.models.reranker import Reranker

    return Reranker(model_name="bundled-minilm", device="cpu", max_length=64, batch_size=4)


def test_case_07_one_reranker_scores_from_several_threads(bundled_reranker):
    passages = [("Tuyển thành viên vào tháng 9. " * (i % 5 + 1)).strip() for i in range(10)]
    queries = [f"CLB tuyển {'khi nào ' * (n + 1)}ạ?" for n in range(4)]
    expected = {query: bundled_reranker(query, passages) for query in queries}
    results, errors = {}, []
    barrier = threading.Barrier(len(queries))

    def score(query):
        barrier.wait()
        try:
            for _ in range(3):
                results[query] = bundled_reranker(query, passages)
        except Exception as error:  # The test reports any failure of a thread, whatever it is.
            errors.append(repr(error))

    threads = [threading.Thread(target=score, args=(query,)) for query in queries]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    for query in queries:
        assert results[query][1] == expected[query][1]
        assert results[query][0] == pytest.approx(expected[query][0], abs=1e-5)


def test_case_18_a_too_small_max_length_is_refused_and_pairs_stay_in_budget(bundled_reranker, capfd):
    from reranker_kit.models.pair_encoding import encode_pairs, minimum_max_length
    from reranker_kit.models.reranker import Reranker

    tokenizer = bundled_reranker.tokenizer
    minimum = minimum_max_length(tokenizer)
    assert minimum == tokenizer.num_special_tokens_to_add(pair=True) + 8
    with pytest.raises(ValueError, match=f"max_length 8 is too small.*at least {minimum}"):
        Reranker(model_name="bundled-minilm", device="cpu", max_length=8)
    long_query = "Em ko học CNTT thì có tham gia được CLB ko ạ ? " * 20
    pairs = [(long_query, "CLB nhận mọi ngành. " * 40), (long_query, "Có."), ("Ngắn?", "Tuyển vào tháng 9. " * 40)]
    capfd.readouterr()
    for max_length in range(minimum, 40):
        for encoded in encode_pairs(tokenizer, pairs, max_length):
            ids = encoded["input_ids"]
            assert len(ids) <= max_length
            assert len(ids) - ids.index(tokenizer.sep_token_id) - 2 >= 1  # Some of the passage always remains.
    captured = capfd.readouterr().err
    assert "remove" not in captured and "truncat" not in captured.lower(), captured


# Case 20: every file of a run, the weights included, is readable as the umask allows.

def test_case_20_model_files_get_the_same_permissions_as_the_rest_of_the_run(small_data, tmp_path):
    result = run_script("fine_tune_reranker.py", *data_flags(small_data), "--base_model", "bundled-minilm",
                        "--max_steps", "2", *QUICK, "--output_dir", str(tmp_path / "run"), "--keep_checkpoints",
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    umask = os.umask(0)
    os.umask(umask)
    modes = {str(path.relative_to(tmp_path / "run")): oct(stat.S_IMODE(path.stat().st_mode))
             for path in (tmp_path / "run").rglob("*") if path.is_file()}
    assert "model.safetensors" in modes and "checkpoint-2/model.safetensors" in modes
    assert set(modes.values()) == {oct(0o666 & ~umask)}, modes


# Case 10: --push_to_hub without network fails in one line, before training.

CLOSED_ENDPOINT = "http://127.0.0.1:9"  # The discard port on loopback: nothing listens there.


def test_case_10_push_to_hub_without_network_fails_in_one_line_before_training(small_data, tmp_path, monkeypatch):
    env = {key: value for key, value in os.environ.items() if key != "HF_HUB_OFFLINE"}
    env.update(HF_TOKEN="dummy", HF_ENDPOINT=CLOSED_ENDPOINT, PYTHONUNBUFFERED="1")
    result = subprocess.run([sys.executable, str(ROOT / "fine_tune_reranker.py"), *data_flags(small_data),
                             "--base_model", "bundled-minilm", "--max_steps", "2", *QUICK, "--push_to_hub",
                             "--hub_model_id", "me/reranker", "--output_dir", str(tmp_path / "run")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    line = error_line(result)
    assert CLOSED_ENDPOINT in line and "me/reranker" in line and "--push_to_hub" in line, line
    assert not (tmp_path / "run").exists() and "step 1/" not in result.stderr

    # The network lost after training: the finished run stays on disk and the message names it.
    import huggingface_hub.constants

    from reranker_kit.training.hub import push_run

    run_dir = tmp_path / "finished"
    run_dir.mkdir()
    (run_dir / "config.json").write_text("{}", encoding="utf-8")
    monkeypatch.setenv("HF_TOKEN", "dummy")
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", CLOSED_ENDPOINT)
    with pytest.raises(KitError, match=f"could not push {run_dir} to the Hub as me/reranker.*kept in {run_dir}"):
        push_run(run_dir, "me/reranker", private=False)
    assert (run_dir / "config.json").is_file()


# Case 5: two evaluated files with the same name are reported apart.

def test_case_05_two_eval_files_with_one_name_are_both_reported(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first = write_sheet(tmp_path / "a" / "queries.xlsx", ROWS)
    second = write_sheet(tmp_path / "b" / "queries.xlsx", ROWS[:2])
    report = evaluate(tmp_path, write_corpus(tmp_path / "c.csv", CORPUS), first, second)
    counts = {run["dataset"]: run["queries"] for run in report["runs"] if run["name"] == "first_stage"}
    assert counts == {"a/queries": 4, "b/queries": 2}
    charts = sorted(path.name for path in (tmp_path / "report").glob("metrics_by_k_*.png"))
    assert len(charts) == 2, charts
    page = (tmp_path / "report" / "report.html").read_text(encoding="utf-8")
    assert "a/queries (4 queries)" in page and "b/queries (2 queries)" in page


# Cases 17 and 8: a --reranker folder that is no saved model says which folder main.py wants.

def main_with_reranker(tmp_path: Path, folder: Path) -> str:
    corpus = write_corpus(tmp_path / "c.csv", CORPUS)
    queries = write_sheet(tmp_path / "q.xlsx", ROWS)
    result = run_script("main.py", "--corpus_csv", str(corpus), "--eval_xlsx", str(queries), "--reranker", str(folder),
                        "--top_n", "5", "--runs_root", str(tmp_path / "outputs"), cwd=tmp_path)
    line = error_line(result)
    assert "a finished run folder" in line and "checkpoint-N" in line and "--cv_keep_models" in line, line
    assert not (tmp_path / "outputs").exists()
    return line


def bundled_files() -> Path:
    from reranker_kit.basics.model_files import bundled_model_path

    return bundled_model_path()


def test_case_17_an_onnx_subfolder_given_as_reranker_names_its_run(tmp_path):
    onnx_dir = tmp_path / "reranker-finetuned-20261127-101500" / "onnx"
    onnx_dir.mkdir(parents=True)
    for path in bundled_files().iterdir():
        if path.is_file() and path.suffix in (".json", ".txt"):
            shutil.copy(path, onnx_dir / path.name)
    (onnx_dir / "model.onnx").write_bytes(b"not scored by main.py")
    line = main_with_reranker(tmp_path, onnx_dir)
    assert f"{onnx_dir} holds an ONNX export" in line and f"--reranker {onnx_dir.parent}" in line, line


def test_case_08_a_folder_with_only_config_json_says_which_folder_main_wants(tmp_path):
    folder = tmp_path / "only_config"
    folder.mkdir()
    shutil.copy(bundled_files() / "config.json", folder / "config.json")
    line = main_with_reranker(tmp_path, folder)
    assert f"{folder} holds config.json but no model weights" in line, line
