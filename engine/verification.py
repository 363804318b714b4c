"""Answers that check themselves (`verify: true`): a derivative compared with central finite
differences along one or a few directions, at the cost of two more evaluations of the
function (or, for second derivatives, of its gradient) per direction, never a dense
finite-difference Jacobian.

What is compared, for each operation:
- jvp: the answer J t with the difference of the function along the request's tangents t.
- jacobian: J d, contracted from the answer, with the difference along random d.
- grad and vjp (reverse mode): through the adjoint identity <v, J d> = <J^T v, d>: the
  answer dotted with random d, against v dotted with the difference along d (v is the
  cotangent, or the ones of the gradient of a sum, or 1).
- hessian: H d, contracted from the answer, with the difference of the gradient along d.
- hvp: the answer H t with the difference of the gradient along the request's tangents t.

The step. An input moves to x +- h d: h = cbrt(eps) of the computation's dtype (6.1e-6 in
float64, 4.9e-3 in float32), which balances a central difference's truncation error (h^2)
against its rounding error (eps / h); a random d has entries uniform in [-1, 1) times
max(|x|, 1), so each entry moves by a step relative to its own magnitude. One random
direction detects a wrong derivative: the error's projection on it vanishes with probability
0. The request's own tangents are scaled as a whole so that the largest moves by h max(|x|, 1).
The directions are the same for every request (a fixed seed), so a verdict can be reproduced.

The verdict. With a the derivative's directional value and b the difference's, the error is
max |a - b| / (max(|a|, |b|) + rounding / tolerance): `rounding` bounds what rounding alone
makes them differ by, 64 eps times the size of the terms they are made of (an inner product's
before they cancel; the differenced values over the step), so that a derivative near zero is
not failed for the difference's noise. It passes when the error is at most the tolerance:
1e-6 in float64, 1e-2 in float32, where a central difference with this step is good to about
eps^(2/3) of the scale (4e-11 and 2e-5) times the function's third derivative; a wrong rule is
off by a factor, not by 1e-6. A program is built again at each perturbed point; when it takes
another path (its IR differs), the differences mean nothing and the verdict is "path-changed".
A function that fails at a perturbed point, or a derivative or difference that is not finite,
is "inconclusive".
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from engine import derivatives, interpreter, sweeps
from engine.cache import WeightedCache
from engine.errors import EngineError

if TYPE_CHECKING:
    from engine.tasks import Task

RANDOM_DIRECTIONS = 1
SEED = 0
TOLERANCE = {"float64": 1e-6, "float32": 1e-2}
ROUNDING_FACTOR = 64  # roundings a function's value may carry, in units of eps times its size

PASS, FAIL, PATH_CHANGED, INCONCLUSIVE = "pass", "fail", "path-changed", "inconclusive"


def step_of(dtype: str) -> float:
    return float(np.cbrt(np.finfo(dtype).eps))


@dataclass(frozen=True)
class Differenced:
    """A quantity compared (flat, float64) and the size of the terms it is made of, which
    bounds its rounding error: an inner product's terms before they cancel."""

    value: np.ndarray
    size: np.ndarray


@dataclass(frozen=True)
class Check:
    """How one operation is verified. `differenced(outputs)` is the quantity whose difference
    is taken, from the function's outputs (order 1) or the gradient's (order 2);
    `predicted(answer fields, direction)` is the derivative's value along a direction: a
    flat float64 array and the size of its terms."""

    order: int
    along_tangents: bool  # the request's tangents are the direction, else random ones
    compared: str
    differenced: Callable[[Task, list[np.ndarray]], Differenced]
    predicted: Callable[[Task, dict[str, Any], list[np.ndarray]], Differenced]


def _flat(arrays: Sequence[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(a, dtype=np.float64).reshape(-1) for a in arrays]) if arrays else np.zeros(0)


def _same(arrays: Sequence[np.ndarray]) -> Differenced:
    flat = _flat(arrays)
    return Differenced(flat, np.abs(flat))


def _dot(a: np.ndarray, b: np.ndarray) -> float:
    """<a, b> summed in float64: by BLAS for float64 arrays, else cast as it goes (no copies)."""
    a, b = np.asarray(a).reshape(-1), np.asarray(b).reshape(-1)
    if a.dtype == b.dtype == np.float64:
        return float(np.dot(a, b))
    return float(np.einsum("i,i->", a, b, dtype=np.float64))


def _inner(left: Sequence[np.ndarray], right: Sequence[np.ndarray]) -> Differenced:
    """sum_i <left_i, right_i>, and |left| |right|, which bounds the sum of its terms'
    magnitudes (Cauchy-Schwarz) at the cost of dot products, not of passes of numpy."""
    value = size = 0.0
    for a, b in zip(left, right):
        value += _dot(a, b)
        size += float(np.sqrt(_dot(a, a) * _dot(b, b)))
    return Differenced(np.array([value]), np.array([size]))


def _contract(blocks: Sequence[Any], direction: Sequence[np.ndarray]) -> Differenced:
    """sum_i blocks_i . d_i over each d_i's axes: a Jacobian's (or a Hessian row's) product
    with d. A block is an array, or a sparse one (engine.sweeps' coo or csr)."""
    value = sum(_times(b, d, magnitudes=False) for b, d in zip(blocks, direction))
    size = sum(_times(b, d, magnitudes=True) for b, d in zip(blocks, direction))
    return Differenced(np.reshape(value, -1).astype(np.float64), np.reshape(size, -1).astype(np.float64))


def _times(block: Any, vector: np.ndarray, magnitudes: bool) -> np.ndarray:
    """block . vector, or |block| . |vector|, contracted over the vector's axes."""
    if not isinstance(block, dict):
        if magnitudes:
            block, vector = np.abs(block), np.abs(vector)
        return np.tensordot(block, vector, axes=vector.ndim)
    rows, columns, data = sweeps.entries(block)
    read = vector.reshape(-1)[columns]
    terms = np.abs(data) * np.abs(read) if magnitudes else data * read
    return np.bincount(rows, weights=terms, minlength=block["shape"][0])


def _names(task: Task) -> list[str]:
    return [task.function.input_names[i] for i in task.positions]


def _output(task: Task, outputs: list[np.ndarray]) -> Differenced:
    return _same(outputs[:1])


def _summed_output(task: Task, outputs: list[np.ndarray]) -> Differenced:
    output = np.asarray(outputs[0], dtype=np.float64)
    return Differenced(np.array([output.sum()]), np.array([np.abs(output).sum()]))


def _cotangent_times_output(task: Task, outputs: list[np.ndarray]) -> Differenced:
    return _inner([task.arguments[len(task.function.inputs)]], outputs[:1])


def _gradients(task: Task, outputs: list[np.ndarray]) -> Differenced:
    return _same(outputs[1:])


def _per_input(field: str) -> Callable[[Task, dict[str, Any], list[np.ndarray]], Differenced]:
    return lambda task, fields, direction: _inner([fields[field][n] for n in _names(task)], direction)


def _jacobian_times(task: Task, fields: dict[str, Any], direction: list[np.ndarray]) -> Differenced:
    return _contract([fields["jacobian"][n] for n in _names(task)], direction)


def _hessian_times(task: Task, fields: dict[str, Any], direction: list[np.ndarray]) -> Differenced:
    rows = [_contract([fields["hessian"][a][b] for b in _names(task)], direction) for a in _names(task)]
    return Differenced(_flat([r.value for r in rows]), _flat([r.size for r in rows]))


CHECKS: dict[str, Check] = {
    "grad": Check(1, False, "adjoint identity: <gradient, d> against the difference along d",
                  lambda task, outputs: (_summed_output if task.reduce_sum else _output)(task, outputs),
                  _per_input("gradient")),
    "vjp": Check(1, False, "adjoint identity: <vjp, d> against <cotangent, difference along d>",
                 _cotangent_times_output, _per_input("vjp")),
    "jvp": Check(1, True, "jvp against the difference along the tangents",
                 _output, lambda task, fields, direction: _same([fields["jvp"]])),
    "jacobian": Check(1, False, "J d against the difference along d", _output, _jacobian_times),
    "hessian": Check(2, False, "H d against the difference of the gradient along d", _gradients, _hessian_times),
    "hvp": Check(2, True, "hvp against the difference of the gradient along the tangents",
                 _gradients, lambda task, fields, direction: _same([fields["hvp"][n] for n in _names(task)])),
}  # fmt: skip


def verify(task: Task, fields: dict[str, Any], backend_name: str = "numpy") -> dict[str, Any]:
    """The check of `task`'s answer `fields`: the response's meta.verification."""
    check = CHECKS[task.operation.name]
    fn = task.function
    dtype = fn.output.aval.dtype
    eps, step, tolerance = float(np.finfo(dtype).eps), step_of(dtype), TOLERANCE[dtype]
    inputs = list(task.arguments[: len(fn.inputs)])
    directions = _directions(task, check, inputs, step)
    outputs_at = _evaluator(task, check, backend_name)
    errors, evaluations = [], 0
    # One buffer per moved input for both sides: what is differenced is copied out of the
    # outputs before the other side is computed, and fresh arrays cost page faults here.
    buffers = {position: np.empty_like(inputs[position]) for position in task.positions}
    for displacement, length in directions:
        sides = []
        for move in (np.add, np.subtract):
            moved = list(inputs)
            for position, delta in zip(task.positions, displacement):
                moved[position] = move(inputs[position], delta, out=buffers[position])
            try:
                outputs = outputs_at(moved)
            except EngineError as error:
                detail = f"the function fails at a perturbed input: {error.message}"
                return _report(INCONCLUSIVE, None, detail, tolerance, step, check, len(directions), evaluations + 1)
            evaluations += 1
            if outputs is None:
                return _report(PATH_CHANGED, None, _PATH_CHANGED, tolerance, step, check, len(directions), evaluations)
            sides.append(check.differenced(task, outputs))
        above, below = sides
        estimate = Differenced((above.value - below.value) / (2 * length), np.maximum(above.size, below.size) / length)
        errors.append(_error(check.predicted(task, fields, displacement), estimate, eps, tolerance))
    verdict, error, detail = _verdict(errors, tolerance)
    if verdict == FAIL and any(eqn.primitive.name == "stop_gradient" for eqn in fn.equations):
        detail += "; the function uses stop_gradient (detach), whose derivative is zero by definition"
    return _report(verdict, error, detail, tolerance, step, check, len(directions), evaluations)


_PATH_CHANGED = (
    "the program took another path at a perturbed input (its control flow depends on values this close to the "
    "inputs), so a finite difference does not measure this derivative"
)


def _report(verdict, error, detail, tolerance, step, check, directions, evaluations) -> dict[str, Any]:
    return {"verdict": verdict, "error": error, "tolerance": tolerance, "step": step, "directions": directions,
            "evaluations": evaluations, "compared": check.compared, "detail": detail}  # fmt: skip


def _directions(
    task: Task, check: Check, inputs: list[np.ndarray], step: float
) -> list[tuple[list[np.ndarray], float]]:
    """Each direction as the displacement of each differentiated input (float64, in wrt
    order) and the length its difference is divided by: the request's tangents times the
    step that moves the largest entry by `step` times max(|x|, 1), divided by that step; or a
    random displacement (already a step long), divided by 1, to be dotted with the answer."""
    moving = [inputs[p] for p in task.positions]
    if check.along_tangents:
        tangents = [np.asarray(t, dtype=np.float64) for t in task.arguments[len(task.function.inputs) :]]
        largest = max((np.abs(t).max(initial=0.0) for t in tangents), default=0.0)
        magnitude = max((np.abs(x).max(initial=0.0) for x in moving), default=0.0)
        length = step * max(magnitude, 1.0) / largest if largest > 0 else step
        return [([t * length for t in tangents], length)]
    return [
        ([_random_displacement(p, k, x, step) for p, x in enumerate(moving)], 1.0) for k in range(RANDOM_DIRECTIONS)
    ]


def _random_displacement(position: int, direction: int, x: np.ndarray, step: float) -> np.ndarray:
    """Uniform in [-step, step) times max(|x|, 1), elementwise, in x's dtype. Rounding
    x + displacement to the dtype moves it by eps |x|, at most eps / step = eps^(2/3) of the
    displacement: far below the tolerance."""
    displacement = _uniform(x.shape, x.dtype.str, position, direction) * x.dtype.type(step)
    if x.size and (x.max() > 1 or x.min() < -1):  # else max(|x|, 1) is 1: two passes, not three
        displacement *= np.maximum(np.abs(x), 1)
    return displacement


# Random numbers cost more than the rest of a check on a network's weights; the directions are
# the same for every request (a fixed seed), so they are drawn once per shape, in each process.
DIRECTIONS = WeightedCache(max_bytes=64 << 20)


@DIRECTIONS.memoize(lambda direction: direction.nbytes)
def _uniform(shape: tuple[int, ...], dtype: str, position: int, direction: int) -> np.ndarray:
    """Uniform numbers in [-1, 1) (any direction with no preferred axis detects an error),
    drawn for the `position`-th differentiated input's `direction`-th direction."""
    values = np.random.default_rng((SEED, position, direction)).uniform(-1.0, 1.0, shape).astype(dtype)
    values.flags.writeable = False
    return values


def _evaluator(task: Task, check: Check, backend_name: str) -> Callable[[list[np.ndarray]], list[np.ndarray] | None]:
    """Outputs at moved inputs: the function's (order 1) or its gradient's (order 2). For a
    program, None when it takes another path there."""
    fn = task.function
    evaluated = fn if check.order == 1 else derivatives.gradient_function(fn, task.positions, False)

    def outputs(moved: list[np.ndarray]) -> list[np.ndarray] | None:
        if task.rebuild is not None and task.rebuild(dict(zip(fn.input_names, moved))).key != fn.key:
            return None
        return interpreter.run_on_host(evaluated, moved, backend_name)

    return outputs


def _error(predicted: Differenced, estimate: Differenced, eps: float, tolerance: float) -> float:
    """max |a - b| / (max(|a|, |b|) + rounding / tolerance), the derivative's value a against
    the difference's b, where `rounding` bounds what rounding alone can make them differ by;
    nan where either is not finite."""
    if not (np.all(np.isfinite(predicted.value)) and np.all(np.isfinite(estimate.value))):
        return float("nan")
    difference = np.abs(predicted.value - estimate.value).max(initial=0.0)
    if difference == 0:
        return 0.0
    size = max(np.abs(predicted.value).max(initial=0.0), np.abs(estimate.value).max(initial=0.0))
    rounding = ROUNDING_FACTOR * eps * (predicted.size.max(initial=0.0) + estimate.size.max(initial=0.0))
    return float(difference / (size + rounding / tolerance))


def _verdict(errors: list[float], tolerance: float) -> tuple[str, float | None, str]:
    if any(np.isnan(e) for e in errors):
        return INCONCLUSIVE, None, "the derivative or its difference is not finite here (a step may leave the domain)"
    error = max(errors, default=0.0)
    if error <= tolerance:
        return PASS, error, "the derivative agrees with finite differences"
    return FAIL, error, f"the derivative differs from finite differences by {error:.2g} of its size"
