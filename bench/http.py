"""gradserve's /v1/grad of 2*dot(x, x) beside a bare endpoint doing the same arithmetic, driven
by wrk (one thread), side by side in one run.

    .venv/bin/python -m bench.http [--seconds 8] [--workers 2] [--processes 2] [--cases 1,2]

(run as a module: as a file, its own name would shadow the standard library's `http`.)

The bare endpoint is a FastAPI app under the same uvicorn, in the same venv, on the same HTTP
parser and event loop as gradserve's server (h11 and asyncio; `--bare-stack auto` lets
uvicorn pick httptools and uvloop where they are installed, which gradserve cannot use): orjson both ways,
numpy for the gradient, base64 decoded straight into a buffer, BLAS on one thread as in
gradserve's workers (`worker_threads`: on all of OpenBLAS's threads, its `x @ x` of 1e5 spins
them, ~1 ms a call and two to three times its CPU per request on a busy machine). Both servers start on
127.0.0.1 (gradserve as the README starts it, default settings). wrk needs Debian's `wrk`
package (`apt-get install wrk`). Cases and issue 14's targets (ratios of gradserve to bare):
- n=4, one client: >= 0.4;  n=4, 32 clients: >= 0.6 and no request refused;
- n=1e5 JSON lists, 4 clients: >= 0.9;  n=1e5 base64 both ways, 4 clients: >= 0.8.
Client and servers share the machine's cores: the ratios are the figure, not the absolutes.
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import orjson
import threadpoolctl
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response

from app.settings import DEFAULT_PROCESSES
from bench.server import start

CASES = [  # (name, n, encoding, clients, target ratio)
    ("n=4, one client", 4, "json", 1, 0.4),
    ("n=4, 32 clients", 4, "json", 32, 0.6),
    ("n=1e5 JSON, 4 clients", 100_000, "json", 4, 0.9),
    ("n=1e5 base64, 4 clients", 100_000, "base64", 4, 0.8),
]


def bare_app() -> FastAPI:
    app = FastAPI()

    @app.post("/v1/grad")
    async def grad(request: Request) -> Response:
        body = orjson.loads(await request.body())
        sent = body["inputs"]["x"]
        if isinstance(sent, dict):
            x = np.frombuffer(base64.b64decode(sent["data"]), dtype="<f8")
        else:
            x = np.asarray(sent, dtype=np.float64)
        value, gradient = 2 * float(x @ x), 4 * x
        if body.get("encoding") == "base64":
            written: Any = {
                "dtype": "float64",
                "shape": [x.size],
                "data": base64.b64encode(gradient.tobytes()).decode(),
            }
        else:
            written = gradient
        answer = {"value": value, "gradient": {"x": written}}
        return Response(orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")

    return app


def grad_body(n: int, encoding: str) -> bytes:
    x = np.arange(n, dtype=np.float64) / n
    if encoding == "base64":
        array: Any = {"dtype": "float64", "shape": [n], "data": base64.b64encode(x.astype("<f8").tobytes()).decode()}
    else:
        array = x.tolist()
    return orjson.dumps({"function": {"expression": "2*dot(x, x)"}, "inputs": {"x": array}, "encoding": encoding})


def check(url: str, body: bytes, n: int) -> None:
    answer = httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=60).json()
    gradient = answer["gradient"]["x"]
    if isinstance(gradient, dict):
        gradient = np.frombuffer(base64.b64decode(gradient["data"]), dtype="<f8")
    np.testing.assert_array_equal(np.asarray(gradient), 4 * np.arange(n, dtype=np.float64) / n)


_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.MULTILINE)
_SCALE = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, body: bytes, clients: int, seconds: int, scratch: Path) -> dict[str, float]:
    """requests/s, p50 and p99 in ms, and the count of answers that were not 2xx."""
    (scratch / "body.json").write_bytes(body)
    script = scratch / "post.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f'local f = io.open("{scratch / "body.json"}", "rb")\nwrk.body = f:read("*a")\nf:close()\n'
    )
    command = ["wrk", "-t1", f"-c{clients}", f"-d{seconds}s", "--latency", "-s", str(script), url]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    latency = {p: float(v) * _SCALE[unit] for p, v, unit in _LATENCY.findall(output)}
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50": latency["50"],
        "p99": latency["99"],
        "refused": int(non_2xx.group(1)) if non_2xx else 0,
    }


def run(args: argparse.Namespace) -> None:
    if shutil.which("wrk") is None:
        sys.exit("bench.http needs wrk: apt-get install wrk")
    gradserve, gradserve_url = start(["-m", "app.cli", "serve", "--workers", str(args.workers), "--processes",
                                      str(args.processes), "--log-level", "warning"])  # fmt: skip
    bare, bare_url = start(["-m", "bench.http", "--bare-server", "--bare-stack", args.bare_stack])
    rows = []
    try:
        with tempfile.TemporaryDirectory() as scratch:
            for name, n, encoding, clients, target in [CASES[int(i) - 1] for i in args.cases.split(",")]:
                body = grad_body(n, encoding)
                figures = []
                for url in (f"{gradserve_url}/v1/grad", f"{bare_url}/v1/grad"):
                    check(url, body, n)
                    wrk(url, body, clients, 1, Path(scratch))  # warm connections, caches and workers
                    figures.append(wrk(url, body, clients, args.seconds, Path(scratch)))
                rows.append((name, target, *figures))
    finally:
        for process in (gradserve, bare):
            process.terminate()
            process.wait(timeout=30)
    print(f"\nwrk, one thread, {args.seconds} s a case; gradserve with {args.workers} workers and "
          f"{args.processes} API processes; loopback")  # fmt: skip
    # gradserve's server is h11 on asyncio whatever is installed (app/server.py). The bare
    # endpoint on httptools and uvloop takes ~0.15-0.3 ms less CPU a small request.
    print(f"HTTP parser and event loop: gradserve h11 + asyncio, bare {_bare_stack(args.bare_stack)}\n")
    print(f"{'case':<26} {'gradserve req/s (p50/p99 ms, non-2xx)':>40} {'bare req/s (p50/p99 ms)':>28} "
          f"{'ratio':>6} {'target':>7}")  # fmt: skip
    for name, target, ours, bare_figures in rows:
        mine = f"{ours['rps']:,.0f} ({ours['p50']:.2f}/{ours['p99']:.2f}, {ours['refused']})"
        theirs = f"{bare_figures['rps']:,.0f} ({bare_figures['p50']:.2f}/{bare_figures['p99']:.2f})"
        ratio = ours["rps"] / bare_figures["rps"]
        print(f"{name:<26} {mine:>40} {theirs:>28} {ratio:>6.2f} {'>= ' + str(target):>7}")


def _bare_stack(stack: str) -> str:
    if stack == "same":
        return "h11 + asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    return f"{http} + {loop} (uvicorn's choice)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=8, help="seconds wrk runs each case against each server")
    parser.add_argument("--workers", type=int, default=2, help="gradserve's worker processes")
    parser.add_argument(
        "--processes",
        type=int,
        default=DEFAULT_PROCESSES,
        help=f"gradserve's API processes (default {DEFAULT_PROCESSES})",
    )
    parser.add_argument("--cases", default="1,2,3,4", help="which cases, by number (1-4, comma-separated)")
    parser.add_argument(
        "--bare-stack",
        choices=("same", "auto"),
        default="same",
        help="the bare endpoint's HTTP parser and loop: gradserve's (h11, asyncio), or uvicorn's pick",
    )
    parser.add_argument("--bare-server", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        threadpoolctl.threadpool_limits(limits=1)
        stack = {"http": "h11", "loop": "asyncio"} if args.bare_stack == "same" else {}
        uvicorn.run(bare_app(), host="127.0.0.1", port=args.port, log_level="warning", **stack)
    else:
        run(args)


if __name__ == "__main__":
    main()
