"""The code a worker process runs: a prepared task in, its answer out.

Imported in a spawned process, so it pulls in the engine and nothing of the web layer.
Tasks arrive checked (engine.boundary.prepare); EngineError travels back pickled, as it is.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import resource
from functools import partial
from typing import Any

import threadpoolctl

from app import sharing
from engine import backend
from engine.cache import TRANSFORMS
from engine.errors import TOO_LARGE, EngineError
from engine.tasks import Answer, ProgramTask, Task
from engine.trace import TraceTask

# The array namespace this process computes on, set once by `initialize`.
_backend_name = "numpy"
# The pool's progress counters, (done, total) per slot, shared with the API process.
_counters: Any = None


def initialize(backend_name: str, threads: int, memory_bytes: int, cache_bytes: int, counters: Any = None) -> None:
    """Runs once in each new worker: load the backend, size BLAS's thread pool and the cache
    of transformed functions, and cap the address space so that a runaway allocation raises
    MemoryError here instead of bringing the machine down (not on a GPU, whose driver maps far
    more address space than it uses)."""
    global _backend_name, _counters
    _counters = counters
    threadpoolctl.threadpool_limits(limits=threads)
    keep_freed_memory()
    TRANSFORMS.max_bytes = cache_bytes
    if memory_bytes and backend_name == "numpy":
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, hard))
    backend.namespace(backend_name)
    _backend_name = backend_name


# glibc's malloc options (malloc.h); setting one fixes it, and stops glibc adapting the others.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
# Freed memory kept at the top of the heap for the next request, and the size from which a
# block is mapped fresh (glibc's own ceiling for the threshold it adapts).
KEPT_FREE_BYTES = 64 << 20
MAPPED_FROM_BYTES = 32 << 20


def keep_freed_memory() -> bool:
    """Have glibc's malloc keep the memory a computation frees for the next one, rather than
    hand it back to the kernel and fault it in again, zeroed, page by page. By default it maps
    each block past 128 KB fresh and trims the heap's top past twice the largest block freed:
    a 3-layer MLP's gradient (arrays of 128 and 512 KB) took ~480 page faults a call, a third
    of its time, in a process that computes nothing else. False where the C library is not
    glibc (nothing is changed)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the process runs on, as app.processes finds prctl
    except AttributeError:
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, MAPPED_FROM_BYTES) and mallopt(_M_TRIM_THRESHOLD, KEPT_FREE_BYTES))


def ping() -> int:
    return os.getpid()


def run(
    task: Task | ProgramTask | TraceTask, slot: int | None = None, prefix: str | None = None, threshold: int = 0
) -> Answer:
    """The task's answer; with a `slot`, its progress is written to the slot's counters; with
    `prefix`, its shared arrays mapped (app.sharing) and its large arrays written to files of
    that prefix."""
    try:
        progress = None if slot is None or _counters is None else partial(_write_progress, slot)
        if prefix is None:
            return task.run(_backend_name, progress)
        answer = sharing.arguments_of(task).run(_backend_name, progress)
        return dataclasses.replace(answer, fields=sharing.shared_fields(answer.fields, prefix, threshold))
    except MemoryError:
        raise EngineError(
            TOO_LARGE, "the computation ran out of the worker's memory; make the arrays smaller"
        ) from None


def _write_progress(slot: int, done: int, total: int) -> None:
    # total first: the reader reads done first, so what it sees never has done past total.
    _counters[2 * slot + 1] = total
    _counters[2 * slot] = done
