"""Jobs: an operation's request run by the service as a task of its own, polled by id.

`POST /v1/jobs` prepares the request as its endpoint would (a bad function is answered at
once), admits it as its endpoint would (503 at once when refused), and answers 202 while a
task owned by the app, not by the request, computes it: a client may disconnect and poll
later. The job's progress comes from the worker (`app.pool`); its result is the body the
endpoint would have answered, kept as bytes, or the problem it would have answered. A job
obeys `job_deadline_seconds`, not the synchronous deadline. Cancelling a job cancels its task,
which stops the worker computing it (the pool replaces it).

Jobs are kept in a store (`app.store`) bounded by count and bytes: an unfinished job is
never evicted (a new one is refused, 503, when all are unfinished); a finished one expires
`jobs_ttl_seconds` after it finished, and is evicted least recently read first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi.responses import Response

from app import problems
from app.errors import OverloadedError, ServiceError
from app.schemas import JOB_STATES
from app.store import Entry, Store, shown_id, timestamp_text
from engine.errors import EngineError

log = logging.getLogger("gradserve.jobs")

QUEUED, RUNNING, DONE, FAILED, CANCELLED = JOB_STATES
FINISHED = (DONE, FAILED, CANCELLED)
# When the store is full of unfinished jobs: a guess at when one will have finished.
FULL_RETRY_AFTER_SECONDS = 5


class JobNotFoundError(ServiceError):
    kind = "job-not-found"
    status = 404
    title = "Job not found"


@dataclass
class Job:
    operation: str
    created_at: float
    state: str = QUEUED
    done: int = 0
    total: int = 1
    result: bytes | None = None  # when done: the endpoint's response body
    problem: bytes | None = None  # when failed: the problem's body
    finished_at: float | None = None
    task: asyncio.Task | None = None

    def advance(self, done: int, total: int) -> None:
        """Progress from the worker: the job is running, and its fraction done never goes back."""
        if self.state in FINISHED:
            return
        self.state = RUNNING
        if total > 0 and done * self.total >= self.done * total:
            self.done, self.total = min(done, total), total


class JobStore(Store[Job]):
    def __init__(self, max_count: int, max_bytes: int, ttl_seconds: float, clock: Callable[[], float] = time.time):
        super().__init__(max_count, max_bytes, _not_found, _full, clock)
        self.ttl_seconds = ttl_seconds

    def add(self, operation: str) -> Entry[Job]:  # type: ignore[override]
        return super().add(Job(operation, self.clock()), 0, None)

    def start(
        self,
        entry: Entry[Job],
        compute: Callable[[Callable[[], None]], Awaitable[bytes]],
    ) -> asyncio.Future[None]:
        """Run `compute(admitted)` as the job's task; the future is set once the pool admitted
        it (an OverloadedError raised before that is the task's exception, the job dropped)."""
        admitted: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def on_admitted() -> None:
            if not admitted.done():
                admitted.set_result(None)

        async def run() -> None:
            try:
                body = await compute(on_admitted)
            except asyncio.CancelledError:
                self.finish(entry, CANCELLED)
                raise
            except OverloadedError as error:
                if not admitted.done():
                    self._remove(entry.id)
                    raise
                self._fail(entry, problems.error_problem(error))
            except (ServiceError, EngineError) as error:
                self._fail(entry, problems.error_problem(error))
            except Exception:
                log.exception("job %s failed unexpectedly", entry.id)
                detail = "the service failed unexpectedly while computing the job; the failure was logged"
                self._fail(entry, problems.problem(500, "internal", "Internal error", detail))
            else:
                self.finish(entry, DONE, body)

        entry.value.task = asyncio.create_task(run(), name=f"job {entry.id}")
        return admitted

    def finish(self, entry: Entry[Job], state: str, result: bytes | None = None, problem: bytes | None = None) -> None:
        job = entry.value
        if job.state in FINISHED:
            return
        now = self.clock()
        job.state, job.result, job.problem, job.finished_at = state, result, problem, now
        if state == DONE:
            job.done = job.total
        job.task = None
        self.settle(entry, len(result or problem or b""), now + self.ttl_seconds)

    def _fail(self, entry: Entry[Job], problem: Response) -> None:
        self.finish(entry, FAILED, problem=bytes(problem.body))

    async def cancel(self, entry: Entry[Job]) -> None:
        """Stop an unfinished job (its worker with it); a finished one is left as it is."""
        task = entry.value.task
        if task is not None and not task.done():
            task.cancel()
            await asyncio.wait([task])

    async def cancel_all(self) -> None:
        for entry in list(self._entries.values()):
            await self.cancel(entry)


def body(entry: Entry[Job]) -> bytes:
    """A job as GET /v1/jobs/{id} answers it (app.schemas.JobResponse)."""
    job = entry.value
    fields: dict[str, Any] = {
        "id": entry.id,
        "operation": job.operation,
        "state": job.state,
        "progress": {"done": job.done, "total": job.total},
        "created_at": timestamp_text(job.created_at),
    }
    if job.finished_at is not None:
        fields["finished_at"] = timestamp_text(job.finished_at)
        fields["expires_at"] = entry.expires_at_text
    if job.result is not None:
        fields["result"] = orjson.Fragment(job.result)
    if job.problem is not None:
        fields["problem"] = orjson.Fragment(job.problem)
    fields["links"] = {"self": location(entry.id)}
    return orjson.dumps(fields)


def location(job_id: str) -> str:
    return f"/v1/jobs/{job_id}"


def _not_found(job_id: str) -> JobNotFoundError:
    return JobNotFoundError(
        f"no job {shown_id(job_id)!r}: it expired, was evicted, or never existed; submit it again", "/job"
    )


def _full() -> OverloadedError:
    return OverloadedError(
        "every job the service keeps is still unfinished; retry when one has finished, or cancel one",
        retry_after=FULL_RETRY_AFTER_SECONDS,
    )
