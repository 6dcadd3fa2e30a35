"""#26, the flags a run would ignore and the first stage fusion.json records (cases 11 and 15)."""

import json

import pytest

from conftest import QUICK, data_flags, run_script


@pytest.mark.parametrize("script, flags, message", [
    ("fine_tune_reranker.py", ["--early_stopping_patience", "2", "--dev_ratio", "0"], "--early_stopping_patience needs dev"),
    ("fine_tune_reranker.py", ["--cv_keep_models"], "--cv_keep_models keeps the models of cross-validation folds"),
    ("fine_tune_reranker.py", ["--cv_folds", "3", "--dev_ratio", "0.3"], "--dev_ratio is unused with --cv_folds"),
    ("fine_tune_reranker.py", ["--false_negative_margin", "0.2"], "only matters with --filter_false_negatives"),
    ("fine_tune_reranker.py", ["--lora_alpha", "8"], "--lora_alpha only matters with --lora_r N"),
    ("fine_tune_reranker.py", ["--embedding_model", "bundled-minilm"], "is used by --hard_neg_method dense or hybrid"),
    ("main.py", ["--reranker", "none", "--fusion_weight", "0.3"], "--reranker none has none"),
    ("main.py", ["--fusion_weight", "none", "--fusion_method", "rrf"], "--fusion_method only matters for the fused"),
    ("main.py", ["--embedding_model", "bundled-minilm"], "is used by --retriever dense or hybrid"),
])
def test_case_15_a_flag_the_run_would_ignore_is_refused(tmp_path, script, flags, message):
    result = run_script(script, *flags, cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / "outputs").exists()


def test_case_11_fusion_json_names_the_candidates_file_only_when_dev_queries_used_it(small_data, tmp_path):
    from reranker_kit.data.loading import load_corpus, load_queries
    from reranker_kit.data.splits import merge_duplicate_queries, split_queries

    corpus = load_corpus(small_data["corpus"])
    train, dev = split_queries(merge_duplicate_queries(load_queries(small_data["train"], corpus)), 0.2, 42)
    lists = tmp_path / "lists.jsonl"  # Ranked lists of two training queries only: no dev query uses the file.
    lists.write_text("".join(json.dumps({"query": query.text, "doc_ids": list(query.relevant_ids) + [1, 2, 3]},
                                        ensure_ascii=False) + "\n" for query in train[:2]), encoding="utf-8")
    result = run_script("fine_tune_reranker.py", *data_flags(small_data), "--base_model", "bundled-minilm",
                        "--candidates", str(lists), "--max_steps", "1", *QUICK, "--pseudo_queries_per_document", "0",
                        cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs").glob("reranker-finetuned-*")
    assert json.loads((run_dir / "fusion.json").read_text())["retriever"] == "bm25"
    shown = run_script("main.py", "--corpus_csv", str(small_data["corpus"]), "--eval_xlsx", str(small_data["test"]),
                       "--pretrained_reranker", "none", "--top_n", "5", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "the fusion weight was chosen on dev candidates unlike" not in shown.stderr
