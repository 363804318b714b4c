"""The engine on a GPU (the cupy backend) beside PyTorch on CUDA and JAX jit on the GPU, in one run.

    .venv/bin/python -m bench.gpu     (needs cupy and a CUDA GPU; torch and JAX with CUDA for their columns)

Every column is timed as the service computes: numpy arrays in, numpy arrays out, so the
copies to the device and back are in each figure. The `engine cpu` column is the same engine
on numpy with one BLAS thread (a worker's default), for scale. Medians of interleaved
samples, as in bench.engine; the ratio columns are engine (cupy) / reference.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import threadpoolctl
import torch

from bench.engine import MLP_WEIGHTS, jax, mlp, mlp_problem, row
from engine import api, ops
from engine.backend import gpu_available
from engine.ir import ShapedArray
from engine.tracing import trace

COLUMNS = ("engine cpu", "torch cuda", "jax gpu")
jnp = jax and jax.numpy


def _on_gpu(function: Callable, *args: np.ndarray) -> Callable[[], object] | None:
    """JAX jit of `function` on the GPU, host arrays in and out; None without JAX's GPU."""
    if jax is None or jax.default_backend() != "gpu":
        return None
    step = jax.jit(function)
    return lambda: jax.device_get(step(*args))


def _cuda(array: np.ndarray, grad: bool = False) -> torch.Tensor:
    return torch.tensor(array, device="cuda", requires_grad=grad)


def bench_dot_gradient(n: int) -> None:
    fn = trace(lambda x: 2 * ops.dot(x, x), {"x": ShapedArray((n,), "float64")})
    x = np.random.default_rng(0).normal(size=n)

    def torch_cuda():
        t = _cuda(x, grad=True)
        y = 2 * torch.dot(t, t)
        y.backward()
        return y.item(), t.grad.cpu().numpy()

    references = {
        "engine cpu": lambda: api.value_and_grad(fn, {"x": x}),
        "torch cuda": torch_cuda,
        "jax gpu": _on_gpu(jax and jax.value_and_grad(lambda x: 2 * jnp.dot(x, x)), x),
    }
    row(f"grad of 2*dot(x,x), n={n:g}", lambda: api.value_and_grad(fn, {"x": x}, backend_name="cupy"),
        references, COLUMNS)  # fmt: skip


def bench_mlp_gradient(width: int, batch: int) -> None:
    fn, x, weights, inputs = mlp_problem(width, batch)

    def torch_cuda():
        tw = [_cuda(w, grad=True) for w in weights]
        y = mlp(_cuda(x), *tw, tanh=torch.tanh, total=torch.sum)
        y.backward()
        return y.item(), [t.grad.cpu().numpy() for t in tw]

    jax_mlp = jax and jax.value_and_grad(lambda ws, x: mlp(x, *ws, tanh=jnp.tanh, total=jnp.sum))
    references = {
        "engine cpu": lambda: api.value_and_grad(fn, inputs, wrt=MLP_WEIGHTS),
        "torch cuda": torch_cuda,
        "jax gpu": _on_gpu(jax_mlp, weights, x),
    }
    row(f"grad of a 3-layer tanh MLP, {width} wide, batch {batch}",
        lambda: api.value_and_grad(fn, inputs, wrt=MLP_WEIGHTS, backend_name="cupy"), references, COLUMNS)  # fmt: skip


def bench_jacobian(n: int, mode: str) -> None:
    rng = np.random.default_rng(1)
    A, x = rng.normal(size=(n, n)) / np.sqrt(n), rng.normal(size=n)
    fn = trace(lambda A, x: ops.tanh(A @ x), {"A": ShapedArray((n, n), "float64"), "x": ShapedArray((n,), "float64")})
    transform = torch.func.jacfwd if mode == "forward" else torch.func.jacrev
    jax_transform = jax and (jax.jacfwd if mode == "forward" else jax.jacrev)

    def torch_cuda():
        ta = _cuda(A)
        return transform(lambda t: torch.tanh(ta @ t))(_cuda(x)).cpu().numpy()

    references = {
        "engine cpu": lambda: api.jacobian(fn, {"A": A, "x": x}, wrt=["x"], mode=mode),
        "torch cuda": torch_cuda,
        "jax gpu": _on_gpu(jax and jax_transform(lambda x, A: jnp.tanh(A @ x)), x, A),
    }
    engine = lambda: api.jacobian(fn, {"A": A, "x": x}, wrt=["x"], mode=mode, backend_name="cupy")  # noqa: E731
    row(f"jacobian of tanh(A@x) wrt x, {n}x{n}, {mode}", engine, references, COLUMNS)


def bench_hessian(n: int, format: str) -> None:
    """Diagonal: one colour, one Hessian-vector product; JAX and torch build the dense one."""
    x = np.random.default_rng(2).normal(size=n)
    fn = trace(lambda x: ops.sum(ops.sin(x) * x**2), {"x": ShapedArray((n,), "float64")})
    dense = n <= 10_000  # a dense Hessian of more would be over 800 MB
    torch_hessian = torch.func.hessian(lambda t: torch.sum(torch.sin(t) * t**2))
    references = {
        "engine cpu": lambda: api.hessian(fn, {"x": x}, format=format),
        "torch cuda": (lambda: torch_hessian(_cuda(x)).cpu().numpy()) if dense else None,
        "jax gpu": _on_gpu(jax and jax.hessian(lambda x: jnp.sum(jnp.sin(x) * x**2)), x) if dense else None,
    }
    engine = lambda: api.hessian(fn, {"x": x}, format=format, backend_name="cupy")  # noqa: E731
    row(f"hessian of sum(sin(x)*x**2), n={n:g}, {format}", engine, references, COLUMNS)


def main() -> None:
    if not gpu_available():
        raise SystemExit("bench.gpu needs cupy and a CUDA GPU")
    import cupy

    threadpoolctl.threadpool_limits(1)
    device = cupy.cuda.runtime.getDeviceProperties(0)["name"].decode()
    jax_version = f", jax {jax.__version__} ({jax.default_backend()})" if jax else ""
    print(f"cupy {cupy.__version__} on {device}, torch {torch.__version__}{jax_version}")
    cells = [f"{'benchmark (microseconds per call)':<48}", f"{'engine cupy':>12}"]
    print(" ".join(cells + [f"{name:>12} {'ratio':>7}" for name in COLUMNS]))
    for n in (1_000, 10_000_000):
        bench_dot_gradient(n)
    bench_mlp_gradient(256, 64)
    bench_mlp_gradient(2048, 1024)
    for mode in ("forward", "reverse"):
        bench_jacobian(1000, mode)
    bench_hessian(2000, "dense")
    bench_hessian(1_000_000, "csr")


if __name__ == "__main__":
    main()
