"""Forward mode: push tangents through the equations alongside the primal values."""

from __future__ import annotations

from collections.abc import Sequence

from engine.ir import Atom, Function, ShapedArray, Var
from engine.primitives.broadcasting import broadcast_to
from engine.primitives.dtypes import convert
from engine.primitives.shape import zeros
from engine.tracing import current_builder, read


def jvp_call(fn: Function, primals: Sequence[Atom], tangents: dict[int, Atom]) -> tuple[list[Atom], list[Atom | None]]:
    """Replay `fn` on `primals` with tangents for the input positions in `tangents`.
    Returns the outputs and their tangents (None: identically zero)."""
    builder = current_builder()
    env: dict[Var, Atom] = dict(zip(fn.inputs, primals))
    tangent_of: dict[Var, Atom] = {fn.inputs[i]: t for i, t in tangents.items()}
    for eqn in fn.equations:
        builder.origin = eqn.origin
        args = [read(env, a) for a in eqn.inputs]
        out = builder.bind(eqn.primitive, args, eqn.kwargs)
        env[eqn.output] = out
        input_tangents = [tangent_of.get(a) if isinstance(a, Var) else None for a in eqn.inputs]
        if any(t is not None for t in input_tangents):
            builder.origin = eqn.origin.derivative()
            tangent = _output_tangent(eqn.primitive, out, args, input_tangents, eqn.kwargs)
            if tangent is not None:
                tangent_of[eqn.output] = tangent
    builder.origin = None
    outputs = [read(env, o) for o in fn.outputs]
    return outputs, [tangent_of.get(o) if isinstance(o, Var) else None for o in fn.outputs]


def _output_tangent(primitive, out, args, tangents, params):
    if primitive.linear:
        # A linear primitive maps tangents exactly as it maps values.
        filled = [t if t is not None else zeros(a.aval.shape, a.aval.dtype) for a, t in zip(args, tangents)]
        return primitive.bind(*filled, **params)
    total = None
    for position, tangent in enumerate(tangents):
        rule = primitive.jvp_rule(position)
        if tangent is None or rule is None:
            continue
        term = fit(rule(tangent, out, *args, **params), out.aval)
        total = term if total is None else total + term
    return total


def fit(term: Atom, aval: ShapedArray) -> Atom:
    """A rule's term in the dtype and shape of what it is the tangent of: partials made of
    constants alone are float64, and a broadcast operand's tangent is smaller."""
    if term.aval.dtype != aval.dtype:
        term = convert(term, dtype=aval.dtype)
    return term if term.aval.shape == aval.shape else broadcast_to(term, shape=aval.shape)
