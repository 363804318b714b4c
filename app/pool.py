"""The worker pool: a small interface, and its local implementation on pebble processes.

Admission (`app.admission`) is by expected time, in a lane for short and one for long work;
past it `submit` refuses at once (503 with Retry-After) rather than queueing without end. Every task
has a deadline counted from admission: a task still queued then is dropped, a running one has
its worker killed and replaced (504). A worker that dies (segfault, os._exit, the OOM killer)
fails only the task it was running (500); queued tasks go to its replacement. Workers are
spawned, not forked, so that a GPU worker can own its CUDA context.

A task submitted with a `progress` callback (a job's, `app.jobs`) reports how far it is: the
pool lends it a slot of two int64 counters (done, total) in memory shared with the workers,
which the worker writes as the engine calls its `progress(done, total)` and this process reads
a few times a second, calling the callback when they changed. Tasks without one (synchronous
requests) take no slot and pay nothing.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
from collections import Counter
from collections.abc import Callable
from concurrent.futures import CancelledError
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from typing import Protocol

from pebble import ProcessExpired, ProcessFuture, ProcessPool

from app import sharing, worker
from app.admission import LONG, SHORT, Admission
from app.errors import DeadlineExceededError, NotReadyError, WorkerCrashedError
from app.settings import Settings
from engine.tasks import Answer, ProgramTask, Progress, Task
from engine.trace import TraceTask

log = logging.getLogger("gradserve.pool")
SWEEP_AGAIN_SECONDS = 2.0

# How often a job's progress counters are read while it runs.
PROGRESS_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class PoolStats:
    workers: int
    capacity: int  # tasks admitted at once: workers + queue
    busy: int  # tasks a worker is running
    queued: int  # tasks admitted, waiting for a worker
    restarts: dict[str, int] = field(default_factory=dict)  # workers replaced, by reason
    lanes: dict[str, tuple[int, float]] = field(default_factory=dict)  # lane -> (admitted, estimated seconds)


class Pool(Protocol):
    async def start(self) -> None: ...

    async def submit(
        self,
        task: Task | ProgramTask | TraceTask,
        *,
        progress: Progress | None = None,
        deadline_seconds: float | None = None,
        admitted: Callable[[], None] | None = None,
    ) -> Answer:
        """The task's answer. `progress(done, total)` is called as it advances (in this
        process's event loop); `deadline_seconds` replaces the pool's deadline (a job's, whose
        time then moves no lane's estimate); `admitted` is called once admission let the task
        in (a refusal raises before it)."""
        ...

    def stats(self) -> PoolStats: ...

    def check(self) -> bool: ...

    def close(self) -> None: ...


class Lanes:
    """What a pool admits by, the same for every kind of pool: its workers, its capacity, the
    deadline, and which lane a task takes."""

    def __init__(self, settings: Settings):
        self.workers = settings.workers
        self.capacity = settings.workers + settings.queue_size
        self.deadline = settings.deadline_seconds
        self.long_work_operations = settings.long_work_operations
        self.long_work_elements = settings.long_work_elements

    def lane_of(self, task: Task | ProgramTask | TraceTask) -> str:
        """Long work: a program (only its step budget and the deadline bound its time), or a
        function whose static cost is large."""
        if isinstance(task, ProgramTask) or task.estimate is None:
            return LONG
        large = task.estimate.operations > self.long_work_operations
        return LONG if large or task.estimate.total_intermediate > self.long_work_elements else SHORT


class LocalPool(Lanes):
    def __init__(self, settings: Settings):
        super().__init__(settings)
        context = multiprocessing.get_context("spawn")
        # (done, total) per slot; a job holds one while it runs, and jobs are at most jobs_max_count.
        self._counters = context.RawArray("q", 2 * settings.jobs_max_count)
        self._free_slots = list(range(settings.jobs_max_count))
        self._options = dict(
            max_workers=settings.workers,
            max_tasks=settings.max_tasks_per_child,
            initializer=worker.initialize,
            initargs=(settings.backend, settings.worker_threads, settings.worker_memory_bytes,
                      settings.worker_cache_bytes, self._counters),
            context=context,
        )  # fmt: skip
        self._pool = ProcessPool(**self._options)
        self.transport = sharing.Transport(settings.shared_memory_bytes)
        self._admission: Admission | None = None  # made in start(): its semaphore belongs to the running loop
        self._admitted: set[ProcessFuture] = set()
        self._ready = False
        self.restarts: Counter[str] = Counter(deadline=0, crash=0, pool=0)

    async def start(self) -> None:
        """Wait until the workers have started (spawning one imports numpy and the engine)."""
        self._admission = Admission(self.workers, self.deadline, self.capacity)
        pings = [asyncio.wrap_future(self._pool.schedule(worker.ping)) for _ in range(self.workers)]
        await asyncio.gather(*pings)
        self._ready = True

    async def submit(
        self,
        task: Task | ProgramTask | TraceTask,
        *,
        progress: Progress | None = None,
        deadline_seconds: float | None = None,
        admitted: Callable[[], None] | None = None,
    ) -> Answer:
        if self._admission is None:
            raise NotReadyError("the worker pool is starting", retry_after=1)
        seconds = deadline_seconds or self.deadline
        async with self._admission.admit(self.lane_of(task), admitted) as lane:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + seconds
            slot = self._free_slots.pop() if progress is not None and self._free_slots else None
            sent, prefix = self.transport.outbound(task)
            try:
                try:
                    answer = await self._run(sent, prefix, deadline, seconds, slot, progress)
                except BrokenProcessPool:
                    # pebble breaks the whole pool when a worker dies while no task is running, and fails
                    # the tasks only queued then: this one never ran, so it runs again, on a fresh pool.
                    try:
                        answer = await self._run(sent, prefix, deadline, seconds, slot, progress)
                    except BrokenProcessPool:
                        raise WorkerCrashedError("the worker pool broke twice while this request waited") from None
                except DeadlineExceededError:
                    if deadline_seconds is None:
                        lane.observe(seconds)
                    raise
                if prefix is not None:
                    answer = replace(answer, fields=self.transport.inbound(answer.fields))
            finally:
                if slot is not None:
                    self._free_slots.append(slot)
                if prefix is not None:
                    sharing.unlink_all(prefix)
                    # A worker being stopped may still write one: look again once it surely has.
                    loop.call_later(SWEEP_AGAIN_SECONDS, sharing.unlink_all, prefix)
            if deadline_seconds is None:  # a job's time is not a request's: see app.admission
                lane.observe(answer.seconds)
            if progress is not None and slot is None:
                progress(1, 1)  # no slot was free: coarse progress
            return answer

    async def _run(
        self, task: Task | ProgramTask | TraceTask, prefix: str | None, deadline: float, seconds: float,
        slot: int | None, progress: Progress | None,
    ) -> Answer:  # fmt: skip
        if slot is not None:
            self._counters[2 * slot] = self._counters[2 * slot + 1] = 0
        # pebble's own timeout (counted from when a worker starts the task) backs up the deadline.
        arguments = (task, slot) if prefix is None else (task, slot, prefix, self.transport.threshold)
        future = self._live_pool().schedule(worker.run, args=arguments, timeout=seconds)
        self._admitted.add(future)
        reader = None if slot is None else asyncio.create_task(self._read_progress(future, slot, progress))
        try:
            return await self._result(future, deadline - asyncio.get_running_loop().time(), seconds)
        finally:
            self._admitted.discard(future)
            future.cancel()  # a no-op when done; stops the worker if the request itself was cancelled
            if reader is not None:
                reader.cancel()
                if future.done() and not future.cancelled() and future.exception() is None:
                    self._report(slot, progress, (0, 0))

    async def _read_progress(self, future: ProcessFuture, slot: int, progress: Progress) -> None:
        """Call `progress` when a worker starts the task (0 of 1), then whenever the slot's
        counters change, until cancelled."""
        seen = (0, 0)
        while True:
            await asyncio.sleep(PROGRESS_POLL_SECONDS)
            if seen == (0, 0) and future.running():
                progress(0, 1)
                seen = (0, 1)
            seen = self._report(slot, progress, seen)

    def _report(self, slot: int, progress: Progress, seen: tuple[int, int]) -> tuple[int, int]:
        # The worker writes total, then done: read done first, so that done never runs ahead.
        done = self._counters[2 * slot]
        total = self._counters[2 * slot + 1]
        if total > 0 and (done, total) != seen:
            progress(done, total)
            return done, total
        return seen

    async def _result(self, future: ProcessFuture, timeout: float, seconds: float) -> Answer:
        try:
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), max(timeout, 0))
        except TimeoutError:
            if future.running() or future.done():
                self.restarts["deadline"] += 1
            future.cancel()  # pebble stops a running task's worker and starts another
            raise DeadlineExceededError(
                f"the computation did not finish within the deadline of {seconds:g} s and was stopped; "
                "make the arrays smaller or the function cheaper"
            ) from None
        except ProcessExpired as error:
            self.restarts["crash"] += 1
            log.warning("worker %s died with exit code %s; it was replaced", error.pid, error.exitcode)
            raise WorkerCrashedError(
                f"the worker computing this request died (exit code {error.exitcode}) and was replaced; "
                "other requests were not affected"
            ) from None
        except CancelledError:
            raise WorkerCrashedError("the worker pool stopped while computing this request") from None

    def _live_pool(self) -> ProcessPool:
        """pebble gives up on the whole pool when a worker dies while none is running a task
        (it cannot tell whose task was lost); start a fresh one then."""
        if not self._pool.active:
            log.warning("the worker pool broke; starting a new one")
            self.restarts["pool"] += 1
            self._pool.stop()
            self._pool.join()
            self._pool = ProcessPool(**self._options)
        return self._pool

    def check(self) -> bool:
        """Whether the pool can take work (for readiness), replacing a broken one."""
        return self._ready and self._live_pool().active

    def stats(self) -> PoolStats:
        admitted = list(self._admitted)
        busy = sum(1 for f in admitted if f.running())
        lanes = {} if self._admission is None else {
            name: (lane.admitted, lane.estimate_seconds) for name, lane in self._admission.lanes.items()
        }  # fmt: skip
        return PoolStats(self.workers, self.capacity, busy, len(admitted) - busy, dict(self.restarts), lanes)

    def close(self) -> None:
        self._ready = False
        self._pool.stop()
        self._pool.join()
        if self.transport.threshold:
            sharing.unlink_all(sharing.own_prefix())
