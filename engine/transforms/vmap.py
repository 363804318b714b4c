"""Batching: run a function over a leading batch axis of some inputs in one sweep."""

from __future__ import annotations

from collections.abc import Sequence

from engine.ir import Atom, Function, Var
from engine.primitives.broadcasting import materialize_batch
from engine.tracing import building, current_builder, read


def vmap_call(fn: Function, args: Sequence[Atom], batched: Sequence[bool]) -> tuple[list[Atom], list[bool]]:
    """Replay `fn` where the flagged args carry a leading batch axis; returns the outputs
    and whether each is batched (an output that does not depend on them is not)."""
    builder = current_builder()
    env: dict[Var, Atom] = dict(zip(fn.inputs, args))
    is_batched: set[Var] = {v for v, flag in zip(fn.inputs, batched) if flag}
    for eqn in fn.equations:
        builder.origin = eqn.origin
        inputs = [read(env, a) for a in eqn.inputs]
        flags = [isinstance(a, Var) and a in is_batched for a in eqn.inputs]
        if any(flags):
            env[eqn.output] = eqn.primitive.batch(inputs, flags, **eqn.kwargs)
            is_batched.add(eqn.output)
        else:
            env[eqn.output] = builder.bind(eqn.primitive, inputs, eqn.kwargs)
    builder.origin = None
    return [read(env, o) for o in fn.outputs], [isinstance(o, Var) and o in is_batched for o in fn.outputs]


def vmap(fn: Function, batched: Sequence[bool], size: int) -> Function:
    """The function mapped over a leading axis of length `size` of the flagged inputs;
    every output gets that axis."""
    with building() as builder:
        inputs = [
            Var(type(v.aval)((size, *v.aval.shape), v.aval.dtype) if flag else v.aval)
            for v, flag in zip(fn.inputs, batched)
        ]
        outputs, flags = vmap_call(fn, inputs, batched)
        outputs = [materialize_batch(o, flag, size) for o, flag in zip(outputs, flags)]
        return builder.function(inputs, fn.input_names, outputs)
