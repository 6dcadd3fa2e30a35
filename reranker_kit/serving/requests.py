"""Reading and checking request bodies: every bad request becomes a `RequestError` that says what to send.

Bodies are parsed here by hand rather than by pydantic models, so that each message names the field, the
position of a bad document and an example of a valid body, in the words of the shape the client used.
Nothing here touches the model: a request is fully checked before any of its pairs reaches a batch.
"""

import json
from dataclasses import dataclass

from starlette.requests import Request

TEI_EXAMPLE = '{"query": "CLB tuyển thành viên khi nào?", "texts": ["văn bản 1", "văn bản 2"]}'
COHERE_EXAMPLE = '{"query": "CLB tuyển thành viên khi nào?", "documents": ["văn bản 1", "văn bản 2"], "top_n": 3}'


class RequestError(Exception):
    """A request the server refuses: an HTTP status and a message that says how to fix the request.

    `retry_after_s`, when set, goes out as the Retry-After header (429 and 503: clients wait that long).
    """

    def __init__(self, status: int, message: str, error_type: str = "validation", retry_after_s: int | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.retry_after_s = retry_after_s


@dataclass(frozen=True)
class TeiRequest:
    """`POST /rerank` in text-embeddings-inference's shape."""

    query: str
    texts: list[str]
    raw_scores: bool = False
    return_text: bool = False


@dataclass(frozen=True)
class CohereRequest:
    """`POST /v1/rerank` (and `/v2/rerank`) in Cohere's shape, which Jina and Infinity also speak."""

    query: str
    documents: list[str]
    top_n: int | None = None
    return_documents: bool = False


async def read_json_body(request: Request, max_bytes: int) -> dict:
    """The body as a JSON object, read only up to `max_bytes` (413 beyond, 400 for anything but a JSON object)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(int(declared), max_bytes)
    body = bytearray()
    async for chunk in request.stream():  # A chunked body has no length to check up front: count as it comes.
        body.extend(chunk)
        if len(body) > max_bytes:
            raise _too_large(len(body), max_bytes)
    try:
        payload = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as problem:
        raise RequestError(400, f"the body is not UTF-8 text ({problem}); send JSON encoded as UTF-8",
                           "malformed_json") from None
    except json.JSONDecodeError as problem:
        raise RequestError(400, f"the body is not valid JSON ({problem}); send a JSON object such as "
                           f"{TEI_EXAMPLE}", "malformed_json") from None
    except RecursionError:
        raise RequestError(400, "the body nests JSON too deeply to read; send a flat JSON object such as "
                           f"{TEI_EXAMPLE}", "malformed_json") from None
    if not isinstance(payload, dict):
        raise RequestError(400, f"the body must be a JSON object, got a JSON {_json_type(payload)}; send "
                           f"{TEI_EXAMPLE}", "malformed_json")
    return payload


def parse_tei_request(payload: dict, max_documents: int) -> TeiRequest:
    """Checks a TEI body: a non-empty query, 1 to `max_documents` strings in `texts`, boolean flags."""
    query = _query(payload, TEI_EXAMPLE)
    texts = _documents(payload, "texts", max_documents, TEI_EXAMPLE, allow_objects=False)
    _optional_bool(payload, "truncate")  # Pairs are always truncated as in training; the flag is only checked.
    return TeiRequest(query, texts, raw_scores=_optional_bool(payload, "raw_scores"),
                      return_text=_optional_bool(payload, "return_text"))


def parse_cohere_request(payload: dict, max_documents: int) -> CohereRequest:
    """Checks a Cohere body: documents as strings or {"text": ...} objects, `top_n` >= 1 when given.

    `model` is accepted whatever it names (clients must send one; the server has one model), and so are
    fields this server does not use (`rank_fields`, `max_tokens_per_doc`, `priority`).
    """
    query = _query(payload, COHERE_EXAMPLE)
    documents = _documents(payload, "documents", max_documents, COHERE_EXAMPLE, allow_objects=True)
    top_n = payload.get("top_n")
    if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
        raise RequestError(422, f"top_n must be a whole number of at least 1 (how many results to return), got "
                           f"{json.dumps(top_n)}; leave it out to get every document back")
    return CohereRequest(query, documents, top_n=top_n, return_documents=_optional_bool(payload, "return_documents"))


def _query(payload: dict, example: str) -> str:
    if "query" not in payload or payload["query"] is None:
        raise RequestError(422, f'"query" is missing; send the question to rank documents for, e.g. {example}')
    query = payload["query"]
    if not isinstance(query, str):
        raise RequestError(422, f'"query" must be a string, got a JSON {_json_type(query)}; e.g. {example}')
    if not query.strip():
        raise RequestError(422, f'"query" is empty; send the question to rank documents for, e.g. {example}')
    _check_encodable(query, '"query"')
    return query


def _documents(payload: dict, field: str, max_documents: int, example: str, allow_objects: bool) -> list[str]:
    documents = payload.get(field)
    if documents is None:
        raise RequestError(422, f'"{field}" is missing; send the documents to rank as a list of strings, e.g. {example}')
    if not isinstance(documents, list):
        raise RequestError(422, f'"{field}" must be a list of strings, got a JSON {_json_type(documents)}; e.g. '
                           f"{example}")
    if not documents:
        raise RequestError(422, f'"{field}" is empty; send at least one document to rank, e.g. {example}')
    if len(documents) > max_documents:
        raise RequestError(413, f'"{field}" holds {len(documents)} documents, more than this server takes in one '
                           f"request ({max_documents}, its `max_documents`); split them over several requests",
                           "payload_too_large")
    texts = []
    for position, document in enumerate(documents):
        if allow_objects and isinstance(document, dict) and isinstance(document.get("text"), str):
            document = document["text"]
        if not isinstance(document, str):
            wanted = 'a string or an object with a "text" string' if allow_objects else "a string"
            raise RequestError(422, f'"{field}"[{position}] must be {wanted}, got a JSON {_json_type(document)}; '
                               f"e.g. {example}")
        _check_encodable(document, f'"{field}"[{position}]')
        texts.append(document)
    return texts


def _optional_bool(payload: dict, field: str) -> bool:
    value = payload.get(field)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise RequestError(422, f'"{field}" must be true or false, got {json.dumps(value)}; leave it out for false')
    return value


def _check_encodable(text: str, where: str) -> None:
    # JSON's \ud800 escapes decode to lone surrogates, which the tokenizer cannot take: refuse them here,
    # so one such text never fails the micro-batch it would have shared with other requests.
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as problem:
        raise RequestError(422, f"{where} holds a lone UTF-16 surrogate ({problem.object[problem.start]!r} at "
                           f"character {problem.start}), which is no text; send valid Unicode") from None


def _too_large(size: int, max_bytes: int) -> RequestError:
    return RequestError(413, f"the body is over this server's limit ({size} > {max_bytes} bytes, its "
                        "`max_body_bytes`); send fewer or shorter documents per request", "payload_too_large")


def _json_type(value) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)
