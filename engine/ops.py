"""The engine's vocabulary: every op a function can use, primitives and composites alike.

Composites are built from primitives and get their derivatives from them; each says why
it is not a primitive where that is not obvious. Front-ends and derivative rules both
call these, so everything written here can be differentiated to any order.
"""

from __future__ import annotations

from engine.errors import SHAPE, EngineError
from engine.ir import define_operators
from engine.primitives.broadcasting import broadcast_to, reshape, sum
from engine.primitives.dtypes import convert, promote
from engine.primitives.elementwise import (
    abs,
    add,
    arccos,
    arcsin,
    arctan,
    ceil,
    cos,
    cosh,
    divide,
    equal,
    exp,
    expm1,
    floor,
    greater,
    greater_equal,
    less,
    less_equal,
    log,
    log1p,
    maximum,
    minimum,
    multiply,
    negative,
    not_equal,
    power,
    round,
    sigmoid,
    sign,
    sin,
    sinh,
    softplus,
    sqrt,
    stop_gradient,
    subtract,
    tan,
    tanh,
    where,
)
from engine.primitives.linalg import adjugate, det, inv, logdet, matmul, solve
from engine.primitives.reductions import logsumexp, max, mean, min, norm, prod, softmax
from engine.primitives.shape import concatenate, eye, full, getitem, stack, zeros
from engine.primitives.shape import transpose as _transpose


def transpose(x, axes=None):
    return _transpose(x, axes=axes)


def relu(x):
    # A select rather than maximum(x, 0): maximum would split the gradient at 0, while
    # PyTorch defines relu'(0) = 0.
    (x,) = promote([x])
    return where(greater(x, 0), x, 0)


def square(x):
    (x,) = promote([x])
    return x * x


def dot(a, b):
    """numpy's dot for the cases where it means one thing: scalars, vectors, matrices."""
    a, b = promote([a, b])
    if a.aval.ndim == 0 or b.aval.ndim == 0:
        return a * b
    if b.aval.ndim > 2:
        raise EngineError(SHAPE, "dot of arrays with more than two dimensions is ambiguous; use matmul")
    return matmul(a, b)


def outer(a, b):
    a, b = promote([a, b])
    return reshape(a, shape=(a.aval.size, 1)) * reshape(b, shape=(1, b.aval.size))


def trace(a):
    (a,) = promote([a])
    if a.aval.ndim != 2:
        raise EngineError(SHAPE, f"trace needs a matrix, got shape {list(a.aval.shape)}")
    rows, columns = a.aval.shape
    return sum(a * eye(rows=rows, columns=columns, dtype=a.aval.dtype))


detach = stop_gradient

define_operators(
    add=add, subtract=subtract, multiply=multiply, divide=divide, power=power, matmul=matmul, negative=negative,
    getitem=getitem, less=less, less_equal=less_equal, greater=greater, greater_equal=greater_equal,
    transpose=transpose,
)  # fmt: skip

__all__ = [
    "abs", "add", "adjugate", "arccos", "arcsin", "arctan", "broadcast_to", "ceil", "concatenate", "convert", "cos",
    "cosh", "det", "detach", "divide", "dot", "equal", "exp", "expm1", "eye", "floor", "full", "getitem",
    "greater", "greater_equal", "inv", "less", "less_equal", "log", "log1p", "logdet", "logsumexp", "matmul",
    "max", "maximum", "mean", "min", "minimum", "multiply", "negative", "norm", "not_equal", "outer", "power",
    "prod", "relu", "reshape", "round", "sigmoid", "sign", "sin", "sinh", "softmax", "softplus", "solve",
    "sqrt", "square", "stack", "stop_gradient", "subtract", "sum", "tan", "tanh", "trace", "transpose",
    "where", "zeros",
]  # fmt: skip
