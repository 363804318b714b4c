"""Reverse mode: replay the equations, then walk them backwards accumulating cotangents."""

from __future__ import annotations

from collections.abc import Sequence

from engine.ir import Atom, Function, Var, as_atom
from engine.primitives.broadcasting import unbroadcast
from engine.primitives.dtypes import convert
from engine.primitives.shape import zeros
from engine.tracing import current_builder, read


def _active(fn: Function, wrt: Sequence[int]) -> set[Var]:
    """The variables that depend on a `wrt` input: only they carry cotangents."""
    active = {fn.inputs[i] for i in wrt}
    for eqn in fn.equations:
        if any(isinstance(a, Var) and a in active for a in eqn.inputs):
            active.add(eqn.output)
    return active


def vjp_call(
    fn: Function,
    primals: Sequence[Atom],
    cotangent: Atom,
    wrt: Sequence[int],
    reached: dict[Var, Atom] | None = None,
) -> tuple[Atom, list[Atom]]:
    """Replay single-output `fn` on `primals`; returns its output and the cotangent of each
    `wrt` input given the output's `cotangent`. `reached`, when given, receives the cotangent
    of every variable of `fn` that the output's reaches (the adjoints a trace reports)."""
    builder = current_builder()
    cotangent = as_atom(cotangent)
    env: dict[Var, Atom] = dict(zip(fn.inputs, primals))
    for eqn in fn.equations:
        builder.origin = eqn.origin
        env[eqn.output] = builder.bind(eqn.primitive, [read(env, a) for a in eqn.inputs], eqn.kwargs)

    active = _active(fn, wrt)
    cotangents: dict[Var, Atom] = {fn.output: cotangent} if fn.output in active else {}
    for eqn in reversed(fn.equations):
        g = cotangents.pop(eqn.output, None)
        if g is None:
            continue
        if reached is not None:
            reached[eqn.output] = g
        builder.origin = eqn.origin.derivative()
        args = [read(env, a) for a in eqn.inputs]
        for position, atom in enumerate(eqn.inputs):
            rule = eqn.primitive.vjp_rule(position)
            if rule is None or not isinstance(atom, Var) or atom not in active:
                continue
            term = rule(g, env[eqn.output], *args, **eqn.kwargs)
            if term.aval.dtype != atom.aval.dtype:  # partials made of constants alone are float64
                term = convert(term, dtype=atom.aval.dtype)
            if term.aval.shape != atom.aval.shape:
                term = unbroadcast(term, atom.aval.shape)
            cotangents[atom] = cotangents[atom] + term if atom in cotangents else term
    builder.origin = None
    if reached is not None:
        reached.update(cotangents)  # what is left: the inputs'
    results = []
    for i in wrt:
        var = fn.inputs[i]
        results.append(cotangents.get(var) or zeros(var.aval.shape, var.aval.dtype))
    return read(env, fn.output), results
