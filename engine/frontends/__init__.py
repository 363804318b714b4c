"""Three ways to say a function, one IR: an expression ("2*dot(x, x)"), a JSON graph of
named nodes, or a program (one `def`, run define-by-run on the inputs). All three share
the vocabulary of `engine.language` and report every fault as a located EngineError."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from engine.errors import BAD_INPUT, EngineError
from engine.frontends.expression import from_expression
from engine.frontends.graph import from_graph
from engine.frontends.inputs import avals_of
from engine.frontends.program import check_program, from_program
from engine.ir import Function, ShapedArray
from engine.limits import DEFAULT_LIMITS, Limits

KINDS = ("expression", "graph", "program")


def definition_of(function: Any) -> tuple[str, Any]:
    """A request's `function`, {"expression": str}, {"graph": {...}} or {"program": str}, as
    (kind, definition)."""
    if not isinstance(function, Mapping) or len(function) != 1 or next(iter(function)) not in KINDS:
        given = ", ".join(map(repr, function)) if isinstance(function, Mapping) else type(function).__name__
        raise EngineError(
            BAD_INPUT, f"function holds exactly one of {', '.join(KINDS)}; got {given or 'nothing'}", "/function"
        )
    ((kind, definition),) = function.items()
    return kind, definition


def build_from_shapes(kind: str, definition: Any, avals: Mapping[str, ShapedArray], limits: Limits) -> Function:
    """An expression or a graph needs only its inputs' shapes and dtypes to be built."""
    return (from_expression if kind == "expression" else from_graph)(definition, avals, limits)


def build(function: Mapping[str, Any], inputs: Mapping[str, np.ndarray], limits: Limits = DEFAULT_LIMITS) -> Function:
    """The IR of a request's `function` on these inputs (a program runs on them)."""
    kind, definition = definition_of(function)
    if kind == "program":
        return from_program(definition, inputs, limits)
    return build_from_shapes(kind, definition, avals_of(inputs), limits)


__all__ = [
    "KINDS", "Limits", "build", "build_from_shapes", "check_program", "definition_of", "from_expression", "from_graph",
    "from_program",
]  # fmt: skip
