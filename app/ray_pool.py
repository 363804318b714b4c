"""The worker pool on Ray: the local pool's interface, admission, deadlines and errors
(`app.pool`), with the workers as Ray actors, on this machine or across a cluster.

There are `workers` actors, one per CPU slot (each reserves one CPU, and one GPU with the
cupy backend). A task is put in Ray's object store once; its arrays travel out of band, so
an actor reads them in place (read-only, zero-copy) rather than unpickling copies. The pool
keeps its own queue of idle actors, so a task goes to whichever actor frees first instead of
waiting behind a busy one. An actor still computing at the deadline is killed and replaced
(504). One that dies fails only the task it had started (500); a task sent to an actor that
had died while idle never started, and goes to the replacement. Each actor says when it
starts a task (the first item of a streaming call), which is how the two are told apart.

Ray is an optional extra (`gradserve[ray]`): this module is imported only with `executor = "ray"`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import ray
from ray.actor import ActorHandle
from ray.exceptions import RayActorError, RayTaskError

from app import worker
from app.admission import Admission
from app.errors import DeadlineExceededError, NotReadyError, WorkerCrashedError
from app.pool import Lanes, PoolStats
from app.settings import Settings
from engine.tasks import Answer, ProgramTask, Progress, Task

log = logging.getLogger("gradserve.pool")

STARTED = "started"


class WorkerActor:
    """A worker process as `app.worker` defines it, as a Ray actor."""

    def __init__(self, backend_name: str, threads: int, cache_bytes: int):
        # No address-space cap (the local pool's worker_memory_bytes): a Ray worker maps its node's
        # whole object store. Ray's memory monitor stops a runaway worker instead, answered 500.
        worker.initialize(backend_name, threads, 0, cache_bytes)

    def ping(self) -> int:
        return worker.ping()

    def run(self, task: Task | ProgramTask) -> Iterator[Any]:
        yield STARTED
        yield worker.run(task)


class _DiedIdleError(Exception):
    """The actor was dead before it started the task."""


class RayPool(Lanes):
    def __init__(self, settings: Settings):
        super().__init__(settings)
        self.address = settings.ray_address
        self._actor_class = ray.remote(WorkerActor).options(
            num_cpus=1, num_gpus=1 if settings.backend == "cupy" else 0, max_restarts=0
        )
        self._actor_args = (settings.backend, settings.worker_threads, settings.worker_cache_bytes)
        self._actors: list[ActorHandle] = []
        self._idle: asyncio.Queue[ActorHandle] | None = None  # made in start(), on the running loop
        self._admission: Admission | None = None
        self._admitted = 0
        self._busy = 0
        self._ready = False
        self._owns_ray = False
        self.restarts: Counter[str] = Counter(deadline=0, crash=0)

    async def start(self) -> None:
        """Join Ray (the cluster at `ray_address`, or a private instance on this machine when
        there is none) unless this process has already, then wait until every actor has
        started: on a cluster, until there are CPU slots for them all."""
        if not ray.is_initialized():
            if self.address:
                ray.init(address=self.address, namespace="gradserve", log_to_driver=False)
            else:
                # A private instance sends Ray's usage statistics nowhere unless its operator asks.
                os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
                ray.init(num_cpus=self.workers, include_dashboard=False, namespace="gradserve", log_to_driver=False)
            self._owns_ray = True
        self._admission = Admission(self.workers, self.deadline, self.capacity)
        self._idle = asyncio.Queue()
        actors = [self._new_actor() for _ in range(self.workers)]
        await asyncio.gather(*(actor.ping.remote() for actor in actors))
        for actor in actors:
            self._idle.put_nowait(actor)
        self._ready = True

    async def submit(
        self,
        task: Task | ProgramTask,
        *,
        progress: Progress | None = None,
        deadline_seconds: float | None = None,
        admitted: Callable[[], None] | None = None,
    ) -> Answer:
        """As `LocalPool.submit`; progress is coarse here (called once, when the task is done),
        and a cancelled task's actor is killed and replaced."""
        if self._admission is None:
            raise NotReadyError("the worker pool is starting", retry_after=1)
        seconds = deadline_seconds or self.deadline
        async with self._admission.admit(self.lane_of(task), admitted) as lane:
            deadline = asyncio.get_running_loop().time() + seconds
            self._admitted += 1
            try:
                task_ref = await asyncio.to_thread(ray.put, task)
                try:
                    answer = await self._run(task_ref, deadline, seconds, progress)
                except _DiedIdleError:
                    # Its actor had died idle; the replacement is in the queue now.
                    try:
                        answer = await self._run(task_ref, deadline, seconds, progress)
                    except _DiedIdleError:
                        raise WorkerCrashedError("two workers died before they could start this request") from None
            except DeadlineExceededError:
                if deadline_seconds is None:
                    lane.observe(seconds)
                raise
            finally:
                self._admitted -= 1
            if deadline_seconds is None:  # a job's time is not a request's: see app.admission
                lane.observe(answer.seconds)
            if progress is not None:
                progress(1, 1)
            return answer

    async def _run(
        self, task_ref: ray.ObjectRef, deadline: float, seconds: float, progress: Progress | None = None
    ) -> Answer:
        """The task on the first idle actor, which goes back to the queue after, or is replaced
        when it died, overran the deadline or was left computing for a cancelled request."""
        try:
            async with asyncio.timeout_at(deadline):
                actor = await self._idle.get()
        except TimeoutError:
            raise self._deadline_exceeded(seconds) from None
        stream = actor.run.remote(task_ref)
        started = healthy = False
        try:
            async with asyncio.timeout_at(deadline):
                await _next_value(stream)
                started = True
                self._busy += 1
                if progress is not None:
                    progress(0, 1)
                answer = await _next_value(stream)
            healthy = True
            return answer
        except RayTaskError as error:
            healthy = True  # the task failed (an EngineError); its actor is fine
            raise error.cause from None
        except RayActorError:
            self.restarts["crash"] += 1
            log.warning("a worker actor died; it was replaced")
            if not started:
                raise _DiedIdleError from None
            raise WorkerCrashedError(
                "the worker computing this request died and was replaced; other requests were not affected"
            ) from None
        except TimeoutError:
            self.restarts["deadline"] += 1
            raise self._deadline_exceeded(seconds) from None
        finally:
            if started:
                self._busy -= 1
            if healthy:
                self._idle.put_nowait(actor)
            else:
                self._replace(actor)

    def _deadline_exceeded(self, seconds: float) -> DeadlineExceededError:
        return DeadlineExceededError(
            f"the computation did not finish within the deadline of {seconds:g} s and was stopped; "
            "make the arrays smaller or the function cheaper"
        )

    def _new_actor(self) -> ActorHandle:
        actor = self._actor_class.remote(*self._actor_args)
        self._actors.append(actor)
        return actor

    def _replace(self, actor: ActorHandle) -> None:
        """Kill the actor (it may be dead already, or computing still) and queue a new one,
        which takes its first task once it has started; nothing while the pool is closing."""
        if not self._ready:
            return
        ray.kill(actor, no_restart=True)
        self._actors.remove(actor)
        self._idle.put_nowait(self._new_actor())

    def check(self) -> bool:
        """Whether the pool can take work (for readiness)."""
        return self._ready and ray.is_initialized() and len(self._actors) == self.workers

    def stats(self) -> PoolStats:
        lanes = {} if self._admission is None else {
            name: (lane.admitted, lane.estimate_seconds) for name, lane in self._admission.lanes.items()
        }  # fmt: skip
        queued = self._admitted - self._busy
        return PoolStats(self.workers, self.capacity, self._busy, queued, dict(self.restarts), lanes)

    def close(self) -> None:
        self._ready = False
        if ray.is_initialized():
            for actor in self._actors:
                ray.kill(actor, no_restart=True)
        self._actors.clear()
        if self._owns_ray:
            ray.shutdown()


async def _next_value(stream: AsyncIterator[ray.ObjectRef]) -> Any:
    return await (await anext(stream))
