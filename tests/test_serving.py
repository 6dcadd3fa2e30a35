"""The /rerank server: both request shapes score like `compute_score`, bad requests get a 4xx that says what
to send, concurrent requests never mix, /health answers during a batch, SIGTERM drains, Cohere's client parses.

Every server here listens on 127.0.0.1 only; every wait is bounded.
"""

import asyncio
import json
import logging
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

import httpx
import pytest
import uvicorn

from reranker_kit.basics.errors import KitError
from reranker_kit.serving.app import create_app
from reranker_kit.serving.settings import ServingSettings

from conftest import ROOT

LOOPBACK = "127.0.0.1"
MAX_LENGTH = 64  # Short pairs keep each request to milliseconds on 2 CPU cores.
MAX_DOCUMENTS = 50
MAX_BODY_BYTES = 64 * 1024
TOLERANCE = 1e-6  # torch: the server's scores equal compute_score's up to float noise from other padding.
QUERIES = ["CLB tuyển thành viên khi nào ạ?", "phí thành viên bao nhiêu", "Em ko học CNTT thì có tham gia được ko ạ ?",
           "lịch sinh hoạt của CLB", "ai là chủ nhiệm", "làm sao để đăng ký"]


@contextmanager
def running(app, timeout_s: float = 60.0):
    """Serves `app` with uvicorn on a loopback port in a thread; yields the base URL."""
    listener = socket.socket()
    listener.bind((LOOPBACK, 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, timeout_graceful_shutdown=5))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        assert server.started, "the test server did not start"
        yield f"http://{LOOPBACK}:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout_s)
        listener.close()


def wait_healthy(base_url: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{base_url}/health never answered 200 within {timeout_s} s")


@pytest.fixture(scope="module")
def documents(small_data) -> list[str]:
    """Sample documents cut to varied lengths, so pairs in one batch pad differently."""
    from reranker_kit.data.loading import load_corpus

    texts = list(load_corpus(small_data["corpus"]).values())
    return [text[:40 + 37 * (position % 7)] for position, text in enumerate(texts)]


@pytest.fixture(scope="module")
def direct(trained_run):
    """A second Reranker on the same run, as a user would load it: the reference scores."""
    from reranker_kit.models.reranker import Reranker

    return Reranker(model_name=str(trained_run[0]), device="cpu", max_length=MAX_LENGTH)


@pytest.fixture(scope="module")
def server(trained_run):
    settings = ServingSettings(model=str(trained_run[0]), device="cpu", max_length=MAX_LENGTH, max_wait_ms=20,
                               max_documents=MAX_DOCUMENTS, max_body_bytes=MAX_BODY_BYTES)
    with running(create_app(settings)) as base_url:
        wait_healthy(base_url)
        yield base_url


def direct_scores(direct, query: str, texts: list[str], normalize: bool) -> list[float]:
    return direct.compute_score([(query, text) for text in texts], normalize=normalize)


def assert_same_scores(served: dict[int, float], expected: list[float]) -> None:
    assert sorted(served) == list(range(len(expected)))
    for index, score in served.items():
        assert abs(score - expected[index]) <= TOLERANCE, (index, score, expected[index])


# Both shapes against compute_score.

@pytest.mark.parametrize("raw_scores", [True, False])
def test_tei_shape_scores_like_compute_score_best_first(server, direct, documents, raw_scores):
    texts = documents[:12]
    response = httpx.post(f"{server}/rerank", json={"query": QUERIES[0], "texts": texts, "raw_scores": raw_scores,
                                                     "return_text": True}, timeout=30)
    assert response.status_code == 200, response.text
    ranked = response.json()
    assert_same_scores({item["index"]: item["score"] for item in ranked},
                       direct_scores(direct, QUERIES[0], texts, normalize=not raw_scores))
    assert [item["score"] for item in ranked] == sorted((item["score"] for item in ranked), reverse=True)
    assert all(item["text"] == texts[item["index"]] for item in ranked)
    without_text = httpx.post(f"{server}/rerank", json={"query": QUERIES[0], "texts": texts[:2]}, timeout=30).json()
    assert all(set(item) == {"index", "score"} and 0 < item["score"] < 1 for item in without_text)


def test_cohere_shape_scores_like_compute_score_with_top_n(server, direct, documents, trained_run):
    texts = documents[:10]
    body = {"model": "rerank-v3.5", "query": QUERIES[1], "top_n": 3, "return_documents": True,
            "documents": [text if position % 2 else {"text": text} for position, text in enumerate(texts)]}
    response = httpx.post(f"{server}/v1/rerank", json=body, timeout=30)
    assert response.status_code == 200, response.text
    answer = response.json()
    expected = direct_scores(direct, QUERIES[1], texts, normalize=True)
    best = sorted(range(len(texts)), key=lambda index: -expected[index])[:3]
    assert [item["index"] for item in answer["results"]] == best
    for item in answer["results"]:
        assert abs(item["relevance_score"] - expected[item["index"]]) <= TOLERANCE
        assert item["document"] == {"text": texts[item["index"]]}
    assert answer["model"] == trained_run[0].name and answer["id"]
    assert answer["usage"]["total_tokens"] > 0
    every = httpx.post(f"{server}/v2/rerank", json={**body, "top_n": 99, "return_documents": False}, timeout=30).json()
    assert len(every["results"]) == len(texts) and all("document" not in item for item in every["results"])


def test_info_names_the_run_and_its_settings(server, trained_run):
    info = httpx.get(f"{server}/info", timeout=5).json()
    assert info["run_folder"] == str(trained_run[0].resolve())
    assert info["base_model"] and info["backend"] == "torch" and info["max_length"] == MAX_LENGTH
    assert info["max_batch_pairs"] == 64 and info["status"] == "ready"
    assert info["max_documents"] == MAX_DOCUMENTS and info["max_body_bytes"] == MAX_BODY_BYTES
    assert info["max_queued_pairs"] == 4096 and info["request_timeout_s"] == 60.0 and info["queued_pairs"] == 0
    assert info["head"] == {"trained": True, "seed": None}


# Bad requests: a 4xx, a message that says what to send, and the server still scores afterwards.

BAD_REQUESTS = [
    ("/rerank", {"texts": ["a"]}, 422, '"query" is missing'),
    ("/rerank", {"query": "", "texts": ["a"]}, 422, '"query" is empty'),
    ("/rerank", {"query": "   ", "texts": ["a"]}, 422, '"query" is empty'),
    ("/rerank", {"query": 5, "texts": ["a"]}, 422, '"query" must be a string'),
    ("/rerank", {"query": "q"}, 422, '"texts" is missing'),
    ("/rerank", {"query": "q", "texts": []}, 422, '"texts" is empty'),
    ("/rerank", {"query": "q", "texts": "one text"}, 422, '"texts" must be a list of strings'),
    ("/rerank", {"query": "q", "texts": ["a", 3]}, 422, '"texts"[1] must be a string'),
    ("/rerank", {"query": "q", "texts": [{"text": "a"}]}, 422, '"texts"[0] must be a string'),
    ("/rerank", {"query": "q", "texts": ["a"] * (MAX_DOCUMENTS + 1)}, 413, "split them over several requests"),
    ("/rerank", {"query": "q", "texts": ["a"], "raw_scores": "yes"}, 422, '"raw_scores" must be true or false'),
    ("/rerank", {"query": "q", "texts": ["\ud800"]}, 422, "lone UTF-16 surrogate"),
    ("/v1/rerank", {"documents": ["a"]}, 422, '"query" is missing'),
    ("/v1/rerank", {"query": "q", "documents": []}, 422, '"documents" is empty'),
    ("/v1/rerank", {"query": "q", "documents": {"text": "a"}}, 422, '"documents" must be a list'),
    ("/v1/rerank", {"query": "q", "documents": ["a", {"title": "b"}]}, 422, 'an object with a "text" string'),
    ("/v1/rerank", {"query": "q", "documents": ["a"] * (MAX_DOCUMENTS + 1)}, 413, "`max_documents`"),
    ("/v1/rerank", {"query": "q", "documents": ["a"], "top_n": 0}, 422, "top_n must be a whole number of at least 1"),
    ("/v1/rerank", {"query": "q", "documents": ["a"], "top_n": "3"}, 422, "top_n must be a whole number"),
    ("/v1/rerank", {"query": "q", "documents": ["a"], "top_n": True}, 422, "top_n must be a whole number"),
    ("/rerank", b'{"query": "q", "texts": ["a"', 400, "not valid JSON"),
    ("/rerank", b"[1, 2]", 400, "must be a JSON object"),
    ("/v1/rerank", b"\xff\xfe", 400, "not UTF-8"),
    ("/rerank", b"[" * 100_000, 413, "`max_body_bytes`"),
    ("/rerank", b"[" * 50_000, 400, "nests JSON too deeply"),
]


@pytest.mark.parametrize(("path", "body", "status", "message"), BAD_REQUESTS,
                         ids=[f"{path}-{message[:30]}" for path, _, _, message in BAD_REQUESTS])
def test_a_bad_request_gets_a_4xx_that_says_what_to_send(server, path, body, status, message):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = httpx.post(f"{server}{path}", content=content, headers={"content-type": "application/json"}, timeout=30)
    assert response.status_code == status, response.text
    answer = response.json()
    assert message in answer["error"] and answer["message"] == answer["error"]


def test_a_chunked_body_over_the_limit_is_refused_while_read(server):
    def chunks():
        yield b'{"query": "q", "texts": ["'
        for _ in range(MAX_BODY_BYTES // 1024 + 1):
            yield b"a" * 1024
        yield b'"]}'

    response = httpx.post(f"{server}/rerank", content=chunks(), headers={"content-type": "application/json"}, timeout=30)
    assert response.status_code == 413 and "`max_body_bytes`" in response.json()["error"]


def test_bad_requests_leave_the_server_scoring(server, direct, documents):
    texts = documents[:4]
    response = httpx.post(f"{server}/rerank", json={"query": QUERIES[2], "texts": texts, "raw_scores": True}, timeout=30)
    assert_same_scores({item["index"]: item["score"] for item in response.json()},
                       direct_scores(direct, QUERIES[2], texts, normalize=False))


# Micro-batching.

def test_32_concurrent_requests_each_get_their_own_scores(server, direct, documents):
    requests = [(QUERIES[number % len(QUERIES)], documents[number % 9:number % 9 + 2 + number % 4]) for number in range(32)]

    async def send_all():
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*(client.post(f"{server}/rerank", json={"query": query, "texts": texts,
                                                                                 "raw_scores": True})
                                          for query, texts in requests))

    before = httpx.get(f"{server}/info", timeout=5).json()
    responses = asyncio.run(send_all())
    after = httpx.get(f"{server}/info", timeout=5).json()
    for (query, texts), response in zip(requests, responses):
        assert response.status_code == 200, response.text
        assert_same_scores({item["index"]: item["score"] for item in response.json()},
                           direct_scores(direct, query, texts, normalize=False))
    assert after["requests_scored"] - before["requests_scored"] == 32
    assert after["batches_scored"] - before["batches_scored"] < 32, "no two requests were scored together"


class StandInReranker:
    """Scores pairs by passage length, optionally holding each batch until released; fails on "boom"."""

    device, max_length = "cpu", 32
    head_is_trained, head_seed = True, None

    def __init__(self):
        self.scoring = threading.Event()
        self.release = threading.Event()
        self.release.set()
        self.passages_scored: list[str] = []
        from transformers import AutoTokenizer

        from reranker_kit.basics.model_files import resolve_model_name

        self.tokenizer = AutoTokenizer.from_pretrained(resolve_model_name("bundled-minilm"))

    def compute_score(self, pairs, normalize=False):
        self.scoring.set()
        assert self.release.wait(30), "the test never released the batch"
        self.passages_scored += [passage for _, passage in pairs]
        if any("boom" in passage for _, passage in pairs):
            raise RuntimeError("this passage breaks the stand-in model")
        return [float(len(passage)) for _, passage in pairs]


@pytest.fixture(scope="module")
def stand_in():
    return StandInReranker()


def test_health_answers_while_a_batch_is_scored(stand_in):
    with running(create_app(ServingSettings(model="stand-in"), load=lambda settings: stand_in)) as base_url:
        wait_healthy(base_url, timeout_s=10)
        stand_in.scoring.clear()
        stand_in.release.clear()
        with httpx.Client(timeout=30) as client:
            pending = threading.Thread(target=lambda: client.post(f"{base_url}/rerank", json={"query": "q", "texts": ["a"]}))
            pending.start()
            try:
                assert stand_in.scoring.wait(10), "the batch never started"
                started = time.monotonic()
                assert httpx.get(f"{base_url}/health", timeout=5).status_code == 200
                assert time.monotonic() - started < 2
            finally:
                stand_in.release.set()
                pending.join(30)


def test_health_is_503_until_the_model_is_loaded(stand_in):
    loaded = threading.Event()

    def slow_load(settings):
        assert loaded.wait(30), "the test never let the model load"
        return stand_in

    with running(create_app(ServingSettings(model="stand-in"), load=slow_load)) as base_url:
        try:
            assert httpx.get(f"{base_url}/health", timeout=5).status_code == 503
            response = httpx.post(f"{base_url}/rerank", json={"query": "q", "texts": ["a"]}, timeout=5)
            assert response.status_code == 503 and "still loading" in response.json()["error"]
        finally:
            loaded.set()
        wait_healthy(base_url, timeout_s=10)


def test_a_request_that_breaks_scoring_fails_alone(stand_in):
    settings = ServingSettings(model="stand-in", max_wait_ms=200)  # Long enough for all four to share a batch.

    async def send_all(base_url):
        async with httpx.AsyncClient(timeout=30) as client:
            bodies = [{"query": "q", "texts": ["ab", "boom" if number == 2 else "abc"]} for number in range(4)]
            return await asyncio.gather(*(client.post(f"{base_url}/rerank", json=body) for body in bodies))

    with running(create_app(settings, load=lambda settings: stand_in)) as base_url:
        wait_healthy(base_url, timeout_s=10)
        responses = asyncio.run(send_all(base_url))
    assert [response.status_code for response in responses] == [200, 200, 500, 200]
    assert "breaks the stand-in model" in responses[2].json()["error"]
    assert responses[0].json()[0]["index"] == 1


# Back-pressure: a full queue answers 429, a request past its deadline 503, and neither touches the others.

def post_in_thread(url: str, body: dict, answers: dict, key) -> threading.Thread:
    def send():
        answers[key] = httpx.post(url, json=body, timeout=30)

    sender = threading.Thread(target=send)
    sender.start()
    return sender


def wait_until(condition, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the server never reached the state the test waits for"
        time.sleep(0.02)


def test_a_full_queue_answers_429_with_retry_after_and_the_queued_requests_still_get_their_scores(stand_in):
    settings = ServingSettings(model="stand-in", max_wait_ms=0, max_documents=4, max_queued_pairs=6)
    bodies = {"scoring": {"query": "q", "texts": ["a", "bbbb"]}, "queued_1": {"query": "q", "texts": ["cc", "d", "eee"]},
              "queued_2": {"query": "q", "texts": ["ffff", "gg", "h"]}}
    answers, senders = {}, []
    with running(create_app(settings, load=lambda settings: stand_in)) as base_url:
        wait_healthy(base_url, timeout_s=10)
        stand_in.scoring.clear()
        stand_in.release.clear()
        try:
            senders.append(post_in_thread(f"{base_url}/rerank", bodies["scoring"], answers, "scoring"))
            assert stand_in.scoring.wait(10), "the first batch never started"
            for key in ("queued_1", "queued_2"):
                senders.append(post_in_thread(f"{base_url}/rerank", bodies[key], answers, key))
            wait_until(lambda: httpx.get(f"{base_url}/info", timeout=5).json()["queued_pairs"] == 6)
            refused = httpx.post(f"{base_url}/v1/rerank", json={"query": "q", "documents": ["iiiii"]}, timeout=5)
            info = httpx.get(f"{base_url}/info", timeout=5).json()
        finally:
            stand_in.release.set()
            for sender in senders:
                sender.join(30)
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["retry-after"]) >= 1
    assert "`max_queued_pairs`" in refused.json()["error"] and refused.json()["error_type"] == "overloaded"
    assert info["queued_pairs"] == 6 and info["requests_refused_queue_full"] == 1
    assert "iiiii" not in stand_in.passages_scored
    for key, body in bodies.items():  # The stand-in scores a passage by its length.
        assert answers[key].status_code == 200, answers[key].text
        assert {item["index"]: item["score"] for item in answers[key].json()} == {
            index: 1 / (1 + math.exp(-len(text))) for index, text in enumerate(body["texts"])}


def test_a_request_past_its_deadline_gets_503_with_retry_after_and_is_never_scored(stand_in):
    settings = ServingSettings(model="stand-in", max_wait_ms=0, request_timeout_s=0.5)
    answers = {}
    with running(create_app(settings, load=lambda settings: stand_in)) as base_url:
        wait_healthy(base_url, timeout_s=10)
        stand_in.scoring.clear()
        stand_in.release.clear()
        try:
            first = post_in_thread(f"{base_url}/rerank", {"query": "q", "texts": ["held"]}, answers, "held")
            assert stand_in.scoring.wait(10), "the first batch never started"
            started = time.monotonic()
            late = httpx.post(f"{base_url}/rerank", json={"query": "q", "texts": ["never scored"]}, timeout=10)
            waited = time.monotonic() - started
            first.join(10)
        finally:
            stand_in.release.set()
        after = httpx.post(f"{base_url}/rerank", json={"query": "q", "texts": ["xyz"]}, timeout=10)
        info = httpx.get(f"{base_url}/info", timeout=5).json()
    assert late.status_code == 503 and 0.4 < waited < 5, (late.text, waited)
    assert int(late.headers["retry-after"]) >= 1 and late.json()["error_type"] == "timeout"
    assert "`request_timeout_s`" in late.json()["error"]
    assert answers["held"].status_code == 503  # Its batch outlived the deadline too: the answer does not wait.
    assert "never scored" not in stand_in.passages_scored
    assert after.status_code == 200 and after.json()[0]["score"] == pytest.approx(1 / (1 + math.exp(-3)))
    assert info["requests_timed_out"] == 2


def test_a_client_that_disconnects_mid_body_leaves_one_quiet_line(stand_in, caplog):
    with running(create_app(ServingSettings(model="stand-in"), load=lambda settings: stand_in)) as base_url:
        wait_healthy(base_url, timeout_s=10)
        port = int(base_url.rsplit(":", 1)[1])
        caplog.clear()
        with caplog.at_level(logging.INFO):
            for _ in range(3):
                with socket.create_connection((LOOPBACK, port), timeout=5) as client:
                    client.sendall(b"POST /rerank HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                                   b'Content-Length: 1000\r\n\r\n{"query": "q", "te')
                    time.sleep(0.1)
            time.sleep(0.5)
            assert httpx.post(f"{base_url}/rerank", json={"query": "q", "texts": ["a"]}, timeout=10).status_code == 200
    about_it = [record for record in caplog.records if "disconnect" in record.getMessage().lower()
                or record.exc_info or record.levelno >= logging.WARNING]
    assert len(about_it) == 3, [record.getMessage() for record in about_it]
    assert all(record.levelno == logging.INFO and not record.exc_info for record in about_it)


# Cohere's own clients.

def test_cohere_client_v2_parses_the_response(server, direct, documents):
    import cohere

    texts = documents[:6]
    client = cohere.ClientV2(base_url=server, api_key="unused", timeout=30)
    answer = client.rerank(model="rerank-v3.5", query=QUERIES[3], documents=texts, top_n=4)
    expected = direct_scores(direct, QUERIES[3], texts, normalize=True)
    assert len(answer.results) == 4
    for result in answer.results:
        assert abs(result.relevance_score - expected[result.index]) <= TOLERANCE
    assert answer.meta.billed_units.search_units == 1


def test_cohere_v1_client_drives_v1_rerank_with_documents(server, documents):
    import cohere

    client = cohere.Client(base_url=server, api_key="unused", timeout=30)
    answer = client.rerank(model="rerank-v3.5", query=QUERIES[4], documents=documents[:5], return_documents=True)
    assert sorted(result.index for result in answer.results) == list(range(5))
    assert all(result.document.text == documents[result.index] for result in answer.results)


def test_cohere_client_retries_a_429_after_retry_after_and_gets_its_scores(stand_in):
    import cohere

    settings = ServingSettings(model="stand-in", max_wait_ms=0, max_documents=2, max_queued_pairs=2)
    answers, senders = {}, []
    with running(create_app(settings, load=lambda settings: stand_in)) as base_url:
        wait_healthy(base_url, timeout_s=10)
        client = cohere.ClientV2(base_url=base_url, api_key="unused", timeout=30)
        stand_in.scoring.clear()
        stand_in.release.clear()
        try:
            senders.append(post_in_thread(f"{base_url}/rerank", {"query": "q", "texts": ["a"]}, answers, "scoring"))
            assert stand_in.scoring.wait(10), "the first batch never started"
            senders.append(post_in_thread(f"{base_url}/rerank", {"query": "q", "texts": ["bb", "c"]}, answers, "queued"))
            wait_until(lambda: httpx.get(f"{base_url}/info", timeout=5).json()["queued_pairs"] == 2)

            def release_after_the_first_refusal():
                wait_until(lambda: httpx.get(f"{base_url}/info", timeout=5).json()["requests_refused_queue_full"] >= 1)
                stand_in.release.set()

            releaser = threading.Thread(target=release_after_the_first_refusal)
            releaser.start()
            answer = client.rerank(model="rerank-v3.5", query="q", documents=["dddd"])
            releaser.join(30)
        finally:
            stand_in.release.set()
            for sender in senders:
                sender.join(30)
        info = httpx.get(f"{base_url}/info", timeout=5).json()
    assert answer.results[0].relevance_score == pytest.approx(1 / (1 + math.exp(-4)))
    assert info["requests_refused_queue_full"] >= 1
    assert [answers[key].status_code for key in ("scoring", "queued")] == [200, 200]


# The command line.

def test_serve_without_a_finished_run_says_how_to_get_one(tmp_path):
    from reranker_kit.commands.serve import pick_model

    with pytest.raises(KitError, match="Fine-tune one first"):
        pick_model(None, str(tmp_path))


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


def test_rerank_py_serve_serves_the_newest_run_and_drains_on_sigterm(trained_run, documents):
    run_dir = trained_run[0]
    port = free_loopback_port()
    env = dict(os.environ, PYTHONUNBUFFERED="1", HF_HUB_OFFLINE="1")
    process = subprocess.Popen([sys.executable, str(ROOT / "rerank.py"), "serve", "--runs_root", str(run_dir.parent),
                                "--host", LOOPBACK, "--port", str(port), "--max_length", str(MAX_LENGTH)],
                               cwd=run_dir.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base_url = f"http://{LOOPBACK}:{port}"
    try:
        wait_healthy(base_url)
        assert httpx.get(f"{base_url}/info", timeout=5).json()["run_folder"] == str(run_dir.resolve())
        answers = {}

        def send(number):
            texts = (documents * 3)[number:number + MAX_DOCUMENTS]
            answers[number] = httpx.post(f"{base_url}/rerank", json={"query": QUERIES[number], "texts": texts}, timeout=60)

        senders = [threading.Thread(target=send, args=(number,)) for number in range(4)]
        for sender in senders:
            sender.start()
        # Four requests of 50 pairs take seconds to score: once the fourth is queued, they are all in flight.
        wait_until(lambda: httpx.get(f"{base_url}/info", timeout=5).json()["requests_accepted"] == 4, timeout_s=30)
        process.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{base_url}/health", timeout=5)
        for sender in senders:
            sender.join(60)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)
    assert process.returncode == 0, output[-3000:]
    assert [answers[number].status_code for number in range(4)] == [200] * 4
    assert all(len(answers[number].json()) == MAX_DOCUMENTS for number in range(4))
    assert "stopped by SIGTERM" in output and f"serving {run_dir}" in output
    assert f"listening on http://{LOOPBACK}:{port}" in output
    assert "Waiting for connections to close" in output  # uvicorn: the requests were still in flight at SIGTERM.


def test_serve_on_a_port_in_use_exits_2_naming_the_port_before_loading_the_model(trained_run):
    with socket.socket() as holder:
        holder.bind((LOOPBACK, 0))
        holder.listen()
        port = holder.getsockname()[1]
        started = time.monotonic()
        result = subprocess.run([sys.executable, str(ROOT / "rerank.py"), "serve", str(trained_run[0]), "--host",
                                 LOOPBACK, "--port", str(port)], cwd=ROOT, capture_output=True, text=True, timeout=120,
                                env=dict(os.environ, HF_HUB_OFFLINE="1"))
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert f"--port {port}: cannot listen on {LOOPBACK}:{port}" in output and "pick another with --port" in output
    assert "serving " not in output and "Traceback" not in output  # Refused before the model was loaded.
    assert time.monotonic() - started < 60


@pytest.mark.parametrize(("flags", "message"), [
    (["--max_documents", "100", "--max_queued_pairs", "50"], "--max_queued_pairs 50 is below --max_documents 100"),
    (["--request_timeout_s", "0"], "--request_timeout_s must be above 0"),
    (["--max_queued_pairs", "0"], "--max_queued_pairs must be at least 1"),
])
def test_serve_refuses_limits_that_cannot_work(flags, message, capsys):
    from reranker_kit.commands.serve import main

    with pytest.raises(SystemExit) as exit_status:
        main(["bundled-minilm", *flags])
    assert exit_status.value.code == 2 and message in capsys.readouterr().err
