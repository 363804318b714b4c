"""The code a worker process runs: one task in, numpy arrays out.

Imported in a spawned process, so it pulls in the engine and nothing of the web layer.
EngineError and TooLargeError travel back to the API process pickled, as they are.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable

import threadpoolctl

from app.errors import TooLargeError
from app.tasks import Outcome, Task, check_sizes
from engine import api, backend, frontends
from engine.ir import Function


def initialize(backend_name: str, threads: int, memory_bytes: int) -> None:
    """Runs once in each new worker: load the backend, size BLAS's thread pool, and cap the
    address space so that a runaway allocation raises MemoryError here instead of bringing the
    machine down (not on a GPU, whose driver maps far more address space than it uses)."""
    threadpoolctl.threadpool_limits(limits=threads)
    if memory_bytes and backend_name == "numpy":
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, hard))
    backend.namespace(backend_name)


def ping() -> int:
    return os.getpid()


def run(task: Task) -> Outcome:
    started = time.perf_counter()
    try:
        fn = task.function if task.program is None else _build_program(task)
        results = _OPERATIONS[task.operation](fn, task)
    except MemoryError:
        raise TooLargeError("the computation ran out of the worker's memory; make the arrays smaller") from None
    return Outcome(results, len(fn.equations), time.perf_counter() - started)


def _build_program(task: Task) -> Function:
    fn = frontends.from_program(task.program, task.inputs, task.budgets)
    check_sizes(fn, task)
    return fn


def _evaluate(fn: Function, task: Task) -> dict:
    return {"value": api.evaluate(fn, task.inputs, backend_name=task.backend)}


def _grad(fn: Function, task: Task) -> dict:
    value, gradient = api.value_and_grad(fn, task.inputs, wrt=task.wrt, reduce=task.reduce, backend_name=task.backend)
    return {"value": value, "gradient": gradient}


def _vjp(fn: Function, task: Task) -> dict:
    value, cotangents = api.vjp(fn, task.inputs, task.cotangent, wrt=task.wrt, backend_name=task.backend)
    return {"value": value, "vjp": cotangents}


def _jvp(fn: Function, task: Task) -> dict:
    value, tangent = api.jvp(fn, task.inputs, task.tangents, wrt=task.wrt, backend_name=task.backend)
    return {"value": value, "jvp": tangent}


def _jacobian(fn: Function, task: Task) -> dict:
    value, jacobians, mode = api.jacobian(fn, task.inputs, wrt=task.wrt, mode=task.mode, backend_name=task.backend)
    return {"value": value, "jacobian": jacobians, "mode": mode}


def _hessian(fn: Function, task: Task) -> dict:
    value, blocks = api.hessian(fn, task.inputs, wrt=task.wrt, backend_name=task.backend)
    return {"value": value, "hessian": blocks}


def _hvp(fn: Function, task: Task) -> dict:
    value, gradient, products = api.hvp(fn, task.inputs, task.tangents, wrt=task.wrt, backend_name=task.backend)
    return {"value": value, "gradient": gradient, "hvp": products}


_OPERATIONS: dict[str, Callable[[Function, Task], dict]] = {
    "evaluate": _evaluate, "grad": _grad, "vjp": _vjp, "jvp": _jvp,
    "jacobian": _jacobian, "hessian": _hessian, "hvp": _hvp,
}  # fmt: skip
