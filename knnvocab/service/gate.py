"""The bounded queue in front of segmentation: at most ``threads`` run at once, at most
``queue`` wait; past either bound, or past the request timeout, a 503 with Retry-After
answers at once instead of a hung connection."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from knnvocab.service.errors import unavailable
from knnvocab.service.metrics import Metrics

T = TypeVar("T")


class SegmentGate:
    """Runs CPU-bound work (decode, proposals, encoder, kNN) on its own threads."""

    def __init__(self, threads: int, queue: int, timeout: float, metrics: Metrics) -> None:
        self.threads, self.queue, self.timeout = threads, queue, timeout
        self.metrics = metrics
        self.executor = ThreadPoolExecutor(threads, thread_name_prefix="knnvocab-segment")
        self._slots: asyncio.Semaphore | None = None
        self.waiting = 0
        self.admitted = 0  # waiting or running

    def _semaphore(self) -> asyncio.Semaphore:
        if self._slots is None:  # created in the event loop that uses it
            self._slots = asyncio.Semaphore(self.threads)
        return self._slots

    def _retry_after(self) -> int:
        return max(1, min(30, round(self.timeout / 4)))

    async def run(self, work: Callable[[], T]) -> T:
        """``work()`` on a segment thread, or a 503 if ``threads + queue`` requests are
        already admitted or it takes too long. Work that timed out still finishes and
        frees its slot then (threads cannot be stopped), so the bound on running work
        holds."""
        deadline = time.monotonic() + self.timeout
        slots = self._semaphore()
        if self.admitted >= self.threads + self.queue:
            self.metrics.rejected.labels("queue_full").inc()
            raise unavailable(
                f"the service is busy ({self.waiting} segment requests waiting); retry later",
                self._retry_after(),
            )
        self.admitted += 1
        running = False
        try:
            await self._acquire(slots)
            self.metrics.running.inc()
            future = asyncio.get_running_loop().run_in_executor(self.executor, work)
            running = True

            def release(_done: object) -> None:
                self.admitted -= 1
                self.metrics.running.dec()
                slots.release()

            future.add_done_callback(release)
            try:
                return await asyncio.wait_for(
                    asyncio.shield(future), max(0.0, deadline - time.monotonic())
                )
            except TimeoutError:
                self.metrics.rejected.labels("timeout").inc()
                raise unavailable(
                    f"the segmentation took longer than {self.timeout:g} s; retry later",
                    self._retry_after(),
                ) from None
        finally:
            if not running:
                self.admitted -= 1

    async def _acquire(self, slots: asyncio.Semaphore) -> None:
        self.waiting += 1
        self.metrics.queue_depth.set(self.waiting)
        try:
            await asyncio.wait_for(slots.acquire(), self.timeout)
        except TimeoutError:
            self.metrics.rejected.labels("timeout").inc()
            raise unavailable(
                f"no segment slot became free within {self.timeout:g} s; retry later",
                self._retry_after(),
            ) from None
        finally:
            self.waiting -= 1
            self.metrics.queue_depth.set(self.waiting)

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
