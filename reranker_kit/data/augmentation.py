"""Extra training queries made from what the data already holds: the answers and the corpus itself.

About a hundred labelled queries are too few for a cross-encoder whose head starts from nothing: with
them alone the bundled model's BCE loss stays at the label prior and it ranks no better than chance
(bench/QUALITY.md). Sentences of the documents, each asked as a query whose relevant document is the one
it came from, give it hundreds of easy pairs to learn matching from first.
"""

import re
from collections import defaultdict
from dataclasses import replace

from reranker_kit.data.loading import Query

# A sentence ends at . ! ? ; : … followed by whitespace, or at a line break, so "100.000" and "v1.2" stay whole.
SENTENCE_BREAK = re.compile(r"(?<=[.!?;:…])\s+|\s*\n+\s*")
# Shorter pieces ("Lưu ý:") name a topic rather than ask about it.
MIN_SENTENCE_WORDS = 6
PASSAGE_QUERY_SOURCE = "corpus"


def answers_as_queries(queries: list[Query]) -> list[Query]:
    """Each ground-truth answer as an extra query with the same relevant documents.

    Answers are well-formed sentences about the same facts, so they add phrasings the informal queries
    lack; they only ever join the training side of the split.
    """
    return [replace(query, qid=f"{query.qid}:answer", text=query.answer) for query in queries if query.answer]


def document_sentences(text: str) -> list[str]:
    """The sentences of a document with at least MIN_SENTENCE_WORDS words, in order."""
    pieces = (piece.strip() for piece in SENTENCE_BREAK.split(text))
    return [piece for piece in pieces if len(piece.split()) >= MIN_SENTENCE_WORDS]


def passages_as_queries(corpus: dict[int, str], per_document: int) -> list[Query]:
    """Up to `per_document` sentences of every document as queries for that document.

    The first sentences are taken because training truncates long documents from the end: a sentence
    from the cut-off tail would point at text the model never sees. A sentence found word for word in
    several documents counts all of them as relevant, so none of them is mined as its negative.
    """
    if per_document <= 0:
        return []
    sentences = {doc_id: document_sentences(text) for doc_id, text in corpus.items()}
    documents_with = defaultdict(list)
    for doc_id, doc_sentences in sentences.items():
        for sentence in dict.fromkeys(doc_sentences):
            documents_with[sentence].append(doc_id)
    queries, asked = [], set()
    for doc_id, doc_sentences in sentences.items():
        for position, sentence in enumerate(doc_sentences[:per_document], start=1):
            if sentence in asked:
                continue
            asked.add(sentence)
            queries.append(Query(qid=f"{PASSAGE_QUERY_SOURCE}:{doc_id}:{position}", text=sentence,
                                 relevant_ids=tuple(documents_with[sentence]), answer="", difficulty=None,
                                 source=PASSAGE_QUERY_SOURCE, row=doc_id))
    return queries
