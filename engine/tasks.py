"""Checked requests, ready to run: `bind` holds an operation of a built function to its
inputs (wrt resolved, shapes, dtypes and sizes checked) and gives a `Task`, which runs
without checking again. A program is built by running it, so its `ProgramTask` is bound,
by the same `bind`, when it runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import numpy as np

from engine import backend, cost, derivatives, frontends, interpreter, sweeps, verification
from engine.cache import TRANSFORMS
from engine.errors import BAD_INPUT, BAD_PARAM, BAD_WRT, DTYPE, NOT_SCALAR, TOO_LARGE, EngineError, pointer
from engine.frontends.inputs import NUMPY_DTYPES
from engine.ir import Function, ShapedArray
from engine.limits import DEFAULT_LIMITS, Limits
from engine.operations import DEFAULT_OPTIONS, JACOBIAN_MODES, REDUCTIONS, Operation, Options, lookup

# Told how far a running task is: progress(done, total), in chunks (or colours) of its work.
Progress = Callable[[int, int], None]


# Answer and Task are made on every call, and a frozen dataclass sets each field through
# object.__setattr__, which costs as much as a small function's whole run: they are plain
# dataclasses, which nothing changes once made.
@dataclass
class Answer:
    fields: dict[str, Any]  # "value", then each result's field (and "mode" where one was chosen)
    nodes: int  # equations of the function as built
    seconds: float  # time spent computing
    verification: dict[str, Any] | None = None  # with verify: engine.verification's report
    sweep: dict[str, Any] | None = None  # a chunked or compressed sweep's report (engine.sweeps)


@dataclass
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
    verify: bool = False
    # A program's IR depends on its inputs' values: verification builds it again at the
    # perturbed inputs ({name: array} -> Function) to see whether it takes the same path.
    rebuild: Callable[[dict[str, np.ndarray]], Function] | None = None
    sweep: sweeps.Sweep | None = None  # a Jacobian or Hessian not swept in one dense batch
    format: str = "dense"

    def run(self, backend_name: str = "numpy", progress: Progress | None = None) -> Answer:
        """The answer; `progress(done, total)` is called as the work advances: after each run
        of a chunked or compressed sweep, else once when it is finished."""
        started = time.perf_counter()
        fn = self.function
        if self.sweep is None:
            plan = compiled(self.operation.name, fn, self.positions, self.mode, self.reduce_sum, backend_name)
            fields = packed(self.operation, plan.run_on_host(self.arguments), fn, self.positions)
        else:
            value, blocks = sweeps.run(self.sweep, fn, self.arguments, self.positions, self.format, backend_name,
                                       progress)  # fmt: skip
            (result,) = self.operation.results
            fields = {"value": value, result.name: result.pack([fn.input_names[i] for i in self.positions], blocks)}
        if "mode" in self.operation.options:
            fields["mode"] = self.mode
        checked = verification.verify(self, fields, backend_name) if self.verify else None
        if progress is not None and self.sweep is None:
            progress(1, 1)
        report = None if self.sweep is None else self.sweep.report()
        return Answer(fields, len(fn.equations), time.perf_counter() - started, checked, report)


@TRANSFORMS.memoize(lambda plan: plan.approximate_bytes)
def compiled(operation: str, fn: Function, positions: tuple[int, ...], mode: str | None, reduce_sum: bool,
             backend_name: str) -> interpreter.Plan:  # fmt: skip
    """The plan that runs `operation` of `fn`: one cache lookup a call, where the transformed
    function and then its plan would be two (a small function's run costs little more)."""
    transformed = lookup(operation).build(fn, positions, mode, reduce_sum)
    return interpreter.Plan(transformed, backend.namespace(backend_name))


def packed(op: Operation, outputs: Sequence[np.ndarray], fn: Function, positions: tuple[int, ...]) -> dict[str, Any]:
    """The outputs of the function `op` built for `fn` (the value, then each result's arrays)
    as the answer's fields."""
    names = [fn.input_names[i] for i in positions]
    fields: dict[str, Any] = {"value": outputs[0]}
    start = 1
    for result in op.results:
        end = start + result.count(len(names))
        fields[result.name] = result.pack(names, outputs[start:end])
        start = end
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

    def run(self, backend_name: str = "numpy", progress: Progress | None = None) -> Answer:
        """As `Task.run`, once the program is built (its run is not counted in `progress`)."""
        started = time.perf_counter()
        fn = frontends.from_program(self.source, self.inputs, self.limits)
        task = bind(fn, self.operation.name, self.inputs, self.extra, self.options, self.limits)
        rebuild = partial(frontends.from_program, self.source, limits=self.limits)
        answer = replace(task, rebuild=rebuild).run(backend_name, progress)
        return replace(answer, seconds=time.perf_counter() - started)


def bind(
    fn: Function,
    operation: str,
    inputs: Mapping[str, Any],
    extra: Any = None,
    options: Options = DEFAULT_OPTIONS,
    limits: Limits | None = DEFAULT_LIMITS,
) -> Task:
    """`operation` of a built function on these inputs, checked; `limits=None` skips the
    size limits (a library caller's own arrays)."""
    op = lookup(operation)
    positions, mode = resolve(fn, op, options, extra)
    sweep, mode, estimate, detail = _assessed(fn, op, positions, mode, options, limits)
    if detail:
        raise EngineError(TOO_LARGE, detail)
    arguments = input_arguments(fn, inputs) + extra_arguments(fn, op, positions, extra)
    return Task(op, fn, arguments, positions, mode, options.reduce == "sum", estimate, options.verify,
                sweep=sweep, format=options.format)  # fmt: skip


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
    if wrt is None:
        return fn.floating_positions
    names = list(fn.input_names)
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


def sized(array: np.ndarray, location: str, limits: Limits, dtype: str | None) -> np.ndarray:
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
            BAD_INPUT,
            f"{value!r} does not fit {dtype} (its largest is {np.finfo(dtype).max:.4g}); compute in float64",
            location,
        )
    return cast


def sized_extra(op: Operation, extra: Any, limits: Limits, dtype: str | None) -> Any:
    if op.extra is None or extra is None:
        return extra
    if op.extra.per_input:
        return {name: sized(t, pointer(op.extra.name, name), limits, dtype) for name, t in extra.items()}
    return sized(extra, pointer(op.extra.name), limits, dtype)


def _host_array(value: Any, aval: ShapedArray, field: str, name: str | None = None) -> np.ndarray:
    """`value` as an array of `aval`'s dtype, which must have its shape; `field` (and `name`)
    say where the request gave it."""
    array = np.asarray(value, dtype=NUMPY_DTYPES[aval.dtype])
    if array.shape != aval.shape:
        what = f"{field}[{name!r}]" if name is not None else field
        location = pointer(field) if name is None else pointer(field, name)
        raise EngineError(BAD_INPUT, f"{what} must have shape {list(aval.shape)}, got {list(array.shape)}", location)
    return array


def input_arguments(fn: Function, inputs: Mapping[str, Any]) -> tuple[np.ndarray, ...]:
    try:
        return tuple([_host_array(inputs[name], v.aval, "inputs", name) for name, v in zip(fn.input_names, fn.inputs)])
    except KeyError:
        missing = [n for n in fn.input_names if n not in inputs]
        if not missing:
            raise
        raise EngineError(BAD_INPUT, f"missing inputs: {', '.join(missing)}", "/inputs") from None


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


def assess(
    fn: Function, operation: str, options: Options = DEFAULT_OPTIONS, limits: Limits = DEFAULT_LIMITS
) -> tuple[cost.Cost, str | None]:
    """What `operation` of `fn` would return and allocate, from static shapes, and the limit
    it would break, in words (None: it fits)."""
    op = lookup(operation)
    positions, mode = resolve(fn, op, options)
    _, _, estimate, detail = _assessed(fn, op, positions, mode, options, limits)
    return estimate, detail


def _assessed(
    fn: Function, op: Operation, positions: tuple[int, ...], mode: str | None, options: Options, limits: Limits | None
) -> tuple[sweeps.Sweep | None, str | None, cost.Cost | None, str | None]:
    """The sweep (where not one dense batch), the mode it takes, the cost, and the limit it
    would break; `limits=None` (a library caller's own arrays) assesses nothing."""
    sweep = _sweep(fn, op, positions, mode, options, limits)
    if sweep is not None and mode is not None:
        mode = sweep.direction
    if limits is None:
        return sweep, mode, None, None
    estimate = _static_cost(fn, op.name, positions, mode, sweep, options.format)
    detail = cost.limit_detail(estimate, limits)
    if (
        detail
        and estimate.result_elements > limits.max_result_elements
        and options.format == "dense"
        and ("format" in op.options)
    ):
        detail += sweeps.sparse_advice(fn, positions, sweeps.HESSIAN if op.order == 2 else mode)
    return sweep, mode, estimate, detail


def _sweep(
    fn: Function, op: Operation, positions: tuple[int, ...], mode: str | None, options: Options, limits: Limits | None
) -> sweeps.Sweep | None:
    """How a Jacobian or a Hessian is swept, where not in one dense batch: chunked to fit
    `limits`, or compressed by its sparsity pattern, in the directions `mode` allows."""
    if "format" not in op.options:
        return None
    if options.format not in sweeps.FORMATS:
        raise EngineError(BAD_PARAM, f"format must be one of {', '.join(sweeps.FORMATS)}, got {options.format!r}",
                          "/format")  # fmt: skip
    if op.order == 2:
        directions = (sweeps.HESSIAN,)
    elif options.mode == "auto":
        directions = (mode, sweeps.FORWARD if mode == sweeps.REVERSE else sweeps.REVERSE)
    else:
        directions = (mode,)
    return sweeps.plan(fn, positions, directions, options.format, limits)


# A request's bounds follow from its function's shapes alone (and the sweep, which they
# decide): worked out once per function and operation, not on every request (a pass over the
# equations, as long as the run of a small function).
@TRANSFORMS.memoize(lambda estimate: estimate.approximate_bytes)
def _static_cost(
    fn: Function, operation: str, positions: tuple[int, ...], mode: str | None, sweep: sweeps.Sweep | None, format: str
) -> cost.Cost:
    op = lookup(operation)
    results = op.result_shapes(fn, positions)
    if sweep is None:
        return cost.estimate(fn, results, op.sweeps(fn, positions, mode), op.order, mode)
    stored = sweeps.stored_elements(fn, positions, sweep, format, op.order == 2)
    return cost.estimate(fn, results, [sweep.batch] * sweep.runs, op.order, mode, stored, sweep.report())


def transformed(fn: Function, operation: str, options: Options = DEFAULT_OPTIONS) -> Function:
    """The function `operation` runs for `fn` (the IR that the interpreter executes; a
    chunked or compressed sweep runs it once per batch of seed vectors)."""
    op = lookup(operation)
    positions, mode = resolve(fn, op, options)
    sweep, mode, _, _ = _assessed(fn, op, positions, mode, options, DEFAULT_LIMITS)
    if sweep is not None:
        return derivatives.seeded_products(fn, positions, sweep.direction, sweep.batch)
    return op.build(fn, positions, mode, options.reduce == "sum")
