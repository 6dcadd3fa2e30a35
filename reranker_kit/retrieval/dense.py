"""Dense first-stage retrieval: a sentence-transformers bi-encoder, cosine similarity, cached corpus embeddings.

The club's chatbot retrieves this way (bge-m3 or OpenAI embeddings in a vector store). Documents are
embedded once and the embeddings are kept on disk, keyed by the documents' texts and the model's identity
(its files, its maximum length and its prompts), so a changed corpus or a changed model is embedded anew
and an unchanged one loads in milliseconds. Queries are embedded at query time.
"""

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from reranker_kit.basics.errors import ModelLoadError
from reranker_kit.basics.files import write_file_atomic
from reranker_kit.basics.model_files import OFFLINE_MODEL_ALIAS, load_cache_first, resolve_model_name
from reranker_kit.retrieval.base import batched_top_k

logger = logging.getLogger(__name__)

ENCODE_BATCH_SIZE = 32
QUERY_BATCH_SIZE = 1024
# Model files up to this size are hashed whole; larger ones (the weights) by size and modification time,
# so identifying a 2 GB model costs no read of its weights.
HASHED_FILE_BYTES = 1 << 20
# Bumped when the cached array's meaning changes, so old cache files are never read as new ones.
CACHE_FORMAT = "1"
# The prompt names sentence-transformers' encode_document looks for, in its order (encode_query: "query").
DOCUMENT_PROMPT_NAMES = ("document", "passage", "corpus")


def encoding_prompts(model) -> dict[str, str]:
    """{"query": ..., "document": ...}: the prompts encode_query and encode_document add (e5: `query: `, `passage: `).

    Empty for a model without prompts; training adds exactly these, so it sees texts as the first stage does.
    """
    prompts = {}
    if model.prompts.get("query"):
        prompts["query"] = model.prompts["query"]
    document = next((model.prompts[name] for name in DOCUMENT_PROMPT_NAMES if model.prompts.get(name)), None)
    if document:
        prompts["document"] = document
    return prompts


def model_fingerprint(folder: Path) -> str:
    """A digest of a model folder: small files by content, large ones by size and modification time."""
    digest = hashlib.sha256()
    for path in sorted(item for item in folder.rglob("*") if item.is_file() and ".git" not in item.parts):
        stat = path.stat()
        digest.update(path.relative_to(folder).as_posix().encode())
        if stat.st_size <= HASHED_FILE_BYTES:
            digest.update(path.read_bytes())
        else:
            digest.update(f"{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


class SentenceEncoder:
    """A sentence-transformers bi-encoder: `encode(texts, kind)` gives unit-length float32 embeddings.

    `kind` is "query" or "document": models with query and document prompts (e5, bge) get the right one.
    """

    def __init__(self, model, name: str, identity: str):
        self.model, self.name, self.identity = model, name, identity

    @classmethod
    def load(cls, name: str) -> "SentenceEncoder":
        """Loads `name` (a folder, a Hub id, or the bundled model's alias), from the local cache first."""
        resolved = resolve_model_name(name)
        model = _load_sentence_transformer(name, resolved)
        folder = Path(resolved) if Path(resolved).is_dir() else _hub_snapshot(resolved)
        settings = json.dumps({"max_seq_length": model.max_seq_length, "prompts": model.prompts}, sort_keys=True)
        identity = f"{CACHE_FORMAT}:{model_fingerprint(folder) if folder else resolved}:{settings}"
        logger.info("embedding model %s loaded on %s", name, model.device)
        return cls(model, name, identity)

    def encode(self, texts: Sequence[str], kind: str, show_progress: bool = False) -> np.ndarray:
        encode = self.model.encode_query if kind == "query" else self.model.encode_document
        embeddings = encode(list(texts), batch_size=ENCODE_BATCH_SIZE, show_progress_bar=show_progress,
                            convert_to_numpy=True, normalize_embeddings=True)
        return np.asarray(embeddings, dtype=np.float32)


def _load_sentence_transformer(name: str, resolved: str):
    from sentence_transformers import SentenceTransformer

    hint = (f"Pass `embedding_model` with a sentence-transformers model folder, a Hub id such as BAAI/bge-m3, or "
            f"'{OFFLINE_MODEL_ALIAS}' (multilingual-e5-small) offline")
    not_cached = (f"embedding model {resolved!r} is not in the local Hugging Face cache and the Hub cannot be reached "
                  f"from this machine. On a machine with internet run `huggingface-cli download {resolved} --local-dir "
                  f"models/{resolved.split('/')[-1]}` and pass that folder. {hint}.")
    try:
        return load_cache_first(SentenceTransformer, resolved, not_cached)
    except (OSError, ValueError) as problem:
        raise ModelLoadError(f"cannot load embedding model {name!r} ({problem}). {hint}.") from None


def _hub_snapshot(repo_id: str) -> Path | None:
    """The local folder of a cached Hub model, so its files can be fingerprinted like a local model's."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except (OSError, ValueError):
        return None


class EmbeddingCache:
    """Corpus embeddings on disk, one .npy file per (model identity, document texts) key."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    @staticmethod
    def key(identity: str, documents: Sequence[str]) -> str:
        digest = hashlib.sha256(identity.encode())
        for text in documents:
            digest.update(b"\0" + text.encode())
        return digest.hexdigest()

    def load(self, key: str, rows: int) -> np.ndarray | None:
        path = self.folder / f"{key}.npy"
        if not path.is_file():
            return None
        try:
            embeddings = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as problem:
            logger.warning("ignoring unreadable embedding cache file %s (%s); embedding the corpus again", path, problem)
            return None
        if embeddings.ndim != 2 or len(embeddings) != rows:
            logger.warning("ignoring embedding cache file %s: it holds %s, not %d rows", path, embeddings.shape, rows)
            return None
        return embeddings

    def save(self, key: str, embeddings: np.ndarray) -> Path | None:
        """Writes through a temporary file and a rename, so a reader never sees half an array."""

        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_file_atomic(self.folder / f"{key}.npy", lambda temporary: np.save(temporary, embeddings,
                                                                                   allow_pickle=False))
        except OSError as problem:
            logger.warning("cannot cache corpus embeddings under %s (%s): they are recomputed next time; pass "
                           "`embedding_cache_dir` with a writable folder", self.folder, problem)
            return None
        return self.folder / f"{key}.npy"


class DenseIndex:
    """Cosine similarity between a bi-encoder's query and document embeddings.

    Args:
        documents: the texts to index; results refer to positions in this list.
        encoder: a `SentenceEncoder` (or anything with its `encode(texts, kind)` and `identity`).
        cache_dir: where corpus embeddings are cached; None computes them every time.
    """

    def __init__(self, documents: Sequence[str], encoder, cache_dir: str | Path | None):
        if not documents:
            raise ValueError("cannot index an empty corpus")
        self.encoder = encoder
        self.num_documents = len(documents)
        self.cache_hit = False
        cache = EmbeddingCache(cache_dir) if cache_dir is not None else None
        key = EmbeddingCache.key(encoder.identity, documents)
        embeddings = cache.load(key, len(documents)) if cache else None
        if embeddings is not None:
            self.cache_hit = True
            logger.info("corpus embeddings of %d documents read from %s", len(documents), cache.folder / f"{key}.npy")
        else:
            started = time.perf_counter()
            embeddings = encoder.encode(documents, "document", show_progress=True)
            saved = cache.save(key, embeddings) if cache else None
            logger.info("embedded %d documents in %.1f s%s", len(documents), time.perf_counter() - started,
                        f"; cached in {saved}" if saved else "")
        self.document_embeddings = embeddings

    def score(self, queries: Sequence[str]) -> np.ndarray:
        """Cosine similarity of every document for each query, shape (queries, documents)."""
        if not len(queries):
            return np.zeros((0, self.num_documents), dtype=np.float32)
        return self.encoder.encode(queries, "query") @ self.document_embeddings.T

    def top_k(self, queries: Sequence[str], k: int, batch_size: int = QUERY_BATCH_SIZE
              ) -> tuple[np.ndarray, np.ndarray]:
        """The k most similar documents per query, best first; ties keep the lower position first."""
        return batched_top_k(self.score, queries, k, self.num_documents, batch_size)
