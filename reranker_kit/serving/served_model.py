"""The one model a server holds: loaded on the scoring thread, scored there, described for `/info`.

Loading happens in the background so the server answers `/health` (503) while it loads, as readiness
probes expect. Scores are `Reranker.compute_score`'s raw logits; the token count of each pair is what
the model read after truncation, which the Cohere/Jina shape reports as usage.
"""

import logging
from collections.abc import Callable
from pathlib import Path

from reranker_kit.basics.errors import KitError, ModelLoadError
from reranker_kit.models.loading import UNTRAINED_HEAD_SEED
from reranker_kit.run_folder import base_model_name, read_run_info, stored_fusion
from reranker_kit.serving.settings import ServingSettings

logger = logging.getLogger(__name__)

LOADING, READY, FAILED = "loading", "ready", "failed"


def load_reranker(settings: ServingSettings):
    """The `Reranker` the settings name (torch is imported here, on the scoring thread, not at startup).

    A model whose ranking head is not trained is refused unless `allow_untrained_head`: its scores would be
    noise that looks like an answer. `commands.serve` refuses the plain encoders it can tell from their
    config before the server starts; this catches the rest (a classifier config whose weights lack the head).
    """
    from reranker_kit.models.reranker import Reranker

    reranker = Reranker(model_name=settings.model, device=settings.device, max_length=settings.max_length,
                        batch_size=settings.batch_size, backend=settings.backend)
    if not reranker.head_is_trained and not settings.allow_untrained_head:
        raise ModelLoadError(untrained_head_problem(settings.model))
    return reranker


def untrained_head_problem(model: str) -> str:
    return (f"{model} has no trained ranking head, so its scores would mean nothing (a fresh head, drawn from seed "
            f"{UNTRAINED_HEAD_SEED}). Serve a fine-tuned run (python fine_tune_reranker.py --base_model {model} ...), "
            "or pass `allow_untrained_head` to serve it anyway (e.g. to try a client)")


class ServedModel:
    """The reranker behind the server, and whether it is loading, ready, or failed to load.

    Args:
        settings: what to load and how.
        load: builds the reranker (anything with `compute_score`, `tokenizer`, `max_length`, `device`,
            `head_is_trained`, `head_seed`); `load_reranker` unless a test gives another.
    """

    def __init__(self, settings: ServingSettings, load: Callable[[ServingSettings], object] = load_reranker):
        self.settings = settings
        self._load = load
        self.reranker = None
        self.state = LOADING
        self.problem: str | None = None

    def load(self) -> None:
        """Loads the model; runs on the scoring thread. A failure is recorded for /health, not raised."""
        try:
            self.reranker = self._load(self.settings)
        except (KitError, OSError, ValueError, RuntimeError, ImportError) as problem:
            self.fail(f"cannot load {self.settings.model} with backend {self.settings.backend}: {problem}")
            return
        self.state = READY
        logger.info("serving %s: backend %s, device %s, max length %d tokens, %d pairs per forward pass",
                    self.settings.model, self.settings.backend, self.reranker.device, self.reranker.max_length,
                    self.settings.batch_size)

    def fail(self, problem: str) -> None:
        self.problem = problem
        self.state = FAILED
        logger.error("%s", problem)

    def score(self, pairs: list[tuple[str, str]]) -> list[tuple[float, int]]:
        """(raw logit, tokens read) per pair, in order; runs on the scoring thread only."""
        from reranker_kit.models.pair_encoding import encode_pairs  # torch, which loads on the scoring thread.

        logits = self.reranker.compute_score(pairs, normalize=False)
        tokens = [len(item["input_ids"]) for item in encode_pairs(self.reranker.tokenizer, pairs,
                                                                   self.reranker.max_length)]
        return list(zip(logits, tokens))

    def info(self) -> dict:
        """What `/info` shows: the model, its run folder and base model, backend, length, fusion weight."""
        model_dir = Path(self.settings.model)
        run_info = read_run_info(model_dir) if model_dir.is_dir() else None
        fusion = stored_fusion(model_dir) if run_info else None
        return {
            "model": self.model_id,
            "status": self.state,
            "run_folder": str(model_dir.resolve()) if run_info else None,
            "base_model": base_model_name(model_dir) if run_info else None,
            "backend": self.settings.backend,
            "device": str(self.reranker.device) if self.reranker is not None else self.settings.device,
            "max_length": self.reranker.max_length if self.reranker is not None else self.settings.max_length,
            "batch_size": self.settings.batch_size,
            "max_batch_pairs": self.settings.max_batch_pairs,
            "max_wait_ms": self.settings.max_wait_ms,
            "max_documents": self.settings.max_documents,
            "max_body_bytes": self.settings.max_body_bytes,
            "max_queued_pairs": self.settings.max_queued_pairs,
            "request_timeout_s": self.settings.request_timeout_s,
            # Whether the scores mean anything: a fresh head (served with --allow_untrained_head) and its seed.
            "head": ({"trained": self.reranker.head_is_trained, "seed": self.reranker.head_seed}
                     if self.reranker is not None else None),
            "fusion": {"method": fusion[0], "weight": fusion[1]} if fusion else None,
        }

    @property
    def model_id(self) -> str:
        """The name responses report as "model": the run folder's name, or the model name as given."""
        path = Path(self.settings.model)
        return path.resolve().name if path.is_dir() else self.settings.model
