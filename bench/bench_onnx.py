"""CPU serving: torch fp32 against the ONNX export in fp32 and int8, side by side in one process.

    python fine_tune_reranker.py --base_model bundled-minilm --max_steps 30 --max_seq_length 128 \\
        --batch_size 8 --gradient_accumulation_steps 1 --runs_root /tmp/onnx-bench
    python rerank.py export /tmp/onnx-bench/reranker-finetuned-* --onnx --int8
    python bench/bench_onnx.py --run /tmp/onnx-bench/reranker-finetuned-*

Pairs are what main.py reranks for the sample test file: each query of test_data_proptit.xlsx with its
BM25 top `--top_n` documents of CLB_PROPTIT.csv. Each backend is a `rerank.Reranker` (tokenizing inside
the timing, as users call it). After one untimed warm-up batch each, the backends run in turn
(torch, onnx, onnx_int8, torch, ...) `--repeats` times, so load on a shared machine falls on all of
them alike; pairs/s is the total over the repeats. mrr@5 (and hit@3) of each backend's reranking of
those candidates is computed with the kit's metrics.
"""

import argparse
import json
import time

import numpy as np
import torch

from _common import ROOT, machine_line, table

BACKENDS = ("torch", "onnx", "onnx_int8")
TARGET_SPEEDUP = 2.0
TARGET_MRR_DROP = 0.01


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="A fine-tuned run folder exported with --onnx --int8.")
    parser.add_argument("--test_xlsx", default=str(ROOT / "test_data_proptit.xlsx"))
    parser.add_argument("--corpus_csv", default=str(ROOT / "CLB_PROPTIT.csv"))
    parser.add_argument("--top_n", type=int, default=20, help="BM25 candidates per test query (main.py's --top_n).")
    parser.add_argument("--max_length", type=int, default=512, help="main.py's default --max_length.")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(),
                        help="Threads for torch and for ONNX Runtime alike.")
    return parser.parse_args(argv)


def test_candidates(args):
    """(queries, candidates, corpus, pairs): the sample test queries and their BM25 top_n, as main.py builds them."""
    from reranker_kit.data.loading import load_corpus, load_queries
    from reranker_kit.retrieval import LexicalIndex
    from reranker_kit.retrieval.candidates import retrieve_candidates

    corpus = load_corpus(args.corpus_csv)
    queries = load_queries(args.test_xlsx, corpus)
    doc_ids = list(corpus)
    candidates = retrieve_candidates(LexicalIndex([corpus[doc_id] for doc_id in doc_ids]), doc_ids, queries, args.top_n)
    pairs = [(query.text, corpus[doc_id]) for query in queries for doc_id in candidates.ids[query.qid]]
    return queries, candidates, corpus, pairs


def load_rerankers(args) -> dict:
    """One Reranker per backend; ONNX Runtime gets the same thread count as torch."""
    from reranker_kit.models.onnx_export import OnnxCrossEncoder
    from reranker_kit.models.reranker import Reranker

    torch.set_num_threads(args.threads)
    rerankers = {backend: Reranker(args.run, device="cpu", max_length=args.max_length, batch_size=args.batch_size,
                                   backend=backend) for backend in BACKENDS}
    # ONNX Runtime's default thread count follows the physical cores, torch's may not: set both alike.
    for backend in ("onnx", "onnx_int8"):
        model = rerankers[backend].model
        rerankers[backend].model = OnnxCrossEncoder(model.path, model.config, threads=args.threads)
    return rerankers


def time_backends(rerankers: dict, pairs, repeats: int) -> tuple[dict, dict]:
    """(seconds per backend summed over the repeats, scores per backend), backends alternating."""
    for reranker in rerankers.values():
        reranker.compute_score(pairs[:reranker.batch_size])
    elapsed, scores = dict.fromkeys(rerankers, 0.0), {}
    for repeat in range(repeats):
        line = []
        for backend, reranker in rerankers.items():
            started = time.perf_counter()
            scores[backend] = np.asarray(reranker.compute_score(pairs))
            seconds = time.perf_counter() - started
            elapsed[backend] += seconds
            line.append(f"{backend} {seconds:.2f} s")
        print(f"repeat {repeat + 1}: " + ", ".join(line), flush=True)
    return elapsed, scores


def quality(queries, candidates, scores: np.ndarray) -> dict[str, float]:
    from reranker_kit.metrics import evaluate_rankings
    from reranker_kit.pipeline import rank

    by_query, start = {}, 0
    for query in queries:
        count = len(candidates.ids[query.qid])
        by_query[query.qid] = scores[start:start + count]
        start += count
    return evaluate_rankings(rank(by_query, candidates), {query.qid: query.relevant_ids for query in queries},
                             (3, 5), metrics=("hit", "mrr"))


def report(args, queries, candidates, pairs, elapsed: dict, scores: dict) -> dict:
    scored = len(pairs) * args.repeats
    rate = {backend: scored / seconds for backend, seconds in elapsed.items()}
    metrics = {backend: quality(queries, candidates, scores[backend]) for backend in BACKENDS}
    metrics["first_stage"] = quality(queries, candidates, -np.concatenate(
        [np.arange(len(candidates.ids[query.qid]), dtype=np.float32) for query in queries]))
    rows = [[backend, f"{elapsed[backend]:.2f}", f"{rate[backend]:.1f}", f"{rate[backend] / rate['torch']:.2f}x",
             f"{metrics[backend]['mrr@5']:.4f}", f"{metrics[backend]['hit@3']:.4f}",
             f"{float(np.max(np.abs(scores[backend] - scores['torch']))):.1e}"] for backend in BACKENDS]
    rows.append(["(BM25 order, no reranker)", "", "", "", f"{metrics['first_stage']['mrr@5']:.4f}",
                 f"{metrics['first_stage']['hit@3']:.4f}", ""])
    print(table(rows, ["backend", "seconds", "pairs/s", "vs torch", "mrr@5", "hit@3", "max |score - torch|"]))
    speedup = rate["onnx_int8"] / rate["torch"]
    drop = metrics["torch"]["mrr@5"] - metrics["onnx_int8"]["mrr@5"]
    print(f"\ntarget int8 >= {TARGET_SPEEDUP:.0f}x torch fp32 pairs/s: {speedup:.2f}x -> "
          f"{'MET' if speedup >= TARGET_SPEEDUP else 'MISSED'}")
    print(f"target int8 mrr@5 within {TARGET_MRR_DROP} of torch: {abs(drop):.4f} -> "
          f"{'MET' if abs(drop) <= TARGET_MRR_DROP else 'MISSED'}")
    return {"pairs_per_s": rate, "metrics": metrics, "speedup_int8": speedup, "mrr5_drop_int8": drop}


def main(argv=None) -> None:
    from reranker_kit.models.pair_encoding import encode_pairs

    args = parse_args(argv)
    queries, candidates, corpus, pairs = test_candidates(args)
    rerankers = load_rerankers(args)
    lengths = [len(item["input_ids"]) for item in encode_pairs(rerankers["torch"].tokenizer, pairs,
                                                                 rerankers["torch"].max_length)]
    print(machine_line())
    print(f"model: {args.run}; threads {args.threads} (torch and ONNX Runtime)")
    print(f"pairs: {len(queries)} test queries x BM25 top {args.top_n} = {len(pairs)}, mean length "
          f"{np.mean(lengths):.0f} tokens, max_length {rerankers['torch'].max_length}, batch {args.batch_size}, "
          f"repeats {args.repeats}\n")
    elapsed, scores = time_backends(rerankers, pairs, args.repeats)
    print()
    print(json.dumps(report(args, queries, candidates, pairs, elapsed, scores)))


if __name__ == "__main__":
    main()
