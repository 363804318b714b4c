"""Dead-code elimination: keep only the equations the outputs depend on."""

from __future__ import annotations

from dataclasses import replace

from engine.ir import Function, Var


def eliminate_dead_code(fn: Function) -> Function:
    live = {o for o in fn.outputs if isinstance(o, Var)}
    kept = []
    for eqn in reversed(fn.equations):
        if eqn.output in live:
            kept.append(eqn)
            live.update(a for a in eqn.inputs if isinstance(a, Var))
    if len(kept) == len(fn.equations):
        return fn
    return replace(fn, equations=tuple(reversed(kept)))
