"""The names a user may call, with numpy's signatures: one table for expressions, programs,
graphs and the `GET /v1/ops` catalogue, filled by the ops' own declarations.

Each op is declared once, where it is defined: a primitive by its constructor (`doc=` and a
front door, `user=`, that gives it numpy's signature), a composite by `@declare(doc)` over a
function whose own signature is numpy's. Front-ends bind arguments with `inspect`, and report
wrong arity or unknown keywords with the function's real signature.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

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


FUNCTIONS: dict[str, Function] = {}


def declare(doc: str, *, name: str | None = None, differentiable: bool = True) -> Callable[[Callable], Callable]:
    """Make a function callable by users under its name (or `name`), with its own signature
    and this one line of documentation. A composite is differentiable through the primitives
    it is made of; a primitive's constructor says whether its rules give a derivative."""

    def register(call: Callable) -> Callable:
        called = name or call.__name__
        if called in FUNCTIONS:
            raise ValueError(f"{called} is declared twice")
        FUNCTIONS[called] = Function(called, call, doc, differentiable)
        return call

    return register


def alias(name: str, of: str, doc: str) -> None:
    """Another name for a declared function (PyTorch's, where it differs from numpy's)."""
    original = FUNCTIONS[of]
    declare(doc, name=name, differentiable=original.differentiable)(original.call)


# Front doors: numpy's signatures for primitives, which take their parameters by keyword.
def unary(op: Callable) -> Callable:
    return lambda x: op(x)


def binary(op: Callable) -> Callable:
    return lambda a, b: op(a, b)


def over_axes(op: Callable) -> Callable:
    return lambda x, axis=None, keepdims=False: op(x, axis=axis, keepdims=keepdims)


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


def listed(name: str, arrays) -> list:
    """The arrays of a function that takes a list of them (concatenate, stack)."""
    if not isinstance(arrays, (list, tuple)):
        raise EngineError(BAD_PARAM, f"{name} takes a list of arrays: {name}([x, y])")
    return list(arrays)


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
