"""Which embedding model main.py's dense and hybrid first stages use, and which base encoder is shown beside it.

`--embedding_model auto` (the default) takes the newest finished fine_tune_embedder.py run under
--runs_root, logged as the reranker run is, with the hybrid dense weight that run chose on its dev queries;
its base encoder is ranked too, at the base's own chosen weight, so the tables show both side by side.
Without a run it is BAAI/bge-m3 at the fixed weight where it loads (cached, or the Hub reachable), else the bundled
multilingual-e5-small (`bundled-e5`). `base` forces the base encoder alone; any other value
is a model (an embedder run folder brings its weight and its base as `auto` does).
"""

import logging
from dataclasses import dataclass
from pathlib import Path

from reranker_kit.basics.model_files import OFFLINE_MODEL_ALIAS, loadable_here
from reranker_kit.retrieval.first_stage import DEFAULT_EMBEDDING_MODEL, EMBEDDING_METHODS
from reranker_kit.run_folder import EMBEDDER_PREFIX, base_model_name, newest_finished_run, read_run_info, stored_hybrid_weight

logger = logging.getLogger("main")
AUTO, BASE = "auto", "base"


@dataclass(frozen=True)
class EncoderChoice:
    """The encoder the first stage ranks with (and its hybrid weight); the base shown beside it, if any."""

    model: str
    dense_weight: float | None  # None: the fixed weight of retrieval/hybrid.py.
    base_model: str | None = None
    base_dense_weight: float | None = None
    run_dir: Path | None = None

    def base_alone(self) -> "EncoderChoice | None":
        return EncoderChoice(self.base_model, self.base_dense_weight) if self.base_model else None


def is_embedder_run(path: Path) -> bool:
    info = read_run_info(path) if path.is_dir() else None
    return bool(info) and info.get("kind") == "embedder"


def from_run(run_dir: Path) -> EncoderChoice:
    return EncoderChoice(str(run_dir), stored_hybrid_weight(run_dir, "run"), base_model_name(run_dir),
                         stored_hybrid_weight(run_dir, "base"), run_dir)


def choose_encoder(retriever: str, embedding_model: str, runs_root: str) -> EncoderChoice | None:
    """The encoder for `--retriever` and `--embedding_model`; None for a first stage that embeds nothing."""
    if retriever not in EMBEDDING_METHODS:
        return None
    if embedding_model not in (AUTO, BASE):
        path = Path(embedding_model)
        return from_run(path) if is_embedder_run(path) else EncoderChoice(embedding_model, None)
    run_dir = newest_finished_run(runs_root, EMBEDDER_PREFIX)
    if run_dir is None:
        model = DEFAULT_EMBEDDING_MODEL if loadable_here(DEFAULT_EMBEDDING_MODEL) else OFFLINE_MODEL_ALIAS
        offline = "" if model == DEFAULT_EMBEDDING_MODEL else f"{DEFAULT_EMBEDDING_MODEL} cannot load offline; "
        logger.info("embedding model: %s (%sno finished embedder run under %s; fine-tune one with "
                    "fine_tune_embedder.py, or pass `embedding_model`)", model, offline, runs_root)
        return EncoderChoice(model, None)
    run = from_run(run_dir)
    if embedding_model == BASE:
        logger.info("embedding model: %s (`embedding_model` base: the base of %s)", run.base_model, run_dir)
        return run.base_alone()
    logger.info("embedding model: %s (newest finished embedder run under %s), shown beside its base %s",
                run_dir, runs_root, run.base_model)
    return run
