"""Partial evaluation: split a function into the part its known inputs decide and the rest.

With the primal inputs known, a derivative product (a JVP, a VJP, an HVP) splits into a
forward part, which computes the value and every intermediate the product reads (its
residuals), and a linear part, which maps residuals and a tangent or cotangent to the
product. Running the forward part once and keeping its residuals is linearization: each
later product costs only the linear part (JAX's `linearize` does the same by partial
evaluation of its jaxprs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from engine.ir import Function, Var
from engine.transforms.dce import eliminate_dead_code


@dataclass(frozen=True)
class Split:
    known: Function  # inputs: the known inputs; outputs: the residuals
    rest: Function  # inputs: the residuals, then the unknown inputs; outputs: the function's


def split_known(fn: Function, known: Sequence[int]) -> Split:
    """Split `fn` by which of its inputs (positions `known`) are known in advance."""
    known_vars = {fn.inputs[i] for i in known}
    known_equations, rest_equations = [], []
    for eqn in fn.equations:
        if all(not isinstance(atom, Var) or atom in known_vars for atom in eqn.inputs):
            known_equations.append(eqn)
            known_vars.add(eqn.output)
        else:
            rest_equations.append(eqn)
    # Residuals: what the rest reads of the known part, and the outputs the known part decides.
    read_by_rest = [atom for eqn in rest_equations for atom in eqn.inputs] + list(fn.outputs)
    residuals = list(dict.fromkeys(a for a in read_by_rest if isinstance(a, Var) and a in known_vars))
    known_inputs = [fn.inputs[i] for i in known]
    unknown = [i for i in range(len(fn.inputs)) if i not in set(known)]
    known_fn = eliminate_dead_code(
        Function(tuple(known_inputs), tuple(fn.input_names[i] for i in known), tuple(known_equations), tuple(residuals))
    )
    names = tuple(f"residual {n}" for n in range(len(residuals))) + tuple(fn.input_names[i] for i in unknown)
    rest = Function((*residuals, *(fn.inputs[i] for i in unknown)), names, tuple(rest_equations), tuple(fn.outputs))
    return Split(known_fn, rest)
