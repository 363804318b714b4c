"""Large arrays to and from workers through /dev/shm (app.sharing): bit for bit both ways,
and no file left behind however a task ends: an answer, an error, the deadline, a killed
worker."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from app import sharing
from app.errors import DeadlineExceededError, WorkerCrashedError
from app.pool import SWEEP_AGAIN_SECONDS, LocalPool
from app.settings import Settings
from bench.server import spawned_children
from engine import boundary
from engine.errors import EngineError
from engine.operations import Options

pytestmark = [pytest.mark.anyio, pytest.mark.skipif(not sharing.available(), reason="no writable /dev/shm")]

THRESHOLD = 1024
N = 4096  # 32 KiB of float64: shared
FOREVER = "def f(x):\n    while True:\n        pass\n    return x\n"


def left_behind() -> list[Path]:
    return list(sharing.SHM.glob(f"{sharing.own_prefix()}*"))


def special(dtype: str) -> np.ndarray:
    """NaNs with payloads (quiet and signalling, both signs), -0.0, the infinities, extremes."""
    if dtype == "float64":
        bits = [0x7FF8000000000001, 0xFFF8000000ABCDEF, 0x7FF0000000000123, 0x8000000000000000, 0x7FF0000000000000,
                0xFFF0000000000000, 0x0000000000000001, 0x7FEFFFFFFFFFFFFF]  # fmt: skip
        head = np.array(bits, dtype=np.uint64).view(np.float64)
    elif dtype == "float32":
        bits = [0x7FC00001, 0xFFC0ABCD, 0x7F800123, 0x80000000, 0x7F800000, 0xFF800000, 0x00000001, 0x7F7FFFFF]
        head = np.array(bits, dtype=np.uint32).view(np.float32)
    else:
        head = np.array([np.iinfo(np.int64).min, -1, 0, 1, np.iinfo(np.int64).max], dtype=np.int64)
    rest = np.arange(N, dtype=dtype) / (3 if dtype != "int64" else 1)
    return np.concatenate([head, rest.astype(dtype)])


@pytest.mark.parametrize("dtype", ["float64", "float32", "int64"])
@pytest.mark.parametrize("shape", [(), (0,), (N + 8,), (2, 3, 5)])
def test_a_file_holds_an_array_bit_for_bit(dtype, shape):
    array = special(dtype)
    array = np.resize(array, shape) if shape != (N + 8,) else array[: N + 8]
    name = f"{sharing.own_prefix()}unit"
    shared = sharing.write(name, array)
    try:
        back = sharing.read(shared)
    finally:
        (sharing.SHM / name).unlink()
    assert back.dtype == array.dtype and back.shape == array.shape
    assert back.tobytes() == array.tobytes()
    if back.size:
        back.reshape(-1)[0] = 0  # copy on write: the mapping is the reader's own
    assert not left_behind()


def through(pool_settings: dict) -> LocalPool:
    return LocalPool(Settings(workers=1, shared_memory_bytes=THRESHOLD, **pool_settings))


def task(function: dict, x: np.ndarray, operation: str = "evaluate"):
    options = Options(wrt=None, reduce="none", mode="auto", dtype=None, verify=False)
    return boundary.prepare(function, {"x": x}, operation, None, options, Settings(max_steps=10**9).limits())


async def test_arrays_travel_both_ways_bit_for_bit_and_leave_no_file():
    pool = through({})
    await pool.start()
    try:
        for dtype in ("float64", "float32", "int64"):
            x = special(dtype)
            answer = await pool.submit(task({"expression": "x"}, x))
            assert answer.fields["value"].dtype == x.dtype
            assert answer.fields["value"].tobytes() == x.tobytes(), dtype
        x = np.linspace(-1, 1, N)
        answer = await pool.submit(task({"expression": "2*dot(x, x)"}, x, "grad"))
        np.testing.assert_array_equal(answer.fields["gradient"]["x"], 4 * x)
        assert not left_behind()
    finally:
        pool.close()
    assert not left_behind()


async def test_a_failing_task_leaves_no_file():
    pool = through({})
    await pool.start()
    try:
        with pytest.raises(EngineError):
            await pool.submit(task({"program": "def f(x):\n    return x + undefined\n"}, np.ones(N)))
        assert not left_behind()
    finally:
        pool.close()


async def test_a_task_past_the_deadline_leaves_no_file():
    pool = through({"deadline_seconds": 3.0})
    await pool.start()
    try:
        running = asyncio.create_task(pool.submit(task({"program": FOREVER}, np.ones(N))))
        # A fixed half second was once not enough on a busy machine for the task to be admitted
        # and its input written: wait for it, well within the deadline.
        waited = time.monotonic() + 2.0
        while not left_behind() and not running.done() and time.monotonic() < waited:
            await asyncio.sleep(0.02)
        assert left_behind(), "the input was not shared"
        with pytest.raises(DeadlineExceededError):
            await running
        assert not left_behind()
        await asyncio.sleep(SWEEP_AGAIN_SECONDS + 0.5)
        assert not left_behind()
    finally:
        pool.close()


async def test_a_worker_killed_mid_task_leaves_no_file():
    before = spawned_children(os.getpid())
    pool = through({"deadline_seconds": 60.0})
    await pool.start()
    try:
        (worker,) = spawned_children(os.getpid()) - before
        running = asyncio.create_task(pool.submit(task({"program": FOREVER}, np.ones(N))))
        for _ in range(500):
            if pool.stats().busy:
                break
            await asyncio.sleep(0.02)
        assert left_behind(), "the input was not shared"
        os.kill(worker, signal.SIGKILL)
        with pytest.raises(WorkerCrashedError):
            await running
        assert not left_behind()
        answer = await pool.submit(task({"expression": "x"}, np.arange(N, dtype=np.float64)))  # its replacement
        np.testing.assert_array_equal(answer.fields["value"], np.arange(N))
    finally:
        pool.close()
    assert not left_behind()


async def test_small_arrays_and_a_threshold_of_zero_are_pickled_as_before():
    off = sharing.Transport(0)
    sent, prefix = off.outbound(task({"expression": "x"}, np.ones(N)))
    assert prefix is None and isinstance(sent.arguments[0], np.ndarray)
    sent, prefix = sharing.Transport(THRESHOLD).outbound(task({"expression": "x"}, np.ones(8)))
    assert isinstance(sent.arguments[0], np.ndarray)
    sharing.unlink_all(prefix)
    assert not left_behind()


def test_without_room_in_dev_shm_an_array_is_pickled_and_no_file_is_left(monkeypatch):
    def full(fd: int, offset: int, length: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "posix_fallocate", full)
    sent, prefix = sharing.Transport(THRESHOLD).outbound(task({"expression": "x"}, np.ones(N)))
    assert isinstance(sent.arguments[0], np.ndarray)
    fields = sharing.shared_fields({"value": np.ones(N)}, f"{sharing.own_prefix()}full-", THRESHOLD)
    assert isinstance(fields["value"], np.ndarray)
    assert not left_behind()
