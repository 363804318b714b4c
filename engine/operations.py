"""What a request can ask of a function: one registry entry per operation.

An entry says, once: its name and docs, the extra input it takes (a cotangent, or
tangents), the options it reads, how it builds its transformed function, the layout of
its results (from which the answer is packed and its size known before anything runs)
and its derivative order (the cost factor). The HTTP routes, the request and response
models, the worker and the cost estimate are all driven by this table, so adding an
operation is one entry. `engine.boundary` checks a request against it; `engine.tasks` runs it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine import derivatives
from engine.errors import BAD_PARAM, EngineError
from engine.ir import Function

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
    verify: bool = False  # check the derivative against finite differences (engine.verification)
    format: str = "dense"  # a Jacobian's or Hessian's: "dense", or scipy.sparse's "coo" or "csr" (engine.sweeps)


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
    options: tuple[str, ...] = ()  # the options it reads beyond wrt: "reduce", "mode", "verify"
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
            results=(Result("gradient", PER_INPUT, _GRADIENT_DOC),), options=("reduce", "verify"), scalar_output=True,
        ),
        Operation(
            "vjp", "Vector-Jacobian product (reverse mode)",
            "`cotangent` @ J for each `wrt` input: `y.backward(cotangent)` for a non-scalar `y`.", 1,
            build=lambda fn, positions, mode, reduce_sum: derivatives.vjp_function(fn, positions),
            results=(Result("vjp", PER_INPUT, "input name -> cotangent shaped like that input"),),
            extra=Extra("cotangent", False, "shaped like the output: the head gradient v of y.backward(v)"),
            options=("verify",),
        ),
        Operation(
            "jvp", "Jacobian-vector product (forward mode)",
            "The directional derivative of the output along `tangents` (one per `wrt` input).", 1,
            build=lambda fn, positions, mode, reduce_sum: derivatives.jvp_function(fn, positions),
            results=(Result("jvp", OUTPUT, "shaped like the output"),),
            extra=Extra("tangents", True, "input name -> direction, one per differentiated input"),
            options=("verify",),
        ),
        Operation(
            "jacobian", "Full Jacobian",
            "d output / d input, shaped output.shape + input.shape, in one batched sweep. `mode` auto picks forward "
            "when the inputs are fewer than the outputs, else reverse; the response says which ran. Sizes are "
            "checked from shapes before anything is computed. Where the Jacobian's sparsity pattern (known from the "
            "function before it runs) lets columns (forward) or rows (reverse) share a sweep, it is compressed: one "
            "seed vector per colour instead of one per basis vector. `format` \"coo\" or \"csr\" sends each block "
            "flattened to (output size, input size) as scipy.sparse's arrays. A batch whose intermediates would pass "
            "the limit is run in chunks.", 1,
            build=lambda fn, positions, mode, reduce_sum: derivatives.jacobian_function(fn, positions, mode),
            results=(Result("jacobian", JACOBIAN, "input name -> array of shape output.shape + input.shape"),),
            options=("mode", "format", "verify"), sweeps=_jacobian_sweeps,
        ),
        Operation(
            "hessian", "Hessian of a scalar function",
            "Second derivatives (forward over reverse) for every pair of `wrt` inputs, each block shaped "
            "in1.shape + in2.shape. Where the Hessian's sparsity pattern allows, columns that a star colouring puts "
            "together share one Hessian-vector product (a diagonal Hessian takes one). `format` \"coo\" or \"csr\" "
            "sends each block flattened to (size, size) as scipy.sparse's arrays.", 2,
            build=lambda fn, positions, mode, reduce_sum: derivatives.hessian_function(fn, positions),
            results=(Result("hessian", PAIRS, "name -> name -> array of shape in1.shape + in2.shape"),),
            options=("format", "verify"), scalar_output=True, sweeps=_sweep_per_input,
        ),
        Operation(
            "hvp", "Hessian-vector product",
            "H @ v for a scalar function without forming H, with the value and the gradient. With "
            '`reduce: "sum"` a non-scalar output is summed first (`value` stays the unreduced output): for a function '
            "applied elementwise to a vector x, with v all ones, the gradient is f'(x) and H @ v is f''(x).", 2,
            build=lambda fn, positions, mode, reduce_sum: derivatives.hvp_function(fn, positions, reduce_sum),
            results=(Result("gradient", PER_INPUT, _GRADIENT_DOC),
                     Result("hvp", PER_INPUT, "input name -> (H @ v) shaped like that input")),
            extra=Extra("tangents", True, "input name -> the vector v of H @ v"), options=("reduce", "verify"),
            scalar_output=True,
        ),
    ]
}  # fmt: skip


def lookup(operation: str) -> Operation:
    try:
        return OPERATIONS[operation]
    except KeyError:
        known = ", ".join(OPERATIONS)
        raise EngineError(BAD_PARAM, f"unknown operation {operation!r}; expected one of {known}") from None


DEFAULT_OPTIONS = Options()
