"""Static cost of a request, from shapes alone: what it would allocate and return, and the
limit it would break.

`engine.operations` calls this before any array exists, so oversized work (a Jacobian of
billions of elements, a huge intermediate) is refused in microseconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from engine.ir import Function, ShapedArray
from engine.limits import Limits


@dataclass(frozen=True)
class Cost:
    output: ShapedArray
    results: dict[str, tuple[int, ...]]  # name of each derivative array -> its shape
    result_elements: int  # elements of every array the response carries, the value included
    largest_intermediate: int  # elements of the largest array computed on the way (a bound)
    total_intermediate: int  # elements of all arrays computed (a bound on the work)
    operations: int  # equations of the function as given, before differentiation
    mode: str | None = None  # the Jacobian mode that would be used
    sweep: dict | None = None  # how a Jacobian or Hessian is swept where not in one dense batch (engine.sweeps)

    @property
    def approximate_bytes(self) -> int:
        """What one weighs in a cache: the record, its results' names and shapes, and a sweep's report."""
        return 600 + 250 * len(self.results) + (700 if self.sweep is not None else 0)


# Arrays a sweep computes per array of the function, by derivative order: the value, its
# tangent or cotangent, and the partial derivatives the rules form. The heaviest rules
# (prod, det, inv) reach 12.5 in first order and 48 in second; test_transforms checks these
# bounds on every primitive. Most functions stay far below: this bounds work, the deadline
# bounds time.
_ARRAYS_PER_VALUE = (1, 16, 64)


def estimate(
    fn: Function,
    results: dict[str, tuple[int, ...]],
    sweeps: Sequence[int],
    order: int,
    mode: str | None = None,
    stored_elements: int | None = None,
    sweep: dict | None = None,
) -> Cost:
    """Bounds on what an operation allocates, from the function's own shapes, in one pass over
    its equations: the transformed function is not built (for a large function that takes
    seconds, and the service checks this before any worker is used).

    A sweep works on arrays the size of the function's own, times the batch of basis vectors
    it carries (`sweeps`: one batch size per sweep): one for values, gradients and products,
    the output's size for a reverse Jacobian, an input's size for each forward sweep.
    `stored_elements`, where given, is what the results hold in a sparse format."""
    sizes = (*fn.array_sizes, fn.output.aval.size)
    if stored_elements is None:
        stored_elements = sum(math.prod(shape) for shape in results.values())
    return Cost(
        output=fn.output.aval,
        results=results,
        result_elements=fn.output.aval.size + stored_elements,
        largest_intermediate=max(sweeps, default=1) * max(sizes),
        # each sweep also carries its basis vectors, and the response its results
        total_intermediate=sum(sweeps) * (_ARRAYS_PER_VALUE[order] * sum(sizes) + max(sizes)) + stored_elements,
        operations=len(fn.equations),
        mode=mode,
        sweep=sweep,
    )


def limit_detail(cost: Cost, limits: Limits) -> str | None:
    """What a request of this cost would exceed, in words; None when it fits."""
    if cost.result_elements > limits.max_result_elements:
        return (
            f"the response would hold {cost.result_elements:,} array elements; the limit is "
            f"{limits.max_result_elements:,} (differentiate with respect to fewer inputs, or use vjp/jvp instead of "
            "a full Jacobian or Hessian)"
        )
    if cost.largest_intermediate > limits.max_intermediate_elements:
        return (
            f"computing it needs an array of {cost.largest_intermediate:,} elements; "
            f"the limit is {limits.max_intermediate_elements:,}"
        )
    if cost.total_intermediate > limits.max_total_elements:
        return (
            f"computing it takes {cost.total_intermediate:,} array elements in all; "
            f"the limit is {limits.max_total_elements:,}"
        )
    return None


def array_limit_detail(size: int, limits: Limits) -> str | None:
    if size > limits.max_array_elements:
        return f"the array has {size:,} elements; the limit is {limits.max_array_elements:,}"
    return None
