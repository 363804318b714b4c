"""Static cost of a request, from shapes alone: what it would allocate and return.

The service calls this before any array exists, so oversized work (a Jacobian of
billions of elements, a huge intermediate) is refused in microseconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from engine import api
from engine.errors import BAD_PARAM, EngineError
from engine.ir import Function, ShapedArray

OPERATIONS = ("evaluate", "grad", "vjp", "jvp", "jacobian", "hessian", "hvp")


@dataclass(frozen=True)
class Cost:
    output: ShapedArray
    results: dict[str, tuple[int, ...]]  # name of each derivative array -> its shape
    result_elements: int  # elements of every array the response carries, the value included
    largest_intermediate: int  # elements of the largest array computed on the way (a bound)
    total_intermediate: int  # elements of all arrays computed (a bound on the work)
    operations: int  # equations of the function as given, before differentiation
    mode: str | None = None  # the Jacobian mode that would be used


# Arrays a sweep computes per array of the function: the value, its tangent or cotangent,
# and the partial derivatives the rules form. The heaviest rules (prod, det, inv) reach
# 12.5 in first order and 48 in second; test_transforms checks these bounds on every
# primitive. Most functions stay far below: this bounds work, the deadline bounds time.
_FIRST_ORDER, _SECOND_ORDER = 16, 64
_ARRAYS_PER_VALUE = {"evaluate": 1, "grad": _FIRST_ORDER, "vjp": _FIRST_ORDER, "jvp": _FIRST_ORDER,
                     "jacobian": _FIRST_ORDER, "hessian": _SECOND_ORDER, "hvp": _SECOND_ORDER}  # fmt: skip


def _check_operation(operation: str) -> None:
    if operation not in OPERATIONS:
        raise EngineError(BAD_PARAM, f"unknown operation {operation!r}; expected one of {', '.join(OPERATIONS)}")


def transformed(
    fn: Function, operation: str, *, wrt: Sequence[str] | None = None, mode: str = "auto", reduce: str = "none"
) -> tuple[Function, tuple[int, ...], str | None]:
    """The function that `operation` runs, its wrt positions, and the Jacobian mode."""
    _check_operation(operation)
    if operation == "evaluate":
        return fn, (), None
    positions = api.wrt_positions(fn, wrt)
    if operation == "grad":
        return api.gradient_function(fn, positions, reduce == "sum"), positions, None
    if operation == "vjp":
        return api.vjp_function(fn, positions), positions, None
    if operation == "jvp":
        return api.jvp_function(fn, positions), positions, None
    if operation == "jacobian":
        used = api.choose_jacobian_mode(fn, positions, mode)
        return api.jacobian_function(fn, positions, used), positions, used
    if operation == "hessian":
        return api.hessian_function(fn, positions), positions, None
    return api.hvp_function(fn, positions), positions, None


def _result_shapes(fn: Function, operation: str, positions: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
    names = [fn.input_names[i] for i in positions]
    shapes = [fn.inputs[i].aval.shape for i in positions]
    out = fn.output.aval.shape
    if operation in ("grad", "vjp"):
        return dict(zip(names, shapes))
    if operation == "jvp":
        return {"jvp": out}
    if operation == "jacobian":
        return {n: out + s for n, s in zip(names, shapes)}
    if operation == "hessian":
        return {f"{a}/{b}": sa + sb for a, sa in zip(names, shapes) for b, sb in zip(names, shapes)}
    if operation == "hvp":
        return {**{f"gradient/{n}": s for n, s in zip(names, shapes)}, **{f"hvp/{n}": s for n, s in zip(names, shapes)}}
    return {}


def _elements(shapes) -> int:
    return sum(math.prod(s) for s in shapes)


def estimate(
    fn: Function, operation: str, *, wrt: Sequence[str] | None = None, mode: str = "auto", reduce: str = "none"
) -> Cost:
    """Bounds on what `operation` allocates, from the function's own shapes, in one pass over
    its equations: the transformed function is not built (for a large function that takes
    seconds, and the service checks this before any worker is used).

    A sweep works on arrays the size of the function's own, times the batch of basis
    vectors it carries: one for gradients and products, the output's size for a reverse
    Jacobian, an input's size for each forward sweep (forward Jacobians and Hessians run
    one sweep per differentiated input)."""
    _check_operation(operation)
    positions = () if operation == "evaluate" else api.wrt_positions(fn, wrt)
    used = api.choose_jacobian_mode(fn, positions, mode) if operation == "jacobian" else None
    sizes = [v.aval.size for v in fn.inputs] + [e.output.aval.size for e in fn.equations] + [fn.output.aval.size]
    if used == "reverse":
        batches = [fn.output.aval.size]
    elif operation == "hessian" or used == "forward":
        batches = [fn.inputs[i].aval.size for i in positions]
    else:
        batches = [1]
    results = _result_shapes(fn, operation, positions)
    per_value = _ARRAYS_PER_VALUE[operation]
    return Cost(
        output=fn.output.aval,
        results=results,
        result_elements=fn.output.aval.size + _elements(results.values()),
        largest_intermediate=max(batches, default=1) * max(sizes),
        # each sweep also carries its basis vectors, and the response its results
        total_intermediate=sum(batches) * (per_value * sum(sizes) + max(sizes)) + _elements(results.values()),
        operations=len(fn.equations),
        mode=used,
    )
