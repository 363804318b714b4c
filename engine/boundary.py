"""The one boundary where a request is checked: `prepare` parses and builds the function
(cached by its text and its inputs' shapes), then binds it (`engine.tasks.bind`); `describe`
says what a request would cost, computing nothing.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine import cost, frontends
from engine.cache import WeightedCache
from engine.errors import BAD_INPUT, EngineError, pointer
from engine.frontends.inputs import aval_of
from engine.ir import Function, ShapedArray
from engine.limits import DEFAULT_LIMITS, Limits
from engine.operations import DEFAULT_OPTIONS, Options, lookup
from engine.tasks import ProgramTask, Task, assess, bind, sized, sized_extra


def prepare(
    function: Mapping[str, Any],
    inputs: Mapping[str, np.ndarray],
    operation: str,
    extra: Any = None,
    options: Options = DEFAULT_OPTIONS,
    limits: Limits = DEFAULT_LIMITS,
) -> Task | ProgramTask:
    """Everything about a request that can be known before computing, checked once:
    arrays' sizes and dtypes, the function (parsed and built), wrt, the extra's shapes, and
    the sizes of the result and of the work, from static shapes."""
    op = lookup(operation)
    arrays = {name: sized(array, pointer("inputs", name), limits, options.dtype) for name, array in inputs.items()}
    extra = sized_extra(op, extra, limits, options.dtype)
    kind, definition = frontends.definition_of(function)
    if kind == "program":
        frontends.check_program(definition, limits)
        return ProgramTask(op, definition, arrays, extra, options, limits)
    avals = tuple((name, aval_of(array)) for name, array in arrays.items())
    fn = _built(kind, definition if kind == "expression" else _canonical(definition), avals, limits)
    return bind(fn, operation, arrays, extra, options, limits)


# Functions built from expressions and graphs, by their text and their inputs' shapes: a
# client calling the same function in a loop (an optimiser) pays for parsing once.
BUILT = WeightedCache(max_bytes=64 << 20)


@BUILT.memoize(lambda fn: fn.approximate_bytes)
def _built(kind: str, text: str, avals: tuple[tuple[str, ShapedArray], ...], limits: Limits) -> Function:
    definition = text if kind == "expression" else json.loads(text)
    return frontends.build_from_shapes(kind, definition, dict(avals), limits)


def _canonical(graph: Any) -> str:
    """A graph's text with its keys sorted: the same graph gives the same text however sent.
    A graph that is not plain JSON data is given as it is, and refused by the front-end."""
    try:
        return json.dumps(graph, sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):
        raise EngineError(
            BAD_INPUT, "a graph is JSON data: objects, lists, strings and numbers", "/function/graph"
        ) from None


@dataclass(frozen=True)
class Description:
    """What is known of a request before computing: a program's parameters, or the cost of
    an expression's or a graph's operation; and the limit it would break, if any."""

    cost: cost.Cost | None
    parameters: list[str] | None
    limit_detail: str | None


def describe(
    function: Mapping[str, Any],
    avals: Mapping[str, ShapedArray],
    operation: str,
    options: Options = DEFAULT_OPTIONS,
    limits: Limits = DEFAULT_LIMITS,
) -> Description:
    """Shapes, cost and limits from shapes alone: nothing is computed. A program is only
    checked: its shapes are known when it runs."""
    lookup(operation)
    too_large = [f"{pointer('inputs', name)}: {detail}" for name, aval in avals.items()
                 if (detail := cost.array_limit_detail(aval.size, limits))]  # fmt: skip
    kind, definition = frontends.definition_of(function)
    if kind == "program":
        return Description(None, frontends.check_program(definition, limits), "; ".join(too_large) or None)
    fn = frontends.build_from_shapes(kind, definition, avals, limits)
    cost_of, detail = assess(fn, operation, options, limits)
    return Description(cost_of, None, "; ".join(too_large + ([detail] if detail else [])) or None)
