"""main.py's --embedding_model and --embedding_cache_dir (the training jobs define theirs in finetune.settings)."""

from reranker_kit.basics.model_files import BUNDLED_MODEL_ALIAS, OFFLINE_MODEL_ALIAS
from reranker_kit.retrieval.first_stage import DEFAULT_EMBEDDING_CACHE, DEFAULT_EMBEDDING_MODEL


def add_embedding_flags(group, default: str = DEFAULT_EMBEDDING_MODEL, more_help: str = "") -> None:
    """--embedding_model and --embedding_cache_dir, the same in main.py and fine_tune_reranker.py."""
    group.add_argument("--embedding_model", type=str, default=default,
                       help="Sentence-transformers model of the dense and hybrid first stages: a Hub id, a folder, or "
                            f"'{OFFLINE_MODEL_ALIAS}' (multilingual-e5-small, offline; '{BUNDLED_MODEL_ALIAS}' is English "
                            f"all-MiniLM-L6-v2).{more_help}")
    group.add_argument("--embedding_cache_dir", type=str, default=DEFAULT_EMBEDDING_CACHE,
                       help="Where corpus embeddings are cached, keyed by the documents and the model.")
