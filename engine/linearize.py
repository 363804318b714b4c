"""Linearize once, take many products: a function's value and the residuals its JVP, VJP
and (for a scalar output) HVP read, computed in one forward pass; each later product runs
only its linear part on them, with no inputs re-sent and no primal recomputed.

The split comes from partial evaluation of the product functions with the primal inputs
known (`engine.transforms.partial_eval`); one forward function computes the residuals of
all three products, sharing their common work.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine import boundary, cost, derivatives, frontends, interpreter, operations, tasks
from engine.cache import TRANSFORMS
from engine.errors import NOT_SCALAR, TOO_LARGE, EngineError
from engine.ir import Function, Var
from engine.limits import DEFAULT_LIMITS, Limits
from engine.operations import Operation, Options
from engine.tasks import Answer
from engine.tracing import building, inline
from engine.transforms.partial_eval import split_known

# The operations a linearization answers, by the registry's names.
PRODUCTS = ("jvp", "vjp", "hvp")
_PRODUCT_FUNCTIONS = {"jvp": derivatives.jvp_function, "vjp": derivatives.vjp_function,
                      "hvp": derivatives.hvp_function}  # fmt: skip


@dataclass(frozen=True)
class LinearizedFunctions:
    forward: Function  # the primal inputs -> the value, then every product's residuals
    # product -> (its linear part: residuals then the tangent or cotangent -> its outputs,
    #             the positions of its residuals among the forward function's outputs)
    products: dict[str, tuple[Function, tuple[int, ...]]]

    @property
    def approximate_bytes(self) -> int:
        return self.forward.approximate_bytes + sum(rest.approximate_bytes for rest, _ in self.products.values())


def _products_of(fn: Function) -> tuple[str, ...]:
    return PRODUCTS if not fn.output.aval.shape else ("jvp", "vjp")


@TRANSFORMS.memoize(lambda linearized: linearized.approximate_bytes)
def linearized_functions(fn: Function, positions: tuple[int, ...]) -> LinearizedFunctions:
    splits = {name: split_known(_PRODUCT_FUNCTIONS[name](fn, positions), range(len(fn.inputs)))
              for name in _products_of(fn)}  # fmt: skip
    with building() as builder:
        primals = [Var(v.aval) for v in fn.inputs]
        outputs = [inline(fn, primals)[0]]
        products = {}
        for name, split in splits.items():
            first = len(outputs)
            outputs += inline(split.known, primals)
            products[name] = (split.rest, tuple(range(first, len(outputs))))
        forward = derivatives.finish(builder, primals, fn.input_names, outputs)
    return LinearizedFunctions(forward, products)


@dataclass(frozen=True)
class Linearization:
    """A function linearized at a point: what its products need, and nothing to recompute."""

    function: Function
    positions: tuple[int, ...]
    residuals: tuple[np.ndarray, ...]  # the forward function's outputs, the value first

    @property
    def value(self) -> np.ndarray:
        return self.residuals[0]

    @property
    def nbytes(self) -> int:
        return sum(np.asarray(r).nbytes for r in self.residuals)

    @property
    def products(self) -> tuple[str, ...]:
        return _products_of(self.function)

    def product(self, name: str, extra: Any, limits: Limits = DEFAULT_LIMITS) -> ProductTask:
        """The task computing product `name` (jvp, vjp or hvp) with this tangent or cotangent,
        checked against the linearized function's shapes."""
        op = operations.lookup(name)
        if name not in self.products:
            raise EngineError(
                NOT_SCALAR,
                f"the output has shape {list(self.function.output.aval.shape)}; hvp needs a scalar output",
            )
        extra = tasks.sized_extra(op, extra, limits, None)
        arguments = tasks.extra_arguments(self.function, op, self.positions, extra)
        rest, indices = linearized_functions(self.function, self.positions).products[name]
        return ProductTask(op, rest, tuple(self.residuals[i] for i in indices) + arguments, self.function,
                           self.positions)  # fmt: skip


@dataclass(frozen=True)
class ProductTask:
    """One product of a linearization: its linear part on the residuals. Small by nature (no
    primal work), it runs where the service finds quickest."""

    operation: Operation
    rest: Function
    arguments: tuple[np.ndarray, ...]
    function: Function
    positions: tuple[int, ...]
    estimate: cost.Cost = field(init=False)

    def __post_init__(self) -> None:
        results = self.operation.result_shapes(self.function, self.positions)
        object.__setattr__(self, "estimate", cost.estimate(self.rest, results, [1], 1))

    def run(self, backend_name: str = "numpy", progress: tasks.Progress | None = None) -> Answer:
        started = time.perf_counter()
        outputs = interpreter.run_on_host(self.rest, self.arguments, backend_name)
        fields = tasks.packed(self.operation, outputs, self.function, self.positions)
        if progress is not None:
            progress(1, 1)
        return Answer(fields, len(self.rest.equations), time.perf_counter() - started)


@dataclass(frozen=True)
class LinearizeTask:
    """Linearize a function at its inputs: an expression's or a graph's function arrives
    built; a program is built by running it here (define-by-run)."""

    function: Function | None
    source: str | None
    inputs: dict[str, np.ndarray]
    options: Options
    limits: Limits
    estimate: cost.Cost | None = None

    def run(self, backend_name: str = "numpy", progress: tasks.Progress | None = None) -> Answer:
        started = time.perf_counter()
        fn = self.function or frontends.from_program(self.source, self.inputs, self.limits)
        positions = _checked_positions(fn, self.options, self.limits)
        forward = linearized_functions(fn, positions).forward
        residuals = tuple(interpreter.run_on_host(forward, tasks.input_arguments(fn, self.inputs), backend_name))
        linearization = Linearization(fn, positions, residuals)
        fields = {"value": linearization.value, "linearization": linearization}
        if progress is not None:
            progress(1, 1)
        return Answer(fields, len(fn.equations), time.perf_counter() - started)


def _checked_positions(fn: Function, options: Options, limits: Limits | None) -> tuple[int, ...]:
    """wrt resolved and the work held to the limits, as a VJP (and an HVP, for a scalar
    output) of the function would be."""
    operation = "hvp" if not fn.output.aval.shape else "vjp"
    positions, _ = tasks.resolve(fn, operations.lookup(operation), options)
    if limits is not None:
        _, detail = tasks.assess(fn, operation, options, limits)
        if detail:
            raise EngineError(TOO_LARGE, detail)
    return positions


def prepare(
    function: Mapping[str, Any], inputs: Mapping[str, np.ndarray], options: Options, limits: Limits = DEFAULT_LIMITS
) -> LinearizeTask:
    """A linearize request, checked as `boundary.prepare` checks any other."""
    task = boundary.prepare(function, inputs, "evaluate", None, options, limits)
    if isinstance(task, tasks.ProgramTask):
        return LinearizeTask(None, task.source, task.inputs, options, limits)
    _checked_positions(task.function, options, limits)
    named = dict(zip(task.function.input_names, task.arguments))
    return LinearizeTask(task.function, None, named, options, limits, task.estimate)
