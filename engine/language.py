"""The names a user may call, with numpy's signatures: one table for expressions,
programs, graphs and the `GET /v1/ops` catalogue.

Each entry wraps an engine op in the signature numpy users know (`reshape(x, (2, 3))`,
`concatenate([x, y], axis=0)`), so front-ends bind arguments with `inspect` and report
wrong arity or unknown keywords with the function's real signature.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from engine import ops
from engine.errors import ARITY, BAD_PARAM, UNKNOWN_NAME, EngineError


@dataclass(frozen=True)
class Function:
    name: str
    call: Callable
    doc: str
    differentiable: bool = True

    @cached_property
    def signature(self) -> inspect.Signature:
        # Computed once: inspecting a callable costs tens of microseconds, and a program's
        # loop calls the same function on every iteration.
        return inspect.signature(self.call)

    @property
    def arity(self) -> int:
        """How many positional arguments it takes (a list argument counts as one)."""
        return sum(
            1 for p in self.signature.parameters.values() if p.kind is p.POSITIONAL_OR_KEYWORD and p.default is p.empty
        )

    @property
    def parameters(self) -> list[str]:
        return [p.name for p in self.signature.parameters.values() if p.default is not p.empty]


def _unary(op):
    return lambda x: op(x)


def _binary(op):
    return lambda a, b: op(a, b)


def _reduction(op):
    return lambda x, axis=None, keepdims=False: op(x, axis=axis, keepdims=keepdims)


def _reshape(x, shape):
    return ops.reshape(x, shape=shape)


def _transpose(x, axes=None):
    return ops.transpose(x, axes=axes)


def _concatenate(arrays, axis=0):
    if not isinstance(arrays, (list, tuple)):
        raise EngineError(BAD_PARAM, "concatenate takes a list of arrays: concatenate([x, y])")
    return ops.concatenate(*arrays, axis=axis)


def _stack(arrays, axis=0):
    if not isinstance(arrays, (list, tuple)):
        raise EngineError(BAD_PARAM, "stack takes a list of arrays: stack([x, y])")
    return ops.stack(arrays, axis=axis)


def _softmax(x, axis=-1):
    return ops.softmax(x, axis=axis)


_ENTRIES = [
    ("add", _binary(ops.add), "a + b, broadcasting"),
    ("subtract", _binary(ops.subtract), "a - b, broadcasting"),
    ("multiply", _binary(ops.multiply), "a * b, broadcasting"),
    ("divide", _binary(ops.divide), "a / b, broadcasting"),
    ("power", _binary(ops.power), "a ** b; d/db is 0 where a is 0, as in PyTorch"),
    ("negative", _unary(ops.negative), "-x"),
    ("exp", _unary(ops.exp), "e ** x"),
    ("log", _unary(ops.log), "natural logarithm"),
    ("log1p", _unary(ops.log1p), "log(1 + x), accurate near 0"),
    ("expm1", _unary(ops.expm1), "exp(x) - 1, accurate near 0"),
    ("sqrt", _unary(ops.sqrt), "square root"),
    ("sin", _unary(ops.sin), "sine"),
    ("cos", _unary(ops.cos), "cosine"),
    ("tan", _unary(ops.tan), "tangent"),
    ("arcsin", _unary(ops.arcsin), "inverse sine"),
    ("arccos", _unary(ops.arccos), "inverse cosine"),
    ("arctan", _unary(ops.arctan), "inverse tangent"),
    ("sinh", _unary(ops.sinh), "hyperbolic sine"),
    ("cosh", _unary(ops.cosh), "hyperbolic cosine"),
    ("tanh", _unary(ops.tanh), "hyperbolic tangent"),
    ("sigmoid", _unary(ops.sigmoid), "1 / (1 + exp(-x)), stable for large |x|"),
    ("relu", _unary(ops.relu), "max(x, 0); relu'(0) = 0 as in PyTorch"),
    ("softplus", _unary(ops.softplus), "log(1 + exp(x)), stable for large |x|"),
    ("abs", _unary(ops.abs), "|x|; abs'(0) = 0 as in PyTorch"),
    ("sign", _unary(ops.sign), "-1, 0 or 1 (zero derivative)"),
    ("square", _unary(ops.square), "x * x"),
    ("maximum", _binary(ops.maximum), "elementwise maximum; ties split the gradient in half"),
    ("minimum", _binary(ops.minimum), "elementwise minimum; ties split the gradient in half"),
    ("where", lambda condition, x, y: ops.where(condition, x, y), "x where condition holds, else y"),
    ("dot", _binary(ops.dot), "numpy's dot for scalars, vectors and matrices"),
    ("matmul", _binary(ops.matmul), "matrix product (a @ b), numpy's rules for 1-D operands"),
    ("outer", _binary(ops.outer), "outer product of two vectors"),
    ("transpose", _transpose, "reverse (or permute by axes) the axes"),
    ("trace", _unary(ops.trace), "sum of the diagonal of a matrix"),
    ("inv", _unary(ops.inv), "matrix inverse"),
    ("solve", _binary(ops.solve), "x such that a @ x = b"),
    ("det", _unary(ops.det), "determinant"),
    ("logdet", _unary(ops.logdet), "log of the determinant (nan when it is negative, as torch.logdet)"),
    ("sum", _reduction(ops.sum), "sum over axis (all axes by default)"),
    ("mean", _reduction(ops.mean), "mean over axis (all axes by default)"),
    ("prod", _reduction(ops.prod), "product over axis; exact derivative with zeros"),
    ("max", _reduction(ops.max), "maximum over axis; ties share the gradient evenly"),
    ("min", _reduction(ops.min), "minimum over axis; ties share the gradient evenly"),
    ("logsumexp", _reduction(ops.logsumexp), "log(sum(exp(x))) over axis, stable for large x"),
    ("softmax", _softmax, "exp(x) / sum(exp(x)) along axis (default: the last)"),
    ("norm", _reduction(ops.norm), "Euclidean (Frobenius) norm over axis; derivative 0 at 0"),
    ("reshape", _reshape, "the same elements in a new shape (one size may be -1)"),
    ("concatenate", _concatenate, "join a list of arrays along an existing axis"),
    ("stack", _stack, "join a list of arrays along a new axis"),
    ("floor", _unary(ops.floor), "round down (zero derivative)"),
    ("ceil", _unary(ops.ceil), "round up (zero derivative)"),
    ("round", _unary(ops.round), "round half to even (zero derivative)"),
    ("stop_gradient", _unary(ops.stop_gradient), "the value, treated as a constant when differentiating"),
    ("detach", _unary(ops.stop_gradient), "alias of stop_gradient, as in PyTorch"),
    ("greater", _binary(ops.greater), "a > b (boolean, not differentiable)"),
    ("greater_equal", _binary(ops.greater_equal), "a >= b (boolean, not differentiable)"),
    ("less", _binary(ops.less), "a < b (boolean, not differentiable)"),
    ("less_equal", _binary(ops.less_equal), "a <= b (boolean, not differentiable)"),
    ("equal", _binary(ops.equal), "a == b (boolean, not differentiable)"),
    ("not_equal", _binary(ops.not_equal), "a != b (boolean, not differentiable)"),
]
_CONSTANT_VALUED = {"sign", "floor", "ceil", "round", "stop_gradient", "detach"} | {
    "greater", "greater_equal", "less", "less_equal", "equal", "not_equal",
}  # fmt: skip

FUNCTIONS: dict[str, Function] = {
    name: Function(name, call, doc, differentiable=name not in _CONSTANT_VALUED) for name, call, doc in _ENTRIES
}

# The method forms of the tutorials' code: x.sum(), x.mean(), x.norm(), and x.T.
METHODS = ("sum", "mean", "norm", "max", "min", "prod", "reshape", "transpose", "detach")


def lookup(name: str, location: str | None = None) -> Function:
    try:
        return FUNCTIONS[name]
    except KeyError:
        raise EngineError(UNKNOWN_NAME, f"unknown function {name!r}{suggestion(name, FUNCTIONS)}", location) from None


def suggestion(name: str, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def call(name: str, args: list, keywords: dict, location: str | None = None):
    """Apply a whitelisted function, checking its arguments against its signature."""
    function = lookup(name, location)
    try:
        function.signature.bind(*args, **keywords)
    except TypeError as error:
        raise EngineError(ARITY, f"{name}{function.signature}: {error}", location) from None
    try:
        return function.call(*args, **keywords)
    except EngineError as error:
        raise error.at(location) from None
