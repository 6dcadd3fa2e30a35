"""Hard-negative mining: the seed's per-query TF-IDF refit against the project's fit-once batch scoring.

    python bench/bench_mining.py                                  # sample + 10k/100k docs x 1k/10k queries
    python bench/bench_mining.py --docs 10000 --queries 1000      # smaller
    python bench/bench_mining.py --docs --seed_queries 0          # the sample only

Methods (each case runs in a fresh child process, one after another in this invocation):
- seed: for every query, fit a new sklearn TfidfVectorizer (default settings, as the seed did) on the
  corpus plus that query, then cosine similarity of the query against every document, then the top k.
  Its cost is (queries x corpus); where the full run is infeasible it is timed on `--seed_queries` queries
  and extrapolated linearly (the work per query does not depend on the other queries).
- bm25 / tfidf: `retrieval.LexicalIndex(documents, method).top_k(queries, k)`: one fit, then queries scored
  512 at a time as sparse products; only each query's top k is kept.
- mine: the project's whole `negatives.mine_training_groups` (BM25 top_k plus negative sampling) on a
  prebuilt index, timed on at most `--mine_queries` queries and extrapolated linearly beyond that.

Memory: peak resident set (resource ru_maxrss) of the child after the method minus before it (after the
data were built and the libraries imported), in MiB. Times likewise exclude imports (sklearn/scipy, about
0.5 s once per process). It is the extra high-water mark the method needs, not tracemalloc.

Synthetic data: the vocabulary is the sample corpus's distinct lower-cased syllables, drawn with a
Zipf-like law (p ~ 1/rank^s over their sample-frequency ranks); documents have 60..120 syllables, queries
are 5..15 consecutive syllables of a random document (which is their relevant document).
"""

import argparse
import gc
import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

from _common import load_sample, machine_line, peak_rss_mib, run_child, table

SCRIPT = Path(__file__).resolve()
SAMPLE = "sample"


# ----------------------------------------------------------------------------------------------- data

def syllable_vocabulary() -> tuple[list[str], np.ndarray]:
    """The sample corpus's syllables, most frequent first, with their counts."""
    from reranker_kit.basics.text import WORD_PATTERN

    corpus, _ = load_sample()
    counts = Counter(s for text in corpus.values() for s in WORD_PATTERN.findall(text.lower()))
    ranked = counts.most_common()
    return [s for s, _ in ranked], np.array([c for _, c in ranked], dtype=np.float64)


def synthetic_corpus(num_docs: int, zipf_s: float, seed: int, min_len: int = 60, max_len: int = 120) -> list[str]:
    vocab, _ = syllable_vocabulary()
    vocab = np.array(vocab, dtype=object)
    probabilities = 1.0 / np.arange(1, len(vocab) + 1) ** zipf_s
    probabilities /= probabilities.sum()
    rng = np.random.default_rng(seed)
    documents = []
    for start in range(0, num_docs, 10_000):  # chunks keep the generator's temporaries small
        count = min(10_000, num_docs - start)
        lengths = rng.integers(min_len, max_len + 1, size=count)
        draws = rng.choice(len(vocab), size=int(lengths.sum()), p=probabilities)
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        documents += [" ".join(vocab[draws[bounds[i]:bounds[i + 1]]]) for i in range(count)]
    return documents


def synthetic_queries(documents: list[str], num_queries: int, seed: int) -> list[tuple[str, int]]:
    """(query text, position of its source document): 5..15 consecutive syllables of a random document."""
    rng = np.random.default_rng(seed + 1)
    queries = []
    for position in rng.integers(0, len(documents), size=num_queries):
        words = documents[position].split()
        length = int(rng.integers(5, 16))
        start = int(rng.integers(0, len(words) - length + 1))
        queries.append((" ".join(words[start:start + length]), int(position)))
    return queries


def build_case_data(case: dict):
    """(documents, query texts, project Query objects) for one case."""
    from reranker_kit.data.loading import Query

    if case["docs"] == SAMPLE:
        corpus, queries = load_sample()
        return [corpus[i] for i in corpus], [q.text for q in queries], queries, list(corpus)
    documents = synthetic_corpus(case["docs"], case["zipf_s"], case["seed"])
    pairs = synthetic_queries(documents, case["queries"], case["seed"])
    doc_ids = list(range(1, len(documents) + 1))
    queries = [Query(qid=f"q{i}", text=text, relevant_ids=(doc_ids[pos],), answer="", difficulty=None,
                     source="synthetic", row=i) for i, (text, pos) in enumerate(pairs)]
    return documents, [text for text, _ in pairs], queries, doc_ids


# ----------------------------------------------------------------------------------------------- methods

def seed_top_k(documents: list[str], query: str, k: int) -> np.ndarray:
    """The seed's way, for one query: refit TF-IDF on corpus + query, cosine similarity, top k."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import cosine_similarity

    matrix = TfidfVectorizer().fit_transform(documents + [query])
    similarities = cosine_similarity(matrix[-1], matrix[:-1]).ravel()
    return np.argsort(-similarities, kind="stable")[:k]


def run_case(case: dict) -> dict:
    """Measures one (method, size) case in this process; returns figures as a dict."""
    documents, texts, queries, doc_ids = build_case_data(case)
    # Imports first, so neither the timer nor the memory delta includes loading sklearn and scipy.
    import sklearn.feature_extraction.text  # noqa: F401
    import sklearn.metrics.pairwise  # noqa: F401

    import reranker_kit.retrieval  # noqa: F401
    import reranker_kit.training.negatives  # noqa: F401
    gc.collect()
    rss_before = peak_rss_mib()
    method, k = case["method"], case["k"]
    measured_queries = len(texts)
    fit_s = 0.0
    started = time.perf_counter()
    if method == "seed":
        measured_queries = min(len(texts), case["seed_queries"])
        for text in texts[:measured_queries]:
            seed_top_k(documents, text, k)
    elif method in ("bm25", "tfidf"):
        from reranker_kit.retrieval import LexicalIndex

        index = LexicalIndex(documents, method=method)
        fit_s = time.perf_counter() - started
        positions, _ = index.top_k(texts, k)
        assert positions.shape == (len(texts), min(k, len(documents)))
    elif method == "mine":
        from reranker_kit.retrieval import LexicalIndex
        from reranker_kit.training.negatives import mine_training_groups

        index = LexicalIndex(documents, method="bm25")
        fit_s = time.perf_counter() - started
        measured_queries = min(len(queries), case["mine_queries"])
        hard_top_k = min(case["k"], len(documents) - max(len(q.relevant_ids) for q in queries))
        groups, _ = mine_training_groups(queries[:measured_queries], index, doc_ids, num_hard=2, num_random=1,
                                         hard_top_k=hard_top_k, seed=42)
        assert len(groups) >= measured_queries
    else:
        raise ValueError(method)
    wall_s = time.perf_counter() - started
    per_query_s = (wall_s - fit_s) / measured_queries
    return {"method": method, "docs": len(documents), "queries": len(texts), "measured_queries": measured_queries,
            "fit_s": fit_s, "wall_s": wall_s, "total_s": fit_s + per_query_s * len(texts),
            "extrapolated": measured_queries < len(texts), "rss_before_mib": rss_before,
            "rss_delta_mib": peak_rss_mib() - rss_before}


# ----------------------------------------------------------------------------------------------- driver

def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, nargs="*", default=[10_000, 100_000],
                        help="Synthetic corpus sizes (none: the sample only).")
    parser.add_argument("--queries", type=int, nargs="+", default=[1_000, 10_000], help="Synthetic query counts.")
    parser.add_argument("--methods", nargs="+", default=["seed", "bm25", "tfidf", "mine"],
                        choices=["seed", "bm25", "tfidf", "mine"])
    parser.add_argument("--seed_queries", type=int, nargs="+", default=[20, 3],
                        help="Queries the seed way is timed on, per synthetic corpus size (last value repeats); "
                             "0 skips it on synthetic data. The sample always runs all 100.")
    parser.add_argument("--mine_queries", type=int, default=2000,
                        help="At most this many queries through mine_training_groups (extrapolated beyond).")
    parser.add_argument("--k", type=int, default=50, help="Top documents kept per query (hard_neg_top_k).")
    parser.add_argument("--zipf_s", type=float, default=1.0, help="Zipf exponent of the syllable draw.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no_sample", action="store_true", help="Skip the shipped sample (99 docs x 100 queries).")
    parser.add_argument("--json", type=Path, help="Also write every figure to this JSON file.")
    parser.add_argument("--_case", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._case:
        print(json.dumps(run_case(json.loads(args._case))))
        return

    print(f"Hard-negative mining benchmark; {machine_line()}")
    print("Each case runs in its own child process, sequentially; memory = ru_maxrss delta (MiB) of that child "
          "around the method (data already built).\n")
    base = {"k": args.k, "zipf_s": args.zipf_s, "seed": args.seed, "mine_queries": args.mine_queries}
    cases = []
    if not args.no_sample:
        cases += [dict(base, docs=SAMPLE, queries=100, method=m, seed_queries=10**9) for m in args.methods]
    for size_index, num_docs in enumerate(args.docs):
        seed_q = args.seed_queries[min(size_index, len(args.seed_queries) - 1)]
        for method in args.methods:
            if method == "seed":
                if seed_q > 0:  # per-query cost does not depend on the query count: one run, extrapolated to each
                    cases.append(dict(base, docs=num_docs, queries=max(args.queries), method=method,
                                      seed_queries=seed_q))
                continue
            for num_queries in args.queries:
                cases.append(dict(base, docs=num_docs, queries=num_queries, method=method, seed_queries=0))
    results = []
    for case in cases:
        result = run_child(SCRIPT, ["--_case", json.dumps(case)])
        result["label"] = case["docs"]
        print(f"  done: {result['method']:5s} docs={result['docs']:>6} queries={result['queries']:>5} "
              f"measured={result['measured_queries']:>5} {result['wall_s']:.2f}s (child {result['child_wall_s']:.1f}s)",
              flush=True)
        results.append(result)
        if result["method"] == "seed" and case["docs"] != SAMPLE:  # the same per-query cost for the smaller counts
            for num_queries in sorted(args.queries)[:-1]:
                extra = dict(result, queries=num_queries,
                             total_s=result["wall_s"] / result["measured_queries"] * num_queries)
                extra["extrapolated"] = result["measured_queries"] < num_queries
                results.append(extra)

    report(results, args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


def report(results: list[dict], args) -> None:
    rows = []
    key = lambda r: (r["docs"], r["queries"], ["seed", "bm25", "tfidf", "mine"].index(r["method"]))  # noqa: E731
    results = sorted(results, key=key)
    for r in results:
        note = f"extrapolated from {r['measured_queries']} queries" if r["extrapolated"] else "measured"
        rows.append([r["method"], r["docs"], r["queries"], f"{r['fit_s']:.2f}", f"{r['total_s']:.2f}",
                     f"{r['total_s'] / r['queries'] * 1000:.2f}", f"{r['rss_delta_mib']:.0f}", note])
    print("\n" + table(rows, ["method", "docs", "queries", "fit s", "total s", "ms/query", "peak +MiB", "how"]))

    by = {(r["method"], r["docs"], r["queries"]): r for r in results}
    print("\nSpeed-up of fit-once batch scoring over the seed's per-query refit (seed total / method total):")
    ratio_rows = []
    for (method, docs, queries), r in sorted(by.items(), key=lambda item: (item[0][1], item[0][2])):
        seed = by.get(("seed", docs, queries))
        if method in ("bm25", "tfidf", "mine") and seed:
            ratio_rows.append([method, docs, queries, f"{seed['total_s']:.1f}", f"{r['total_s']:.2f}",
                               f"{seed['total_s'] / r['total_s']:.0f}x"])
    if ratio_rows:
        print(table(ratio_rows, ["method", "docs", "queries", "seed s", "method s", "speed-up"]))

    print("\nMemory growth with queries (peak +MiB at the smallest vs the largest query count, same corpus):")
    growth_rows = []
    counts = sorted({r["queries"] for r in results if r["docs"] != 99})
    if len(counts) >= 2:
        low, high = counts[0], counts[-1]
        for method in ("bm25", "tfidf", "mine", "seed"):
            for docs in sorted({r["docs"] for r in results}):
                a, b = by.get((method, docs, low)), by.get((method, docs, high))
                if a and b and not (method == "seed"):
                    dense = high * docs * 4 / 2**20
                    growth_rows.append([method, docs, f"{a['rss_delta_mib']:.0f}", f"{b['rss_delta_mib']:.0f}",
                                        f"{b['rss_delta_mib'] / max(a['rss_delta_mib'], 1):.2f}x",
                                        f"{high // low}x", f"{dense:.0f}"])
        if growth_rows:
            print(table(growth_rows, ["method", "docs", f"+MiB @{low}q", f"+MiB @{high}q", "memory x",
                                      "queries x", f"dense {high}q x docs f32 MiB"]))
    print("(seed rows on synthetic data: the per-query refit holds one corpus matrix at a time, so its memory "
          "does not depend on the query count; its measured peak is shown in the first table.)")

    print("\nTargets:")
    sample = {m: by.get((m, 99, 100)) for m in ("seed", "bm25", "tfidf", "mine")}
    for method in ("bm25", "tfidf", "mine"):
        if sample[method]:
            s = sample[method]["total_s"]
            verdict = f"MET ({1 / s:.0f}x under)" if s < 1 else f"MISSED by {s:.2f}x"
            print(f"  100 queries x 99 docs under 1 s, {method}: {s:.3f} s -> {verdict}")
    if sample["seed"]:
        print(f"  (the seed's way on the sample: {sample['seed']['total_s']:.3f} s)")
    for method in ("bm25", "tfidf", "mine"):
        r = by.get((method, 100_000, 10_000))
        if r:
            s = r["total_s"]
            verdict = f"MET ({60 / s:.1f}x under)" if s < 60 else f"MISSED by {s / 60:.2f}x"
            extra = " [extrapolated]" if r["extrapolated"] else ""
            print(f"  10k queries x 100k docs under 60 s, {method}: {s:.1f} s{extra} -> {verdict}")
    print("  memory not growing with queries x documents: see the growth table (memory x vs queries x).")


if __name__ == "__main__":
    main()
