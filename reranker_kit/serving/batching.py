"""Micro-batching: the pairs of requests that arrive together are scored in one call on one scoring thread.

Scoring is compute-bound, and one request's pairs are padded to the longest of them. Scoring several
requests' pairs in one length-sorted call pads each forward pass only to pairs of similar length, which is
where batching wins on a CPU; on a GPU fuller batches also use the device better. One thread does all the
scoring: `Reranker`'s tokenizer must not be used from two threads at once, and the event loop stays free
to answer `/health` and to read new requests while a batch is scored.

Back-pressure: the queue holds at most `max_queued_pairs` pairs waiting to be scored; a request that would
go beyond is refused at once (`QueueFull`, the app's 429) and the requests already queued are untouched.
A request that has not got its scores `timeout_s` after it arrived gives up (`DeadlinePassed`, the app's
503); if it was still queued, its pairs are never scored.
"""

import asyncio
import logging
import math
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)


class QueueFull(Exception):
    """A request that would put more than `limit` pairs in the queue; `retry_after_s` estimates when it drains."""

    def __init__(self, queued_pairs: int, request_pairs: int, limit: int, retry_after_s: int):
        super().__init__(f"{queued_pairs} pairs are queued, and {request_pairs} more would exceed {limit}")
        self.queued_pairs = queued_pairs
        self.request_pairs = request_pairs
        self.limit = limit
        self.retry_after_s = retry_after_s


class DeadlinePassed(Exception):
    """A request that waited `timeout_s` for its scores; `retry_after_s` estimates when the queue drains."""

    def __init__(self, timeout_s: float, queued_pairs: int, retry_after_s: int):
        super().__init__(f"no scores within {timeout_s:g} s")
        self.timeout_s = timeout_s
        self.queued_pairs = queued_pairs
        self.retry_after_s = retry_after_s


@dataclass
class _Job:
    """One request's pairs and the future its handler awaits."""

    pairs: list
    done: asyncio.Future
    arrived: float = field(default=0.0)


class MicroBatcher:
    """Collects requests for up to `max_wait_s` after the first one, then scores them together.

    A batch holds at most `max_batch_pairs` pairs, taken first come first served; a request is never split
    and never waits behind a later one. A request larger than `max_batch_pairs` is scored alone (`score`
    still cuts it into forward passes). Each request gets back exactly its own results, in its own order.

    Args:
        score: scores a list of pairs on the scoring thread and returns one result per pair, in order.
        executor: the single-thread executor `score` runs on.
        max_batch_pairs: the most pairs scored in one call when requests are combined.
        max_wait_s: how long the first request of a batch waits for others to join.
        max_queued_pairs: the most pairs waiting to be scored (not counting the batch being scored).
        timeout_s: how long a request waits for its scores, from the moment it is queued.
    """

    def __init__(self, score: Callable[[list], Sequence], executor: Executor, max_batch_pairs: int,
                 max_wait_s: float, max_queued_pairs: int, timeout_s: float):
        self._score = score
        self._executor = executor
        self.max_batch_pairs = max_batch_pairs
        self.max_wait_s = max_wait_s
        self.max_queued_pairs = max_queued_pairs
        self.timeout_s = timeout_s
        self._queue: deque[_Job] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        # For /info: how much batching happened (requests scored per batch is the batching factor), how
        # many requests the limits turned away, and the measured speed that Retry-After is estimated from.
        self.batches_scored = 0
        self.requests_accepted = 0
        self.requests_scored = 0
        self.requests_refused = 0
        self.requests_timed_out = 0
        self.pairs_scored = 0
        self.scoring_seconds = 0.0

    def start(self) -> None:
        """Starts the batching loop on the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        """Stops the loop; requests still queued get a RuntimeError (the server drains them before this)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        while self._queue:
            job = self._queue.popleft()
            if not job.done.done():
                job.done.set_exception(RuntimeError("the server is shutting down; send the request again"))

    async def score(self, pairs: list) -> list:
        """The results of `pairs`, scored in the next batch that has room for them.

        Raises:
            QueueFull: the queue has no room for `pairs` now; nothing was queued.
            DeadlinePassed: the results did not come within `timeout_s`.
        """
        if not pairs:
            return []
        queued = self.queued_pairs()
        if queued + len(pairs) > self.max_queued_pairs:
            self.requests_refused += 1
            raise QueueFull(queued, len(pairs), self.max_queued_pairs, self.seconds_to_drain(queued))
        loop = asyncio.get_running_loop()
        job = _Job(list(pairs), loop.create_future(), loop.time())
        self._queue.append(job)
        self.requests_accepted += 1
        self._wake.set()
        try:
            # On timeout wait_for cancels job.done: a queued job is then skipped, a running one's results dropped.
            return await asyncio.wait_for(job.done, self.timeout_s)
        except TimeoutError:
            self.requests_timed_out += 1
            queued = self.queued_pairs()
            raise DeadlinePassed(self.timeout_s, queued, self.seconds_to_drain(queued)) from None

    def queued_pairs(self) -> int:
        """Pairs waiting for a batch (requests that gave up are not counted)."""
        return sum(len(job.pairs) for job in self._queue if not job.done.done())

    def seconds_to_drain(self, pairs: int) -> int:
        """Whole seconds to score `pairs` at the speed measured so far (1 before anything was scored)."""
        if self.pairs_scored == 0 or self.scoring_seconds <= 0:
            return 1
        return max(1, math.ceil(pairs * self.scoring_seconds / self.pairs_scored))

    async def _run(self) -> None:
        while True:
            while not self._queue:
                self._wake.clear()
                await self._wake.wait()
            await self._wait_for_company()
            await self._score_batch(self._take_batch())

    async def _wait_for_company(self) -> None:
        """Waits until the oldest request has waited `max_wait_s` or a full batch is queued."""
        loop = asyncio.get_running_loop()
        deadline = self._queue[0].arrived + self.max_wait_s
        while self.queued_pairs() < self.max_batch_pairs:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except TimeoutError:
                return

    def _take_batch(self) -> list[_Job]:
        batch, pairs = [], 0
        while self._queue:
            job = self._queue[0]
            if job.done.done():  # It gave up (its deadline passed, or its handler was cancelled): nothing to score.
                self._queue.popleft()
                continue
            if batch and pairs + len(job.pairs) > self.max_batch_pairs:
                break
            batch.append(self._queue.popleft())
            pairs += len(job.pairs)
        return batch

    async def _score_batch(self, batch: list[_Job]) -> None:
        batch = [job for job in batch if not job.done.done()]
        if not batch:
            return
        loop = asyncio.get_running_loop()
        pairs = [pair for job in batch for pair in job.pairs]
        started = loop.time()
        try:
            results = await loop.run_in_executor(self._executor, self._score, pairs)
        except Exception as problem:  # noqa: BLE001 - any failure must reach the requests, not end the loop.
            if len(batch) == 1:
                _finish(batch[0], error=problem)
                return
            # One request may be the cause: score each alone, so only that request fails.
            logger.warning("a batch of %d requests failed (%s); scoring them one by one", len(batch), problem)
            for job in batch:
                await self._score_batch([job])
            return
        self.batches_scored += 1
        self.requests_scored += len(batch)
        self.pairs_scored += len(pairs)
        self.scoring_seconds += loop.time() - started
        start = 0
        for job in batch:
            _finish(job, results=list(results[start:start + len(job.pairs)]))
            start += len(job.pairs)


def _finish(job: _Job, results: list | None = None, error: BaseException | None = None) -> None:
    if job.done.done():
        return
    if error is not None:
        job.done.set_exception(error)
    else:
        job.done.set_result(results)
