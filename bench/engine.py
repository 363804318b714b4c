"""Engine speed beside PyTorch eager (and JAX jit when installed), in one run.

    .venv/bin/python -m bench.engine     (as a module: a script in bench/ would shadow the engine package)

Each figure is the median time of one call, over repeated calls after a warm-up (so the
engine's transformed-function cache and JAX's compilation are excluded, as in steady
serving), the columns of a row sampled in turn. The engine is called through `engine.api`
(a built function's value and derivatives), except in the row that says it runs the
service's path. The ratio column is engine / reference: below 1 means the engine is faster.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable

import numpy as np
import threadpoolctl
import torch

from app import worker
from engine import api, boundary, ops
from engine.ir import Function, ShapedArray
from engine.limits import DEFAULT_LIMITS, Limits
from engine.operations import Options
from engine.tracing import trace

try:
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
except ImportError:  # JAX is optional: the comparison column is left empty without it
    jax = None


REFERENCES = ("torch", "numpy", "jax")
# The large derivatives' table: JAX jit's dense answer, and the engine's own alternative
# (three JVPs for a stencil's Jacobian, one batch for a chunked one).
LARGE_REFERENCES = ("jax dense", "reference")


def interleaved_medians(calls: dict[str, Callable[[], object]], budget: float = 1.0) -> dict[str, float]:
    """The median seconds of one call of each, sampled in turn (a batch of calls each, about
    20 ms), so that a busier moment of the machine weighs on every column alike."""
    numbers = {}
    for name, call in calls.items():
        call()
        start = time.perf_counter()
        call()
        numbers[name] = max(1, int(0.02 / max(time.perf_counter() - start, 1e-7)))
    samples: dict[str, list[float]] = {name: [] for name in calls}
    deadline = time.perf_counter() + budget * len(calls)
    rounds = 0
    while rounds < 5 or (time.perf_counter() < deadline and rounds < 100):
        for name, call in calls.items():
            number = numbers[name]
            start = time.perf_counter()
            for _ in range(number):
                call()
            samples[name].append((time.perf_counter() - start) / number)
        rounds += 1
    return {name: statistics.median(times) for name, times in samples.items()}


def row(
    label: str,
    engine: Callable[[], object],
    references: dict[str, Callable[[], object] | None],
    columns: tuple[str, ...] = REFERENCES,
) -> None:
    """Time the engine and each reference given (None: not measured) side by side; print them."""
    given = {name: call for name, call in references.items() if call is not None}
    medians = interleaved_medians({"engine": engine, **given})
    cells = [f"{label:<48}", f"{medians['engine'] * 1e6:>12.1f}"]
    for name in columns:
        if name not in medians:
            cells += [f"{'-':>12}", f"{'-':>7}"]
        else:
            cells += [f"{medians[name] * 1e6:>12.1f}", f"{medians['engine'] / medians[name]:>7.2f}"]
    print(" ".join(cells), flush=True)


def header(references: list[str]) -> None:
    cells = [f"{'benchmark (microseconds per call)':<48}", f"{'engine':>12}"]
    for name in references:
        cells += [f"{name:>12}", f"{'ratio':>7}"]
    print(" ".join(cells))


def _jitted(function: Callable, *args: object) -> Callable[[], object] | None:
    """A call of `function` compiled by JAX on `args`, waited for; None without JAX."""
    if jax is None:
        return None
    step = jax.jit(function)
    return lambda: jax.block_until_ready(step(*args))


def bench_dot_gradient(n: int, service_path: bool = False) -> None:
    """Through `api.value_and_grad` (a built function), or with `service_path` as the service
    computes a request: `boundary.prepare` (the expression's function from its cache, the
    checks) then `Task.run`."""
    fn = trace(lambda x: 2 * ops.dot(x, x), {"x": ShapedArray((n,), "float64")})
    x = np.random.default_rng(0).normal(size=n)
    if service_path:
        engine = lambda: boundary.prepare({"expression": "2*dot(x,x)"}, {"x": x}, "grad").run()  # noqa: E731
    else:
        engine = lambda: api.value_and_grad(fn, {"x": x})  # noqa: E731

    def torch_eager():
        t = torch.tensor(x, requires_grad=True)
        y = 2 * torch.dot(t, t)
        y.backward()
        return y.item(), t.grad.numpy()

    references = {
        "torch": torch_eager,
        "numpy": lambda: (2 * x @ x, 4 * x),
        "jax": _jitted(jax and jax.value_and_grad(lambda x: 2 * jnp.dot(x, x)), x),
    }
    label = f"grad of 2*dot(x,x), n={n:g}" + (", prepare + Task.run" if service_path else "")
    row(label, engine, references)


def bench_jacobian(mode: str) -> None:
    n = 200
    rng = np.random.default_rng(1)
    A, x = rng.normal(size=(n, n)) / np.sqrt(n), rng.normal(size=n)
    fn = trace(lambda A, x: ops.tanh(A @ x), {"A": ShapedArray((n, n), "float64"), "x": ShapedArray((n,), "float64")})
    transform = torch.func.jacfwd if mode == "forward" else torch.func.jacrev
    ta, tx = torch.tensor(A), torch.tensor(x)
    torch_jacobian = transform(lambda t: torch.tanh(ta @ t))
    jax_transform = jax and (jax.jacfwd if mode == "forward" else jax.jacrev)
    references = {
        "torch": lambda: torch_jacobian(tx).numpy(),
        "jax": _jitted(jax and jax_transform(lambda x, A: jnp.tanh(A @ x)), x, A),
    }
    engine = lambda: api.jacobian(fn, {"A": A, "x": x}, wrt=["x"], mode=mode)  # noqa: E731
    row(f"jacobian of tanh(A@x) wrt x, 200x200, {mode}", engine, references)


def bench_hessian() -> None:
    n = 100
    x = np.random.default_rng(2).normal(size=n)
    fn = trace(lambda x: ops.sum(ops.sin(x) * x**2), {"x": ShapedArray((n,), "float64")})
    torch_hessian = torch.func.hessian(lambda t: torch.sum(torch.sin(t) * t**2))
    tx = torch.tensor(x)
    references = {
        "torch": lambda: torch_hessian(tx).numpy(),
        "jax": _jitted(jax and jax.hessian(lambda x: jnp.sum(jnp.sin(x) * x**2)), x),
    }
    row("hessian of sum(sin(x)*x**2), n=100", lambda: api.hessian(fn, {"x": x}), references)


MLP_WEIGHTS = ["w1", "w2", "w3"]


def mlp(x, w1, w2, w3, tanh=ops.tanh, total=ops.sum):
    """A 3-layer tanh MLP's sum of squares; with torch's or JAX's tanh and sum, theirs."""
    out = tanh(tanh(tanh(x @ w1) @ w2) @ w3)
    return total(out * out)


def mlp_problem(width: int, batch: int) -> tuple[Function, np.ndarray, list[np.ndarray], dict[str, np.ndarray]]:
    """The MLP traced for a batch of inputs and three square weights: (fn, x, weights, inputs)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(batch, width))
    weights = [rng.normal(size=(width, width)) / np.sqrt(width) for _ in MLP_WEIGHTS]
    avals = {"x": ShapedArray((batch, width), "float64")}
    avals |= {name: ShapedArray((width, width), "float64") for name in MLP_WEIGHTS}
    return trace(mlp, avals), x, weights, {"x": x, **dict(zip(MLP_WEIGHTS, weights))}


def bench_mlp_gradient() -> None:
    """The gradient of a 3-layer tanh MLP's sum of squares wrt its three weight matrices."""
    width, batch = 256, 64
    fn, x, weights, inputs = mlp_problem(width, batch)
    tx = torch.from_numpy(x)

    def torch_eager():  # the weights as leaves sharing numpy's memory: no copy is timed
        tw = [torch.from_numpy(w).requires_grad_() for w in weights]
        y = mlp(tx, *tw, tanh=torch.tanh, total=torch.sum)
        y.backward()
        return y.item(), [t.grad.numpy() for t in tw]

    jax_mlp = jax and jax.value_and_grad(lambda ws, x: mlp(x, *ws, tanh=jnp.tanh, total=jnp.sum))
    references = {"torch": torch_eager, "jax": _jitted(jax_mlp, weights, x)}
    engine = lambda: api.value_and_grad(fn, inputs, wrt=MLP_WEIGHTS)  # noqa: E731
    row(f"grad of a 3-layer tanh MLP, {width} wide, batch {batch}", engine, references)


def bench_sparse_hessian(n: int, format: str) -> None:
    """A diagonal Hessian: one Hessian-vector product (one colour) instead of n, then a
    scatter into the dense result, or the csr arrays themselves."""
    x = np.random.default_rng(3).normal(size=n)
    fn = trace(lambda x: ops.sum(ops.sin(x) * x**2), {"x": ShapedArray((n,), "float64")})
    # JAX's dense Hessian of 1e5 inputs would be 80 GB
    dense = _jitted(jax and jax.hessian(lambda x: jnp.sum(jnp.sin(x) * x**2)), x) if n <= 10_000 else None
    engine = lambda: api.hessian(fn, {"x": x}, format=format)  # noqa: E731
    row(f"hessian of sum(sin(x)*x**2), n={n:g}, {format}", engine, {"jax dense": dense}, LARGE_REFERENCES)


def bench_stencil_jacobian(n: int) -> None:
    """A stencil's Jacobian in csr: two colours of its pattern, so two JVPs in one batched
    sweep, beside three plain JVPs (the issue's target: under three sweeps' time)."""
    x = np.random.default_rng(4).normal(size=n)
    fn = trace(lambda x: x[1:] * x[:-1] - x[:-1], {"x": ShapedArray((n,), "float64")})
    engine = lambda: api.jacobian(fn, {"x": x}, format="csr")  # noqa: E731
    three_jvps = lambda: [api.jvp(fn, {"x": x}, {"x": x}) for _ in range(3)]  # noqa: E731
    row(f"jacobian of x[1:]*x[:-1]-x[:-1], n={n:g}, csr (vs 3 JVPs)", engine, {"reference": three_jvps},
        LARGE_REFERENCES)  # fmt: skip


def bench_chunked_jacobian() -> None:
    """A Jacobian whose one batched sweep would pass the intermediate limit (200 x 200 x 200
    elements) while its result fits: answered in chunks of the basis, beside one batch."""
    n = 200
    x = np.random.default_rng(5).normal(size=n)
    function, inputs = {"expression": "sum(tanh(outer(x, x)), axis=1) * x"}, {"x": x}
    limits = Limits(max_intermediate_elements=20 * n * n)
    chunked = boundary.prepare(function, inputs, "jacobian", None, Options(mode="forward"), limits)
    whole = boundary.prepare(function, inputs, "jacobian", None, Options(mode="forward"), DEFAULT_LIMITS)
    label = f"jacobian, n={n}, {chunked.sweep.runs} chunks of {chunked.sweep.batch} (vs 1)"
    row(label, chunked.run, {"reference": whole.run}, LARGE_REFERENCES)


def main() -> None:
    # One core each, as a worker runs (app/worker.py: one BLAS thread). torch and the engine's
    # BLAS take a thread count; XLA's CPU runtime ignores its thread flags (JAX issues 743,
    # 1539: only an affinity holds it): unpinned, JAX fills a dense 1000x1000 Hessian on both
    # cores of a 2-core machine, at half the time of one. Pinned before JAX's first computation
    # starts its thread pool (here, not at import: bench.gpu imports this module).
    core = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    torch.set_num_threads(1)
    threadpoolctl.threadpool_limits(1)
    worker.keep_freed_memory()  # as a worker's malloc runs, for every column alike
    print(
        f"numpy {np.__version__}, torch {torch.__version__} (eager, torch.func for Jacobians and Hessians)"
        + (f", jax {jax.__version__} (jit)" if jax is not None else ", jax not installed")
        + f"; every column on core {core} alone"
    )
    header(list(REFERENCES))
    for n in (4, 1_000, 1_000_000):
        bench_dot_gradient(n)
    bench_dot_gradient(4, service_path=True)
    bench_jacobian("forward")
    bench_jacobian("reverse")
    bench_hessian()
    bench_mlp_gradient()
    print()
    header(list(LARGE_REFERENCES))
    for n, format in ((1_000, "dense"), (1_000, "csr"), (100_000, "csr")):
        bench_sparse_hessian(n, format)
    bench_stencil_jacobian(10_000)
    bench_chunked_jacobian()


if __name__ == "__main__":
    main()
