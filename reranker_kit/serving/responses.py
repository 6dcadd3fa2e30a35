"""Response bodies in the two shapes, built from one request's (logit, tokens) results.

Both shapes sort best first (ties keep the input order) and report sigmoid probabilities unless TEI's
`raw_scores` asks for logits: the same numbers `Reranker.compute_score(normalize=True/False)` returns.
"""

import uuid

from reranker_kit.basics.scores import sigmoid
from reranker_kit.serving.requests import CohereRequest, RequestError, TeiRequest

# Cohere's `meta.api_version`: its clients read it, and version 2 is the shape of these results.
COHERE_API_VERSION = "2"


def tei_response(request: TeiRequest, results: list[tuple[float, int]]) -> list[dict]:
    """`[{"index", "score", "text"?}]`, best first."""
    scores = _scores(results, raw=request.raw_scores)
    ranked = []
    for index in _best_first(scores):
        item = {"index": index, "score": scores[index]}
        if request.return_text:
            item["text"] = request.texts[index]
        ranked.append(item)
    return ranked


def cohere_response(request: CohereRequest, results: list[tuple[float, int]], model_id: str) -> dict:
    """`{"id", "results": [{"index", "relevance_score", "document"?}], "model", "usage", "meta"}`.

    `usage.total_tokens` is Jina's field (the tokens the model read); `meta` is what Cohere's clients parse.
    """
    scores = _scores(results, raw=False)
    ranked = []
    for index in _best_first(scores)[:request.top_n]:
        item = {"index": index, "relevance_score": scores[index]}
        if request.return_documents:
            item["document"] = {"text": request.documents[index]}
        ranked.append(item)
    return {"id": str(uuid.uuid4()), "results": ranked, "model": model_id,
            "usage": {"total_tokens": sum(tokens for _, tokens in results)},
            "meta": {"api_version": {"version": COHERE_API_VERSION}, "billed_units": {"search_units": 1}}}


def error_body(error: RequestError) -> dict:
    # TEI's clients read "error" and "error_type"; Cohere's and Jina's read "message": say it in both.
    return {"error": error.message, "error_type": error.error_type, "message": error.message}


def _scores(results: list[tuple[float, int]], raw: bool) -> list[float]:
    logits = [logit for logit, _ in results]
    return logits if raw else sigmoid(logits).tolist()


def _best_first(scores: list[float]) -> list[int]:
    return sorted(range(len(scores)), key=lambda index: -scores[index])
