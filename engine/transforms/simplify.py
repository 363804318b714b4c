"""Algebraic simplification of the few patterns that differentiation itself produces:
a cotangent added to itself (x * x gives two equal terms), chains of scalar factors
(2 * (2 * x)), and products with the broadcast ones that seed a gradient. Each pass
over an array costs a full read and write, so on large arrays these rewrites are what
brings a gradient close to the hand-written formula."""

from __future__ import annotations

from engine.ir import Equation, Function, Literal, Var
from engine.primitives.broadcasting import broadcast_to
from engine.primitives.elementwise import add, multiply
from engine.tracing import building, read


def _scaled_operand(eqn: Equation | None) -> tuple[Literal, Var] | None:
    """(c, v) when the equation is multiply(c, v) or multiply(v, c) with c a scalar literal."""
    if eqn is None or eqn.primitive is not multiply:
        return None
    a, b = eqn.inputs
    if isinstance(a, Literal) and isinstance(b, Var):
        return a, b
    if isinstance(b, Literal) and isinstance(a, Var):
        return b, a
    return None


def _is_ones(eqn: Equation | None) -> bool:
    return (
        eqn is not None
        and eqn.primitive is broadcast_to
        and isinstance(eqn.inputs[0], Literal)
        and eqn.inputs[0].value == 1
    )


def simplify(fn: Function) -> Function:
    with building() as builder:
        inputs = [Var(v.aval) for v in fn.inputs]
        env = dict(zip(fn.inputs, inputs))
        defined_by: dict[Var, Equation] = {}

        def record(atom):
            if isinstance(atom, Var) and builder.equations and builder.equations[-1].output is atom:
                defined_by[atom] = builder.equations[-1]
            return atom

        for eqn in fn.equations:
            builder.origin = eqn.origin
            args = [read(env, a) for a in eqn.inputs]
            if eqn.primitive is add and args[0] is args[1] and isinstance(args[0], Var):
                args, primitive = [args[0], Literal(2.0, args[0].aval.dtype)], multiply
            else:
                primitive = eqn.primitive
            if primitive is multiply:
                ones = [isinstance(a, Var) and _is_ones(defined_by.get(a)) for a in args]
                kept = [a for a, is_one in zip(args, ones) if not is_one]
                if len(kept) == 1 and kept[0].aval.shape == eqn.output.aval.shape:
                    env[eqn.output] = kept[0]
                    continue
                scaled = [_scaled_operand(defined_by.get(a)) if isinstance(a, Var) else None for a in args]
                literal_first = isinstance(args[0], Literal)
                constant, other = (args[0], 1) if literal_first else (args[1], 0)
                inner = scaled[other]
                fits = inner is not None and inner[1].aval.shape == eqn.output.aval.shape
                if isinstance(constant, Literal) and fits:
                    factor = multiply(constant, inner[0])
                    env[eqn.output] = record(multiply(factor, inner[1]))
                    continue
            env[eqn.output] = record(builder.bind(primitive, args, eqn.kwargs))
        builder.origin = None
        return builder.function(inputs, fn.input_names, [read(env, o) for o in fn.outputs])
