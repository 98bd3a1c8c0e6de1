"""The segment gate admits at most threads + queue requests, even when they all arrive
in the same event-loop turn, and answers the rest 503 with Retry-After at once."""

from __future__ import annotations

import asyncio
import time

from knnvocab.service.errors import ApiError
from knnvocab.service.gate import SegmentGate
from knnvocab.service.metrics import Metrics


async def _burst(gate: SegmentGate, n: int, seconds: float) -> list[int]:
    async def one() -> int:
        try:
            await gate.run(lambda: time.sleep(seconds))
        except ApiError as exc:
            assert exc.headers["Retry-After"]
            return exc.status
        return 200

    return list(await asyncio.gather(*(one() for _ in range(n))))


def test_a_burst_gets_exactly_threads_plus_queue_through() -> None:
    gate = SegmentGate(threads=1, queue=1, timeout=10, metrics=Metrics())
    try:
        statuses = asyncio.run(_burst(gate, 6, 0.2))
    finally:
        gate.close()
    assert sorted(statuses) == [200, 200, 503, 503, 503, 503]
    assert gate.admitted == 0 and gate.waiting == 0


def test_work_past_the_timeout_is_503_and_still_frees_its_slot() -> None:
    gate = SegmentGate(threads=1, queue=0, timeout=0.2, metrics=Metrics())

    async def scenario() -> list[int]:
        late = await _burst(gate, 1, 0.5)
        await asyncio.sleep(0.5)  # the late work ends and frees its slot
        return late + await _burst(gate, 1, 0.0)

    try:
        assert asyncio.run(scenario()) == [503, 200]
    finally:
        gate.close()
    assert gate.admitted == 0
