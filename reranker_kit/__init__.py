"""The reranker fine-tuning kit behind fine_tune_reranker.py, rerank.py and main.py.

Where things live:
- data/: loading and validating the club's files, splitting queries, extra training queries.
- retrieval/: the first stage (BM25 / TF-IDF) and how it reads Vietnamese text.
- models/: loading cross-encoders, the shared pair encoding, the `Reranker` API.
- metrics/: the club's benchmark metrics and the lexical context-recall judge.
- pipeline.py, fusion.py: retrieve-then-rerank, and fusing first-stage with reranker scores.
- training/: everything `fine_tune_reranker.py` runs; benchmark/: everything `main.py` runs.
- run_folder.py: the one owner of the run folders under outputs/; reports/: charts and model cards.
- testing.py: offline models for tests and benchmarks.
Heavy libraries (torch, transformers) are imported only where a model is needed, so bad input fails fast.
"""
