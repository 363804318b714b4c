"""Static cost of a request, from shapes alone: what it would allocate and return.

The service calls this before any array exists, so oversized work (a Jacobian of
billions of elements, a huge intermediate) is refused in microseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine import api
from engine.errors import BAD_PARAM, EngineError
from engine.ir import Function, ShapedArray, Var

OPERATIONS = ("evaluate", "grad", "vjp", "jvp", "jacobian", "hessian", "hvp")


@dataclass(frozen=True)
class Cost:
    output: ShapedArray
    results: dict[str, tuple[int, ...]]  # name of each derivative array -> its shape
    result_elements: int  # elements of every array the response carries, the value included
    largest_intermediate: int  # elements of the largest array computed on the way
    total_intermediate: int  # elements of all arrays computed (a bound on the work)
    operations: int  # equations of the function that will run
    mode: str | None = None  # the Jacobian mode that would be used


def transformed(
    fn: Function, operation: str, *, wrt: Sequence[str] | None = None, mode: str = "auto", reduce: str = "none"
) -> tuple[Function, tuple[int, ...], str | None]:
    """The function that `operation` runs, its wrt positions, and the Jacobian mode."""
    if operation not in OPERATIONS:
        raise EngineError(BAD_PARAM, f"unknown operation {operation!r}; expected one of {', '.join(OPERATIONS)}")
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


def result_elements(fn: Function, operation: str, *, wrt: Sequence[str] | None = None) -> int:
    """Elements of the response's arrays, by formula: cheap enough to check first."""
    positions = () if operation == "evaluate" else api.wrt_positions(fn, wrt)
    shapes = _result_shapes(fn, operation, positions).values()
    return fn.output.aval.size + sum(ShapedArray(s, "float64").size for s in shapes)


def estimate(
    fn: Function, operation: str, *, wrt: Sequence[str] | None = None, mode: str = "auto", reduce: str = "none"
) -> Cost:
    program, positions, used = transformed(fn, operation, wrt=wrt, mode=mode, reduce=reduce)
    sizes = [e.output.aval.size for e in program.equations] + [
        v.aval.size for v in program.inputs if isinstance(v, Var)
    ]
    results = _result_shapes(fn, operation, positions)
    return Cost(
        output=fn.output.aval,
        results=results,
        result_elements=fn.output.aval.size + sum(ShapedArray(s, "float64").size for s in results.values()),
        largest_intermediate=max(sizes, default=0),
        total_intermediate=sum(sizes),
        operations=len(program.equations),
        mode=used,
    )
