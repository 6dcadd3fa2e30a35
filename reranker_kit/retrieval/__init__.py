"""First-stage retrieval over the corpus: lexical, dense and hybrid indexes, and how they read Vietnamese text.

Build an index through `FirstStage(method, ...).index(documents)`; `dense` and `hybrid` load their modules
(and torch) only when asked for.
"""

from reranker_kit.retrieval.base import Retriever
from reranker_kit.retrieval.first_stage import (
    DEFAULT_EMBEDDING_CACHE,
    DEFAULT_EMBEDDING_MODEL,
    RETRIEVER_METHODS,
    FirstStage,
)
from reranker_kit.retrieval.lexical import LEXICAL_METHODS, LexicalIndex

__all__ = ["DEFAULT_EMBEDDING_CACHE", "DEFAULT_EMBEDDING_MODEL", "LEXICAL_METHODS", "RETRIEVER_METHODS", "FirstStage",
           "LexicalIndex", "Retriever"]
