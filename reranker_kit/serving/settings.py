"""What a server is started with: the model, its backend, and the limits every request is held to."""

import json
from dataclasses import asdict, dataclass

# TEI's `--payload-limit` defaults to 2 MB; ours is larger because clients that send JSON with `ensure_ascii`
# (Python's default) spend six bytes on each Vietnamese letter with a diacritic.
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
# About four requests of the most documents each, waiting behind the batch being scored: on a GPU a few
# seconds of work, on a CPU with a large model minutes, which --request_timeout_s then cuts short.
DEFAULT_MAX_QUEUED_PAIRS = 4096
DEFAULT_REQUEST_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ServingSettings:
    """The typed settings the app reads; the command line is parsed into one of these at the edge.

    Args:
        model: a run folder, any saved model folder, a Hub id, or a bundled offline model (`bundled-e5`).
        backend: "torch", "onnx" or "onnx_int8" (the run's `onnx/` export, CPU only).
        device: "cpu", "cuda"...; None lets `Reranker` choose (the first GPU when there is one).
        max_length: token budget of a (query, document) pair; capped at the model's positions.
        batch_size: pairs per forward pass inside a micro-batch.
        max_batch_pairs: pairs of several requests scored together in one micro-batch.
        max_wait_ms: how long the first request of a micro-batch waits for others to join it.
        max_documents: the most documents one request may send.
        max_body_bytes: the largest request body read; larger ones get 413 before being read.
        max_queued_pairs: the most pairs waiting to be scored; a request that would go beyond gets 429 with
            Retry-After. At least `max_documents`, so an empty queue takes any request.
        request_timeout_s: how long a request may wait for its scores, from arrival; beyond, 503 with Retry-After.
        allow_untrained_head: serve a model whose ranking head is not trained (its scores mean nothing);
            refused otherwise.
    """

    model: str
    backend: str = "torch"
    device: str | None = None
    max_length: int = 512
    batch_size: int = 32
    max_batch_pairs: int = 64
    max_wait_ms: float = 5.0
    max_documents: int = 1000
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_queued_pairs: int = DEFAULT_MAX_QUEUED_PAIRS
    request_timeout_s: float = DEFAULT_REQUEST_TIMEOUT_S
    allow_untrained_head: bool = False

    def to_json(self) -> str:
        """For `--workers` > 1: each uvicorn worker process rebuilds the settings from this text."""
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "ServingSettings":
        return cls(**json.loads(text))
