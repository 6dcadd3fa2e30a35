"""First-stage retrieval over the corpus: the lexical index and how it reads Vietnamese text."""

from reranker_kit.retrieval.lexical import RETRIEVER_METHODS, LexicalIndex

__all__ = ["RETRIEVER_METHODS", "LexicalIndex"]
