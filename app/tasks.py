"""What the API process hands a worker, what comes back, and the size checks both sides run.

No web imports: a spawned worker imports this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from app.errors import TooLargeError
from engine import cost
from engine.frontends import Limits
from engine.ir import Function


@dataclass(frozen=True)
class SizeLimits:
    max_result_elements: int
    max_intermediate_elements: int
    max_total_elements: int


@dataclass(frozen=True)
class Task:
    """One request's work. Expressions and graphs arrive built (`function`); a program
    arrives as source, since it is built by running it on the inputs (define-by-run)."""

    operation: str
    inputs: dict[str, np.ndarray]
    sizes: SizeLimits
    budgets: Limits
    function: Function | None = None
    program: str | None = None
    wrt: tuple[str, ...] | None = None
    reduce: str = "none"
    mode: str = "auto"
    cotangent: np.ndarray | None = None
    tangents: dict[str, np.ndarray] | None = None
    backend: str = "numpy"


@dataclass(frozen=True)
class Outcome:
    results: dict[str, Any]  # response field -> array, {name: array}, {name: {name: array}} or a word
    nodes: int
    compute_seconds: float


def result_limit_detail(elements: int, sizes: SizeLimits) -> str | None:
    if elements > sizes.max_result_elements:
        return (
            f"the response would hold {elements:,} array elements; the limit is {sizes.max_result_elements:,} "
            "(differentiate with respect to fewer inputs, or use vjp/jvp instead of a full Jacobian or Hessian)"
        )
    return None


def intermediate_limit_detail(estimate: cost.Cost, sizes: SizeLimits) -> str | None:
    if estimate.largest_intermediate > sizes.max_intermediate_elements:
        return (
            f"computing it needs an array of {estimate.largest_intermediate:,} elements; "
            f"the limit is {sizes.max_intermediate_elements:,}"
        )
    if estimate.total_intermediate > sizes.max_total_elements:
        return (
            f"computing it takes {estimate.total_intermediate:,} array elements in all; "
            f"the limit is {sizes.max_total_elements:,}"
        )
    return None


def check_sizes(fn: Function, task: Task) -> cost.Cost:
    """Refuse, from shapes alone (one pass over the function's equations), work whose result
    or intermediates are over the limits."""
    estimate = cost.estimate(fn, task.operation, wrt=task.wrt, mode=task.mode, reduce=task.reduce)
    sizes = task.sizes
    detail = result_limit_detail(estimate.result_elements, sizes) or intermediate_limit_detail(estimate, sizes)
    if detail:
        raise TooLargeError(detail)
    return estimate
