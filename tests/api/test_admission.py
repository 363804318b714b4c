"""Admission by expected time, in lanes: small requests are not refused while the deadline
can be met, long work never takes every worker, and a refusal says when to retry."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from app.admission import LONG, SHORT, Admission, Gate
from app.errors import OverloadedError
from tests.api.conftest import array, serve_in_process
from tests.api.test_pool import THROUGH_THE_POOL, TWO_DOT, until

pytestmark = pytest.mark.anyio

# About a second of a worker's time: a counted loop of 10,000 statements.
SLOW_PROGRAM = {
    "function": {"program": "def f(x):\n    i = 0\n    while i < 5000:\n        i = i + 1\n    return sum(x)\n"},
    "inputs": {"x": [1.0, 2.0]},
}


async def test_64_concurrent_small_requests_on_2_workers_are_all_answered():
    async with serve_in_process(workers=2, **THROUGH_THE_POOL) as client:
        responses = await asyncio.gather(*(client.post("/v1/grad", json=TWO_DOT) for _ in range(64)))
    assert [r.status_code for r in responses] == [200] * 64
    for response in responses:
        np.testing.assert_array_equal(array(response.json()["gradient"]["x"]), [0.0, 4.0, 8.0, 12.0])


async def test_long_programs_leave_a_worker_to_small_requests():
    """Two clients looping on slow programs cannot starve the fast ones: programs are long
    work, which may hold all workers but one."""
    async with serve_in_process(workers=2, deadline_seconds=60, **THROUGH_THE_POOL) as client:
        pool = client.app.state.pool
        slow = [asyncio.create_task(client.post("/v1/evaluate", json=SLOW_PROGRAM)) for _ in range(2)]
        await until(lambda: pool.stats().busy >= 1)
        started = time.perf_counter()
        fast = [await client.post("/v1/grad", json=TWO_DOT) for _ in range(20)]
        fast_seconds = time.perf_counter() - started
        assert [r.status_code for r in fast] == [200] * 20
        assert not all(task.done() for task in slow), "the slow programs ended before the fast requests: too short"
        assert [r.status_code for r in await asyncio.gather(*slow)] == [200, 200]
    # Each fast request waits for no program: twenty take well under one program's time.
    assert fast_seconds < 5


async def test_a_request_that_cannot_meet_its_deadline_is_refused_with_the_estimated_wait():
    admission = Admission(workers=2, deadline_seconds=6, max_admitted=100)
    admission.lanes[LONG].estimate_seconds = 4.0
    async with admission.admit(LONG):  # done in about 4 s: fits
        with pytest.raises(OverloadedError) as refused:
            async with admission.admit(LONG):  # behind it on the one long slot: about 8 s
                pass
        assert refused.value.retry_after == 2
        assert "8.0 s expected" in refused.value.detail
        async with admission.admit(SHORT) as lane:  # short work has its own worker
            assert admission.expected_seconds(lane) < 1
    assert admission.lanes[LONG].admitted == 0


async def test_long_work_holds_all_workers_but_one():
    admission = Admission(workers=3, deadline_seconds=60, max_admitted=100)
    inside = 0
    peak = 0

    async def long_task():
        nonlocal inside, peak
        async with admission.admit(LONG):
            inside += 1
            peak = max(peak, inside)
            await asyncio.sleep(0.01)
            inside -= 1

    await asyncio.gather(*(long_task() for _ in range(6)))
    assert peak == 2


async def test_a_lane_estimate_follows_what_tasks_take():
    admission = Admission(workers=1, deadline_seconds=10, max_admitted=100)
    lane = admission.lanes[SHORT]
    for _ in range(40):
        lane.observe(0.5)
    assert lane.estimate_seconds == pytest.approx(0.5, rel=1e-3)


async def test_a_gate_refuses_past_its_waiting_bound():
    gate = Gate("prepared", concurrency=1, max_waiting=1)
    release = asyncio.Event()

    async def hold():
        async with gate.enter():
            await release.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(hold())
    await asyncio.sleep(0)
    with pytest.raises(OverloadedError):
        async with gate.enter():
            pass
    release.set()
    await asyncio.gather(holder, waiter)
