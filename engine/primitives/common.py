"""What the primitive modules share that needs no primitive: shape and axis arithmetic, and
`primitive`, the constructor every primitive is declared with."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from engine import language
from engine.errors import BAD_PARAM, DTYPE, SHAPE, EngineError
from engine.ir import Atom, ShapedArray, describe, unrepresentable
from engine.primitive import Primitive, register


def primitive(name: str, *, doc: str | None = None, user: Callable | None = None, **rules: Any) -> Primitive:
    """Define and register a primitive, every rule given here (see `Primitive`); the returned
    object is also the op that rules and front-ends call. With `doc`, users may call it too:
    `user(primitive)` is its front door, a function with numpy's signature (`language.unary`,
    `binary`, `over_axes`), and it is differentiable unless every rule is None."""
    prim = register(Primitive(name, **rules))
    if doc is not None:
        language.declare(doc, name=name, differentiable=prim.differentiable)(user(prim))
    return prim


def broadcast_shapes(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    ndim = max(len(s) for s in shapes)
    padded = [(1,) * (ndim - len(s)) + tuple(s) for s in shapes]
    result = []
    for sizes in zip(*padded):
        distinct = {n for n in sizes if n != 1}
        if len(distinct) > 1:
            described = " and ".join(str(list(s)) for s in shapes)
            raise EngineError(SHAPE, f"shapes {described} cannot be broadcast together")
        result.append(distinct.pop() if distinct else 1)
    return tuple(result)


def same_dtype(*avals: ShapedArray) -> str:
    dtypes = {a.dtype for a in avals}
    if len(dtypes) != 1:
        raise EngineError(DTYPE, f"mixed dtypes {sorted(dtypes)}")
    return dtypes.pop()


def as_integers(value: Any, what: str = "a shape") -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,)
    if not isinstance(value, (tuple, list)) or not all(isinstance(n, int) and not isinstance(n, bool) for n in value):
        raise EngineError(BAD_PARAM, f"{what} is a tuple of integers, got {describe(value)}")
    return tuple(value)


def as_shape(value: Any) -> tuple[int, ...]:
    shape = as_integers(value)
    if problem := unrepresentable(shape):
        raise EngineError(BAD_PARAM, problem)
    return shape


def normalize_axis(axis: Any, ndim: int) -> tuple[int, ...]:
    """Axis parameters as a sorted tuple of non-negative ints; None means every axis."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) and not isinstance(axis, bool) else axis
    if not isinstance(axes, (tuple, list)) or not all(isinstance(a, int) and not isinstance(a, bool) for a in axes):
        raise EngineError(BAD_PARAM, f"axis must be an integer or a tuple of integers, got {describe(axis)}")
    result = []
    for a in axes:
        if not -ndim <= a < max(ndim, 1) or (ndim == 0 and a not in (0, -1)):
            raise EngineError(BAD_PARAM, f"axis {a} is out of range for an array of {ndim} dimensions")
        result.append(a % ndim if ndim else 0)
    if len(set(result)) != len(result):
        raise EngineError(BAD_PARAM, f"axis {axis!r} repeats an axis")
    return tuple(sorted(result)) if ndim else ()


def single_axis(axis: Any, ndim: int) -> int:
    if not isinstance(axis, int) or isinstance(axis, bool):
        raise EngineError(BAD_PARAM, f"axis must be an integer, got {describe(axis)}")
    if not -ndim <= axis < ndim:
        raise EngineError(BAD_PARAM, f"axis {axis} is out of range for an array of {ndim} dimensions")
    return axis % ndim


def reduced_shape(shape: tuple[int, ...], axis: tuple[int, ...], keepdims: bool) -> tuple[int, ...]:
    if keepdims:
        return tuple(1 if i in axis else n for i, n in enumerate(shape))
    return tuple(n for i, n in enumerate(shape) if i not in axis)


def batch_size(args: Sequence[Atom], batched: Sequence[bool]) -> int:
    return next(a.aval.shape[0] for a, b in zip(args, batched) if b)


def logical_ndim(atom: Atom, is_batched: bool) -> int:
    return atom.aval.ndim - (1 if is_batched else 0)
