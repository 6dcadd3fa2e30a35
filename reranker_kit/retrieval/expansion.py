"""Document expansion: each document indexed together with the labelled queries (and answers) that name it.

Labelled queries are phrased the way members ask, so a document that carries them matches later queries
worded alike; on a real club dataset this lifted BM25 on unseen queries from hit@3 0.73 to 0.80. Only the
first-stage index sees the expanded text; the reranker scores the document's own text. Expansion must
never hold a query that is then evaluated: `queries_outside` removes them.
"""

from collections.abc import Sequence

from reranker_kit.data.loading import Query
from reranker_kit.data.splits import query_key


def expanded_documents(corpus: dict[int, str], queries: Sequence[Query]) -> dict[int, str]:
    """{document id: its text, then every query that names it as relevant and that query's answer}."""
    additions: dict[int, list[str]] = {doc_id: [] for doc_id in corpus}
    for query in queries:
        for doc_id in query.relevant_ids:
            additions[doc_id] += [query.text, query.answer] if query.answer else [query.text]
    return {doc_id: "\n".join([text, *additions[doc_id]]) for doc_id, text in corpus.items()}


def queries_outside(expansion: Sequence[Query], evaluated: Sequence[Query]) -> list[Query]:
    """The expansion queries that are not among the evaluated ones (compared after normalisation)."""
    held_out = {query_key(query.text) for query in evaluated}
    return [query for query in expansion if query_key(query.text) not in held_out]
