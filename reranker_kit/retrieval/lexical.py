"""First-stage lexical retrieval (BM25 or TF-IDF) over the corpus, fitted once and queried in batches.

Both hard-negative mining and the benchmark's first stage use this index. BM25 is bm25s's Lucene
variant fed the kit's own analyzer; TF-IDF queries are scored as sparse products a batch at a time.
Only each query's top k is kept, so memory grows with the corpus, never with queries times documents.
"""

import logging
from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from reranker_kit.basics.text import analyze
from reranker_kit.retrieval.base import batched_top_k, select_top_k

LEXICAL_METHODS = ("bm25", "tfidf")
QUERY_BATCH_SIZE = 512
# TF-IDF queries are scored as a dense block (vocabulary x batch), faster than a sparse product here;
# the batch shrinks on large vocabularies so the block stays under this many entries.
MAX_DENSE_QUERY_ENTRIES = 32_000_000


class LexicalIndex:
    """A BM25 (Lucene variant, computed by bm25s) or TF-IDF index over a fixed list of documents.

    Args:
        documents: the texts to index; results refer to positions in this list.
        method: "bm25" or "tfidf".
        k1, b: the BM25 parameters.
    """

    def __init__(self, documents: Sequence[str], method: str = "bm25", k1: float = 1.5, b: float = 0.75):
        if method not in LEXICAL_METHODS:
            raise ValueError(f"unknown lexical method {method!r}; choose one of {LEXICAL_METHODS}")
        if not documents:
            raise ValueError("cannot index an empty corpus")
        self.method = method
        self.num_documents = len(documents)
        if method == "tfidf":
            self._vectorizer = TfidfVectorizer(analyzer=analyze, sublinear_tf=True)
            self._document_weights = self._vectorizer.fit_transform(documents).tocsr().astype(np.float32)
        else:
            import bm25s

            # bm25s sets its own logger to DEBUG on import, past the scripts' INFO level: let the root level decide.
            logging.getLogger("bm25s").setLevel(logging.NOTSET)
            self._bm25 = bm25s.BM25(method="lucene", k1=k1, b=b)
            self._bm25.index([analyze(text) for text in documents], show_progress=False)

    def score(self, queries: Sequence[str]) -> np.ndarray:
        """Scores of every document for each query, shape (queries, documents). For small corpora."""
        if self.method == "bm25":
            return np.array([self._bm25.get_scores(terms) if terms else np.zeros(self.num_documents)
                             for terms in map(_query_terms, queries)], dtype=np.float32).reshape(len(queries), -1)
        query_block = self._vectorizer.transform(queries).T.toarray().astype(np.float32)  # (vocabulary, queries)
        return np.ascontiguousarray((self._document_weights @ query_block).T)

    def top_k(self, queries: Sequence[str], k: int, batch_size: int = QUERY_BATCH_SIZE
              ) -> tuple[np.ndarray, np.ndarray]:
        """The k best documents per query, best first, as (positions, scores), both (queries, k).

        Equal scores are listed lower document position first, so results are deterministic.
        """
        k = min(k, self.num_documents)
        if not queries:
            return np.empty((0, k), dtype=np.int64), np.empty((0, k), dtype=np.float32)
        if self.method == "bm25":
            return self._bm25_top_k(queries, k)
        batch_size = max(1, min(batch_size, MAX_DENSE_QUERY_ENTRIES // max(len(self._vectorizer.vocabulary_), 1)))
        return batched_top_k(self.score, queries, k, self.num_documents, batch_size)

    def _bm25_top_k(self, queries: Sequence[str], k: int) -> tuple[np.ndarray, np.ndarray]:
        terms = [_query_terms(query) for query in queries]
        depth = min(k + 1, self.num_documents)
        found = self._bm25.retrieve(terms, k=depth, show_progress=False, n_threads=1)
        positions, scores = np.asarray(found.documents, dtype=np.int64), np.asarray(found.scores, dtype=np.float32)
        if depth > k:
            # Equal scores across the k-th place: bm25s keeps any of them. Scoring such a query in full
            # keeps the lower positions, as everywhere else.
            for row in np.flatnonzero(scores[:, k - 1] == scores[:, k]):
                full = self._bm25.get_scores(terms[row]) if terms[row] else np.zeros(self.num_documents)
                positions[row, :k], scores[row, :k] = (part[0] for part in select_top_k(full[None, :], k))
        positions, scores = positions[:, :k], scores[:, :k]
        order = np.lexsort((positions, -scores), axis=1)
        return np.take_along_axis(positions, order, axis=1), np.take_along_axis(scores, order, axis=1)


def _query_terms(query: str) -> list[str]:
    """A query's distinct terms: Lucene BM25 counts a repeated query word once (bm25s would count each)."""
    return list(dict.fromkeys(analyze(query)))
