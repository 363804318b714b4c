"""The derivative of a function as a function: each construction composes the IR
transformations (jvp, vjp, vmap) into a new Function, cached per (function, wrt, ...) in each
process, so a repeated request costs only the array work. Jacobians and Hessians are one
batched sweep (vmap over a basis) per differentiated input, not a loop of sweeps.

Each construction assumes what `engine.operations` checked: wrt positions name floating
inputs, the output is floating, and a gradient's output is a scalar unless it is summed.
"""

from __future__ import annotations

import math

from engine.cache import TRANSFORMS
from engine.ir import Function, Literal, ShapedArray, Var
from engine.primitives.broadcasting import broadcast_to, reshape
from engine.primitives.shape import eye, transpose
from engine.tracing import building, inline
from engine.transforms import (
    eliminate_common_subexpressions,
    eliminate_dead_code,
    jvp_call,
    simplify,
    vjp_call,
    vmap_call,
)
from engine.transforms.identities import apply_identities

# Transformed functions are built once per (function, operation, wrt) in each process.
_cached = TRANSFORMS.memoize(lambda fn: fn.approximate_bytes)


def finish(builder, inputs, names, outputs) -> Function:
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
    with building() as builder:
        primals = _fresh_inputs(fn)
        one = Literal(1.0, fn.output.aval.dtype)
        cotangent = broadcast_to(one, shape=fn.output.aval.shape) if fn.output.aval.shape else one
        value, gradients = vjp_call(fn, primals, cotangent, wrt)
        return finish(builder, primals, fn.input_names, [value, *gradients])


@_cached
def vjp_function(fn: Function, wrt: tuple[int, ...]) -> Function:
    """inputs: fn's, then the cotangent; outputs: the value, then each wrt input's cotangent."""
    with building() as builder:
        primals = _fresh_inputs(fn)
        cotangent = Var(fn.output.aval)
        value, cotangents = vjp_call(fn, primals, cotangent, wrt)
        return finish(builder, [*primals, cotangent], [*fn.input_names, "cotangent"], [value, *cotangents])


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
        return finish(builder, [*primals, *tangents], names, [*outputs, *filled])


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
        return finish(builder, primals, fn.input_names, [value, *results])


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
        return finish(builder, primals, fn.input_names, [value, *blocks])


@_cached
def seeded_products(fn: Function, wrt: tuple[int, ...], direction: str, batch: int) -> Function:
    """inputs: fn's, then `batch` seed vectors stacked on a leading axis: one array per wrt
    input (`direction` "forward" or "hessian"), or one shaped like the output ("reverse");
    outputs: the value, then each seed's product stacked the same way: the output's tangent
    (forward, J @ v), each wrt input's cotangent (reverse, v @ J), or each wrt input's H @ v
    (hessian). Chunked and compressed sweeps (engine.sweeps) run it with seeds of their own.
    Simplified by the exact identities too: a sweep runs it once per batch of every answer,
    and vmap leaves what they fold (x + -y, broadcasts numpy would make itself)."""
    reverse = direction == "reverse"
    seeded = [fn.output.aval] if reverse else [fn.inputs[i].aval for i in wrt]
    with building() as builder:
        primals = _fresh_inputs(fn)
        seeds = [Var(ShapedArray((batch, *aval.shape), aval.dtype)) for aval in seeded]
        if reverse:
            inner, first_product = vjp_function(fn, wrt), 1
        elif direction == "forward":
            inner, first_product = jvp_function(fn, wrt), len(fn.outputs)
        else:
            inner, first_product = hvp_function(fn, wrt), 1 + len(wrt)
        results, batched = vmap_call(inner, [*primals, *seeds], [False] * len(primals) + [True] * len(seeds))
        products = [
            product if is_batched else broadcast_to(product, shape=(batch, *product.aval.shape))
            for product, is_batched in zip(results[first_product:], batched[first_product:])
        ]
        names = [*fn.input_names, *(f"seeds {k}" for k in range(len(seeds)))]
        return apply_identities(finish(builder, [*primals, *seeds], names, [results[0], *products]), exact=True)


@_cached
def constantly_seeded_products(
    fn: Function, wrt: tuple[int, ...], direction: str, batch: int, values: tuple[float, ...]
) -> Function:
    """`seeded_products` with each seed array filled with one number (`values`, one per seed
    array): inputs fn's only. A compressed sweep of one colour seeds every column alike, with
    ones; written into the IR as constants, the seeds fold away under the exact identities (a
    product with ones is its other factor, a broadcast is left to numpy's own), so that a
    diagonal Hessian costs the array calls of f'' rather than an HVP's every product with v
    and each of its twins. Exact: what it computes is what `seeded_products` would on those
    seeds, to an ulp, inf and nan included."""
    seeded = seeded_products(fn, wrt, direction, batch)
    with building() as builder:
        primals = _fresh_inputs(fn)
        seeds = [broadcast_to(Literal(value, v.aval.dtype), shape=v.aval.shape)
                 for v, value in zip(seeded.inputs[len(fn.inputs) :], values)]  # fmt: skip
        outputs = inline(seeded, [*primals, *seeds])
        return apply_identities(builder.function(primals, fn.input_names, outputs), exact=True)


@_cached
def hvp_function(fn: Function, wrt: tuple[int, ...], reduce_sum: bool = False) -> Function:
    """inputs: fn's, then a tangent per wrt input; outputs: value, gradients (of the output's
    sum with `reduce_sum`), then H @ v (the pushforward of the gradients, forward over reverse)."""
    return _pushforward(gradient_function(fn, wrt, reduce_sum), wrt, 1)
