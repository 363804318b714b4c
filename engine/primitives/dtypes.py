"""Dtypes: numpy's promotion of mixed operands, and `convert`, the primitive that carries
it out. Every other primitive prepares its operands with `promote`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.errors import BAD_PARAM, EngineError
from engine.ir import DEFAULT_FLOAT, DTYPES, Atom, Literal, ShapedArray, Var, as_atom
from engine.primitives.common import elementwise_dependencies, primitive

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


def _convert_shape(x: ShapedArray, *, dtype: str) -> ShapedArray:
    if dtype not in DTYPES:
        raise EngineError(BAD_PARAM, f"unknown dtype {dtype!r}; expected one of {', '.join(DTYPES)}")
    return ShapedArray(x.shape, dtype)


def _convert_impl(xp, x, *, dtype):
    return xp.astype(x, getattr(xp, dtype))


convert = primitive(
    "convert",
    impl=_convert_impl,
    shape=_convert_shape,
    vjp=[lambda g, out, x, dtype: convert(g, dtype=x.aval.dtype)],
    batch=lambda args, batched, dtype: convert.bind(args[0], dtype=dtype),
    is_identity=lambda x, dtype: x.aval.dtype == dtype,
    linear=True,
    sparsity=elementwise_dependencies([True]),
)


def cast(atom: Atom, dtype: str) -> Atom:
    if isinstance(atom, Literal):
        return atom if atom.dtype == dtype else Literal(_PYTHON_TYPE[_KIND[dtype]](atom.value), dtype)
    if atom.aval.dtype == dtype:
        return atom
    return convert(atom, dtype=dtype)


def promote(args: Sequence[Any], *, floating: bool = False) -> list[Atom]:
    atoms = [as_atom(a) for a in args]
    dtype = result_dtype(atoms, floating=floating)
    return [cast(a, dtype) for a in atoms]


def promoted(args: list, params: dict) -> tuple[list[Atom], dict]:
    """The `prepare` of a primitive whose operands share numpy's promoted dtype."""
    return promote(args), params


def promoted_to_float(args: list, params: dict) -> tuple[list[Atom], dict]:
    """The `prepare` of a primitive defined on floating operands (integers become float64)."""
    return promote(args, floating=True), params
