"""First-stage lexical retrieval (BM25 or TF-IDF) over the corpus, fitted once and queried in batches.

Both hard-negative mining and the benchmark's first stage use this index. Queries are scored as sparse
matrix products a batch at a time, and only each query's top k survive a batch, so memory grows with
the batch and the corpus, never with queries times documents.
"""

from collections.abc import Sequence

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer, TfidfVectorizer

from reranker_kit.retrieval.base import batched_top_k
from reranker_kit.retrieval.text import analyze

LEXICAL_METHODS = ("bm25", "tfidf")
QUERY_BATCH_SIZE = 512
# Queries are scored as a dense block (vocabulary x batch), faster than a sparse product here;
# the batch shrinks on large vocabularies so the block stays under this many entries.
MAX_DENSE_QUERY_ENTRIES = 32_000_000


class LexicalIndex:
    """A BM25 (Lucene variant, as bm25s computes it) or TF-IDF index over a fixed list of documents.

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
            self._vectorizer = CountVectorizer(analyzer=analyze)
            self._document_weights = _bm25_weights(self._vectorizer.fit_transform(documents), k1, b)

    def score(self, queries: Sequence[str]) -> np.ndarray:
        """Scores of every document for each query, shape (queries, documents). For small corpora."""
        query_block = self._vectorize(queries).T.toarray().astype(np.float32)  # (vocabulary, queries)
        return np.ascontiguousarray((self._document_weights @ query_block).T)

    def top_k(self, queries: Sequence[str], k: int, batch_size: int = QUERY_BATCH_SIZE
              ) -> tuple[np.ndarray, np.ndarray]:
        """The k best documents per query, best first, as (positions, scores), both (queries, k).

        Ties keep the lower document position first, so results are deterministic.
        """
        batch_size = max(1, min(batch_size, MAX_DENSE_QUERY_ENTRIES // max(len(self._vectorizer.vocabulary_), 1)))
        return batched_top_k(self.score, queries, k, self.num_documents, batch_size)

    def _vectorize(self, queries: Sequence[str]) -> sparse.csr_matrix:
        vectors = self._vectorizer.transform(queries)
        if self.method == "bm25":
            vectors.data[:] = 1.0  # Lucene BM25 counts each distinct query term once.
        return vectors


def _bm25_weights(term_counts: sparse.csr_matrix, k1: float, b: float) -> sparse.csr_matrix:
    """Per (document, term) BM25 contribution: idf * tf / (tf + k1 * (1 - b + b * length / avg_length))."""
    term_counts = term_counts.tocsr().astype(np.float32)
    num_documents = term_counts.shape[0]
    document_frequency = np.bincount(term_counts.indices, minlength=term_counts.shape[1])
    idf = np.log(1.0 + (num_documents - document_frequency + 0.5) / (document_frequency + 0.5))
    lengths = np.asarray(term_counts.sum(axis=1)).ravel()
    length_norm = k1 * (1.0 - b + b * lengths / max(lengths.mean(), 1e-9))
    rows = np.repeat(np.arange(num_documents), np.diff(term_counts.indptr))
    tf = term_counts.data
    weights = term_counts.copy()
    weights.data = (idf[term_counts.indices] * tf / (tf + length_norm[rows])).astype(np.float32)
    return weights
