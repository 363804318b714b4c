"""Many VJPs at one point: through a linearize handle, beside as many fresh /v1/vjp requests.

    .venv/bin/python -m bench.linearize [--products 100] [--encoding base64]

The function is a 3-layer tanh MLP (width 256, batch 64), differentiated with respect to its
three weight matrices, as an optimiser or a Newton-Krylov solver asks at one point. Both
ways run against the same `gradserve serve` on loopback, one request at a time, and the
answers are checked equal. Target (issue 11): the handle's products in <= 0.5x the time.
"""

from __future__ import annotations

import argparse
import base64
import time

import httpx
import numpy as np

from bench import server

WIDTH, BATCH = 256, 64
MLP = {"expression": "sum(tanh(tanh(tanh(x @ W1) @ W2) @ W3))"}


def encoded(array: np.ndarray, encoding: str):
    if encoding == "json":
        return array.tolist()
    little = np.ascontiguousarray(array, dtype="<f8")
    return {"dtype": "float64", "shape": list(array.shape), "data": base64.b64encode(little.tobytes()).decode()}


def decoded(value) -> np.ndarray:
    if isinstance(value, dict):
        return np.frombuffer(base64.b64decode(value["data"]), dtype="<f8").reshape(value["shape"])
    return np.asarray(value, dtype=float)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100)
    parser.add_argument("--encoding", choices=["json", "base64"], default="base64")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    inputs = {"x": rng.standard_normal((BATCH, WIDTH))} | {
        f"W{i}": rng.standard_normal((WIDTH, WIDTH)) / WIDTH**0.5 for i in (1, 2, 3)
    }
    cotangents = rng.standard_normal(args.products)
    body = {"function": MLP, "inputs": {n: encoded(a, args.encoding) for n, a in inputs.items()},
            "wrt": ["W1", "W2", "W3"], "encoding": args.encoding}  # fmt: skip
    process, url = server.start(["-m", "app.cli", "serve", "--workers", "2"])
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            client.post("/v1/vjp", json={**body, "cotangent": 1.0}).raise_for_status()  # warm the caches
            started = time.perf_counter()
            fresh = [client.post("/v1/vjp", json={**body, "cotangent": float(c)}).json() for c in cotangents]
            fresh_seconds = time.perf_counter() - started

            started = time.perf_counter()
            handle = client.post("/v1/linearize", json=body).json()["handle"]["id"]
            through = [
                client.post(
                    f"/v1/linearize/{handle}/vjp", json={"cotangent": float(c), "encoding": args.encoding}
                ).json()
                for c in cotangents
            ]
            handle_seconds = time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(timeout=30)
    for one, other in zip(fresh, through):
        for name in ("W1", "W2", "W3"):
            np.testing.assert_allclose(decoded(other["vjp"][name]), decoded(one["vjp"][name]), rtol=1e-12)
    print(
        f"{args.products} VJPs of a 3-layer tanh MLP (width {WIDTH}, batch {BATCH}), {args.encoding} arrays, over HTTP"
    )
    print(f"  fresh /v1/vjp requests:           {fresh_seconds * 1e3:9.1f} ms")
    print(f"  linearize + products via handle:  {handle_seconds * 1e3:9.1f} ms")
    print(f"  ratio (target <= 0.5):            {handle_seconds / fresh_seconds:9.2f}")


if __name__ == "__main__":
    main()
