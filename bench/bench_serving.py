"""The /rerank server under load: micro-batched throughput and latency against direct `Reranker` calls.

    python fine_tune_reranker.py --base_model bundled-minilm --max_steps 4 --runs_root /tmp/serving-bench
    python rerank.py export /tmp/serving-bench/reranker-finetuned-* --onnx --int8
    OMP_NUM_THREADS=1 python bench/bench_serving.py --run /tmp/serving-bench/reranker-finetuned-*

Each request is one sample test query with its BM25 top 20 documents (what main.py reranks), the queries
taken in turn. For each backend the script starts `python rerank.py serve` on 127.0.0.1, sends `--requests`
requests at each `--concurrency` with a bounded async client (httpx; at most that many in flight), and
stops the server with SIGTERM. For every `--max_batch_pairs` after the first, only the highest concurrency
runs again (a lone request never shares a batch, so concurrency 1 does not depend on it). The reference is
the same requests as direct `Reranker.compute_score` calls, one after another in this process, after the
server has stopped. Torch threads follow OMP_NUM_THREADS in both; ONNX Runtime keeps its default threads
in both (the server and the reference construct `Reranker` alike).
"""

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import numpy as np

from _common import ROOT, machine_line, table

TARGET_BATCHING_GAIN = 2.0  # requests/s at the highest concurrency over concurrency 1
TARGET_LATENCY_RATIO = 1.5  # p99 at concurrency 1 over one direct call's median
LOOPBACK = "127.0.0.1"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", required=True, help="A finished run folder (exported with --onnx --int8 for onnx_int8).")
    parser.add_argument("--backends", nargs="+", default=["torch", "onnx_int8"], choices=("torch", "onnx", "onnx_int8"))
    parser.add_argument("--requests", type=int, default=32, help="Requests sent at each concurrency.")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--top_n", type=int, default=20, help="BM25 documents per request.")
    parser.add_argument("--max_length", type=int, default=512, help="The server's and the reference's --max_length.")
    parser.add_argument("--batch_size", type=int, default=32, help="Pairs per forward pass (server and reference).")
    parser.add_argument("--max_batch_pairs", type=int, nargs="+", default=[64, 128],
                        help="The server's --max_batch_pairs; the first runs every concurrency.")
    parser.add_argument("--max_wait_ms", type=float, default=5.0)
    parser.add_argument("--startup_timeout_s", type=float, default=300.0)
    return parser.parse_args(argv)


def request_bodies(top_n: int, count: int) -> list[dict]:
    """`count` TEI bodies: the sample test queries in turn, each with its BM25 top_n documents."""
    from reranker_kit.data.loading import load_corpus, load_queries
    from reranker_kit.retrieval import FirstStage

    corpus = load_corpus(ROOT / "CLB_PROPTIT.csv")
    queries = load_queries(ROOT / "test_data_proptit.xlsx", corpus)
    doc_ids = list(corpus)
    positions, _ = FirstStage("bm25").index([corpus[doc_id] for doc_id in doc_ids]).top_k([q.text for q in queries], top_n)
    bodies = [{"query": query.text, "texts": [corpus[doc_ids[p]] for p in row], "raw_scores": True}
              for query, row in zip(queries, positions)]
    return [bodies[number % len(bodies)] for number in range(count)]


def start_server(args, backend: str, max_batch_pairs: int) -> tuple[subprocess.Popen, str]:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        port = probe.getsockname()[1]
    command = [sys.executable, str(ROOT / "rerank.py"), "serve", args.run, "--host", LOOPBACK, "--port", str(port),
               "--backend", backend, "--device", "cpu", "--max_length", str(args.max_length), "--batch_size",
               str(args.batch_size), "--max_batch_pairs", str(max_batch_pairs), "--max_wait_ms", str(args.max_wait_ms)]
    log = open(f"/tmp/bench_serving_{backend}_{max_batch_pairs}.log", "w")  # noqa: SIM115 - closed with the process.
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, HF_HUB_OFFLINE="1"))
    base_url = f"http://{LOOPBACK}:{port}"
    deadline = time.monotonic() + args.startup_timeout_s
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{base_url}/health", timeout=5).status_code == 200:
                return process, base_url
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    process.kill()
    raise RuntimeError(f"the server never became healthy; see {log.name}")


def stop_server(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    if process.wait(timeout=120) != 0:
        raise RuntimeError(f"the server exited {process.returncode} after SIGTERM")


async def send_all(base_url: str, bodies: list[dict], concurrency: int) -> dict:
    """Sends every body with at most `concurrency` in flight; latencies in seconds, errors counted."""
    limit = asyncio.Semaphore(concurrency)
    latencies, errors = [], 0

    async def send(client: httpx.AsyncClient, body: dict) -> None:
        nonlocal errors
        async with limit:
            started = time.perf_counter()
            try:
                response = await client.post(f"{base_url}/rerank", json=body)
                ok = response.status_code == 200 and len(response.json()) == len(body["texts"])
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - started)
            errors += not ok

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        started = time.perf_counter()
        await asyncio.gather(*(send(client, body) for body in bodies))
        elapsed = time.perf_counter() - started
    return summary(latencies, elapsed, sum(len(body["texts"]) for body in bodies), errors)


def summary(latencies: list[float], elapsed: float, pairs: int, errors: int) -> dict:
    p50, p95, p99 = np.percentile(np.asarray(latencies) * 1000, [50, 95, 99])
    return {"requests_per_s": len(latencies) / elapsed, "pairs_per_s": pairs / elapsed, "p50_ms": p50, "p95_ms": p95,
            "p99_ms": p99, "errors": errors}


def measure_server(args, backend: str, bodies: list[dict]) -> list[tuple[str, int, dict]]:
    """(label, concurrency, summary) rows for one backend, each --max_batch_pairs in its own server."""
    rows = []
    for number, max_batch_pairs in enumerate(args.max_batch_pairs):
        process, base_url = start_server(args, backend, max_batch_pairs)
        try:
            asyncio.run(send_all(base_url, bodies[:2], 1))  # Warm-up: first-call allocations, not load.
            levels = args.concurrency if number == 0 else [max(args.concurrency)]
            for concurrency in levels:
                result = asyncio.run(send_all(base_url, bodies, concurrency))
                rows.append((f"server, max_batch_pairs {max_batch_pairs}", concurrency, result))
                print(f"{backend} max_batch_pairs {max_batch_pairs} concurrency {concurrency}: "
                      f"{result['requests_per_s']:.2f} requests/s", flush=True)
        finally:
            stop_server(process)
    return rows


def measure_direct(args, backend: str, bodies: list[dict]) -> dict:
    """The same requests as direct compute_score calls in this process, one after another."""
    from reranker_kit.models.reranker import Reranker

    reranker = Reranker(args.run, device="cpu", max_length=args.max_length, batch_size=args.batch_size, backend=backend)
    pairs_of = [[(body["query"], text) for text in body["texts"]] for body in bodies]
    reranker.compute_score(pairs_of[0])  # Warm-up, as the server got.
    latencies, started = [], time.perf_counter()
    for pairs in pairs_of:
        call_started = time.perf_counter()
        reranker.compute_score(pairs)
        latencies.append(time.perf_counter() - call_started)
    return summary(latencies, time.perf_counter() - started, sum(map(len, pairs_of)), 0)


def report(backend: str, rows: list[tuple[str, int, dict]], direct: dict) -> list[list]:
    lines = [[backend, label, concurrency, f"{result['requests_per_s']:.2f}", f"{result['pairs_per_s']:.1f}",
              f"{result['p50_ms']:.0f}", f"{result['p95_ms']:.0f}", f"{result['p99_ms']:.0f}", result["errors"]]
             for label, concurrency, result in rows]
    lines.append([backend, "direct Reranker calls", 1, f"{direct['requests_per_s']:.2f}", f"{direct['pairs_per_s']:.1f}",
                  f"{direct['p50_ms']:.0f}", f"{direct['p95_ms']:.0f}", f"{direct['p99_ms']:.0f}", "-"])
    return lines


def verdicts(backend: str, rows: list[tuple[str, int, dict]], direct: dict) -> list[str]:
    one = next(result for _, concurrency, result in rows if concurrency == 1)
    lines = []
    for label, concurrency, result in rows:
        if concurrency == max(c for _, c, _ in rows) and concurrency > 1:
            gain = result["requests_per_s"] / one["requests_per_s"]
            met = gain >= TARGET_BATCHING_GAIN and result["errors"] == 0
            lines.append(f"{backend}, {label}: concurrency {concurrency} / concurrency 1 = {gain:.2f}x requests/s, "
                         f"{result['errors']} errors (target >= {TARGET_BATCHING_GAIN:.0f}x, 0 errors) -> "
                         f"{'MET' if met else 'MISSED'}")
    ratio = one["p99_ms"] / direct["p50_ms"]
    lines.append(f"{backend}: p99 at concurrency 1 / one direct call (median) = {ratio:.2f} (p99 / direct p99 = "
                 f"{one['p99_ms'] / direct['p99_ms']:.2f}; target <= {TARGET_LATENCY_RATIO}) -> "
                 f"{'MET' if ratio <= TARGET_LATENCY_RATIO else 'MISSED'}")
    return lines


def main(argv=None) -> None:
    args = parse_args(argv)
    bodies = request_bodies(args.top_n, args.requests)
    print(machine_line(), f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print(f"model: {args.run}; {args.requests} requests of {args.top_n} pairs per concurrency, max_length "
          f"{args.max_length}, batch_size {args.batch_size}, max_wait_ms {args.max_wait_ms}\n", flush=True)
    table_rows, verdict_lines = [], []
    for backend in args.backends:
        rows = measure_server(args, backend, bodies)
        direct = measure_direct(args, backend, bodies)
        table_rows += report(backend, rows, direct)
        verdict_lines += verdicts(backend, rows, direct)
    print()
    print(table(table_rows, ["backend", "how", "concurrency", "requests/s", "pairs/s", "p50 ms", "p95 ms", "p99 ms",
                             "errors"]))
    print("\n" + "\n".join(verdict_lines))
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
