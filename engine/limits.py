"""Every bound the engine holds a request to, in one structure.

Budgets of the function itself (source length, nesting depth, operations, program steps)
and sizes of its arrays (each input, the result, the largest intermediate, all the work).
Front-ends check the budgets while they parse and build; `boundary.prepare` checks the
sizes from static shapes before anything is allocated. Past a size the error is
`TOO_LARGE`, past a budget `LIMIT`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Limits:
    max_source_chars: int = 20_000
    max_depth: int = 64  # nesting depth of expressions (parens, unary ops, calls, binary chains)
    max_nodes: int = 20_000  # graph nodes, and equations recorded in any IR
    max_steps: int = 100_000  # program statements executed (while/for iterations count)
    max_trace_nodes: int = 1_000  # nodes a trace lists (inputs and equations), each with its value and adjoint
    max_array_elements: int = 4_000_000  # elements of any one array a request sends
    max_result_elements: int = 10_000_000  # elements of all the arrays of a result
    max_intermediate_elements: int = 50_000_000  # elements of the largest array computed
    max_live_elements: int = 200_000_000  # elements of all the arrays a running program holds at once
    max_total_elements: int = 4_000_000_000  # elements of all arrays computed, by a static bound (the work)


DEFAULT_LIMITS = Limits()
