"""Engine speed beside PyTorch eager (and JAX jit when installed), in one run.

    .venv/bin/python -m bench.engine     (as a module: a script in bench/ would shadow the engine package)

Each figure is the median time of one call, over repeated calls after a warm-up (so the
engine's transformed-function cache and JAX's compilation are excluded, as in steady
serving). The ratio column is engine / reference: below 1 means the engine is faster.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from engine import api, boundary, ops
from engine.ir import ShapedArray
from engine.limits import DEFAULT_LIMITS, Limits
from engine.operations import Options
from engine.tracing import trace

try:
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
except ImportError:  # JAX is optional: the comparison column is left empty without it
    jax = None


def median_seconds(call: Callable[[], object], budget: float = 0.5) -> float:
    call()
    start = time.perf_counter()
    call()
    once = max(time.perf_counter() - start, 1e-7)
    number = max(1, int(0.05 / once))
    samples = []
    deadline = time.perf_counter() + budget
    while len(samples) < 5 or (time.perf_counter() < deadline and len(samples) < 50):
        start = time.perf_counter()
        for _ in range(number):
            call()
        samples.append((time.perf_counter() - start) / number)
    return statistics.median(samples)


def row(label: str, engine: float, references: dict[str, float | None]) -> None:
    cells = [f"{label:<44}", f"{engine * 1e6:>12.1f}"]
    for value in references.values():
        if value is None:
            cells += [f"{'-':>12}", f"{'-':>7}"]
        else:
            cells += [f"{value * 1e6:>12.1f}", f"{engine / value:>7.2f}"]
    print(" ".join(cells))


def header(references: list[str]) -> None:
    cells = [f"{'benchmark (microseconds per call)':<44}", f"{'engine':>12}"]
    for name in references:
        cells += [f"{name:>12}", f"{'ratio':>7}"]
    print(" ".join(cells))


def bench_dot_gradient(n: int) -> None:
    fn = trace(lambda x: 2 * ops.dot(x, x), {"x": ShapedArray((n,), "float64")})
    x = np.random.default_rng(0).normal(size=n)
    engine = median_seconds(lambda: api.value_and_grad(fn, {"x": x}))

    def torch_eager():
        t = torch.tensor(x, requires_grad=True)
        y = 2 * torch.dot(t, t)
        y.backward()
        return y.item(), t.grad.numpy()

    numpy_by_hand = median_seconds(lambda: (2 * x @ x, 4 * x))
    jax_jit = None
    if jax is not None:
        step = jax.jit(jax.value_and_grad(lambda x: 2 * jnp.dot(x, x)))
        jax_jit = median_seconds(lambda: jax.block_until_ready(step(x)))
    row(
        f"grad of 2*dot(x,x), n={n:g}",
        engine,
        {"torch": median_seconds(torch_eager), "numpy": numpy_by_hand, "jax": jax_jit},
    )


def bench_jacobian(mode: str) -> None:
    n = 200
    rng = np.random.default_rng(1)
    A, x = rng.normal(size=(n, n)) / np.sqrt(n), rng.normal(size=n)
    fn = trace(lambda A, x: ops.tanh(A @ x), {"A": ShapedArray((n, n), "float64"), "x": ShapedArray((n,), "float64")})
    engine = median_seconds(lambda: api.jacobian(fn, {"A": A, "x": x}, wrt=["x"], mode=mode))
    transform = torch.func.jacfwd if mode == "forward" else torch.func.jacrev
    ta = torch.tensor(A)
    torch_jacobian = transform(lambda t: torch.tanh(ta @ t))
    tx = torch.tensor(x)
    jax_jit = None
    if jax is not None:
        jax_transform = jax.jacfwd if mode == "forward" else jax.jacrev
        step = jax.jit(jax_transform(lambda x, A: jnp.tanh(A @ x)))
        jax_jit = median_seconds(lambda: jax.block_until_ready(step(x, A)))
    references = {"torch": median_seconds(lambda: torch_jacobian(tx).numpy()), "numpy": None, "jax": jax_jit}
    row(f"jacobian of tanh(A@x) wrt x, 200x200, {mode}", engine, references)


def bench_hessian() -> None:
    n = 100
    x = np.random.default_rng(2).normal(size=n)
    fn = trace(lambda x: ops.sum(ops.sin(x) * x**2), {"x": ShapedArray((n,), "float64")})
    engine = median_seconds(lambda: api.hessian(fn, {"x": x}))
    torch_hessian = torch.func.hessian(lambda t: torch.sum(torch.sin(t) * t**2))
    tx = torch.tensor(x)
    jax_jit = None
    if jax is not None:
        step = jax.jit(jax.hessian(lambda x: jnp.sum(jnp.sin(x) * x**2)))
        jax_jit = median_seconds(lambda: jax.block_until_ready(step(x)))
    references = {"torch": median_seconds(lambda: torch_hessian(tx).numpy()), "numpy": None, "jax": jax_jit}
    row("hessian of sum(sin(x)*x**2), n=100", engine, references)


def bench_sparse_hessian(n: int, format: str) -> None:
    """A diagonal Hessian: one Hessian-vector product (one colour) instead of n, then a
    scatter into the dense result, or the csr arrays themselves."""
    x = np.random.default_rng(3).normal(size=n)
    fn = trace(lambda x: ops.sum(ops.sin(x) * x**2), {"x": ShapedArray((n,), "float64")})
    engine = median_seconds(lambda: api.hessian(fn, {"x": x}, format=format))
    jax_jit = None
    if jax is not None and n <= 10_000:  # JAX's dense Hessian of 1e5 inputs would be 80 GB
        step = jax.jit(jax.hessian(lambda x: jnp.sum(jnp.sin(x) * x**2)))
        jax_jit = median_seconds(lambda: jax.block_until_ready(step(x)))
    row(f"hessian of sum(sin(x)*x**2), n={n:g}, {format}", engine, {"jax (dense)": jax_jit, "3 sweeps": None})


def bench_stencil_jacobian(n: int) -> None:
    """A stencil's Jacobian in csr: two colours of its pattern, so two JVPs in one batched
    sweep, against three plain JVPs (the issue's target: under three sweeps' time)."""
    x = np.random.default_rng(4).normal(size=n)
    fn = trace(lambda x: x[1:] * x[:-1] - x[:-1], {"x": ShapedArray((n,), "float64")})
    engine = median_seconds(lambda: api.jacobian(fn, {"x": x}, format="csr"))
    one_sweep = median_seconds(lambda: api.jvp(fn, {"x": x}, {"x": x}))
    row(f"jacobian of x[1:]*x[:-1]-x[:-1], n={n:g}, csr", engine, {"jax (dense)": None, "3 sweeps": 3 * one_sweep})


def bench_chunked_jacobian() -> None:
    """A Jacobian whose one batched sweep would pass the intermediate limit (200 x 200 x 200
    elements) while its result fits: answered in chunks of the basis, beside one batch."""
    n = 200
    x = np.random.default_rng(5).normal(size=n)
    function, inputs = {"expression": "sum(tanh(outer(x, x)), axis=1) * x"}, {"x": x}
    limits = Limits(max_intermediate_elements=20 * n * n)
    chunked = boundary.prepare(function, inputs, "jacobian", None, Options(mode="forward"), limits)
    whole = boundary.prepare(function, inputs, "jacobian", None, Options(mode="forward"), DEFAULT_LIMITS)
    label = f"chunked jacobian, n={n}, {chunked.sweep.runs} runs of {chunked.sweep.batch}"
    row(label, median_seconds(chunked.run), {"jax (dense)": None, "one batch": median_seconds(whole.run)})


def main() -> None:
    torch.set_num_threads(1)
    print(
        f"numpy {np.__version__}, torch {torch.__version__} (eager, torch.func for Jacobians and Hessians)"
        + (f", jax {jax.__version__} (jit)" if jax is not None else ", jax not installed")
    )
    header(["torch", "numpy", "jax"])
    for n in (4, 1_000, 1_000_000):
        bench_dot_gradient(n)
    bench_jacobian("forward")
    bench_jacobian("reverse")
    bench_hessian()
    print()
    header(["jax (dense)", "reference"])
    for n, format in ((1_000, "dense"), (1_000, "csr"), (100_000, "csr")):
        bench_sparse_hessian(n, format)
    bench_stencil_jacobian(10_000)
    bench_chunked_jacobian()


if __name__ == "__main__":
    main()
