"""What a request can ask of a function, one registry entry per operation, and the one
boundary where a request is checked: `prepare`.

An entry says, once: its name and docs, the extra input it takes (a cotangent, or
tangents), the options it reads, how it builds its transformed function, the layout of
its results (from which the answer is packed and its size known before anything runs)
and its derivative order (the cost factor). The HTTP routes, the request and response
models, the worker and the cost estimate are all driven by this table, so adding an
operation is one entry.

`prepare` parses and builds the function, resolves `wrt`, checks shapes, dtypes and sizes,
and returns a `Task` that runs without checking anything again. A program is built by
running it, so its task (`ProgramTask`) is checked by the same `bind` when it runs.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from engine import backend, cost, derivatives, frontends, interpreter
from engine.cache import WeightedCache
from engine.errors import BAD_INPUT, BAD_PARAM, BAD_WRT, DTYPE, NOT_SCALAR, TOO_LARGE, EngineError, pointer
from engine.frontends.inputs import aval_of
from engine.ir import Function, ShapedArray
from engine.limits import DEFAULT_LIMITS, Limits

# How a result's arrays are laid out, by the differentiated inputs (in `wrt` order).
OUTPUT = "output"  # one array shaped like the output
PER_INPUT = "per input"  # {name: array shaped like that input}
JACOBIAN = "jacobian"  # {name: array shaped output.shape + input.shape}
PAIRS = "pairs"  # {name: {name: array shaped input1.shape + input2.shape}}

JACOBIAN_MODES = ("auto", "forward", "reverse")
REDUCTIONS = ("none", "sum")


@dataclass(frozen=True)
class Result:
    """One field of an operation's answer."""

    name: str
    layout: str
    doc: str

    def shapes(self, fn: Function, positions: tuple[int, ...]) -> list[tuple[int, ...]]:
        inputs = [fn.inputs[i].aval.shape for i in positions]
        output = fn.output.aval.shape
        if self.layout == OUTPUT:
            return [output]
        if self.layout == PER_INPUT:
            return inputs
        if self.layout == JACOBIAN:
            return [output + shape for shape in inputs]
        return [first + second for first in inputs for second in inputs]

    def count(self, differentiated: int) -> int:
        """How many arrays it has, for this many differentiated inputs."""
        return 1 if self.layout == OUTPUT else differentiated**2 if self.layout == PAIRS else differentiated

    def pack(self, names: list[str], arrays: list[Any]) -> Any:
        if self.layout == OUTPUT:
            return arrays[0]
        if self.layout == PAIRS:
            count = len(names)
            return {a: {b: arrays[r * count + c] for c, b in enumerate(names)} for r, a in enumerate(names)}
        return dict(zip(names, arrays))


@dataclass(frozen=True)
class Extra:
    """An array input an operation takes beside the function's: the cotangent (shaped like the
    output) or the tangents (one per differentiated input; without `wrt`, the inputs that
    have one are the ones that move)."""

    name: str
    per_input: bool
    doc: str


@dataclass(frozen=True)
class Options:
    wrt: tuple[str, ...] | None = None  # None: every floating input (or, with tangents, those given)
    reduce: str = "none"  # "sum": the gradient of the output's sum
    mode: str = "auto"  # a Jacobian's: "forward", "reverse", or chosen by size
    dtype: str | None = None  # floating inputs are cast to it; None keeps their own


@dataclass(frozen=True)
class Operation:
    name: str
    summary: str
    description: str
    order: int  # 0: values only; 1: first derivatives; 2: second
    # (fn, wrt positions, Jacobian mode, reduce by sum) -> the function that runs: its
    # outputs are the value, then each result's arrays in layout order.
    build: Callable[[Function, tuple[int, ...], str | None, bool], Function]
    results: tuple[Result, ...] = ()
    extra: Extra | None = None
    options: tuple[str, ...] = ()  # the options it reads beyond wrt: "reduce", "mode"
    scalar_output: bool = False  # needs a scalar output (unless reduce is "sum")
    # Batches of basis vectors its sweeps carry: (fn, positions, mode) -> one size per sweep.
    sweeps: Callable[[Function, tuple[int, ...], str | None], list[int]] = lambda fn, positions, mode: [1]

    def __reduce__(self):
        # A task travels to a worker by pickling: an entry travels as its name in the registry.
        return (lookup, (self.name,))

    def result_shapes(self, fn: Function, positions: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        """Each derivative array by name: the input's name for a single per-input result,
        `field/name` (or `a/b` for pairs) where that would be ambiguous."""
        names = [fn.input_names[i] for i in positions]
        shapes: dict[str, tuple[int, ...]] = {}
        for result in self.results:
            if result.layout == OUTPUT:
                keys = [result.name]
            elif result.layout == PAIRS:
                keys = [f"{a}/{b}" for a in names for b in names]
            else:
                keys = names if len(self.results) == 1 else [f"{result.name}/{n}" for n in names]
            shapes.update(zip(keys, result.shapes(fn, positions)))
        return shapes


def _sweep_per_input(fn: Function, positions: tuple[int, ...], mode: str | None) -> list[int]:
    return [fn.inputs[i].aval.size for i in positions]


def _jacobian_sweeps(fn: Function, positions: tuple[int, ...], mode: str | None) -> list[int]:
    return [fn.output.aval.size] if mode == "reverse" else _sweep_per_input(fn, positions, mode)


_GRADIENT_DOC = "input name -> array shaped like that input"

OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in [
        Operation(
            "evaluate", "Evaluate a function", "The function's output on the inputs.", 0,
            build=lambda fn, positions, mode, reduce_sum: fn,
        ),
        Operation(
            "grad", "Value and gradient",
            'The gradient of a scalar output with respect to each `wrt` input (`y.backward()`). With `reduce: "sum"` '
            "a non-scalar output is summed first, as MXNet and TensorFlow do; `value` stays the unreduced output.", 1,
            build=lambda fn, positions, mode, reduce_sum: derivatives.gradient_function(fn, positions, reduce_sum),
            results=(Result("gradient", PER_INPUT, _GRADIENT_DOC),), options=("reduce",), scalar_output=True,
        ),
        Operation(
            "vjp", "Vector-Jacobian product (reverse mode)",
            "`cotangent` @ J for each `wrt` input: `y.backward(cotangent)` for a non-scalar `y`.", 1,
            build=lambda fn, positions, mode, reduce_sum: derivatives.vjp_function(fn, positions),
            results=(Result("vjp", PER_INPUT, "input name -> cotangent shaped like that input"),),
            extra=Extra("cotangent", False, "shaped like the output: the head gradient v of y.backward(v)"),
        ),
        Operation(
            "jvp", "Jacobian-vector product (forward mode)",
            "The directional derivative of the output along `tangents` (one per `wrt` input).", 1,
            build=lambda fn, positions, mode, reduce_sum: derivatives.jvp_function(fn, positions),
            results=(Result("jvp", OUTPUT, "shaped like the output"),),
            extra=Extra("tangents", True, "input name -> direction, one per differentiated input"),
        ),
        Operation(
            "jacobian", "Full Jacobian",
            "d output / d input, shaped output.shape + input.shape, in one batched sweep. `mode` auto picks forward "
            "when the inputs are fewer than the outputs, else reverse; the response says which ran. Sizes are "
            "checked from shapes before anything is computed.", 1,
            build=lambda fn, positions, mode, reduce_sum: derivatives.jacobian_function(fn, positions, mode),
            results=(Result("jacobian", JACOBIAN, "input name -> array of shape output.shape + input.shape"),),
            options=("mode",), sweeps=_jacobian_sweeps,
        ),
        Operation(
            "hessian", "Hessian of a scalar function",
            "Second derivatives (forward over reverse) for every pair of `wrt` inputs, each block shaped "
            "in1.shape + in2.shape.", 2,
            build=lambda fn, positions, mode, reduce_sum: derivatives.hessian_function(fn, positions),
            results=(Result("hessian", PAIRS, "name -> name -> array of shape in1.shape + in2.shape"),),
            scalar_output=True, sweeps=_sweep_per_input,
        ),
        Operation(
            "hvp", "Hessian-vector product",
            "H @ v for a scalar function without forming H, with the value and the gradient.", 2,
            build=lambda fn, positions, mode, reduce_sum: derivatives.hvp_function(fn, positions),
            results=(Result("gradient", PER_INPUT, _GRADIENT_DOC),
                     Result("hvp", PER_INPUT, "input name -> (H @ v) shaped like that input")),
            extra=Extra("tangents", True, "input name -> the vector v of H @ v"), scalar_output=True,
        ),
    ]
}  # fmt: skip


def lookup(operation: str) -> Operation:
    try:
        return OPERATIONS[operation]
    except KeyError:
        known = ", ".join(OPERATIONS)
        raise EngineError(BAD_PARAM, f"unknown operation {operation!r}; expected one of {known}") from None


# ---- the boundary ----


@dataclass(frozen=True)
class Answer:
    fields: dict[str, Any]  # "value", then each result's field (and "mode" where one was chosen)
    nodes: int  # equations of the function as built
    seconds: float  # time spent computing


@dataclass(frozen=True)
class Task:
    """A checked request: the function, its arguments in order (inputs, then the extra's
    arrays) and the resolved options. `run` checks nothing again."""

    operation: Operation
    function: Function
    arguments: tuple[np.ndarray, ...]
    positions: tuple[int, ...]
    mode: str | None
    reduce_sum: bool
    estimate: cost.Cost | None  # None where no limits applied (library use)

    def run(self, backend_name: str = "numpy") -> Answer:
        started = time.perf_counter()
        fn = self.function
        transformed = self.operation.build(fn, self.positions, self.mode, self.reduce_sum)
        fields = run_and_pack(self.operation, transformed, self.arguments, fn, self.positions, backend_name)
        if "mode" in self.operation.options:
            fields["mode"] = self.mode
        return Answer(fields, len(fn.equations), time.perf_counter() - started)


def run_and_pack(
    op: Operation,
    transformed: Function,
    arguments: Sequence[np.ndarray],
    fn: Function,
    positions: tuple[int, ...],
    backend_name: str,
) -> dict[str, Any]:
    """Run the function `op` built for `fn` on its arguments; its outputs (the value, then each
    result's arrays) as the answer's fields."""
    xp = backend.namespace(backend_name)
    outputs = interpreter.run(transformed, [backend.to_backend(xp, a) for a in arguments], backend_name)
    value, *arrays = [backend.to_host(output) for output in outputs]
    names = [fn.input_names[i] for i in positions]
    fields: dict[str, Any] = {"value": value}
    for result in op.results:
        count = result.count(len(names))
        fields[result.name], arrays = result.pack(names, arrays[:count]), arrays[count:]
    return fields


@dataclass(frozen=True)
class ProgramTask:
    """A request for a program: it is built by running on its inputs (define-by-run), so it
    is bound, and checked, when it runs; its source and inputs were checked already."""

    operation: Operation
    source: str
    inputs: dict[str, np.ndarray]
    extra: Any
    options: Options
    limits: Limits = field(default=DEFAULT_LIMITS)

    def run(self, backend_name: str = "numpy") -> Answer:
        started = time.perf_counter()
        fn = frontends.from_program(self.source, self.inputs, self.limits)
        answer = bind(fn, self.operation.name, self.inputs, self.extra, self.options, self.limits).run(backend_name)
        return replace(answer, seconds=time.perf_counter() - started)


def prepare(
    function: Mapping[str, Any],
    inputs: Mapping[str, np.ndarray],
    operation: str,
    extra: Any = None,
    options: Options = Options(),
    limits: Limits = DEFAULT_LIMITS,
) -> Task | ProgramTask:
    """Everything about a request that can be known before computing, checked once:
    arrays' sizes and dtypes, the function (parsed and built), wrt, the extra's shapes, and
    the sizes of the result and of the work, from static shapes."""
    op = lookup(operation)
    arrays = {name: _sized(array, pointer("inputs", name), limits, options.dtype) for name, array in inputs.items()}
    extra = sized_extra(op, extra, limits, options.dtype)
    kind, definition = frontends.definition_of(function)
    if kind == "program":
        frontends.check_program(definition, limits)
        return ProgramTask(op, definition, arrays, extra, options, limits)
    avals = tuple((name, aval_of(array)) for name, array in arrays.items())
    fn = _built(kind, definition if kind == "expression" else _canonical(definition), avals, limits)
    return bind(fn, operation, arrays, extra, options, limits)


# Functions built from expressions and graphs, by their text and their inputs' shapes: a
# client calling the same function in a loop (an optimiser) pays for parsing once.
BUILT = WeightedCache(max_bytes=64 << 20)


@BUILT.memoize(lambda fn: fn.approximate_bytes)
def _built(kind: str, text: str, avals: tuple[tuple[str, ShapedArray], ...], limits: Limits) -> Function:
    definition = text if kind == "expression" else json.loads(text)
    return frontends.build_from_shapes(kind, definition, dict(avals), limits)


def _canonical(graph: Any) -> str:
    """A graph's text with its keys sorted: the same graph gives the same text however sent.
    A graph that is not plain JSON data is given as it is, and refused by the front-end."""
    try:
        return json.dumps(graph, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):
        raise EngineError(
            BAD_INPUT, "a graph is JSON data: objects, lists, strings and numbers", "/function/graph"
        ) from None


def bind(
    fn: Function,
    operation: str,
    inputs: Mapping[str, Any],
    extra: Any = None,
    options: Options = Options(),
    limits: Limits | None = DEFAULT_LIMITS,
) -> Task:
    """`operation` of a built function on these inputs, checked; `limits=None` skips the
    size limits (a library caller's own arrays)."""
    op = lookup(operation)
    positions, mode = resolve(fn, op, options, extra)
    estimate = None
    if limits is not None:
        estimate = _estimate(fn, op, positions, mode)
        detail = cost.limit_detail(estimate, limits)
        if detail:
            raise EngineError(TOO_LARGE, detail)
    arguments = input_arguments(fn, inputs) + extra_arguments(fn, op, positions, extra)
    return Task(op, fn, arguments, positions, mode, options.reduce == "sum", estimate)


def resolve(fn: Function, op: Operation, options: Options, extra: Any = None) -> tuple[tuple[int, ...], str | None]:
    """The differentiated inputs' positions and the Jacobian mode, with everything about
    the operation that the function's shapes and dtypes decide checked."""
    if op.order == 0:
        return (), None
    if options.reduce not in REDUCTIONS:
        raise EngineError(BAD_PARAM, f'reduce must be "none" or "sum", got {options.reduce!r}', "/reduce")
    wrt = options.wrt
    if wrt is None and op.extra is not None and op.extra.per_input and isinstance(extra, Mapping):
        wrt = _moving_inputs(fn, extra)
    positions = wrt_positions(fn, wrt)
    if not fn.output.aval.is_float:
        raise EngineError(DTYPE, f"the output is {fn.output.aval.dtype}, which has no derivative")
    if op.scalar_output and fn.output.aval.shape and options.reduce != "sum":
        raise EngineError(
            NOT_SCALAR,
            f"the output has shape {list(fn.output.aval.shape)}; {op.name} needs a scalar output"
            + (', or reduce="sum" for the gradient of its sum' if "reduce" in op.options else "")
            + " (use vjp or jacobian for the full derivative)",
        )
    mode = choose_jacobian_mode(fn, positions, options.mode) if "mode" in op.options else None
    return positions, mode


def wrt_positions(fn: Function, wrt: Sequence[str] | None) -> tuple[int, ...]:
    names = list(fn.input_names)
    if wrt is None:
        return tuple(i for i, v in enumerate(fn.inputs) if v.aval.is_float)
    positions = []
    for name in wrt:
        if name not in names:
            raise EngineError(BAD_WRT, f"wrt names {name!r}, which is not an input; inputs are {names}", "/wrt")
        position = names.index(name)
        if not fn.inputs[position].aval.is_float:
            dtype = fn.inputs[position].aval.dtype
            raise EngineError(
                BAD_WRT, f"wrt names {name!r}, an {dtype} input; only floating inputs are differentiable", "/wrt"
            )
        if position in positions:
            raise EngineError(BAD_WRT, f"wrt names {name!r} twice", "/wrt")
        positions.append(position)
    return tuple(positions)


def choose_jacobian_mode(fn: Function, positions: tuple[int, ...], mode: str) -> str:
    if mode not in JACOBIAN_MODES:
        raise EngineError(BAD_PARAM, f"mode must be one of {', '.join(JACOBIAN_MODES)}, got {mode!r}", "/mode")
    if mode != "auto":
        return mode
    input_size = sum(fn.inputs[i].aval.size for i in positions)
    return "forward" if input_size < fn.output.aval.size else "reverse"


def _moving_inputs(fn: Function, tangents: Mapping[str, Any]) -> list[str]:
    """Without wrt, the tangents given say which inputs move (in input order)."""
    unknown = sorted(set(tangents) - set(fn.input_names))
    if unknown:
        raise EngineError(
            BAD_INPUT, f"a tangent is given for {unknown[0]!r}, which is not an input", pointer("tangents", unknown[0])
        )
    return [n for n in fn.input_names if n in tangents]


def _sized(array: np.ndarray, location: str, limits: Limits, dtype: str | None) -> np.ndarray:
    detail = cost.array_limit_detail(array.size, limits)
    if detail:
        raise EngineError(TOO_LARGE, detail, location)
    if dtype is None or array.dtype.kind != "f" or array.dtype == dtype:
        return array
    with np.errstate(over="ignore"):
        cast = array.astype(dtype)
    overflowed = np.isinf(cast) & np.isfinite(array)
    if overflowed.any():
        value = array[overflowed].flat[0]
        raise EngineError(
            BAD_INPUT, f"{value!r} does not fit {dtype} (its largest is {np.finfo(dtype).max:.4g}); compute in float64",
            location,
        )
    return cast


def sized_extra(op: Operation, extra: Any, limits: Limits, dtype: str | None) -> Any:
    if op.extra is None or extra is None:
        return extra
    if op.extra.per_input:
        return {name: _sized(t, pointer(op.extra.name, name), limits, dtype) for name, t in extra.items()}
    return _sized(extra, pointer(op.extra.name), limits, dtype)


def _host_array(value: Any, aval: ShapedArray, field: str, name: str | None = None) -> np.ndarray:
    """`value` as an array of `aval`'s dtype, which must have its shape; `field` (and `name`)
    say where the request gave it."""
    array = np.asarray(value, dtype=aval.dtype)
    if array.shape != aval.shape:
        what = f"{field}[{name!r}]" if name is not None else field
        location = pointer(field) if name is None else pointer(field, name)
        raise EngineError(BAD_INPUT, f"{what} must have shape {list(aval.shape)}, got {list(array.shape)}", location)
    return array


def input_arguments(fn: Function, inputs: Mapping[str, Any]) -> tuple[np.ndarray, ...]:
    missing = [n for n in fn.input_names if n not in inputs]
    if missing:
        raise EngineError(BAD_INPUT, f"missing inputs: {', '.join(missing)}", "/inputs")
    return tuple(_host_array(inputs[name], v.aval, "inputs", name) for name, v in zip(fn.input_names, fn.inputs))


def extra_arguments(fn: Function, op: Operation, positions: tuple[int, ...], extra: Any) -> tuple[np.ndarray, ...]:
    if op.extra is None:
        return ()
    if extra is None:
        raise EngineError(BAD_INPUT, f"{op.name} needs {op.extra.name}", pointer(op.extra.name))
    if not op.extra.per_input:
        return (_host_array(extra, fn.output.aval, op.extra.name),)
    names = [fn.input_names[i] for i in positions]
    missing = [n for n in names if n not in extra]
    if missing:
        raise EngineError(BAD_INPUT, f"missing {op.extra.name} for: {', '.join(missing)}", pointer(op.extra.name))
    unexpected = sorted(set(extra) - set(names))
    if unexpected:
        raise EngineError(
            BAD_INPUT,
            f"{op.extra.name} given for inputs not differentiated: {', '.join(unexpected)}",
            pointer(op.extra.name, unexpected[0]),
        )
    return tuple(_host_array(extra[name], fn.inputs[i].aval, op.extra.name, name) for name, i in zip(names, positions))


@dataclass(frozen=True)
class Description:
    """What is known of a request before computing: a program's parameters, or the cost of
    an expression's or a graph's operation; and the limit it would break, if any."""

    cost: cost.Cost | None
    parameters: list[str] | None
    limit_detail: str | None


def describe(
    function: Mapping[str, Any],
    avals: Mapping[str, ShapedArray],
    operation: str,
    options: Options = Options(),
    limits: Limits = DEFAULT_LIMITS,
) -> Description:
    """Shapes, cost and limits from shapes alone: nothing is computed. A program is only
    checked: its shapes are known when it runs."""
    lookup(operation)
    too_large = [f"{pointer('inputs', name)}: {detail}" for name, aval in avals.items()
                 if (detail := cost.array_limit_detail(aval.size, limits))]  # fmt: skip
    kind, definition = frontends.definition_of(function)
    if kind == "program":
        return Description(None, frontends.check_program(definition, limits), "; ".join(too_large) or None)
    fn = frontends.build_from_shapes(kind, definition, avals, limits)
    cost_of = estimate(fn, operation, options)
    detail = cost.limit_detail(cost_of, limits)
    return Description(cost_of, None, "; ".join(too_large + ([detail] if detail else [])) or None)


def estimate(fn: Function, operation: str, options: Options = Options()) -> cost.Cost:
    """What `operation` of `fn` would return and allocate, from static shapes."""
    op = lookup(operation)
    positions, mode = resolve(fn, op, options)
    return _estimate(fn, op, positions, mode)


def _estimate(fn: Function, op: Operation, positions: tuple[int, ...], mode: str | None) -> cost.Cost:
    return cost.estimate(fn, op.result_shapes(fn, positions), op.sweeps(fn, positions, mode), op.order, mode)


def transformed(fn: Function, operation: str, options: Options = Options()) -> Function:
    """The function `operation` runs for `fn` (the IR that the interpreter executes)."""
    op = lookup(operation)
    positions, mode = resolve(fn, op, options)
    return op.build(fn, positions, mode, options.reduce == "sum")
