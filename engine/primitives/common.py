"""What the primitive modules share: dtype promotion, broadcasting, axis handling and the
generic batching rules. Nothing here knows a particular primitive."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.errors import BAD_PARAM, DTYPE, SHAPE, EngineError
from engine.ir import DEFAULT_FLOAT, Atom, Literal, ShapedArray, Var, as_atom, describe
from engine.primitive import Primitive, register

_KIND = {"bool": 0, "int32": 1, "int64": 1, "float32": 2, "float64": 2}
_BITS = {"bool": 1, "int32": 32, "int64": 64, "float32": 32, "float64": 64}
_PYTHON_TYPE = {0: bool, 1: int, 2: float}


def result_dtype(atoms: Sequence[Atom], *, floating: bool = False) -> str:
    """numpy's promotion with Python numbers weakly typed (NEP 50), floats beating ints."""
    rank = lambda dtype: (_KIND[dtype], _BITS[dtype])  # noqa: E731
    strong = [a.aval.dtype for a in atoms if isinstance(a, Var)]
    weak = [a.dtype for a in atoms if isinstance(a, Literal)]
    dtype = max(strong or weak, key=rank)
    weak_kind = max((_KIND[d] for d in weak), default=0)
    if weak_kind > _KIND[dtype]:
        dtype = "int64" if weak_kind == 1 else DEFAULT_FLOAT
    if floating and _KIND[dtype] < 2:
        dtype = DEFAULT_FLOAT
    return dtype


def cast(atom: Atom, dtype: str) -> Atom:
    if isinstance(atom, Literal):
        return atom if atom.dtype == dtype else Literal(_PYTHON_TYPE[_KIND[dtype]](atom.value), dtype)
    if atom.aval.dtype == dtype:
        return atom
    from engine.primitives.elementwise import convert

    return convert(atom, dtype=dtype)


def promote(args: Sequence[Any], *, floating: bool = False) -> list[Atom]:
    atoms = [as_atom(a) for a in args]
    dtype = result_dtype(atoms, floating=floating)
    return [cast(a, dtype) for a in atoms]


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


def primitive(
    name: str,
    *,
    impl,
    shape,
    jvp=(),
    vjp=(),
    batch=None,
    prepare=None,
    is_identity=None,
    linear: bool = False,
) -> Primitive:
    """Define and register a primitive; the returned object is also the op users call.
    `is_identity(x, **params)` says when a call would return its operand unchanged, so
    that no equation is recorded for it."""
    prim = Primitive(
        name, impl=impl, shape=shape, jvp=jvp, vjp=vjp, batch=batch, prepare=prepare, is_identity=is_identity,
        linear=linear,
    )  # fmt: skip
    if batch is None:
        prim.batch = broadcasting_batch(prim)
    return register(prim)


def batch_size(args: Sequence[Atom], batched: Sequence[bool]) -> int:
    return next(a.aval.shape[0] for a, b in zip(args, batched) if b)


def logical_ndim(atom: Atom, is_batched: bool) -> int:
    return atom.aval.ndim - (1 if is_batched else 0)


def lift_batch_axis(atom: Atom, is_batched: bool, ndim: int) -> Atom:
    """A batched operand reshaped to (batch, 1, ..., 1, *shape) so that numpy's
    right-aligned broadcasting lines its own axes up with the unbatched operands'."""
    from engine.primitives.shape import reshape

    if not is_batched or atom.aval.ndim - 1 == ndim:
        return atom
    shape = atom.aval.shape
    return reshape(atom, shape=(shape[0],) + (1,) * (ndim - len(shape) + 1) + shape[1:])


def materialize_batch(atom: Atom, is_batched: bool, size: int) -> Atom:
    """An operand given a batch axis of `size` whether or not it had one."""
    from engine.primitives.shape import broadcast_to

    if is_batched:
        return atom
    return broadcast_to(atom, shape=(size, *atom.aval.shape))


def broadcasting_batch(prim: Primitive):
    """The batching rule of every primitive that broadcasts its operands like numpy."""

    def rule(args, batched, **params):
        ndim = max(logical_ndim(a, b) for a, b in zip(args, batched))
        lifted = [lift_batch_axis(a, b, ndim) for a, b in zip(args, batched)]
        return prim.bind(*lifted, **params)

    return rule
