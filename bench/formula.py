"""/v1/derivative's formulas posted back to /v1/evaluate against /v1/grad's numbers, over HTTP
(issue 11's target: the seeds and 200 random elementwise expressions, to 1e-12 on all).

    .venv/bin/python -m bench.formula [--count 200] [--seed 11]

Starts `gradserve serve` on loopback; the random expressions are the API test's
(tests/api/test_derivative.py), over x (3,), y (2, 3) and a (), at inputs in [-1.5, 1.5].
Prints how many were checked (a gradient that is not finite at its point is skipped), how many
formulas came as programs, the largest differences, and the time of a /v1/derivative request.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import time

import httpx
import numpy as np

from bench.server import start
from tests.api.test_derivative import random_expression
from tests.engine.test_formula import SHAPES

SEEDS = [("2*dot(x,x)", {"x": [0.0, 1.0, 2.0, 3.0]}), ("sin(x)", {"x": 0.5})]


def cases(count: int, seed: int) -> list[tuple[str, dict]]:
    rng, data = random.Random(seed), np.random.default_rng(seed)
    found = list(SEEDS)
    while len(found) < len(SEEDS) + count:
        expression = f"sum({random_expression(rng)})"
        if re.search(r"\b[xya]\b", expression):
            found.append((expression, {n: data.uniform(-1.5, 1.5, s).tolist() for n, s in SHAPES.items()}))
    return found


def post(client: httpx.Client, path: str, body: dict) -> dict:
    response = client.post(path, json=body)
    response.raise_for_status()
    return response.json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    server, url = start(["-m", "app.cli", "serve", "--workers", "1", "--log-level", "warning"])
    checked = programs = 0
    largest_absolute = largest_relative = 0.0
    seconds = []
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            for expression, inputs in cases(args.count, args.seed):
                body = {"function": {"expression": expression}, "inputs": inputs}
                gradients = {n: np.array(g, dtype=float) for n, g in post(client, "/v1/grad", body)["gradient"].items()}
                if not all(np.all(np.isfinite(g)) for g in gradients.values()):
                    continue
                started = time.perf_counter()
                formulas = post(client, "/v1/derivative", body)["derivative"]
                seconds.append(time.perf_counter() - started)
                checked += 1
                for name, formula in formulas.items():
                    programs += "program" in formula
                    value = np.array(post(client, "/v1/evaluate", {"function": formula, "inputs": inputs})["value"])
                    difference = np.abs(value - gradients[name])
                    largest_absolute = max(largest_absolute, float(difference.max(initial=0.0)))
                    relative = difference / np.maximum(np.abs(gradients[name]), np.finfo(float).tiny)
                    largest_relative = max(largest_relative, float(relative.max(initial=0.0)))
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(f"checked {checked} of {len(SEEDS)} seeds + {args.count} random expressions; {programs} programs")
    print(f"largest |formula - grad|: {largest_absolute:.3g} absolute, {largest_relative:.3g} relative")
    print(f"/v1/derivative: median {statistics.median(seconds) * 1e3:.1f} ms, slowest {max(seconds) * 1e3:.1f} ms")
    if largest_relative > 1e-12 and largest_absolute > 1e-12:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
