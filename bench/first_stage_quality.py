"""First stages compared on the sample data, without training: hit@k, mrr@k and recall at the reranking depth.

Every first stage is scored on the same 5 query folds of the train file (merged repeats, `--seed 42`, as
`fine_tune_reranker.py --cv_folds 5` splits them): an expanded index holds the other four folds' queries
and answers, never the held-out fold's. On the test file the expansion is the whole train file minus any
query the test file also asks. Then the cost: loading the embedding model, embedding the corpus (no
cache), and the latency of one query at a time.

    PYTHONPATH=. python bench/first_stage_quality.py [--embedding_model bundled-minilm]
"""

import argparse
import statistics
import tempfile
import time

from reranker_kit.data.loading import load_corpus, load_queries
from reranker_kit.data.splits import fold_splits, merge_duplicate_queries
from reranker_kit.metrics import per_query_metrics
from reranker_kit.pipeline import rank
from reranker_kit.retrieval import FirstStage, LexicalIndex
from reranker_kit.retrieval.candidates import retrieve_candidates
from reranker_kit.retrieval.dense import DenseIndex, SentenceEncoder
from reranker_kit.retrieval.expansion import expanded_documents, queries_outside
from reranker_kit.retrieval.hybrid import HybridIndex

from _common import ROOT, machine_line, table

# Quality runs embed the same corpus many times; costs() measures without it.
CACHE = tempfile.mkdtemp(prefix="first-stage-quality-")
DEPTH = 20  # main.py's --top_n and fine_tune_reranker.py's --dev_top_n: what the reranker can reach.
REPORTED = ("hit@3", "hit@5", "hit@7", "mrr@3", "mrr@5", "mrr@7", "recall@7", f"recall@{DEPTH}")
# name: (method, hybrid normalisation or None, dense weight, expanded)
STAGES = {
    "bm25": ("bm25", None, 0.0, False),
    "tfidf": ("tfidf", None, 0.0, False),
    "dense": ("dense", None, 1.0, False),
    "hybrid minmax w0.5 (the kit's hybrid)": ("hybrid", "minmax", 0.5, False),
    "hybrid zscore w0.5": ("hybrid", "zscore", 0.5, False),
    "hybrid rrf w0.5": ("hybrid", "rrf", 0.5, False),
    "hybrid rrf w0.3": ("hybrid", "rrf", 0.3, False),
    "bm25 expanded": ("bm25", None, 0.0, True),
    "tfidf expanded": ("tfidf", None, 0.0, True),
    "dense expanded": ("dense", None, 1.0, True),
    "hybrid minmax w0.5 expanded": ("hybrid", "minmax", 0.5, True),
}


def build_index(stage: tuple, documents: list[str], encoder):
    method, fusion, weight, _ = stage
    if method in ("bm25", "tfidf"):
        return LexicalIndex(documents, method=method)
    dense = DenseIndex(documents, encoder, cache_dir=CACHE)
    return dense if method == "dense" else HybridIndex(LexicalIndex(documents), dense, fusion, weight)


def per_query(stage: tuple, corpus: dict[int, str], queries, expansion, encoder) -> dict[str, dict[str, float]]:
    """{qid: {metric: value}} of one first stage on `queries`, the documents expanded with `expansion` if asked."""
    documents = expanded_documents(corpus, expansion) if stage[3] else corpus
    doc_ids = list(corpus)
    index = build_index(stage, [documents[doc_id] for doc_id in doc_ids], encoder)
    candidates = retrieve_candidates(index, doc_ids, queries, DEPTH)
    rankings = rank(candidates.first_stage_scores, candidates)
    return per_query_metrics(rankings, {query.qid: query.relevant_ids for query in queries}, (3, 5, 7, DEPTH),
                             metrics=("hit", "mrr", "recall"))


def mean(rows: list[dict], metric: str) -> float:
    return statistics.fmean(row[metric] for row in rows)


def cross_validated(stage, corpus, train, encoder) -> dict[str, str]:
    """`mean ± std` over the 5 folds of each reported metric, each fold expanded with the other folds only."""
    folds = []
    for fold_train, fold_dev in fold_splits(train, 5, 42):
        rows = per_query(stage, corpus, fold_dev, fold_train, encoder)
        folds.append({metric: mean(list(rows.values()), metric) for metric in REPORTED})
    return {metric: f"{statistics.fmean(f[metric] for f in folds):.3f} ± {statistics.stdev(f[metric] for f in folds):.3f}"
            for metric in REPORTED}


def on_test(stage, corpus, train, test, encoder) -> dict[str, str]:
    rows = list(per_query(stage, corpus, test, queries_outside(train, test), encoder).values())
    return {metric: f"{mean(rows, metric):.3f}" for metric in REPORTED}


def costs(corpus: dict[int, str], queries, model: str) -> list[list]:
    """Load, corpus-embedding and one-query-at-a-time latency of each method (no cache)."""
    started = time.perf_counter()
    encoder = SentenceEncoder.load(model)
    load_s = time.perf_counter() - started
    documents = list(corpus.values())
    started = time.perf_counter()
    DenseIndex(documents, encoder, cache_dir=None)
    embed_s = time.perf_counter() - started
    rows = [["load the embedding model", f"{load_s:.2f} s"], [f"embed the {len(documents)} documents", f"{embed_s:.2f} s"]]
    texts = [query.text for query in queries]
    for method in ("bm25", "tfidf", "dense", "hybrid"):
        stage = FirstStage(method, model, cache_dir=None)
        stage._encoder = encoder  # Loaded once above; its load time is reported on its own row.
        started = time.perf_counter()
        index = stage.index(documents)
        build_s = time.perf_counter() - started
        rows.append([f"{method}: build the index / one query (median)",
                     f"{build_s:.2f} s / {1000 * median_latency(index, texts):.1f} ms"])
    return rows


def median_latency(index, texts: list[str], repeats: int = 3) -> float:
    """Median seconds of `top_k` for one query at a time, the lowest of `repeats` passes: the machine is
    shared, and the quietest pass is the closest to the cost itself."""
    passes = []
    for _ in range(repeats):
        timings = []
        for text in texts:
            started = time.perf_counter()
            index.top_k([text], DEPTH)
            timings.append(time.perf_counter() - started)
        passes.append(statistics.median(timings))
    return min(passes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--embedding_model", default="bundled-minilm")
    args = parser.parse_args()
    print(machine_line())
    corpus = load_corpus(ROOT / "CLB_PROPTIT.csv")
    train = merge_duplicate_queries(load_queries(ROOT / "train_data_proptit.xlsx", corpus))
    test = load_queries(ROOT / "test_data_proptit.xlsx", corpus)
    encoder = SentenceEncoder.load(args.embedding_model)
    header = ["first stage", *REPORTED]
    cv_rows, test_rows = [], []
    for name, stage in STAGES.items():
        cv = cross_validated(stage, corpus, train, encoder)
        cv_rows.append([name, *(cv[metric] for metric in REPORTED)])
        test_rows.append([name, *on_test(stage, corpus, train, test, encoder).values()])
    print(f"\ntrain file, 5 folds of {len(train)} queries (mean ± std over folds):\n" + table(cv_rows, header))
    print(f"\ntest file, {len(test)} queries (expanded with the train file):\n" + table(test_rows, header))
    print(f"\ncosts ({args.embedding_model}, CPU):\n" + table(costs(corpus, test, args.embedding_model), ["step", "time"]))


if __name__ == "__main__":
    main()
