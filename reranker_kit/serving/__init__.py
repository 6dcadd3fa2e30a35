"""The `/rerank` HTTP server: a FastAPI app over `Reranker`, speaking TEI's and Cohere's request shapes.

`python rerank.py serve RUN` starts it (`reranker_kit.commands.serve`); docs/serving.md shows the requests.
Requests that arrive together are scored in one micro-batch on one scoring thread (`batching.MicroBatcher`),
so the event loop keeps answering `/health` while a batch is scored.
"""

from reranker_kit.serving.settings import ServingSettings

__all__ = ["ServingSettings"]
