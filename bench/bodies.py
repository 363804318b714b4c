"""How big JSON bodies load the API process: /healthz latency while several are posted at once.

    .venv/bin/python -m bench.bodies [--concurrent 8]

For each case, starts `gradserve serve` (one worker) on 127.0.0.1, posts `--concurrent` copies
of one body to /v1/evaluate at once (sum(x): the answer is one number, so what is measured is
the reading of the body) while a probe in its own process asks /healthz every 20 ms, and prints
the statuses the bodies got, the wall time until the last answer, the probe's median and worst
latency, and the API process's peak RSS. Client and server share the machine's cores: the
figures are relative.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from bench.server import start

CASES = {
    # 2 bytes a number: the most numbers a 32 MB body holds, four times the array limit
    "16.7M zeros, one array (over the limit)": 16_700_000,
    # just under the default limit of 4,000,000 elements an array
    "3.9M zeros, one array (allowed)": 3_900_000,
}


def body(elements: int) -> bytes:
    numbers = b"0," * (elements - 1) + b"0"
    return b'{"function": {"expression": "sum(x)"}, "inputs": {"x": [' + numbers + b"]}}"


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def ask_health(url: str, stop: Any, latencies: Any) -> None:
    """In its own process, so that the client's work does not delay the probe."""
    with httpx.Client(timeout=120) as client:
        while not stop.is_set():
            started = time.perf_counter()
            client.get(f"{url}/healthz").raise_for_status()
            latencies.put(time.perf_counter() - started)
            time.sleep(0.02)
    latencies.put(None)


async def post_all(url: str, content: bytes, concurrent: int) -> list[httpx.Response]:
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(timeout=120) as client:
        posts = (client.post(f"{url}/v1/evaluate", content=content, headers=headers) for _ in range(concurrent))
        return await asyncio.gather(*posts)


def measure(url: str, content: bytes, concurrent: int) -> dict:
    spawn = multiprocessing.get_context("spawn")
    stop, queue = spawn.Event(), spawn.Queue()
    prober = spawn.Process(target=ask_health, args=(url, stop, queue))
    prober.start()
    time.sleep(1.0)  # the probe's interpreter starts and its first answers come in
    started = time.perf_counter()
    answers = asyncio.run(post_all(url, content, concurrent))
    wall = time.perf_counter() - started
    stop.set()
    latencies = list(iter(queue.get, None))
    prober.join()
    return {
        "statuses": Counter(answer.status_code for answer in answers),
        "wall": wall,
        "health_p50": statistics.median(latencies) * 1e3,
        "health_max": max(latencies) * 1e3,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--concurrent", type=int, default=8, help="bodies posted at once")
    args = parser.parse_args()
    print(f"{'case':<42} {'MB':>6} {'statuses':<12} {'wall s':>7} {'healthz p50 ms':>15} {'max ms':>8} {'RSS MB':>7}")
    for case, elements in CASES.items():
        server, url = start(["-m", "app.cli", "serve", "--workers", "1", "--log-level", "warning"],
                             {"GRADSERVE_QUEUE_SIZE": str(2 * args.concurrent)})  # fmt: skip
        try:
            content = body(elements)
            result = measure(url, content, args.concurrent)
            statuses = " ".join(f"{status}x{count}" for status, count in sorted(result["statuses"].items()))
            rss = peak_rss_mb(server.pid)
            print(f"{case:<42} {len(content) / 1e6:>6.1f} {statuses:<12} {result['wall']:>7.2f} "
                  f"{result['health_p50']:>15.1f} {result['health_max']:>8.1f} {rss:>7.0f}")  # fmt: skip
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
