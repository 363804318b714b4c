"""Broadcasting, made explicit: reshape, broadcast_to and its transpose sum, the reductions'
common rules, and batching, which is broadcasting along one more leading axis.

These primitives are defined together because their rules call one another: broadcast_to's
cotangent is a sum (`unbroadcast`), sum's is a broadcast (`expand_reduced`), and every
primitive that broadcasts its operands is batched by reshaping them. Every other primitive
module builds on this one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from engine import language
from engine.errors import BAD_PARAM, SHAPE, EngineError
from engine.ir import Atom, Literal, ShapedArray, describe
from engine.primitive import Primitive
from engine.primitives.common import (
    as_shape,
    broadcast_dependency,
    broadcast_shapes,
    logical_ndim,
    normalize_axis,
    primitive,
    reduced_shape,
)
from engine.primitives.dtypes import convert, promote


def _prepare_reshape(args, params):
    (x,) = promote(args)
    shape = as_shape(params["shape"])
    if shape.count(-1) > 1 or any(n < -1 for n in shape):
        raise EngineError(BAD_PARAM, f"invalid shape {list(shape)}: at most one -1 and no other negative size")
    if -1 in shape:
        known = math.prod(n for n in shape if n != -1)
        if known == 0 or x.aval.size % known:
            raise EngineError(SHAPE, f"cannot reshape an array of shape {list(x.aval.shape)} into {list(shape)}")
        shape = tuple(x.aval.size // known if n == -1 else n for n in shape)
    return [x], {"shape": shape}


def _reshape_shape(x: ShapedArray, *, shape: tuple[int, ...]) -> ShapedArray:
    if math.prod(shape) != x.size:
        raise EngineError(SHAPE, f"cannot reshape an array of shape {list(x.shape)} into {list(shape)}")
    return ShapedArray(shape, x.dtype)


reshape = primitive(
    "reshape",
    impl=lambda xp, x, *, shape: xp.reshape(x, shape),
    shape=_reshape_shape,
    vjp=[lambda g, out, x, shape: reshape(g, shape=x.aval.shape)],
    batch=lambda args, batched, shape: reshape(args[0], shape=(args[0].aval.shape[0], *shape)),
    prepare=_prepare_reshape,
    is_identity=lambda x, shape: x.aval.shape == shape,
    linear=True,
    moves_elements=True,
    doc="the same elements in a new shape (one size may be -1)",
    user=lambda op: lambda x, shape: op(x, shape=shape),
)


def lift_batch_axis(atom: Atom, is_batched: bool, ndim: int) -> Atom:
    """A batched operand reshaped to (batch, 1, ..., 1, *shape) so that numpy's
    right-aligned broadcasting lines its own axes up with the unbatched operands'."""
    if not is_batched or atom.aval.ndim - 1 == ndim:
        return atom
    shape = atom.aval.shape
    return reshape(atom, shape=(shape[0],) + (1,) * (ndim - len(shape) + 1) + shape[1:])


def broadcasting(name: str, **rules: Any) -> Primitive:
    """A primitive that broadcasts its operands like numpy; batched by lifting each batched
    operand's batch axis in front of the axes they are broadcast along."""

    def batch(args, batched, **params):
        ndim = max(logical_ndim(a, b) for a, b in zip(args, batched))
        lifted = [lift_batch_axis(a, b, ndim) for a, b in zip(args, batched)]
        return prim.bind(*lifted, **params)

    prim = primitive(name, batch=batch, **rules)
    return prim


def _broadcast_to_shape(x: ShapedArray, *, shape: tuple[int, ...]) -> ShapedArray:
    if broadcast_shapes(x.shape, shape) != tuple(shape):
        raise EngineError(SHAPE, f"cannot broadcast shape {list(x.shape)} to {list(shape)}")
    return ShapedArray(tuple(shape), x.dtype)


def _broadcast_to_batch(args, batched, shape):
    (x,) = args
    lifted = lift_batch_axis(x, True, len(shape))
    return broadcast_to(lifted, shape=(x.aval.shape[0], *shape))


broadcast_to = primitive(
    "broadcast_to",
    impl=lambda xp, x, *, shape: xp.broadcast_to(x, shape),
    shape=_broadcast_to_shape,
    vjp=[lambda g, out, x, shape: unbroadcast(g, x.aval.shape)],
    batch=_broadcast_to_batch,
    prepare=lambda args, params: (promote(args), {"shape": as_shape(params["shape"])}),
    is_identity=lambda x, shape: x.aval.shape == shape,
    linear=True,
    moves_elements=True,
)


def materialize_batch(atom: Atom, is_batched: bool, size: int) -> Atom:
    """An operand given a batch axis of `size` whether or not it had one."""
    if is_batched:
        return atom
    return broadcast_to(atom, shape=(size, *atom.aval.shape))


def unbroadcast(cotangent, shape: tuple[int, ...]):
    """Sum a cotangent over the axes along which an operand of `shape` was broadcast."""
    if cotangent.aval.shape == tuple(shape):
        return cotangent
    leading = cotangent.aval.ndim - len(shape)
    axes = tuple(range(leading)) + tuple(
        leading + i for i, n in enumerate(shape) if n == 1 and cotangent.aval.shape[leading + i] != 1
    )
    summed = sum(cotangent, axis=axes) if axes else cotangent
    return summed if summed.aval.shape == tuple(shape) else reshape(summed, shape=shape)


def expand_reduced(reduced, shape: tuple[int, ...], axis: tuple[int, ...], keepdims: bool):
    """Broadcast a reduced array (a cotangent, an output) back over the reduced axes."""
    kept = reduced_shape(shape, axis, True)
    if isinstance(reduced, Literal):
        return broadcast_to(reduced, shape=shape)
    if reduced.aval.shape != kept:
        reduced = reshape(reduced, shape=kept)
    return broadcast_to(reduced, shape=shape) if kept != tuple(shape) else reduced


def _prepare_reduction(floating: bool, accumulates: bool):
    """Promote the operand and normalise axis and keepdims. Sums and products of integers
    accumulate in int64, as numpy's do, so that int32 data does not overflow."""

    def prepare(args, params):
        (x,) = promote(args, floating=floating)
        if x.aval.dtype == "bool" or accumulates and x.aval.dtype == "int32":
            x = convert(x, dtype="int64")
        axis = normalize_axis(params.get("axis"), x.aval.ndim)
        keepdims = params.get("keepdims", False)
        if not isinstance(keepdims, bool):
            raise EngineError(BAD_PARAM, f"keepdims must be true or false, got {describe(keepdims)}")
        return [x], {"axis": axis, "keepdims": keepdims}

    return prepare


def _reduction_dependencies(out: ShapedArray, x: ShapedArray, *, axis, keepdims) -> list:
    """Each output element depends on the elements reduced into it: the transpose of
    broadcasting the output (its reduced axes kept) back over x."""
    kept = ShapedArray(reduced_shape(x.shape, axis, True), x.dtype)
    return [broadcast_dependency(kept, x.shape).T.tocsr()]


def _reduction_shape(nonempty: bool):
    def rule(x: ShapedArray, *, axis, keepdims) -> ShapedArray:
        if nonempty and any(x.shape[a] == 0 for a in axis):
            raise EngineError(SHAPE, f"cannot reduce a zero-size axis of shape {list(x.shape)}")
        return ShapedArray(reduced_shape(x.shape, axis, keepdims), x.dtype)

    return rule


def reduction_primitive(
    name: str,
    impl: Callable,
    *,
    jvp: Sequence[Callable] = (),
    vjp: Sequence[Callable],
    nonempty: bool,
    doc: str,
    floating: bool = False,
    accumulates: bool = False,
    linear: bool = False,
) -> Primitive:
    """A primitive that reduces its operand over `axis` (every axis when None), keeping the
    reduced axes with size 1 when `keepdims`, as users call it: numpy's (x, axis=None,
    keepdims=False). Batched by reducing one axis further on. `nonempty`: whether reducing a
    zero-size axis is an error (it has no maximum)."""

    def batch(args, batched, *, axis, keepdims):
        return prim.bind(args[0], axis=tuple(a + 1 for a in axis), keepdims=keepdims)

    prim = primitive(
        name,
        impl=impl,
        shape=_reduction_shape(nonempty),
        jvp=jvp,
        vjp=vjp,
        batch=batch,
        prepare=_prepare_reduction(floating, accumulates),
        linear=linear,
        sparsity=_reduction_dependencies,
        doc=doc,
        user=language.over_axes,
    )
    return prim


sum = reduction_primitive(  # noqa: A001 - numpy's name
    "sum",
    lambda xp, x, *, axis, keepdims: xp.sum(x, axis=axis, keepdims=keepdims, dtype=x.dtype),
    vjp=[lambda g, out, x, axis, keepdims: expand_reduced(g, x.aval.shape, axis, keepdims)],
    nonempty=False,
    accumulates=True,
    linear=True,
    doc="sum over axis (all axes by default)",
)
