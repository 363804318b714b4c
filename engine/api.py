"""What users of the engine call: evaluate a function and its derivatives on arrays.

Every operation is a composition of the IR transformations: the transformed function is
built once per (function, operation, wrt) and cached, then run by the interpreter, so a
repeated request costs only the array work. Jacobians and Hessians are one batched sweep
(vmap over a basis) per differentiated input, not a loop of sweeps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from engine import backend, interpreter
from engine.cache import TRANSFORMS
from engine.errors import BAD_INPUT, BAD_PARAM, BAD_WRT, DTYPE, NOT_SCALAR, EngineError, pointer
from engine.ir import Function, Literal, ShapedArray, Var, building, inline
from engine.primitives.shape import broadcast_to, eye, reshape, transpose
from engine.transforms import (
    eliminate_common_subexpressions,
    eliminate_dead_code,
    jvp_call,
    simplify,
    vjp_call,
    vmap_call,
)

JACOBIAN_MODES = ("auto", "forward", "reverse")

# Transformed functions are built once per (function, operation, wrt) in each process.
_cached = TRANSFORMS.memoize(lambda fn: len(fn.equations))


# ---- building the transformed functions (cached) ----


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


def _require_float_output(fn: Function) -> None:
    if not fn.output.aval.is_float:
        raise EngineError(DTYPE, f"the output is {fn.output.aval.dtype}, which has no derivative")


def _finish(builder, inputs, names, outputs) -> Function:
    deduplicated = eliminate_common_subexpressions(builder.function(inputs, names, outputs))
    return eliminate_dead_code(simplify(deduplicated))


def _fresh_inputs(fn: Function) -> list[Var]:
    return [Var(v.aval) for v in fn.inputs]


def _basis(aval: ShapedArray):
    """The standard basis of an array space, stacked: shape (size, *shape)."""
    return reshape(eye(rows=aval.size, columns=aval.size, dtype=aval.dtype), shape=(aval.size, *aval.shape))


def _move_basis_axis_last(stacked, leading: tuple[int, ...], trailing: tuple[int, ...]):
    """(n, *leading) with n = prod(trailing) -> (*leading, *trailing)."""
    flat = reshape(stacked, shape=(stacked.aval.shape[0], math.prod(leading)))
    return reshape(transpose(flat, axes=(1, 0)), shape=(*leading, *trailing))


@_cached
def gradient_function(fn: Function, wrt: tuple[int, ...], reduce_sum: bool) -> Function:
    """inputs: fn's; outputs: the value, then d(output or its sum)/d(each wrt input)."""
    _require_float_output(fn)
    if fn.output.aval.shape and not reduce_sum:
        raise EngineError(
            NOT_SCALAR,
            f"the output has shape {list(fn.output.aval.shape)}; grad needs a scalar output, "
            'or reduce="sum" for the gradient of its sum (use vjp or jacobian for the full derivative)',
        )
    with building() as builder:
        primals = _fresh_inputs(fn)
        one = Literal(1.0, fn.output.aval.dtype)
        cotangent = broadcast_to(one, shape=fn.output.aval.shape) if fn.output.aval.shape else one
        value, gradients = vjp_call(fn, primals, cotangent, wrt)
        return _finish(builder, primals, fn.input_names, [value, *gradients])


@_cached
def vjp_function(fn: Function, wrt: tuple[int, ...]) -> Function:
    """inputs: fn's, then the cotangent; outputs: the value, then each wrt input's cotangent."""
    _require_float_output(fn)
    with building() as builder:
        primals = _fresh_inputs(fn)
        cotangent = Var(fn.output.aval)
        value, cotangents = vjp_call(fn, primals, cotangent, wrt)
        return _finish(builder, [*primals, cotangent], [*fn.input_names, "cotangent"], [value, *cotangents])


def _pushforward(fn: Function, wrt: tuple[int, ...], first: int) -> Function:
    """inputs: fn's, then one tangent per wrt input; outputs: each of fn's outputs, then the
    tangents of its outputs from position `first` on."""
    with building() as builder:
        primals = _fresh_inputs(fn)
        tangents = [Var(fn.inputs[i].aval) for i in wrt]
        outputs, output_tangents = jvp_call(fn, primals, dict(zip(wrt, tangents)))
        filled = [
            t if t is not None else broadcast_to(Literal(0.0, o.aval.dtype), shape=o.aval.shape)
            for o, t in zip(outputs[first:], output_tangents[first:])
        ]
        names = [*fn.input_names, *(f"tangent of {fn.input_names[i]}" for i in wrt)]
        return _finish(builder, [*primals, *tangents], names, [*outputs, *filled])


@_cached
def jvp_function(fn: Function, wrt: tuple[int, ...]) -> Function:
    """inputs: fn's, then one tangent per wrt input; outputs: each of fn's outputs, then
    each output's tangent."""
    return _pushforward(fn, wrt, 0)


def _forward_jacobians(fn: Function, primals: list[Var], wrt: tuple[int, ...]):
    """For each wrt input j, the Jacobian of every output of fn, in one batched JVP sweep
    per input. Returns (outputs, {(k, j): array of shape out_k.shape + in_j.shape})."""
    outputs = None
    jacobians = {}
    for j in wrt:
        pushforward = jvp_function(fn, (j,))
        aval = fn.inputs[j].aval
        results, batched = vmap_call(pushforward, [*primals, _basis(aval)], [False] * len(primals) + [True])
        count = len(fn.outputs)
        outputs = results[:count]
        for k, (tangent, is_batched) in enumerate(zip(results[count:], batched[count:])):
            out_shape = fn.outputs[k].aval.shape
            if not is_batched:
                tangent = broadcast_to(tangent, shape=(aval.size, *out_shape))
            jacobians[k, j] = _move_basis_axis_last(tangent, out_shape, aval.shape)
    return outputs, jacobians


@_cached
def jacobian_function(fn: Function, wrt: tuple[int, ...], mode: str) -> Function:
    """inputs: fn's; outputs: the value, then d output / d each wrt input, shaped
    output.shape + input.shape. `mode` is "forward" or "reverse"."""
    _require_float_output(fn)
    with building() as builder:
        primals = _fresh_inputs(fn)
        if mode == "forward":
            outputs, jacobians = _forward_jacobians(fn, primals, wrt)
            value = outputs[0] if outputs else _replayed_output(fn, primals)
            results = [jacobians[0, j] for j in wrt]
        else:
            out_aval = fn.output.aval
            pullback = vjp_function(fn, wrt)
            outs, batched = vmap_call(pullback, [*primals, _basis(out_aval)], [False] * len(primals) + [True])
            value = outs[0]
            results = []
            for j, cotangent, is_batched in zip(wrt, outs[1:], batched[1:]):
                in_shape = fn.inputs[j].aval.shape
                if not is_batched:
                    cotangent = broadcast_to(cotangent, shape=(out_aval.size, *in_shape))
                results.append(reshape(cotangent, shape=(*out_aval.shape, *in_shape)))
        return _finish(builder, primals, fn.input_names, [value, *results])


def _replayed_output(fn: Function, primals: list[Var]):
    """fn's output recorded afresh, for compositions whose sweeps did not record it
    (there are no inputs to differentiate)."""
    return inline(fn, primals)[0]


@_cached
def hessian_function(fn: Function, wrt: tuple[int, ...]) -> Function:
    """inputs: fn's; outputs: the value, then H[i][j] for i, j in wrt (row-major),
    each shaped in_i.shape + in_j.shape: forward mode over the reverse-mode gradient."""
    gradient = gradient_function(fn, wrt, False)
    with building() as builder:
        primals = _fresh_inputs(fn)
        outputs, jacobians = _forward_jacobians(gradient, primals, wrt)
        value = outputs[0] if outputs else _replayed_output(fn, primals)
        blocks = [jacobians[1 + a, j] for a in range(len(wrt)) for j in wrt]
        return _finish(builder, primals, fn.input_names, [value, *blocks])


@_cached
def hvp_function(fn: Function, wrt: tuple[int, ...]) -> Function:
    """inputs: fn's, then a tangent per wrt input; outputs: value, gradients, then H @ v
    (the pushforward of the gradients, forward over reverse)."""
    return _pushforward(gradient_function(fn, wrt, False), wrt, 1)


# ---- running them on arrays ----


def _host_array(value: Any, aval: ShapedArray, location: str) -> np.ndarray:
    array = np.asarray(value, dtype=aval.dtype)
    if tuple(array.shape) != aval.shape:
        raise EngineError(BAD_INPUT, f"expected shape {list(aval.shape)}, got {list(array.shape)}", location)
    return array


def _run(
    transformed: Function,
    fn: Function,
    inputs: Mapping[str, Any],
    backend_name: str,
    extras: Sequence[tuple[Any, ShapedArray, str]] = (),
) -> list[np.ndarray]:
    """Run a transform of `fn` on its inputs followed by `extras` (value, aval, location):
    the cotangent or tangents. Arrays are cast to the dtypes the function was built for."""
    missing = [n for n in fn.input_names if n not in inputs]
    if missing:
        raise EngineError(BAD_INPUT, f"missing inputs: {', '.join(missing)}", "/inputs")
    arrays = [_host_array(inputs[n], v.aval, pointer("inputs", n)) for n, v in zip(fn.input_names, fn.inputs)]
    arrays += [_host_array(value, aval, location) for value, aval, location in extras]
    xp = backend.namespace(backend_name)
    results = interpreter.run(transformed, [backend.to_backend(xp, a) for a in arrays], backend_name)
    return [backend.to_host(r) for r in results]


def evaluate(fn: Function, inputs: Mapping[str, Any], *, backend_name: str = "numpy") -> np.ndarray:
    return _run(fn, fn, inputs, backend_name)[0]


def value_and_grad(
    fn: Function,
    inputs: Mapping[str, Any],
    *,
    wrt: Sequence[str] | None = None,
    reduce: str = "none",
    backend_name: str = "numpy",
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    if reduce not in ("none", "sum"):
        raise EngineError(BAD_PARAM, f'reduce must be "none" or "sum", got {reduce!r}', "/reduce")
    positions = wrt_positions(fn, wrt)
    value, *gradients = _run(gradient_function(fn, positions, reduce == "sum"), fn, inputs, backend_name)
    return value, {fn.input_names[i]: g for i, g in zip(positions, gradients)}


def grad(fn: Function, inputs: Mapping[str, Any], **options: Any) -> dict[str, np.ndarray]:
    return value_and_grad(fn, inputs, **options)[1]


def vjp(
    fn: Function,
    inputs: Mapping[str, Any],
    cotangent: Any,
    *,
    wrt: Sequence[str] | None = None,
    backend_name: str = "numpy",
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    positions = wrt_positions(fn, wrt)
    extras = [(cotangent, fn.output.aval, "/cotangent")]
    value, *cotangents = _run(vjp_function(fn, positions), fn, inputs, backend_name, extras)
    return value, {fn.input_names[i]: c for i, c in zip(positions, cotangents)}


def _tangent_extras(fn: Function, positions: tuple[int, ...], tangents: Mapping[str, Any]):
    names = [fn.input_names[i] for i in positions]
    missing = [n for n in names if n not in tangents]
    if missing:
        raise EngineError(BAD_INPUT, f"missing tangents for: {', '.join(missing)}", "/tangents")
    extra = sorted(set(tangents) - set(names))
    if extra:
        raise EngineError(
            BAD_INPUT,
            f"tangents given for inputs not differentiated: {', '.join(extra)}",
            pointer("tangents", extra[0]),
        )
    return [(tangents[n], fn.inputs[i].aval, pointer("tangents", n)) for n, i in zip(names, positions)]


def _tangent_names(fn: Function, tangents: Mapping[str, Any]) -> list[str]:
    """Without wrt, the tangents given say which inputs move (in input order)."""
    unknown = sorted(set(tangents) - set(fn.input_names))
    if unknown:
        raise EngineError(
            BAD_INPUT, f"a tangent is given for {unknown[0]!r}, which is not an input", pointer("tangents", unknown[0])
        )
    return [n for n in fn.input_names if n in tangents]


def jvp(
    fn: Function,
    inputs: Mapping[str, Any],
    tangents: Mapping[str, Any],
    *,
    wrt: Sequence[str] | None = None,
    backend_name: str = "numpy",
) -> tuple[np.ndarray, np.ndarray]:
    positions = wrt_positions(fn, wrt if wrt is not None else _tangent_names(fn, tangents))
    _require_float_output(fn)
    extras = _tangent_extras(fn, positions, tangents)
    value, tangent = _run(jvp_function(fn, positions), fn, inputs, backend_name, extras)
    return value, tangent


def jacobian(
    fn: Function,
    inputs: Mapping[str, Any],
    *,
    wrt: Sequence[str] | None = None,
    mode: str = "auto",
    backend_name: str = "numpy",
) -> tuple[np.ndarray, dict[str, np.ndarray], str]:
    """Returns the value, the Jacobians by input name, and the mode used."""
    positions = wrt_positions(fn, wrt)
    used = choose_jacobian_mode(fn, positions, mode)
    value, *jacobians = _run(jacobian_function(fn, positions, used), fn, inputs, backend_name)
    return value, {fn.input_names[i]: j for i, j in zip(positions, jacobians)}, used


def choose_jacobian_mode(fn: Function, positions: tuple[int, ...], mode: str) -> str:
    if mode not in JACOBIAN_MODES:
        raise EngineError(BAD_PARAM, f"mode must be one of {', '.join(JACOBIAN_MODES)}, got {mode!r}", "/mode")
    if mode != "auto":
        return mode
    input_size = sum(fn.inputs[i].aval.size for i in positions)
    return "forward" if input_size < fn.output.aval.size else "reverse"


def hessian(
    fn: Function, inputs: Mapping[str, Any], *, wrt: Sequence[str] | None = None, backend_name: str = "numpy"
) -> tuple[np.ndarray, dict[str, dict[str, np.ndarray]]]:
    positions = wrt_positions(fn, wrt)
    value, *blocks = _run(hessian_function(fn, positions), fn, inputs, backend_name)
    names = [fn.input_names[i] for i in positions]
    return value, {a: {b: blocks[r * len(names) + c] for c, b in enumerate(names)} for r, a in enumerate(names)}


def hvp(
    fn: Function,
    inputs: Mapping[str, Any],
    tangents: Mapping[str, Any],
    *,
    wrt: Sequence[str] | None = None,
    backend_name: str = "numpy",
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    positions = wrt_positions(fn, wrt if wrt is not None else _tangent_names(fn, tangents))
    extras = _tangent_extras(fn, positions, tangents)
    value, *rest = _run(hvp_function(fn, positions), fn, inputs, backend_name, extras)
    names = [fn.input_names[i] for i in positions]
    return value, dict(zip(names, rest[: len(names)])), dict(zip(names, rest[len(names) :]))
