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
from engine.frontends.limits import DEFAULT_LIMITS, Limits
from engine.frontends.program import check_program, from_program
from engine.ir import Function

KINDS = ("expression", "graph", "program")


def build(function: Mapping[str, Any], inputs: Mapping[str, np.ndarray], limits: Limits = DEFAULT_LIMITS) -> Function:
    """The IR of a request's `function`: {"expression": str}, {"graph": {...}} or {"program": str}."""
    if not isinstance(function, Mapping) or len(function) != 1 or next(iter(function)) not in KINDS:
        given = ", ".join(map(repr, function)) if isinstance(function, Mapping) else type(function).__name__
        raise EngineError(
            BAD_INPUT, f"function holds exactly one of {', '.join(KINDS)}; got {given or 'nothing'}", "/function"
        )
    ((kind, definition),) = function.items()
    if kind == "program":
        return from_program(definition, inputs, limits)
    avals = avals_of(inputs)
    if kind == "expression":
        return from_expression(definition, avals, limits)
    return from_graph(definition, avals, limits)


__all__ = ["KINDS", "Limits", "build", "check_program", "from_expression", "from_graph", "from_program"]
