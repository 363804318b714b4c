"""The derivative as a formula: for each differentiated input, the gradient (or, at second
order, the Hessian-vector product, or the second derivative of a scalar function of one
scalar) as source in the expression language, which /v1/evaluate computes to /v1/grad's
numbers.

The derivative is the engine's own: the IR of the gradient (or of forward over reverse),
one output at a time, with the algebraic identities a person would apply
(`engine.transforms.identities`), common subexpressions merged, printed by
`engine.printing` as an expression or as a program naming what repeats.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from engine import derivatives, frontends
from engine.errors import BAD_INPUT, BAD_PARAM, EngineError
from engine.ir import Function, Literal, ShapedArray, Var
from engine.limits import DEFAULT_LIMITS, Limits
from engine.operations import Options, lookup
from engine.printing import Source, to_source
from engine.tasks import resolve
from engine.tracing import building, inline
from engine.transforms import eliminate_dead_code
from engine.transforms.identities import apply_identities

GRADIENT, HESSIAN_VECTOR_PRODUCT, SECOND_DERIVATIVE = "gradient", "hessian-vector product", "second derivative"
ORDERS = (1, 2)


@dataclass(frozen=True)
class Formulas:
    of: str  # GRADIENT, HESSIAN_VECTOR_PRODUCT or SECOND_DERIVATIVE
    formulas: dict[str, Source]  # by differentiated input, in wrt order
    vectors: dict[str, str]  # a Hessian-vector product's: input -> the name of its vector in the formulas
    nodes: int  # equations of the printed functions, together


def derivative_formulas(
    function: Mapping[str, Any],
    avals: Mapping[str, ShapedArray],
    wrt: Sequence[str] | None = None,
    order: int = 1,
    reduce: str = "none",
    limits: Limits = DEFAULT_LIMITS,
) -> Formulas:
    kind, definition = frontends.definition_of(function)
    if kind == "program":
        raise EngineError(
            BAD_INPUT,
            "a derivative formula is given for an expression or a graph; a program's would hold only on the path "
            "its inputs take (use /v1/grad for its numbers)",
            "/function/program",
        )
    return formulas_of(frontends.build_from_shapes(kind, definition, avals, limits), wrt, order, reduce)


def formulas_of(fn: Function, wrt: Sequence[str] | None = None, order: int = 1, reduce: str = "none") -> Formulas:
    """The derivative formulas of a built function (its input names are the formulas' names)."""
    if order not in ORDERS:
        raise EngineError(BAD_PARAM, f"order is 1 (the gradient) or 2 (second derivatives), got {order!r}", "/order")
    options = Options(wrt=None if wrt is None else tuple(wrt), reduce=reduce)
    if order == 1:
        positions, _ = resolve(fn, lookup("grad"), options)
        gradient = derivatives.gradient_function(fn, positions, reduce == "sum")
        return _printed(GRADIENT, gradient, fn, positions, first=1, vectors={})
    if reduce != "none":
        raise EngineError(BAD_PARAM, 'second derivatives are of a scalar function: reduce must be "none"', "/reduce")
    positions, _ = resolve(fn, lookup("hvp"), options)
    hvp = derivatives.hvp_function(fn, positions)
    first = 1 + len(positions)  # the outputs: the value, the gradients, then H v per input
    if len(positions) == 1 and not fn.inputs[positions[0]].aval.shape:
        return _printed(SECOND_DERIVATIVE, _along_one(hvp, fn), fn, positions, first, vectors={})
    vectors = _vector_names(fn, positions)
    named = replace(hvp, input_names=(*fn.input_names, *vectors.values()))
    return _printed(HESSIAN_VECTOR_PRODUCT, named, fn, positions, first, vectors)


def _printed(of: str, derivative: Function, fn: Function, positions: tuple[int, ...], first: int,
             vectors: dict[str, str]) -> Formulas:  # fmt: skip
    formulas, nodes = {}, 0
    for k, position in enumerate(positions):
        alone = eliminate_dead_code(replace(derivative, outputs=(derivative.outputs[first + k],)))
        simplified = apply_identities(alone)
        formulas[fn.input_names[position]] = to_source(simplified)
        nodes += len(simplified.equations)
    return Formulas(of, formulas, vectors, nodes)


def _along_one(hvp: Function, fn: Function) -> Function:
    """The Hessian-vector product of a function of one scalar with v = 1: f''(x)."""
    with building() as builder:
        inputs = [Var(v.aval) for v in fn.inputs]
        one = Literal(1.0, hvp.inputs[-1].aval.dtype)
        outputs = inline(hvp, [*inputs, one])
        return builder.function(inputs, fn.input_names, outputs)


def _vector_names(fn: Function, positions: tuple[int, ...]) -> dict[str, str]:
    """v for one differentiated input, v_<name> for several; underscores appended while a
    name is taken."""
    taken = set(fn.input_names)
    names = {}
    for position in positions:
        name = fn.input_names[position]
        vector = "v" if len(positions) == 1 else f"v_{name}"
        while vector in taken:
            vector += "_"
        taken.add(vector)
        names[name] = vector
    return names
