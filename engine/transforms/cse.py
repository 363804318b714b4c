"""Common-subexpression elimination: equations that compute the same primitive on the
same operands with the same parameters are computed once. Reverse mode emits such
twins often (x * x gives two equal cotangent terms)."""

from __future__ import annotations

from dataclasses import replace

from engine.ir import Function, Literal, Var


def eliminate_common_subexpressions(fn: Function) -> Function:
    renamed: dict[Var, Var] = {}
    seen: dict[tuple, Var] = {}
    kept = []

    def rename(atom):
        return renamed.get(atom, atom) if isinstance(atom, Var) else atom

    for eqn in fn.equations:
        inputs = tuple(rename(a) for a in eqn.inputs)
        key = (eqn.primitive.name, tuple(a if isinstance(a, Literal) else id(a) for a in inputs), eqn.params)
        if key in seen:
            renamed[eqn.output] = seen[key]
            continue
        seen[key] = eqn.output
        kept.append(eqn if inputs == eqn.inputs else replace(eqn, inputs=inputs))
    if len(kept) == len(fn.equations):
        return fn
    return replace(fn, equations=tuple(kept), outputs=tuple(rename(o) for o in fn.outputs))
