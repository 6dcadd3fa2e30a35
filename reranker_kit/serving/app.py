"""The ASGI app: `/rerank` (TEI), `/v1/rerank` and `/v2/rerank` (Cohere, Jina, Infinity), `/health`, `/info`.

    app = create_app(ServingSettings(model="outputs/reranker-finetuned-20261127-101500"))

The model loads in the background when the app starts (lifespan), on the one scoring thread that later
scores every batch. Until it is loaded `/health` and the rerank routes answer 503.

Limits (docs/serving.md): 413 for a body or a document list over its limit, 429 with Retry-After when the
queue has no room, 503 with Retry-After when a request's deadline passes before its scores come.
"""

import asyncio
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.requests import ClientDisconnect

from reranker_kit.serving.batching import DeadlinePassed, MicroBatcher, QueueFull
from reranker_kit.serving.requests import RequestError, parse_cohere_request, parse_tei_request, read_json_body
from reranker_kit.serving.responses import cohere_response, error_body, tei_response
from reranker_kit.serving.served_model import FAILED, READY, ServedModel, load_reranker
from reranker_kit.serving.settings import ServingSettings

logger = logging.getLogger(__name__)

# `--workers` > 1: uvicorn imports `app_from_environment` in each worker process, which reads its settings here.
SETTINGS_ENVIRONMENT_VARIABLE = "RERANKER_KIT_SERVE_SETTINGS"


def create_app(settings: ServingSettings, load: Callable[[ServingSettings], object] = load_reranker,
               on_load_failure: Callable[[str], None] | None = None) -> FastAPI:
    """The app serving one model.

    Args:
        settings: the model and the limits requests are held to.
        load: builds the reranker from the settings (tests give a stand-in).
        on_load_failure: called with the message when the model fails to load (the CLI stops the server).
    """
    served = ServedModel(settings, load)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scoring")
        batcher = MicroBatcher(served.score, executor, settings.max_batch_pairs, settings.max_wait_ms / 1000,
                               settings.max_queued_pairs, settings.request_timeout_s)
        app.state.batcher = batcher
        batcher.start()
        loading = asyncio.get_running_loop().run_in_executor(executor, served.load)
        loading.add_done_callback(lambda future: _after_loading(future, served, on_load_failure))
        try:
            yield
        finally:
            await batcher.stop()
            executor.shutdown(wait=True)

    app = FastAPI(title="reranker-kit", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.served = served
    app.add_exception_handler(RequestError, _request_error_response)
    app.add_exception_handler(ClientDisconnect, _client_gone_response)
    app.add_exception_handler(Exception, _scoring_failure_response)
    _add_routes(app, served)
    return app


def _after_loading(future: asyncio.Future, served: ServedModel, on_load_failure: Callable[[str], None] | None
                   ) -> None:
    if not future.cancelled() and future.exception() is not None:  # A bug in loading, not a bad model name.
        served.fail(f"loading {served.settings.model} raised {future.exception()!r}")
    if served.state == FAILED and on_load_failure is not None:
        on_load_failure(served.problem)


def app_from_environment() -> FastAPI:
    """The app of one uvicorn worker process (`--workers` > 1), from the settings the CLI put in the environment."""
    return create_app(ServingSettings.from_json(os.environ[SETTINGS_ENVIRONMENT_VARIABLE]))


def _add_routes(app: FastAPI, served: ServedModel) -> None:
    settings = served.settings

    @app.get("/health")
    async def health():
        if served.state == READY:
            return {"status": "ok"}
        return JSONResponse({"status": served.state, "error": served.problem}, status_code=503)

    @app.get("/info")
    async def info(request: Request):
        batcher = request.app.state.batcher
        return {**served.info(), "queued_pairs": batcher.queued_pairs(), "batches_scored": batcher.batches_scored,
                "requests_accepted": batcher.requests_accepted, "requests_scored": batcher.requests_scored,
                "requests_refused_queue_full": batcher.requests_refused, "requests_timed_out": batcher.requests_timed_out}

    @app.post("/rerank")
    async def rerank_tei(request: Request):
        parsed = parse_tei_request(await read_json_body(request, settings.max_body_bytes), settings.max_documents)
        results = await _score(request, served, parsed.query, parsed.texts)
        return tei_response(parsed, results)

    async def rerank_cohere(request: Request):
        parsed = parse_cohere_request(await read_json_body(request, settings.max_body_bytes), settings.max_documents)
        results = await _score(request, served, parsed.query, parsed.documents)
        return cohere_response(parsed, results, served.model_id)

    # Cohere's ClientV2 posts to /v2/rerank, its v1 Client, Jina's and Infinity's clients to /v1/rerank.
    app.add_api_route("/v1/rerank", rerank_cohere, methods=["POST"])
    app.add_api_route("/v2/rerank", rerank_cohere, methods=["POST"])


async def _score(request: Request, served: ServedModel, query: str, documents: list[str]) -> list[tuple[float, int]]:
    if served.state != READY:
        message = (served.problem if served.state == FAILED else
                   "the model is still loading; retry when GET /health answers 200")
        raise RequestError(503, message, "unavailable")
    try:
        return await request.app.state.batcher.score([(query, document) for document in documents])
    except QueueFull as full:
        raise RequestError(429, f"the server is busy: {full.queued_pairs} pairs are waiting to be scored, and this "
                           f"request's {full.request_pairs} would go over its queue limit ({full.limit}, its "
                           f"`max_queued_pairs`); retry after {full.retry_after_s} s", "overloaded",
                           full.retry_after_s) from None
    except DeadlinePassed as late:
        raise RequestError(503, f"no scores within this server's deadline ({late.timeout_s:g} s, its "
                           f"`request_timeout_s`): the queue was too long; retry after {late.retry_after_s} s, "
                           "or send fewer documents per request", "timeout", late.retry_after_s) from None


async def _request_error_response(request: Request, error: RequestError) -> JSONResponse:
    headers = {"Retry-After": str(error.retry_after_s)} if error.retry_after_s is not None else None
    return JSONResponse(error_body(error), status_code=error.status, headers=headers)


async def _client_gone_response(request: Request, error: ClientDisconnect) -> Response:
    # Nobody is left to answer, and nothing was queued (the body was still being read): one line, no traceback.
    logger.info("a client disconnected before its request body arrived (%s %s); nothing was scored",
                request.method, request.url.path)
    return Response(status_code=499)  # nginx's "client closed request"; it reaches no one.


async def _scoring_failure_response(request: Request, error: Exception) -> JSONResponse:
    # A bug or a model failure, not the client's mistake: say so in JSON; uvicorn logs the traceback.
    message = f"scoring failed on the server ({type(error).__name__}: {error}); the server log has the traceback"
    return JSONResponse({"error": message, "error_type": "server", "message": message}, status_code=500)
