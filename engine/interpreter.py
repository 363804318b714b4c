"""Running a Function on an array namespace.

A function is compiled once per backend into a flat list of steps over numbered slots;
each step frees the slots whose last reader it is, so peak memory follows the IR's
liveness, and running a cached plan costs little more than the array calls themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from operator import itemgetter
from typing import Any

import numpy as np

from engine import backend, integers
from engine.cache import TRANSFORMS
from engine.evaluation import NUMERIC_ERRORS, literal_array, numeric_failure
from engine.ir import Function, Literal, Var


class Plan:
    def __init__(self, fn: Function, xp: Any):
        self.xp = xp
        self.on_host = xp is backend.host()
        if backend.is_cupy(xp):
            self.run = backend.raising_linalg_errors(self.run)
        slots: dict[Var, int] = {v: i for i, v in enumerate(fn.inputs)}
        constants: list[tuple[int, Any]] = []

        def slot_of(atom) -> int:
            if isinstance(atom, Literal):
                # `[()]`: numpy's scalar type rather than a 0-d array (other namespaces keep
                # theirs), whose arithmetic costs a fraction of an array's on small operands.
                constants.append((len(slots) + len(constants), literal_array(xp, atom)[()]))
                return constants[-1][0]
            return slots[atom]

        last_reader: dict[Var, int] = {}
        for index, eqn in enumerate(fn.equations):
            for atom in eqn.inputs:
                if isinstance(atom, Var):
                    last_reader[atom] = index
        kept = {o for o in fn.outputs if isinstance(o, Var)}

        # Each step is (the implementation bound to xp and the parameters, what fetches its
        # operands from the slots, whether they come as a tuple to spread, its output slot, the
        # slots it frees, its origin): the loop in `run` only calls. An itemgetter fetches in
        # C where a list comprehension is a Python call a step (a tenth of a small step's time).
        self.steps = []
        for index, eqn in enumerate(fn.equations):
            inputs = tuple(slot_of(a) for a in eqn.inputs)
            out = len(slots) + len(constants)
            slots[eqn.output] = out
            freed = tuple(
                slots[a]
                for a in {a for a in eqn.inputs if isinstance(a, Var)}
                if last_reader[a] == index and a not in kept
            )
            impl = integers.checked(eqn.primitive.impl, eqn.output.aval.dtype)
            fetch = itemgetter(*inputs) if inputs else _no_operands
            spread = len(inputs) != 1  # itemgetter of one slot gives its value, not a tuple
            self.steps.append((partial(impl, xp, **eqn.kwargs), fetch, spread, out, freed, eqn.origin))
        self.outputs = tuple(slot_of(o) for o in fn.outputs)
        self.arity = len(fn.inputs)
        # The slots as a run starts: the constants in place, the rest to be filled.
        self.initial: list[Any] = [None] * (len(slots) + len(constants))
        for index, constant in constants:
            self.initial[index] = constant

    # Measured about 620 bytes a step (a tuple of slots, its freed slots, the parameters).
    BYTES_PER_STEP = 900

    @property
    def approximate_bytes(self) -> int:
        return self.BYTES_PER_STEP * (len(self.steps) + 1)

    # engine.evaluation.evaluate_equation's work, inlined: one errstate for the whole run
    # rather than one a step, which would cost more than a small step's array call.
    @backend.quietly
    def run(self, args: Sequence[Any]) -> list[Any]:
        values = self.initial.copy()
        values[: self.arity] = args
        for call, fetch, spread, out, freed, origin in self.steps:
            try:
                values[out] = call(*fetch(values)) if spread else call(fetch(values))
            except NUMERIC_ERRORS as error:
                raise numeric_failure(origin, error) from None
            for i in freed:
                values[i] = None
        return [values[i] for i in self.outputs]

    def run_on_host(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        """`run` on host (numpy) arrays, handing back host arrays."""
        arguments = arrays if self.on_host else [backend.to_backend(self.xp, a) for a in arrays]
        return [backend.to_host(r) for r in self.run(arguments)]


def _no_operands(values: list[Any]) -> tuple[()]:
    return ()


@TRANSFORMS.memoize(lambda compiled: compiled.approximate_bytes)
def plan(fn: Function, backend_name: str) -> Plan:
    return Plan(fn, backend.namespace(backend_name))


def run_on_host(fn: Function, arrays: Sequence[np.ndarray], backend_name: str = "numpy") -> list[np.ndarray]:
    """Run `fn` on host arrays (in input order), on the backend; returns host arrays."""
    return plan(fn, backend_name).run_on_host(arrays)
