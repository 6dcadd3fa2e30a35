"""`python rerank.py serve [RUN_OR_MODEL]`: the `/rerank` HTTP server over a fine-tuned run.

    python rerank.py serve                                   # the newest finished run under outputs/
    python rerank.py serve outputs/reranker-finetuned-20261127-101500 --backend onnx_int8 --port 8080

Flags are checked, the model is found and looked at (a folder without a tokenizer, an embedding model, a
plain encoder without a ranking head are refused), and the port is taken, all before anything heavy loads;
the app itself is `reranker_kit.serving.app`. SIGTERM stops accepting connections, answers the requests in
flight, exits 0.
"""

import argparse
import errno
import logging
import os
import signal
import socket
from pathlib import Path

from reranker_kit.basics.errors import KitError
from reranker_kit.basics.model_files import resolve_model_name
from reranker_kit.commands.common import parse_arguments
from reranker_kit.models.loading import config_has_head, embedding_model_problem, missing_tokenizer_problem
from reranker_kit.models.onnx_export import onnx_file
from reranker_kit.run_folder import newest_finished_run, unusable_run_problem
from reranker_kit.serving.served_model import untrained_head_problem
from reranker_kit.serving.settings import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_QUEUED_PAIRS,
    DEFAULT_REQUEST_TIMEOUT_S,
    ServingSettings,
)

logger = logging.getLogger("serve")

BACKENDS = ("torch", "onnx", "onnx_int8")  # Reranker's backends, named here so --help needs no torch.


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rerank.py serve", formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                     description="Serve a reranker over HTTP: POST /rerank (text-embeddings-"
                                                 "inference's shape), POST /v1/rerank (Cohere, Jina, Infinity).")
    parser.add_argument("model", nargs="?", default=None,
                        help="A run folder, a saved model folder, a Hub id or bundled-e5; default: the newest "
                             "finished run under --runs_root, as main.py picks it.")
    parser.add_argument("--runs_root", type=str, default="outputs", help="Where fine-tuned runs are looked for.")
    parser.add_argument("--host", type=str, default="127.0.0.1",
                        help="Address to listen on; 0.0.0.0 makes it reachable from other machines.")
    parser.add_argument("--port", type=int, default=8080, help="Port to listen on.")
    parser.add_argument("--backend", choices=BACKENDS, default="torch",
                        help="torch, or the run's ONNX export (python rerank.py export RUN --onnx [--int8]), CPU only.")
    parser.add_argument("--device", type=str, default=None, help="cpu, cuda, cuda:1...; default: a GPU if present.")
    parser.add_argument("--max_length", type=int, default=512, help="Token budget of a (query, document) pair.")
    parser.add_argument("--batch_size", type=int, default=32, help="Pairs per forward pass inside a micro-batch.")
    parser.add_argument("--max_batch_pairs", type=int, default=64,
                        help="Pairs of concurrent requests scored together in one length-sorted micro-batch.")
    parser.add_argument("--max_wait_ms", type=float, default=5.0,
                        help="How long the first request of a micro-batch waits for others to join it.")
    parser.add_argument("--max_documents", type=int, default=1000, help="The most documents one request may send.")
    parser.add_argument("--max_body_bytes", type=int, default=DEFAULT_MAX_BODY_BYTES,
                        help="The largest request body accepted (413 beyond).")
    parser.add_argument("--max_queued_pairs", type=int, default=DEFAULT_MAX_QUEUED_PAIRS,
                        help="The most (query, document) pairs waiting to be scored; a request that would go beyond "
                             "gets 429 with Retry-After. At least --max_documents.")
    parser.add_argument("--request_timeout_s", type=float, default=DEFAULT_REQUEST_TIMEOUT_S,
                        help="How long a request may wait for its scores; beyond, 503 with Retry-After.")
    parser.add_argument("--allow_untrained_head", action="store_true",
                        help="Serve a model whose ranking head was never trained (a plain encoder such as "
                             "bundled-minilm); its scores mean nothing, e.g. to try a client.")
    parser.add_argument("--workers", type=int, default=1,
                        help="Server processes, each with its own copy of the model (memory grows with each).")
    return parser


def validate_args(args, parser) -> None:
    if not 0 <= args.port <= 65535:
        parser.error(f"--port must be between 0 and 65535, got {args.port}")
    for flag in ("batch_size", "max_batch_pairs", "max_documents", "max_queued_pairs", "workers"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    if args.max_length < 16:
        parser.error(f"--max_length must be at least 16, got {args.max_length}")
    if args.max_wait_ms < 0:
        parser.error(f"--max_wait_ms must be 0 or more (0 scores each request as soon as the thread is free), "
                     f"got {args.max_wait_ms}")
    if args.max_body_bytes < 1024:
        parser.error(f"--max_body_bytes must be at least 1024, got {args.max_body_bytes}")
    if args.max_queued_pairs < args.max_documents:
        parser.error(f"--max_queued_pairs {args.max_queued_pairs} is below --max_documents {args.max_documents}: a "
                     "request of that many documents could never be queued; raise --max_queued_pairs or lower "
                     "--max_documents")
    if args.request_timeout_s <= 0:
        parser.error(f"--request_timeout_s must be above 0, got {args.request_timeout_s}")
    if args.backend != "torch" and args.device not in (None, "cpu"):
        parser.error(f"--backend {args.backend} runs on the CPU (ONNX Runtime); drop --device {args.device}, or use "
                     "--backend torch for a GPU")


def pick_model(model: str | None, runs_root: str, allow_untrained_head: bool = False) -> str:
    """The model to serve: the one named, else the newest finished run under `runs_root`; checked now.

    Refused here, from its files alone: a folder without tokenizer files, a model fine_tune_embedder.py
    wrote, and (without `allow_untrained_head`) a model whose config has no one-logit classifier, whose
    head would be new. A classifier config whose weights lack the head is refused once it loads.
    """
    if model is None:
        run_dir = newest_finished_run(runs_root)
        if run_dir is None:
            raise KitError(f"no finished run under {runs_root} to serve. Fine-tune one first (python "
                           "fine_tune_reranker.py ...), or name a model: python rerank.py serve RUN_FOLDER")
        logger.info("serving the newest finished run under %s: %s", runs_root, run_dir)
        model = str(run_dir)
    resolved = resolve_model_name(model)  # A missing folder or damaged weights fail now, before the server starts.
    problem = (unusable_run_problem(model)  # The same folders main.py refuses.
               or missing_tokenizer_problem(resolved) or embedding_model_problem(resolved))
    if problem:
        raise KitError(problem)
    if not allow_untrained_head and not config_has_head(resolved):
        raise KitError(untrained_head_problem(model))
    return model


def check_backend(model: str, backend: str) -> None:
    """An ONNX backend needs the run's export on disk: say how to make it before the server starts."""
    if backend == "torch":
        return
    int8 = backend == "onnx_int8"
    if not Path(model).is_dir() or not onnx_file(Path(model), int8).is_file():
        raise KitError(f"--backend {backend} needs the ONNX export of {model}; make it first: python rerank.py export "
                       f"{model} --onnx{' --int8' if int8 else ''}")


def main(argv: list[str] | None = None) -> None:
    args = parse_arguments(build_parser(), validate_args, argv)
    model = pick_model(args.model, args.runs_root, args.allow_untrained_head)
    check_backend(model, args.backend)
    settings = ServingSettings(model=model, backend=args.backend, device=args.device, max_length=args.max_length,
                               batch_size=args.batch_size, max_batch_pairs=args.max_batch_pairs,
                               max_wait_ms=args.max_wait_ms, max_documents=args.max_documents,
                               max_body_bytes=args.max_body_bytes, max_queued_pairs=args.max_queued_pairs,
                               request_timeout_s=args.request_timeout_s,
                               allow_untrained_head=args.allow_untrained_head)
    # The port before the model: a second server on a busy port would load the model only to fail on the bind.
    listener = listening_socket(args.host, args.port)
    # uvicorn re-raises the SIGTERM it shut down gracefully on; a handler that only logs turns it into exit 0.
    signal.signal(signal.SIGTERM, lambda signum, frame: logger.info("stopped by SIGTERM"))
    if args.workers == 1:
        serve_one_process(settings, listener)
    else:
        listener.close()  # uvicorn's worker manager binds the address itself, right after.
        serve_workers(settings, args.host, args.port, args.workers)


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port), as uvicorn binds it; a port in use or an address not on this machine is refused."""
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM,
                                                                 flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as problem:
        raise KitError(f"--host {host}: not an address this machine can listen on ({problem.strerror}); give "
                       "127.0.0.1 (this machine only) or 0.0.0.0 (every network)") from None
    listener = socket.socket(family, kind, protocol)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # As uvicorn: a closed server's port is free.
    try:
        listener.bind(address)
    except OSError as problem:
        listener.close()
        if problem.errno in (errno.EADDRINUSE, errno.EACCES):
            raise KitError(f"--port {port}: cannot listen on {host}:{port} ({problem.strerror}); another process "
                           "(another rerank.py serve?) holds it, or it needs privileges: pick another with --port, "
                           "or stop that process") from None
        raise KitError(f"--host {host}: cannot listen on {host}:{port} ({problem.strerror}); give an address of "
                       "this machine, such as 127.0.0.1 or 0.0.0.0") from None
    return listener


def serve_one_process(settings: ServingSettings, listener: socket.socket) -> None:
    """Serves on `listener` in this process; a model that fails to load stops the server and exits 2 with the reason."""
    import uvicorn

    from reranker_kit.serving.app import create_app  # fastapi and uvicorn only once the flags passed.

    failures: list[str] = []

    def stop(problem: str) -> None:
        failures.append(problem)
        server.should_exit = True

    server = uvicorn.Server(uvicorn.Config(create_app(settings, on_load_failure=stop), log_config=None,
                                           timeout_graceful_shutdown=None))
    host, port = listener.getsockname()[:2]
    # uvicorn announces its address only for sockets it bound itself.
    logger.info("listening on http://%s:%d; GET /health answers 200 once the model has loaded", host, port)
    server.run(sockets=[listener])
    if failures:
        raise KitError(failures[0])
    if not server.started:
        raise KitError(f"the server did not start on {host}:{port} (see the error above)")


def serve_workers(settings: ServingSettings, host: str, port: int, workers: int) -> None:
    """`workers` uvicorn processes, each loading the model (uvicorn imports the app by name in each)."""
    import uvicorn

    from reranker_kit.serving.app import SETTINGS_ENVIRONMENT_VARIABLE  # fastapi only once the flags passed.

    os.environ[SETTINGS_ENVIRONMENT_VARIABLE] = settings.to_json()
    uvicorn.run("reranker_kit.serving.app:app_from_environment", factory=True, host=host, port=port,
                workers=workers, log_config=None)
