"""BM25 engine: the kit's `LexicalIndex` against a direct bm25s call given the kit's analyzer.

    python bench/bench_bm25_engine.py                       # sample + 100k docs x 10k queries
    python bench/bench_bm25_engine.py --docs 20000 --queries 2000

It chose the engine (bench/RESULTS.md, section 5): run at commit d25ace5, `LexicalIndex` was the kit's own
sparse scoring. Since then `LexicalIndex` wraps bm25s, and the script checks the wrapper agrees with it.

Both engines get the same tokens (`retrieval.text.analyze`: syllables plus their folded forms) and the
same Lucene BM25 (k1 1.5, b 0.75). bm25s counts a repeated query word each time and the kit counts it
once, so each query's tokens are de-duplicated before bm25s sees them; the table then says whether the
two agree (top-k overlap, identical order) as well as how long each takes, fit included.
"""

import argparse
import time

import numpy as np
from bench_mining import synthetic_corpus, synthetic_queries

from _common import load_sample, machine_line, table


def ours(documents: list[str], queries: list[str], k: int) -> tuple[np.ndarray, float]:
    from reranker_kit.retrieval import LexicalIndex

    started = time.perf_counter()
    positions, _ = LexicalIndex(documents, method="bm25").top_k(queries, k)
    return positions, time.perf_counter() - started


def with_bm25s(documents: list[str], queries: list[str], k: int) -> tuple[np.ndarray, float]:
    import bm25s

    from reranker_kit.basics.text import analyze

    started = time.perf_counter()
    engine = bm25s.BM25(method="lucene", k1=1.5, b=0.75)
    engine.index([analyze(text) for text in documents], show_progress=False)
    query_tokens = [list(dict.fromkeys(analyze(text))) for text in queries]
    positions, _ = engine.retrieve(query_tokens, k=min(k, len(documents)), show_progress=False, n_threads=1)
    return np.asarray(positions), time.perf_counter() - started


def agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean top-k overlap, and the share of queries whose top k is in the identical order."""
    overlap = np.mean([len(set(x) & set(y)) / len(x) for x, y in zip(a.tolist(), b.tolist())])
    return float(overlap), float(np.mean([x == y for x, y in zip(a.tolist(), b.tolist())]))


def measure(name: str, documents: list[str], queries: list[str], k: int) -> list:
    ours_positions, ours_s = ours(documents, queries, k)
    reference_positions, reference_s = with_bm25s(documents, queries, k)
    overlap, identical = agreement(ours_positions, reference_positions)
    return [name, len(documents), len(queries), k, f"{ours_s:.2f}", f"{reference_s:.2f}",
            f"{ours_s / reference_s:.2f}x", f"{overlap:.4f}", f"{identical:.3f}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--k", type=int, default=50)
    args = parser.parse_args()
    print(machine_line())
    corpus, sample_queries = load_sample()
    rows = [measure("sample", list(corpus.values()), [query.text for query in sample_queries], 20)]
    if args.docs:
        documents = synthetic_corpus(args.docs, 1.0, seed=0)
        queries = [text for text, _ in synthetic_queries(documents, args.queries, seed=0)]
        rows.append(measure("synthetic", documents, queries, args.k))
    print(table(rows, ["data", "docs", "queries", "k", "ours s", "bm25s s", "ours/bm25s", "top-k overlap",
                       "identical order"]))


if __name__ == "__main__":
    main()
