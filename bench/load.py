"""A bounded load and fault run against `gradserve serve` on loopback.

    .venv/bin/python -m bench.load [--seconds 40] [--workers 2] [--fast 8] [--slow 3] [--hostile 2]

Starts `gradserve serve` on a free 127.0.0.1 port and, for --seconds, drives it with three
classes of clients, each sending one request at a time and waiting out the Retry-After of a 503:
- fast: /v1/grad of 2*dot(x, x), x of 4 elements;
- slow: /v1/grad of a program that loops for a second or two;
- hostile: in turn malformed JSON, a Content-Length far over the body limit, JSON nested past
  the parser's depth, an unknown method, an array over the element limit, a syntax error;
while one worker process is SIGKILLed every --kill-every seconds. Prints the answers by class
and status, p50/p99 of the fast class's 200s, and the resident memory (VmRSS) of the API process
and of its workers at start and end. Exits 1, saying why, when
- a fast request is refused (503) while a worker is idle: /metrics, read right after the
  refusal, shows fewer busy workers than workers;
- an accepted request is lost: a connection error, or no answer within --timeout;
- a fast request is answered 200 with a wrong gradient;
- memory grows between the second and the last quarter of the run: the median RSS of the API
  process by more than --growth-mib. (The workers' figures are printed, not judged: the run
  kills them, and a fresh worker starts small.)
Every loop stops by itself: the clients at --seconds, their last requests within --timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import NamedTuple
from urllib.parse import urlsplit

import httpx
import orjson

from app.settings import Settings
from bench.server import rss_bytes, spawned_children, start

JSON = {"content-type": "application/json"}
X = [0.0, 1.0, 2.0, 3.0]
FAST_BODY = orjson.dumps({"function": {"expression": "2*dot(x, x)"}, "inputs": {"x": X}})
FAST_GRADIENT = [4 * x for x in X]
# About 3,000 loop iterations: a second or two of one worker (the program's step budget is 100,000).
SLOW_BODY = orjson.dumps(
    {
        "function": {
            "program": "def f(x):\n    steps = 0\n    while steps < 3000:\n        x = x * 0.999 + 0.001\n"
            "        steps = steps + 1\n    return sum(x)\n"
        },
        "inputs": {"x": X},
    }
)
MIB = 1 << 20


def _hostile_bodies() -> dict[str, bytes]:
    def with_x(array: bytes) -> bytes:
        return b'{"function": {"expression": "sum(x)"}, "inputs": {"x": ' + array + b"}}"

    elements = Settings().max_array_elements + 1
    return {
        "malformed JSON": with_x(b"[1, 2,"),
        "nested too deep": with_x(b"[" * 100_000 + b"]" * 100_000),
        "array over the limit": with_x(b"[" + b"0," * (elements - 1) + b"0]"),
        "syntax error": b'{"function": {"expression": "2 * (x +"}, "inputs": {"x": [1.0, 2.0]}}',
    }


class Memory(NamedTuple):
    api: int  # RSS of the API process, bytes
    workers: int  # RSS of the workers together
    processes: int  # workers alive


def memory_of(server: int) -> Memory:
    workers = spawned_children(server)
    return Memory(rss_bytes(server), sum(map(rss_bytes, workers)), len(workers))


@dataclass
class Answer:
    kind: str  # fast, slow, or the hostile attack
    status: int | None  # None: lost
    seconds: float
    error: str = ""


@dataclass
class Run:
    url: str
    server: int  # pid of the API process
    args: argparse.Namespace
    answers: list[Answer] = field(default_factory=list)
    idle_refusals: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    kills: list[float] = field(default_factory=list)  # when each worker was SIGKILLed
    memory: list[tuple[float, Memory]] = field(default_factory=list)  # sampled each second

    def __post_init__(self) -> None:
        self.started = asyncio.get_running_loop().time()
        self.hostile = _hostile_bodies()

    def elapsed(self) -> float:
        return asyncio.get_running_loop().time() - self.started

    def running(self) -> bool:
        return self.elapsed() < self.args.seconds

    async def send(self, kind: str, request: Awaitable[httpx.Response]) -> httpx.Response | None:
        began = self.elapsed()
        try:
            response = await request
        except httpx.HTTPError as error:
            self.answers.append(Answer(kind, None, self.elapsed() - began, f"{type(error).__name__}: {error}"))
            return None
        self.answers.append(Answer(kind, response.status_code, self.elapsed() - began))
        return response

    async def back_off(self, response: httpx.Response) -> None:
        if response.status_code == 503:
            retry_after = float(response.headers.get("retry-after", 1))
            await asyncio.sleep(max(0.0, min(retry_after, self.args.seconds - self.elapsed())))

    async def fast_client(self, client: httpx.AsyncClient, metrics: httpx.AsyncClient) -> None:
        while self.running():
            response = await self.send("fast", client.post("/v1/grad", content=FAST_BODY, headers=JSON))
            if response is None:
                continue
            if response.status_code == 200 and response.json()["gradient"]["x"] != FAST_GRADIENT:
                self.wrong.append(response.text[:200])
            if response.status_code == 503:
                await self.check_no_worker_idle(metrics)
            await self.back_off(response)

    async def check_no_worker_idle(self, metrics: httpx.AsyncClient) -> None:
        """Called on a refusal: the pool's gauges right then (a lost /metrics is counted as lost)."""
        response = await self.send("GET /metrics", metrics.get("/metrics"))
        if response is None:
            return
        gauges = dict(re.findall(r"^(gradserve_busy_workers|gradserve_workers) (\S+)$", response.text, re.MULTILINE))
        busy, workers = float(gauges["gradserve_busy_workers"]), float(gauges["gradserve_workers"])
        if busy < workers:
            now = self.elapsed()
            since_kill = f", {now - self.kills[-1]:.1f} s after a kill" if self.kills else ""
            self.idle_refusals.append(f"at {now:.1f} s: {busy:g} of {workers:g} workers busy{since_kill}")

    async def slow_client(self, client: httpx.AsyncClient) -> None:
        while self.running():
            response = await self.send("slow", client.post("/v1/grad", content=SLOW_BODY, headers=JSON))
            if response is not None:
                await self.back_off(response)

    async def hostile_client(self, client: httpx.AsyncClient) -> None:
        attacks = [
            *((name, lambda body=body: client.post("/v1/grad", content=body, headers=JSON))
              for name, body in self.hostile.items()),
            ("unknown method", lambda: client.request("BREW", "/v1/grad", content=b"{}", headers=JSON)),
            ("huge Content-Length", self.declared_too_large),
        ]  # fmt: skip
        for name, attack in itertools.cycle(attacks):
            if not self.running():
                return
            await self.send(name, attack())

    async def declared_too_large(self) -> httpx.Response:
        """Headers that promise a terabyte, then a few bytes: written by hand, since httpx
        sends the Content-Length of the body it has."""
        address = urlsplit(self.url)
        reader, writer = await asyncio.wait_for(asyncio.open_connection(address.hostname, address.port), 5)
        try:
            writer.write(
                b"POST /v1/grad HTTP/1.1\r\nHost: gradserve\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000000000000\r\n\r\n" + FAST_BODY[:16]
            )
            await writer.drain()
            status_line = await asyncio.wait_for(reader.readline(), self.args.timeout)
        except (OSError, TimeoutError) as error:
            raise httpx.TransportError(f"no answer: {error!r}") from None
        finally:
            writer.close()
        if not status_line.startswith(b"HTTP/1.1 "):
            raise httpx.RemoteProtocolError(f"no status line, got {status_line[:80]!r}")
        return httpx.Response(int(status_line.split()[1]))

    async def kill_workers(self) -> None:
        while self.running():
            await asyncio.sleep(min(self.args.kill_every, max(0.0, self.args.seconds - self.elapsed())))
            workers = sorted(spawned_children(self.server))
            if workers and self.running():
                os.kill(random.choice(workers), signal.SIGKILL)
                self.kills.append(self.elapsed())

    async def sample_memory(self) -> None:
        while self.running():
            self.memory.append((self.elapsed(), memory_of(self.server)))
            await asyncio.sleep(1)


async def drive(url: str, server: int, args: argparse.Namespace) -> Run:
    run = Run(url, server, args)
    users = args.fast + args.slow + args.hostile
    limits = httpx.Limits(max_connections=users, max_keepalive_connections=users)
    async with (
        httpx.AsyncClient(base_url=url, timeout=args.timeout, limits=limits) as client,
        httpx.AsyncClient(base_url=url, timeout=args.timeout) as metrics,
    ):
        await asyncio.gather(
            *(run.fast_client(client, metrics) for _ in range(args.fast)),
            *(run.slow_client(client) for _ in range(args.slow)),
            *(run.hostile_client(client) for _ in range(args.hostile)),
            run.kill_workers(),
            run.sample_memory(),
        )
    return run


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _quarter_medians(run: Run, which: str) -> list[float]:
    quarter = run.args.seconds / 4
    samples = [[getattr(memory, which) for at, memory in run.memory if int(at // quarter) == q] for q in range(4)]
    return [statistics.median(values or [0]) for values in samples]


def report(run: Run, start_memory: Memory, end_memory: Memory) -> list[str]:
    """Prints the run's figures; returns the reasons it failed."""
    args = run.args
    print(
        f"\ngradserve on loopback, {args.workers} workers, {args.seconds:g} s: {args.fast} fast, {args.slow} slow "
        f"and {args.hostile} hostile clients; {len(run.kills)} workers SIGKILLed, one every {args.kill_every:g} s\n"
    )
    kinds = list(dict.fromkeys(answer.kind for answer in run.answers))
    statuses = sorted({answer.status for answer in run.answers if answer.status is not None})
    counts = Counter((answer.kind, answer.status) for answer in run.answers)
    print(f"{'answers':<22}" + "".join(f"{status:>7}" for status in statuses) + f"{'lost':>7}")
    for kind in kinds:
        print(f"{kind:<22}" + "".join(f"{counts[kind, s]:>7}" for s in [*statuses, None]))

    fast = [answer.seconds for answer in run.answers if answer.kind == "fast" and answer.status == 200]
    if fast:
        p50, p99 = _percentile(fast, 0.5) * 1e3, _percentile(fast, 0.99) * 1e3
        print(f"\nfast 200s: {len(fast)}, {len(fast) / args.seconds:.1f}/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    print(f"\n{'RSS (MiB)':<22}{'start':>9}{'end':>9}")
    print(f"{'API process':<22}{start_memory.api / MIB:>9.1f}{end_memory.api / MIB:>9.1f}")
    print(f"{'workers, together':<22}{start_memory.workers / MIB:>9.1f}{end_memory.workers / MIB:>9.1f}"
          f"   ({start_memory.processes} and {end_memory.processes} processes)")  # fmt: skip
    api, workers = _quarter_medians(run, "api"), _quarter_medians(run, "workers")
    print("median RSS by quarter: API " + " ".join(f"{m / MIB:.1f}" for m in api)
          + ", workers " + " ".join(f"{m / MIB:.1f}" for m in workers))  # fmt: skip

    failures = []
    if run.idle_refusals:
        failures.append(f"{len(run.idle_refusals)} fast requests refused while a worker was idle: "
                        + "; ".join(run.idle_refusals[:8]))  # fmt: skip
    lost = [answer for answer in run.answers if answer.status is None]
    if lost:
        failures.append(f"{len(lost)} accepted requests lost: " + "; ".join(
            f"{answer.kind} after {answer.seconds:.1f} s ({answer.error[:120]})" for answer in lost[:5]))  # fmt: skip
    if run.wrong:
        failures.append(f"{len(run.wrong)} fast requests answered with a wrong gradient: {run.wrong[0]}")
    if api[3] - api[1] > args.growth_mib * MIB:
        failures.append(f"the API process's memory grew from {api[1] / MIB:.1f} MiB in the second quarter to "
                        f"{api[3] / MIB:.1f} MiB in the last")  # fmt: skip
    return failures


async def main_async(args: argparse.Namespace) -> int:
    with tempfile.TemporaryFile() as log:
        server, url = start(["-m", "app.cli", "serve", "--workers", str(args.workers), "--processes", "1",
                             "--log-level", "warning"],
                            log=log)  # fmt: skip
        try:
            start_memory = memory_of(server.pid)
            run = await drive(url, server.pid, args)
            end_memory = memory_of(server.pid)
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        failures = report(run, start_memory, end_memory)
        log.seek(0)
        errors = log.read().decode(errors="replace").count("Traceback")
        print(f"server log: {errors} tracebacks")
    if failures:
        print("\nFAILED:\n" + "\n".join(f"- {reason}" for reason in failures))
        return 1
    print("\npassed")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=40, help="how long the clients send requests")
    parser.add_argument("--workers", type=int, default=2, help="gradserve's worker processes")
    parser.add_argument("--fast", type=int, default=8, help="fast clients")
    parser.add_argument("--slow", type=int, default=3, help="slow clients")
    parser.add_argument("--hostile", type=int, default=2, help="hostile clients")
    parser.add_argument("--kill-every", type=float, default=5, help="seconds between two worker SIGKILLs")
    parser.add_argument("--timeout", type=float, default=30, help="seconds a request may wait for its answer")
    parser.add_argument("--growth-mib", type=float, default=16, help="memory growth allowed for allocator noise")
    sys.exit(asyncio.run(main_async(parser.parse_args())))


if __name__ == "__main__":
    main()
