"""A server under test on loopback, seen from outside: started as a subprocess, its pool's
worker processes found and measured through /proc (Linux)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(
    arguments: list[str], env: dict[str, str] | None = None, log: IO | int = subprocess.DEVNULL
) -> tuple[subprocess.Popen, str]:
    """`python ARGUMENTS --port P` on a free 127.0.0.1 port, once it answers (/readyz for
    gradserve, /docs for another FastAPI app); its URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, *arguments, "--port", str(port)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}, stdout=log, stderr=log,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(f"{url}/readyz" if "app.cli" in arguments else f"{url}/docs", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"{arguments} did not start")


def spawned_children(parent: int) -> set[int]:
    """Pids of the pool workers that `parent` spawned (multiprocessing's spawn_main processes)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"spawn_main" in cmdline:
            found.add(int(entry.name))
    return found


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (VmRSS), 0 once it has gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0
