"""Benchmark retrieve-then-rerank with the club's metrics at k = 3, 5, 7.

Compares, per query file and per difficulty: the first stage alone (BM25 by default), the pretrained
reranker the fine-tuned model started from (when it can be loaded), the fine-tuned reranker (the newest
finished outputs/reranker-finetuned-* unless --reranker says otherwise), and the fine-tuned reranker
fused with the first stage. Prints tables, each paired difference with its interval, and a verdict that
calls a difference a gain only where its interval excludes zero; a file whose queries the run trained on is
marked in-sample on every table. Writes CSV, JSON, charts and report.html into a new outputs/eval-* folder.

    python main.py
    python main.py --reranker outputs/reranker-finetuned-20261127-101500 --retriever tfidf

The flags are `reranker_kit.commands.benchmark_flags`, the benchmark itself `reranker_kit.benchmark.run`.
"""

from reranker_kit.commands.benchmark import main
from reranker_kit.commands.common import run_cli

if __name__ == "__main__":
    run_cli(main)
