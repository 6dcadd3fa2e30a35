"""The one place that builds a first-stage retriever from its flags (`--retriever`, `--hard_neg_method`).

Mining, the dev evaluation during training and `main.py` all build their index here, so a method added
here reaches all three.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from reranker_kit.retrieval.base import Retriever
from reranker_kit.retrieval.dense import DenseIndex, SentenceEncoder
from reranker_kit.retrieval.hybrid import HYBRID_DENSE_WEIGHT, HYBRID_FUSION, HybridIndex
from reranker_kit.retrieval.lexical import LEXICAL_METHODS, LexicalIndex

logger = logging.getLogger(__name__)

# The first stages that embed texts, and so take --embedding_model.
EMBEDDING_METHODS = ("dense", "hybrid")
RETRIEVER_METHODS = (*LEXICAL_METHODS, *EMBEDDING_METHODS)
DEFAULT_EMBEDDING_MODEL = "BAAI/bge-m3"
DEFAULT_EMBEDDING_CACHE = "outputs/.embedding_cache"


@dataclass
class FirstStage:
    """How to build the first stage: a method, and for `dense` and `hybrid` the embedding model and cache.

    The sentence encoder is loaded once, on the first dense index, and reused for every later one
    (main.py builds one index per evaluated file when documents are expanded).
    """

    method: str = "bm25"
    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    cache_dir: str | Path = DEFAULT_EMBEDDING_CACHE
    # The hybrid's dense weight: one an embedder run chose on its dev queries, else (None) the fixed default.
    dense_weight: float | None = None
    _encoder: object = field(default=None, init=False, repr=False)

    @property
    def uses_embeddings(self) -> bool:
        return self.method in EMBEDDING_METHODS

    def index(self, documents: Sequence[str]) -> Retriever:
        """A retriever over `documents`; results refer to positions in this list."""
        if self.method in LEXICAL_METHODS:
            return LexicalIndex(documents, method=self.method)
        if self._encoder is None:
            self._encoder = SentenceEncoder.load(self.embedding_model)
        dense = DenseIndex(documents, self._encoder, self.cache_dir)
        if self.method == "dense":
            return dense
        weight = HYBRID_DENSE_WEIGHT if self.dense_weight is None else self.dense_weight
        return HybridIndex(LexicalIndex(documents, method="bm25"), dense, dense_weight=weight)

    def describe(self) -> dict:
        """What a report records about the first stage."""
        if not self.uses_embeddings:
            return {"method": self.method}
        described = {"method": self.method, "embedding_model": self.embedding_model}
        if self.method == "hybrid":
            weight = HYBRID_DENSE_WEIGHT if self.dense_weight is None else self.dense_weight
            described.update(lexical="bm25", fusion=HYBRID_FUSION, dense_weight=weight,
                             dense_weight_source="fixed" if self.dense_weight is None else "embedder run")
        return described




def describe_candidates(retriever: str, top_n: int, expanded_documents: bool, embedding_model: str | None,
                        from_file: bool = False) -> dict:
    """What produced a set of candidates: training records it with the fusion weight chosen on its dev candidates
    (fusion.json), and main.py compares it with its own first stage to warn when the two differ."""
    retriever = "candidates_file" if from_file else retriever
    described = {"retriever": retriever, "top_n": top_n, "expanded_documents": bool(expanded_documents)}
    if retriever in EMBEDDING_METHODS:
        described["embedding_model"] = embedding_model
    return described
