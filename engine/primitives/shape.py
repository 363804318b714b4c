"""Shape primitives: transpose, concatenate, basic indexing and its transpose (scatter into
zeros), and the constant-making primitives full and eye. All but the constants are linear, so
their JVP is the primitive applied to the tangent. reshape and broadcast_to are in
`engine.primitives.broadcasting`."""

from __future__ import annotations

from typing import Any

from engine import language
from engine.errors import BAD_PARAM, SHAPE, EngineError
from engine.ir import DEFAULT_FLOAT, ShapedArray, describe
from engine.primitives.broadcasting import materialize_batch, reshape
from engine.primitives.common import as_integers, batch_size, primitive, same_dtype, single_axis
from engine.primitives.dtypes import promote


def _prepare_transpose(args, params):
    (x,) = promote(args)
    axes = params.get("axes")
    ndim = x.aval.ndim
    if axes is None:
        axes = tuple(reversed(range(ndim)))
    axes = tuple(single_axis(a, ndim) for a in as_integers(axes, "a permutation of axes"))
    if sorted(axes) != list(range(ndim)):
        raise EngineError(BAD_PARAM, f"axes {list(axes)} are not a permutation of {ndim} axes")
    return [x], {"axes": axes}


def _inverse_permutation(axes: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(sorted(range(len(axes)), key=axes.__getitem__))


transpose = primitive(
    "transpose",
    impl=lambda xp, x, *, axes: xp.permute_dims(x, axes),
    shape=lambda x, *, axes: ShapedArray(tuple(x.shape[a] for a in axes), x.dtype),
    vjp=[lambda g, out, x, axes: transpose(g, axes=_inverse_permutation(axes))],
    batch=lambda args, batched, axes: transpose(args[0], axes=(0, *(a + 1 for a in axes))),
    prepare=_prepare_transpose,
    is_identity=lambda x, axes: axes == tuple(range(len(axes))),
    linear=True,
    moves_elements=True,
    doc="reverse (or permute by axes) the axes",
    user=lambda op: lambda x, axes=None: op(x, axes=axes),
)


def swap_last_axes(x):
    axes = list(range(x.aval.ndim))
    axes[-2], axes[-1] = axes[-1], axes[-2]
    return transpose(x, axes=tuple(axes))


def _prepare_concatenate(args, params):
    if not args:
        raise EngineError(BAD_PARAM, "concatenate needs at least one array")
    atoms = promote(args)
    ndim = atoms[0].aval.ndim
    if ndim == 0:
        raise EngineError(SHAPE, "zero-dimensional arrays cannot be concatenated")
    return atoms, {"axis": single_axis(params.get("axis", 0), ndim)}


def _concatenate_shape(*avals: ShapedArray, axis: int) -> ShapedArray:
    first = avals[0]
    for other in avals[1:]:
        if other.ndim != first.ndim or any(
            a != b for i, (a, b) in enumerate(zip(first.shape, other.shape)) if i != axis
        ):
            raise EngineError(SHAPE, f"cannot concatenate shapes {[list(a.shape) for a in avals]} along axis {axis}")
    shape = list(first.shape)
    shape[axis] = sum(a.shape[axis] for a in avals)
    return ShapedArray(tuple(shape), same_dtype(*avals))


def _concatenate_cotangent(position: int):
    def rule(g, out, *xs, axis):
        start = sum(x.aval.shape[axis] for x in xs[:position])
        index = tuple(
            (start, start + xs[position].aval.shape[axis], 1) if i == axis else (0, n, 1)
            for i, n in enumerate(out.aval.shape)
        )
        return getitem.bind(g, index=index)

    return rule


def _concatenate_batch(args, batched, axis):
    size = batch_size(args, batched)
    return concatenate(*(materialize_batch(a, b, size) for a, b in zip(args, batched)), axis=axis + 1)


concatenate = primitive(
    "concatenate",
    impl=lambda xp, *xs, axis: xp.concat(xs, axis=axis),
    shape=_concatenate_shape,
    vjp=_concatenate_cotangent,
    batch=_concatenate_batch,
    prepare=_prepare_concatenate,
    linear=True,
    moves_elements=True,
    doc="join a list of arrays along an existing axis",
    user=lambda op: lambda arrays, axis=0: op(*language.listed("concatenate", arrays), axis=axis),
)


# Basic indexing. An index is normalised, against the operand's static shape, to a tuple
# with one entry per consumed axis: an int (the axis is dropped), a (start, stop, step)
# triple (stop None: up to the start of the axis), or None (a new axis of length 1).
def normalize_index(key: Any, shape: tuple[int, ...]) -> tuple:
    items = key if isinstance(key, tuple) else (key,)
    consumed = sum(1 for k in items if k is not None and k is not Ellipsis)
    if sum(1 for k in items if k is Ellipsis) > 1:
        raise EngineError(BAD_PARAM, "an index can hold at most one '...'")
    if consumed > len(shape):
        raise EngineError(SHAPE, f"too many indices for an array of {len(shape)} dimensions")
    result: list = []
    axis = 0
    for item in items:
        if item is Ellipsis:
            for _ in range(len(shape) - consumed):
                result.append((0, shape[axis], 1))
                axis += 1
        elif item is None:
            result.append(None)
        elif isinstance(item, bool) or not isinstance(item, (int, slice)):
            raise EngineError(BAD_PARAM, f"indices are integers, slices, None or '...', got {describe(item)}")
        elif isinstance(item, int):
            n = shape[axis]
            if not -n <= item < n:
                raise EngineError(SHAPE, f"index {item} is out of bounds for axis {axis} of size {n}")
            result.append(item % n)
            axis += 1
        else:
            if item.step == 0:
                raise EngineError(BAD_PARAM, "slice step cannot be zero")
            for part in (item.start, item.stop, item.step):
                if part is not None and (isinstance(part, bool) or not isinstance(part, int)):
                    raise EngineError(BAD_PARAM, f"slice bounds are integers, got {describe(part)}")
            start, stop, step = item.indices(shape[axis])
            if not range(start, stop, step):
                # an empty selection; kept canonical, since a negative start from indices()
                # (slice(-10, None, -1) on 3 elements) would mean "from the end" to numpy
                result.append((0, 0, 1))
            else:
                result.append((start, None if stop < 0 else stop, step))
            axis += 1
    result.extend((0, n, 1) for n in shape[axis:])
    return tuple(result)


def _python_index(index: tuple) -> tuple:
    return tuple(slice(*item) if isinstance(item, tuple) else item for item in index)


def _indexed_shape(shape: tuple[int, ...], index: tuple) -> tuple[int, ...]:
    result = []
    axis = 0
    for item in index:
        if item is None:
            result.append(1)
            continue
        if isinstance(item, tuple):
            start, stop, step = item
            result.append(len(range(start, -1 if stop is None else stop, step)))
        axis += 1
    return tuple(result)


def _prepare_getitem(args, params):
    (x,) = promote(args)
    return [x], {"index": normalize_index(params["index"], x.aval.shape)}


def _batched_index(index: tuple, size: int) -> tuple:
    return ((0, size, 1), *index)


getitem = primitive(
    "getitem",
    impl=lambda xp, x, *, index: x[_python_index(index)],
    shape=lambda x, *, index: ShapedArray(_indexed_shape(x.shape, index), x.dtype),
    vjp=[lambda g, out, x, index: scatter(g, index=index, shape=x.aval.shape)],
    batch=lambda args, batched, index: getitem.bind(args[0], index=_batched_index(index, args[0].aval.shape[0])),
    prepare=_prepare_getitem,
    linear=True,
    moves_elements=True,
)


def _scatter_impl(xp, g, *, index, shape):
    # The new axes getitem inserted have length 1; drop them, since the standard's
    # __setitem__ takes no None.
    positions = tuple(item for item in index if item is not None)
    result = xp.zeros(shape, dtype=g.dtype)
    result[_python_index(positions)] = xp.reshape(g, _indexed_shape(shape, positions))
    return result


def _scatter_shape(g: ShapedArray, *, index, shape) -> ShapedArray:
    if _indexed_shape(shape, index) != g.shape:
        raise EngineError(SHAPE, f"scatter of shape {list(g.shape)} into {list(shape)} does not fit the index")
    return ShapedArray(tuple(shape), g.dtype)


def _scatter_batch(args, batched, index, shape):
    (g,) = args
    size = g.aval.shape[0]
    return scatter(g, index=_batched_index(index, size), shape=(size, *shape))


# The transpose of getitem: the zeros of `shape` with g written where the index points.
scatter = primitive(
    "scatter",
    impl=_scatter_impl,
    shape=_scatter_shape,
    vjp=[lambda g, out, x, index, shape: getitem.bind(g, index=index)],
    batch=_scatter_batch,
    linear=True,
    moves_elements=True,
)


full = primitive(
    "full",
    impl=lambda xp, *, shape, value, dtype: xp.full(shape, value, dtype=getattr(xp, dtype)),
    shape=lambda *, shape, value, dtype: ShapedArray(tuple(shape), dtype),
)

eye = primitive(
    "eye",
    impl=lambda xp, *, rows, columns, dtype: xp.eye(rows, columns, dtype=getattr(xp, dtype)),
    shape=lambda *, rows, columns, dtype: ShapedArray((rows, columns), dtype),
)


def zeros(shape: tuple[int, ...], dtype: str = DEFAULT_FLOAT):
    return full(shape=tuple(shape), value=0.0 if dtype.startswith("float") else 0, dtype=dtype)


def expand_dims(x, axis: int):
    shape = list(x.aval.shape)
    shape.insert(axis, 1)
    return reshape(x, shape=tuple(shape))


@language.declare("join a list of arrays along a new axis")
def stack(arrays, axis=0):
    arrays = language.listed("stack", arrays)
    if not arrays:
        raise EngineError(BAD_PARAM, "stack needs at least one array")
    atoms = promote(arrays)
    position = single_axis(axis, atoms[0].aval.ndim + 1)
    return concatenate(*(expand_dims(a, position) for a in atoms), axis=position)
