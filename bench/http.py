"""HTTP throughput and latency of /v1/grad for 2*dot(x, x), against bare FastAPI endpoints.

    .venv/bin/python -m bench.http [--requests-small 2000] [--requests-large 200] [--concurrency 8]

(run as a module: as a file, its own name would shadow the standard library's `http`).

Starts, on 127.0.0.1, `gradserve serve` and a bare FastAPI app (the same uvicorn), then sends
a fixed number of requests with bounded concurrency (httpx, asyncio semaphore) and prints
requests per second and p50/p99 latency side by side:
- gradserve /v1/grad, with x of 4 and of 100,000 elements, JSON and base64;
- bare /parse: FastAPI parses the same body into a dict (its standard JSON path) and answers {};
- bare /echo (100,000 floats, JSON only): orjson parses the body and answers with orjson a
  response the size of gradserve's (the input list back): the floor for JSON in, JSON out.
Client and servers share the machine's cores, so the figures are relative, not absolute.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import statistics
import time
from typing import Annotated, Any

import httpx
import numpy as np
import orjson
import uvicorn
from fastapi import Body, FastAPI, Request
from fastapi.responses import Response

from bench.server import start


def bare_app() -> FastAPI:
    app = FastAPI()

    @app.post("/parse")
    def parse(body: Annotated[dict[str, Any], Body()]) -> dict:
        return {}

    @app.post("/echo")
    async def echo(request: Request) -> Response:
        body = orjson.loads(await request.body())
        answer = {"value": 0.0, "gradient": {"x": body["inputs"]["x"]}}
        return Response(orjson.dumps(answer), media_type="application/json")

    return app


def grad_body(n: int, encoding: str) -> bytes:
    x = np.arange(n, dtype=np.float64) / n
    if encoding == "base64":
        array: Any = {"dtype": "float64", "shape": [n], "data": base64.b64encode(x.astype("<f8").tobytes()).decode()}
    else:
        array = x.tolist()
    body = {"function": {"expression": "2*dot(x, x)"}, "inputs": {"x": array}, "encoding": encoding}
    return orjson.dumps(body)


async def measure(url: str, body: bytes, requests: int, concurrency: int) -> dict[str, float]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"content-type": "application/json"}
    latencies: list[float] = []
    semaphore = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=120) as client:

        async def one() -> None:
            async with semaphore:
                started = time.perf_counter()
                response = await client.post(url, content=body, headers=headers)
                await response.aread()
                latencies.append(time.perf_counter() - started)
                if response.status_code != 200:
                    raise RuntimeError(f"{url}: {response.status_code} {response.text[:300]}")

        for _ in range(min(requests, 2 * concurrency)):  # warm up connections, caches and workers
            await one()
        latencies.clear()
        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(requests)))
        wall = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": requests / wall,
        "p50": statistics.median(latencies) * 1e3,
        "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1e3,
    }


def check_gradient(url: str, n: int, encoding: str) -> None:
    headers = {"content-type": "application/json"}
    response = httpx.post(f"{url}/v1/grad", content=grad_body(n, encoding), headers=headers, timeout=60)
    answer = response.json()["gradient"]["x"]
    if encoding == "base64":
        gradient = np.frombuffer(base64.b64decode(answer["data"]), dtype="<f8")
    else:
        gradient = np.array(answer)
    np.testing.assert_array_equal(gradient, 4 * np.arange(n, dtype=np.float64) / n)


async def run(args: argparse.Namespace) -> None:
    gradserve, gradserve_url = start(["-m", "app.cli", "serve", "--workers", str(args.workers), "--log-level",
                                       "warning"], {"GRADSERVE_QUEUE_SIZE": str(4 * args.concurrency)})  # fmt: skip
    bare, bare_url = start(["-m", "bench.http", "--bare-server"])
    try:
        cases = [(4, "json", args.requests_small), (100_000, "json", args.requests_large),
                 (100_000, "base64", args.requests_large)]  # fmt: skip
        rows = []
        for n, encoding, requests in cases:
            check_gradient(gradserve_url, n, encoding)
            body = grad_body(n, encoding)
            targets = [("gradserve /v1/grad", f"{gradserve_url}/v1/grad"), ("bare FastAPI /parse", f"{bare_url}/parse")]
            if n == 100_000 and encoding == "json":
                targets.append(("bare orjson /echo", f"{bare_url}/echo"))
            for name, url in targets:
                result = await measure(url, body, requests, args.concurrency)
                rows.append((f"n={n:,} {encoding}", name, len(body), requests, result))
        print(f"\n{args.concurrency} concurrent requests, loopback, gradserve with {args.workers} workers\n")
        print(
            f"{'case':<20} {'target':<20} {'body bytes':>11} {'requests':>9} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9}"
        )
        for case, name, size, requests, r in rows:
            print(f"{case:<20} {name:<20} {size:>11,} {requests:>9} {r['rps']:>9.1f} {r['p50']:>9.2f} {r['p99']:>9.2f}")
    finally:
        for process in (gradserve, bare):
            process.terminate()
            process.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests-small", type=int, default=2000, help="requests for n=4")
    parser.add_argument("--requests-large", type=int, default=200, help="requests for n=100,000")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="gradserve's worker processes")
    parser.add_argument("--bare-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        uvicorn.run(bare_app(), host="127.0.0.1", port=args.port, log_level="warning")
    else:
        asyncio.run(run(args))


if __name__ == "__main__":
    main()
