"""What `verify: true` costs: /v1/grad of a 3-layer tanh MLP (width 256, batch 64, the gradient
with respect to the three weight matrices), with and without it (issue 11's target: <= 4x).

    .venv/bin/python -m bench.verify [--repeats 40] [--dtype float64]

Two measurements, each interleaving the two requests so that a slower moment of the machine
weighs on both alike, and printing the median and the fastest run of each and their ratio:
- engine: the prepared task run in this process (`Task.run`: the gradient, then the check),
  with BLAS on one thread as a worker has it (`worker_threads` = 1);
- HTTP: POST /v1/grad to `gradserve serve` on loopback (one worker), inputs and answers in
  base64, so that what is timed is mostly the computation, not JSON.
"""

from __future__ import annotations

import argparse
import base64
import statistics
import time
from collections.abc import Callable

import httpx
import numpy as np
import orjson
import threadpoolctl

from bench.server import start

WIDTH, BATCH = 256, 64
MLP = "sum(tanh(tanh(tanh(x @ w1) @ w2) @ w3))"
WRT = ["w1", "w2", "w3"]


def mlp_inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    weights = {name: rng.normal(size=(WIDTH, WIDTH)) / np.sqrt(WIDTH) for name in WRT}
    return {"x": rng.normal(size=(BATCH, WIDTH)), **weights}


def interleaved(runs: dict[str, Callable[[], object]], repeats: int) -> dict[str, list[float]]:
    for run in runs.values():  # warm: build and cache the transformed functions
        run()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    return times


def report(where: str, times: dict[str, list[float]]) -> None:
    plain, verified = times["plain"], times["verify"]
    median = statistics.median(verified) / statistics.median(plain)
    fastest = min(verified) / min(plain)
    for label, runs in (("without verify", plain), ("with verify", verified)):
        middle, fastest_run = statistics.median(runs) * 1e3, min(runs) * 1e3
        print(f"{where:<7} {label:<15} median {middle:8.2f} ms, fastest {fastest_run:8.2f} ms")
    print(f"{where:<7} ratio           median {median:.2f}x, fastest {fastest:.2f}x")


def engine(repeats: int, dtype: str) -> None:
    from engine.boundary import prepare
    from engine.operations import Options

    inputs = mlp_inputs()
    tasks = {
        name: prepare({"expression": MLP}, inputs, "grad", options=Options(wrt=tuple(WRT), dtype=dtype, verify=v))
        for name, v in (("plain", False), ("verify", True))
    }
    verification = tasks["verify"].run().verification
    print(f"verification: {verification['verdict']}, error {verification['error']:.2e}, "
          f"{verification['evaluations']} evaluations")  # fmt: skip
    with threadpoolctl.threadpool_limits(limits=1):
        report("engine", interleaved({name: task.run for name, task in tasks.items()}, repeats))


def http(repeats: int, dtype: str) -> None:
    server, url = start(["-m", "app.cli", "serve", "--workers", "1", "--log-level", "warning"])
    encoded = {
        name: {"dtype": "float64", "shape": list(a.shape), "data": base64.b64encode(a.astype("<f8").tobytes()).decode()}
        for name, a in mlp_inputs().items()
    }
    body = {"function": {"expression": MLP}, "inputs": encoded, "wrt": WRT, "dtype": dtype, "encoding": "base64"}
    bodies = {"plain": orjson.dumps(body), "verify": orjson.dumps({**body, "verify": True})}
    try:
        with httpx.Client(base_url=url, timeout=120, headers={"content-type": "application/json"}) as client:

            def post(content: bytes) -> Callable[[], object]:
                def run() -> None:
                    response = client.post("/v1/grad", content=content)
                    if response.status_code != 200:
                        raise RuntimeError(response.text[:300])

                return run

            report("HTTP", interleaved({name: post(content) for name, content in bodies.items()}, repeats))
    finally:
        server.terminate()
        server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--dtype", default="float64", choices=["float64", "float32"])
    args = parser.parse_args()
    print(f"/v1/grad of {MLP} (width {WIDTH}, batch {BATCH}), wrt {', '.join(WRT)}, {args.dtype}")
    engine(args.repeats, args.dtype)
    http(args.repeats, args.dtype)


if __name__ == "__main__":
    main()
