"""What the primitive modules share that needs no primitive: shape and axis arithmetic, the
dependency patterns of the sparsity rules, and `primitive`, the constructor every primitive
is declared with."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from scipy import sparse

from engine import language
from engine.backend import namespace
from engine.errors import BAD_PARAM, DTYPE, SHAPE, EngineError
from engine.ir import Atom, ShapedArray, describe, unrepresentable
from engine.primitive import DENSE, MAX_PATTERN_ENTRIES, Primitive, register


def primitive(
    name: str, *, doc: str | None = None, user: Callable | None = None, moves_elements: bool = False, **rules: Any
) -> Primitive:
    """Define and register a primitive, every rule given here (see `Primitive`); the returned
    object is also the op that rules and front-ends call. With `doc`, users may call it too:
    `user(primitive)` is its front door, a function with numpy's signature (`language.unary`,
    `binary`, `over_axes`), and it is differentiable unless every rule is None. A primitive
    that `moves_elements` (each output element a copy of an input element, or zero) has its
    sparsity rule read from its implementation (`moved_elements`)."""
    if moves_elements:
        rules["sparsity"] = moved_elements(rules["impl"])
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


# ---- dependency patterns: what the sparsity rules (see `Primitive`) are made of ----


def one_per_row(sources: np.ndarray, input_size: int) -> sparse.csr_array:
    """The pattern where output element r depends on input element sources[r] alone, or on
    none where sources[r] is negative."""
    reads = sources >= 0
    indptr = np.concatenate(([0], np.cumsum(reads, dtype=np.int64)))
    indices = sources[reads]
    return sparse.csr_array((np.ones(indices.size, bool), indices, indptr), shape=(sources.size, input_size))


def no_dependency(out: ShapedArray, x: ShapedArray) -> sparse.csr_array:
    return sparse.csr_array((out.size, x.size), dtype=bool)


def broadcast_dependency(x: ShapedArray, shape: tuple[int, ...]) -> sparse.csr_array:
    """Each element of x broadcast to `shape` reads the element of x it was broadcast from."""
    labels = np.arange(x.size).reshape(x.shape)
    return one_per_row(np.broadcast_to(labels, shape).ravel(), x.size)


def elementwise_dependencies(differentiable: Sequence[bool]) -> Callable:
    """The sparsity rule of an elementwise primitive that broadcasts its operands: output
    element r depends on the element each differentiable operand broadcasts to r."""

    def rule(out: ShapedArray, *inputs: ShapedArray, **params: Any) -> list:
        return [
            broadcast_dependency(x, out.shape) if depends else no_dependency(out, x)
            for x, depends in zip(inputs, differentiable)
        ]

    return rule


def moved_elements(impl: Callable) -> Callable:
    """The exact sparsity rule of a primitive that only moves elements (each output element is
    a copy of one input element, or zero): its own implementation run on labels, every input
    element numbered from 1 across all inputs, tells which element each output copies."""

    def rule(out: ShapedArray, *inputs: ShapedArray, **params: Any) -> list:
        starts = np.cumsum([1] + [x.size for x in inputs])
        labels = [np.arange(start, start + x.size).reshape(x.shape) for start, x in zip(starts, inputs)]
        moved = np.asarray(impl(namespace("numpy"), *labels, **params)).ravel()
        return [
            one_per_row(np.where((moved >= start) & (moved < start + x.size), moved - start, -1), x.size)
            for start, x in zip(starts, inputs)
        ]

    return rule


def per_matrix_dependency(x: ShapedArray, core_ndim: int, out: ShapedArray, out_core_ndim: int) -> Any:
    """Each output element depends on all of the one input block its stack index broadcasts
    from: x is a stack of blocks of `core_ndim` axes, the output one of `out_core_ndim` axes
    (a matrix function: block-diagonal over the stack, dense within each matrix)."""
    stack = x.shape[: x.ndim - core_ndim]
    block = math.prod(x.shape[x.ndim - core_ndim :])
    if out.size * block > MAX_PATTERN_ENTRIES:
        return DENSE
    out_stack = out.shape[: out.ndim - out_core_ndim]
    out_block = math.prod(out.shape[out.ndim - out_core_ndim :])
    sources = np.broadcast_to(np.arange(math.prod(stack)).reshape(stack), out_stack).ravel()
    first_columns = np.repeat(sources * block, out_block)
    indices = (first_columns[:, None] + np.arange(block)).ravel()
    indptr = np.arange(out.size + 1) * block
    return sparse.csr_array((np.ones(indices.size, bool), indices, indptr), shape=(out.size, x.size))
