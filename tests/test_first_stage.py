"""The first stages beyond BM25: dense and hybrid retrieval on hand-computed toy cases, the embedding cache,
document expansion (never with an evaluated query), the user's own candidates file, and false negatives."""

import json
import logging
import os
import re
import shutil

import numpy as np
import pytest

from reranker_kit.basics.errors import DataError
from reranker_kit.data.loading import Query
from reranker_kit.finetune.false_negatives import TeacherJudge
from reranker_kit.finetune.negatives import mine_training_groups
from reranker_kit.retrieval import FirstStage, LexicalIndex
from reranker_kit.retrieval.candidates_file import RankedListRetriever, candidates_from_file, read_candidates_file
from reranker_kit.retrieval.dense import DenseIndex, EmbeddingCache, model_fingerprint
from reranker_kit.retrieval.expansion import expanded_documents, queries_outside
from reranker_kit.retrieval.hybrid import HybridIndex

from conftest import run_script, write_corpus, write_queries


class TableEncoder:
    """A stand-in bi-encoder whose embeddings are given by hand, so cosine rankings can be computed by hand."""

    def __init__(self, vectors: dict[str, list[float]], identity: str = "table-v1"):
        self.vectors, self.identity, self.calls = vectors, identity, []

    def encode(self, texts, kind, show_progress=False):
        self.calls.append((kind, list(texts)))
        rows = np.asarray([self.vectors[text] for text in texts], dtype=np.float32)
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def query(text, relevant, row=2, source="q.xlsx", answer=""):
    return Query(qid=f"{source}:{row}", text=text, relevant_ids=tuple(relevant), answer=answer, difficulty=1,
                 source=source, row=row)


def test_dense_ranks_by_cosine_with_ties_in_document_order(tmp_path):
    documents = ["cat cat", "dog", "cat and dog", "fish"]
    encoder = TableEncoder({"cat cat": [1, 0, 0], "dog": [0, 1, 0], "cat and dog": [1, 1, 0], "fish": [0, 0, 1],
                            "cat?": [1, 0, 0]})
    positions, scores = DenseIndex(documents, encoder, tmp_path).top_k(["cat?"], 4)
    # cos(cat, .) = 1, 0, 1/sqrt(2), 0: documents 1 and 3 tie at 0 and keep their order.
    assert positions.tolist() == [[0, 2, 1, 3]]
    np.testing.assert_allclose(scores[0], [1.0, 2 ** -0.5, 0.0, 0.0], atol=1e-6)


def test_hybrid_rrf_by_hand_prefers_agreement_at_the_top_over_the_middle(tmp_path):
    # BM25 ranks 0 > 1 > 2, the dense side 2 > 1 > 0. Reciprocal ranks: documents 0 and 2 get
    # 1/61 + 1/63 = 0.032266 each, document 1 gets 2/62 = 0.032258, so 1 comes last; 0 and 2 tie (order kept).
    documents = ["phòng lab lab", "phòng lab ở tầng ba nhà A2 gần cầu thang", "phí thành viên"]
    lexical = LexicalIndex(documents)
    assert lexical.top_k(["lab"], 3)[0].tolist() == [[0, 1, 2]]
    encoder = TableEncoder({documents[0]: [0, 0, 1], documents[1]: [0, 1, 1], documents[2]: [0, 1, 0], "lab": [0, 1, 0.2]})
    dense = DenseIndex(documents, encoder, tmp_path)
    assert dense.top_k(["lab"], 3)[0].tolist() == [[2, 1, 0]]
    positions, scores = HybridIndex(lexical, dense, "rrf").top_k(["lab"], 3)
    assert positions.tolist() == [[0, 2, 1]]
    np.testing.assert_allclose(scores[0], [0.5 * (1 / 61 + 1 / 63)] * 2 + [1 / 62], rtol=1e-6)


def test_hybrid_min_max_weighs_the_two_sides(tmp_path):
    documents = ["phòng lab lab", "phí thành viên"]
    encoder = TableEncoder({documents[0]: [1, 0], documents[1]: [0, 1], "lab": [0, 1]})
    lexical, dense = LexicalIndex(documents), DenseIndex(documents, encoder, tmp_path)
    # Min-max puts each side's best at 1 and worst at 0: the side with more weight wins.
    assert HybridIndex(lexical, dense, "minmax", dense_weight=0.7).top_k(["lab"], 2)[0].tolist() == [[1, 0]]
    assert HybridIndex(lexical, dense, "minmax", dense_weight=0.3).top_k(["lab"], 2)[0].tolist() == [[0, 1]]
    # The default: equal weights, so each side's best (the other's worst) gets 0.5 + 0 = 0.5.
    np.testing.assert_allclose(HybridIndex(lexical, dense).score(["lab"]), [[0.5, 0.5]])


def test_embedding_cache_hits_and_is_invalidated_by_the_corpus_and_the_model(tmp_path, caplog):
    vectors = {"a": [1, 0], "b": [0, 1], "c": [1, 1]}
    encoder = TableEncoder(vectors)
    first = DenseIndex(["a", "b"], encoder, tmp_path)
    again = DenseIndex(["a", "b"], encoder, tmp_path)
    assert not first.cache_hit and again.cache_hit
    assert [kind for kind, _ in encoder.calls] == ["document"]  # The second index read the cache.
    np.testing.assert_array_equal(first.document_embeddings, again.document_embeddings)
    assert not DenseIndex(["a", "c"], encoder, tmp_path).cache_hit  # A changed document.
    assert not DenseIndex(["b", "a"], encoder, tmp_path).cache_hit  # A changed order is a changed corpus.
    assert not DenseIndex(["a", "b"], TableEncoder(vectors, identity="table-v2"), tmp_path).cache_hit  # Another model.
    assert not list(tmp_path.glob("*.tmp"))  # Written through a rename: no half-written file is left.
    cache_file = tmp_path / f"{EmbeddingCache.key('table-v1', ['a', 'b'])}.npy"
    cache_file.write_bytes(b"not an array")
    with caplog.at_level(logging.WARNING):
        assert not DenseIndex(["a", "b"], encoder, tmp_path).cache_hit
    assert "unreadable embedding cache file" in caplog.text


def test_model_fingerprint_follows_small_files_by_content_and_weights_by_stamp(tmp_path):
    (tmp_path / "config.json").write_text('{"max_seq_length": 256}')
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"\0" * (2 << 20))
    before = model_fingerprint(tmp_path)
    assert model_fingerprint(tmp_path) == before
    (tmp_path / "config.json").write_text('{"max_seq_length": 128}')
    after_config = model_fingerprint(tmp_path)
    assert after_config != before
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert model_fingerprint(tmp_path) != after_config


def test_bundled_encoder_retrieves_and_its_cache_follows_the_model(tmp_path):
    """The real bi-encoder (English MiniLM): obvious English matches, and a changed model folder re-embeds."""
    from reranker_kit.basics.model_files import bundled_model_path

    documents = ["The membership fee is 100 dollars per term.", "Meetings are held on Wednesday evenings.",
                 "The computer lab is on the third floor of building A2."]
    stage = FirstStage("dense", "bundled-minilm", tmp_path / "cache")
    index = stage.index(documents)
    positions, _ = index.top_k(["How much does it cost to join?", "Where is the lab?", "When do members meet?"], 1)
    assert positions[:, 0].tolist() == [0, 2, 1]
    assert stage.index(documents).cache_hit
    changed = tmp_path / "model"
    shutil.copytree(bundled_model_path(), changed)
    config = json.loads((changed / "sentence_bert_config.json").read_text())
    (changed / "sentence_bert_config.json").write_text(json.dumps({**config, "max_seq_length": 64}))
    assert not FirstStage("dense", str(changed), tmp_path / "cache").index(documents).cache_hit


def test_expansion_adds_training_queries_and_answers_and_leaves_evaluated_queries_out():
    corpus = {1: "Phí thành viên", 2: "Lịch sinh hoạt"}
    train = [query("đóng bao nhiêu tiền ạ", [1], 2, answer="100 nghìn một kỳ"), query("Họp  hôm nào", [2], 3)]
    documents = expanded_documents(corpus, train)
    assert documents == {1: "Phí thành viên\nđóng bao nhiêu tiền ạ\n100 nghìn một kỳ", 2: "Lịch sinh hoạt\nHọp  hôm nào"}
    evaluated = [query("họp hôm nào", [2], 5, source="test.xlsx")]  # The same question, cased and spaced differently.
    assert queries_outside(train, evaluated) == train[:1]


def test_main_never_expands_with_an_evaluated_query(tmp_path):
    # The evaluated query shares no word with its document; were it in the expansion, it would find it first.
    corpus = write_corpus(tmp_path / "c.csv", [(1, "Phí thành viên một trăm nghìn"), (2, "Lịch sinh hoạt tối thứ tư"),
                                               (3, "Phòng lab ở tầng ba")])
    rows = [{"Query": "khi nào gặp nhau", "Ground truth document": 2, "Ground truth answer": "tối thứ tư", "Difficulty": 1},
            {"Query": "đóng bao nhiêu", "Ground truth document": 1, "Ground truth answer": "100k", "Difficulty": 1}]
    expansion = write_queries(tmp_path / "train.xlsx", rows)
    evaluated = write_queries(tmp_path / "test.xlsx", rows[:1])
    report_path = tmp_path / "report.json"
    result = run_script("main.py", "--corpus_csv", str(corpus), "--eval_xlsx", str(evaluated), "--reranker", "none",
                        "--pretrained_reranker", "none", "--top_n", "3", "--expand_documents", "--expansion_xlsx",
                        str(expansion), "--output_json", str(report_path), "--runs_root", str(tmp_path / "o"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(report_path.read_text())
    assert report["first_stage"]["expanded_with"]["queries_per_evaluated_file"] == {"test": 1}
    assert report["runs"][0]["metrics"]["hit@3"] == 1.0 and report["runs"][0]["metrics"]["mrr@3"] < 1.0


def test_training_expands_with_training_queries_only():
    from reranker_kit.commands.train_reranker import parse_settings_from
    from reranker_kit.finetune.mining import MiningSettings, mine

    corpus = {1: "Phí thành viên một trăm nghìn", 2: "Lịch sinh hoạt tối thứ tư", 3: "Phòng lab ở tầng ba"}
    train = [query("đóng bao nhiêu", [1], 2, source="train.xlsx")]
    dev = [query("khi nào gặp nhau", [2], 3, source="train.xlsx")]
    config = parse_settings_from(["--expand_documents", "--dev_top_n", "1", "--hard_neg_top_k", "1"])
    mined = mine(MiningSettings.of(config), corpus, train, train, dev)
    # Every document scores 0 for the dev query, so the first keeps its place; expanded with it, 2 would lead.
    assert mined.dev_candidates.ids == {"train.xlsx:3": [1]}


def write_jsonl(path, records):
    path.write_text("\n".join(record if isinstance(record, str) else json.dumps(record, ensure_ascii=False)
                              for record in records) + "\n", encoding="utf-8")
    return path


CORPUS = {1: "Phí thành viên", 2: "Lịch sinh hoạt", 3: "Phòng lab"}


@pytest.mark.parametrize("records, message", [
    ([{"query": "phí bao nhiêu", "doc_ids": [1, 120]}], "line 1: document 120 is not an STT of the corpus"),
    ([{"query": "phí bao nhiêu", "doc_ids": []}], "line 1: 'doc_ids' is missing or empty"),
    ([{"query": "", "doc_ids": [1]}], "line 1: 'query' is missing or empty"),
    (['{"query": "phí", "doc_ids": [1]', ], "line 1: not valid JSON"),
    ([{"query": "a", "doc_ids": [1]}, {"query": "phí", "doc_ids": [2, 2]}], "line 2: document 2 appears more than once"),
    ([{"query": "a", "doc_ids": [1, 2], "scores": [0.1, 0.9]}], "distances (lower is better), negate them"),
    ([{"query": "a", "doc_ids": [1, 2], "scores": [0.9]}], "holds 1 value(s) for 2 document id(s)"),
    ([{"query": "a", "doc_ids": ["x"]}], "cannot read 'doc_ids'"),
    ([{"query": "Phí ", "doc_ids": [1]}, {"query": "phí", "doc_ids": [2]}], "line 2: the query 'phí' repeats line 1"),
    ([], "holds no ranked lists"),
])
def test_candidates_file_errors_name_the_line_and_the_fix(tmp_path, records, message):
    path = write_jsonl(tmp_path / "candidates.jsonl", records)
    with pytest.raises(DataError, match="candidates.jsonl") as error:
        read_candidates_file(path, CORPUS)
    assert message in str(error.value)


def test_candidates_csv_is_read_like_jsonl(tmp_path):
    path = tmp_path / "candidates.csv"
    path.write_text('query,doc_ids,scores\nphí bao nhiêu,"3, 1",\nlịch họp,2,0.5\n', encoding="utf-8")
    lists = read_candidates_file(path, CORPUS)
    assert [(ranked.query, ranked.doc_ids, ranked.scores) for ranked in lists] == [
        ("phí bao nhiêu", (3, 1), None), ("lịch họp", (2,), (0.5,))]
    (tmp_path / "bad.csv").write_text("question,ids\nphí,1\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.csv: missing column\(s\) \['query', 'doc_ids'\]"):
        read_candidates_file(tmp_path / "bad.csv", CORPUS)
    (tmp_path / "bad2.csv").write_text('query,doc_ids\nphí,"1, 99"\n', encoding="utf-8")
    with pytest.raises(DataError, match="bad2.csv, row 2: document 99 is not an STT"):
        read_candidates_file(tmp_path / "bad2.csv", CORPUS)


def test_candidates_must_cover_the_evaluated_queries_and_nothing_else(tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [{"query": "Phí bao nhiêu", "doc_ids": [3, 1, 2], "scores": [3, 2, 1]},
                                              {"query": "lịch họp", "doc_ids": [2]}])
    lists = read_candidates_file(path, CORPUS)
    test = [query("phí  bao nhiêu", [1], 2, source="test.xlsx"), query("lịch họp", [2], 3, source="test.xlsx")]
    candidates = candidates_from_file(lists, {"test": test}, path, top_n=2)["test"]
    assert candidates.ids == {"test.xlsx:2": [3, 1], "test.xlsx:3": [2]}
    np.testing.assert_allclose(candidates.first_stage_scores["test.xlsx:2"], [3, 2])
    np.testing.assert_allclose(candidates.first_stage_scores["test.xlsx:3"], [1.0])  # 1 / rank without scores.
    with pytest.raises(DataError, match=r"c.jsonl, line 2: the query 'lịch họp' is in none of the evaluated files"):
        candidates_from_file(lists, {"test": test[:1]}, path, top_n=2)
    extra = test + [query("phòng lab ở đâu", [3], 4, source="test.xlsx")]
    with pytest.raises(DataError, match=r"test.xlsx, row 4: the query 'phòng lab ở đâu' has no ranked list in"):
        candidates_from_file(lists, {"test": extra}, path, top_n=2)


def test_ranked_lists_feed_mining_and_fall_back_for_other_queries(tmp_path):
    documents = [CORPUS[doc_id] for doc_id in CORPUS]
    path = write_jsonl(tmp_path / "c.jsonl", [{"query": "phí bao nhiêu", "doc_ids": [3]}])
    retriever = RankedListRetriever(read_candidates_file(path, CORPUS), list(CORPUS), LexicalIndex(documents))
    positions, scores = retriever.top_k(["Phí bao nhiêu", "lịch sinh hoạt"], 2)
    assert positions[0, 0] == 2  # Document 3, from the file; the rest padded from BM25.
    np.testing.assert_allclose(scores[0], [1.0, 0.5])
    assert positions[1, 0] == 1  # Not in the file: BM25's ranking.


def test_main_evaluates_a_candidates_file_and_names_it(small_data, tmp_path):
    from reranker_kit.data.loading import load_corpus, load_queries

    corpus = load_corpus(small_data["corpus"])
    queries = load_queries(small_data["test"], corpus)
    # A perfect retriever: each query's relevant documents first.
    records = [{"query": q.text, "doc_ids": list(q.relevant_ids) + [d for d in corpus if d not in q.relevant_ids][:3]}
               for q in queries]
    path = write_jsonl(tmp_path / "mine.jsonl", records)
    report_path = tmp_path / "report.json"
    common = ["--corpus_csv", str(small_data["corpus"]), "--eval_xlsx", str(small_data["test"]), "--reranker", "none",
              "--pretrained_reranker", "none", "--runs_root", str(tmp_path / "o")]
    result = run_script("main.py", *common, "--candidates", str(path), "--output_json", str(report_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(report_path.read_text())
    assert report["retriever"] == "candidates_file" and report["first_stage"]["candidates_file"] == str(path)
    assert report["runs"][0]["metrics"]["mrr@3"] == 1.0
    write_jsonl(path, records[1:])
    missing = run_script("main.py", *common, "--candidates", str(path), cwd=tmp_path)
    assert missing.returncode == 2 and "has no ranked list in" in missing.stderr and "Traceback" not in missing.stderr


def test_main_runs_dense_and_hybrid_offline_and_names_the_first_stage(small_data, tmp_path):
    common = ["--corpus_csv", str(small_data["corpus"]), "--eval_xlsx", str(small_data["test"]), "--reranker", "none",
              "--pretrained_reranker", "none", "--embedding_model", "bundled-minilm", "--embedding_cache_dir",
              str(tmp_path / "cache"), "--runs_root", str(tmp_path / "o")]
    for method in ("dense", "hybrid"):
        report_path = tmp_path / f"{method}.json"
        result = run_script("main.py", *common, "--retriever", method, "--output_json", str(report_path), cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-2000:]
        first_stage = json.loads(report_path.read_text())["first_stage"]
        assert first_stage["method"] == method and first_stage["embedding_model"] == "bundled-minilm"
    assert "embedded" in result.stderr or "read from" in result.stderr
    assert "read from" in result.stderr  # hybrid reused the corpus embeddings dense cached.
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1


def test_false_negatives_are_judged_within_the_relative_margin():
    corpus = {doc_id: f"doc {doc_id}" for doc_id in range(1, 6)}
    logits = {"doc 1": 2.0, "doc 2": 2.5, "doc 3": 1.9, "doc 4": -1.0}  # sigmoid: 0.881, 0.924, 0.870, 0.269
    calls = []

    def score(pairs):
        calls.append(len(pairs))
        return [logits[passage] for _, passage in pairs]

    judge = TeacherJudge(corpus, score, margin=0.05)
    # Kept only at most 0.95 x 0.881 = 0.837: documents 2 and 3 are judged relevant, 4 is a negative.
    assert judge([("q", 1, 2), ("q", 1, 3), ("q", 1, 4)]) == [False, False, True]
    assert judge([("q", 1, 4)]) == [True] and calls == [4]  # Every pair scored once, in one call.
    assert TeacherJudge(corpus, score, margin=0.0)([("q", 1, 2), ("q", 1, 3)]) == [False, True]


def test_the_filter_runs_before_sampling_so_a_group_keeps_the_count_asked_for():
    """sentence-transformers' mine_hard_negatives filters first: a judged-out candidate gives way to the next."""
    documents = ["phí thành viên một kỳ", "phí thành viên", "phí hội viên", "phí thi", "phí gửi xe", "lịch học"]
    queries = [Query("q1", "phí thành viên", (1,), "", 1, "t.xlsx", 2)]
    index, doc_ids = LexicalIndex(documents), [1, 2, 3, 4, 5, 6]
    rejected = {2, 3}  # Likely relevant: the judge passes over them.

    def judge(triples):
        return [candidate not in rejected for _, _, candidate in triples]

    plain, _ = mine_training_groups(queries, index, doc_ids, 2, 0, 5, seed=0)
    groups, report = mine_training_groups(queries, index, doc_ids, 2, 0, 5, seed=0, judge=judge)
    assert len(plain[0].hard_negative_ids) == 2
    assert len(groups[0].hard_negative_ids) == 2 and not rejected & set(groups[0].hard_negative_ids)
    assert report.false_negatives_dropped <= len(rejected) and not report.shortfalls
    assert report.candidates_judged == report.false_negatives_dropped + 2  # Walked only as far as needed.
    starved, short = mine_training_groups(queries, index, doc_ids, 4, 0, 3, seed=0, judge=judge)
    assert len(starved[0].hard_negative_ids) == 1 and len(short.shortfalls) == 1  # Said, not hidden.


def test_fine_tune_mines_with_hybrid_and_filters_false_negatives(small_data, trained_run, tmp_path):
    """The teacher is a finished run (a trained head); the share cap is lifted so every drop is counted."""
    from conftest import QUICK, data_flags

    teacher, _ = trained_run
    result = run_script("fine_tune_reranker.py", *data_flags(small_data), "--base_model", "bundled-minilm",
                        "--hard_neg_method", "hybrid", "--embedding_model", "bundled-minilm", "--embedding_cache_dir",
                        str(tmp_path / "cache"), "--expand_documents", "--filter_false_negatives", "--teacher_model",
                        str(teacher), "--max_false_negative_share", "1", "--pseudo_queries_per_document", "0",
                        "--max_steps", "1", *QUICK, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "outputs").glob("reranker-finetuned-*")
    info = json.loads((run_dir / "training_info.json").read_text())
    assert info["arguments"]["hard_neg_method"] == "hybrid" and info["arguments"]["expand_documents"]
    assert json.loads((run_dir / "fusion.json").read_text())["retriever"] == "hybrid"
    pairs = info["pairs"]
    # A 4-step teacher scores pairs nearly alike, so hard candidates land within the margin. Judged before
    # sampling, a group walks on through its pool instead of losing them: what still comes up short is said.
    assert pairs["false_negatives_dropped"] > 0
    short = re.search(r"(\d+) group\(s\) came up short of hard negatives", result.stderr)
    assert short and f"false-negative filter: {teacher} judged" in result.stderr
    assert pairs["hard_negative_pairs"] == 2 * pairs["positive_pairs"] or pairs["groups_short"] >= int(short.group(1))


@pytest.mark.parametrize("teacher_flags, message", [
    ([], "the teacher bundled-minilm has no trained ranking head"),
    (["--teacher_model", "RUN", "--false_negative_margin", "0.9999"], "more than --max_false_negative_share 0.5"),
])
def test_the_false_negative_filter_refuses_a_teacher_that_cannot_rank(small_data, trained_run, tmp_path,
                                                                      teacher_flags, message):
    """#26 case 4: a fresh head, or a teacher that would drop most hard negatives, stops the run with the numbers."""
    from conftest import QUICK, data_flags

    flags = [str(trained_run[0]) if flag == "RUN" else flag for flag in teacher_flags]
    result = run_script("fine_tune_reranker.py", *data_flags(small_data), "--base_model", "bundled-minilm",
                        "--filter_false_negatives", *flags, "--pseudo_queries_per_document", "0", "--max_steps", "1",
                        *QUICK, cwd=tmp_path)
    assert result.returncode == 2, result.stderr[-3000:]
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not list((tmp_path / "outputs").glob("reranker-finetuned-*"))
