"""Fixtures: the app in-process (httpx over ASGI, inside its lifespan) and a real uvicorn
server started with `gradserve serve` in a subprocess; both run the same tests."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from app import server
from app.main import create_app
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PROBLEM = "application/problem+json"
TYPE_BASE = "https://gradserve.dev/problems/"


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def serve_in_process(**settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A fresh app with these settings, its lifespan entered (the pool started), and a client."""
    app = create_app(Settings(**{"workers": 1, **settings}))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://gradserve.test", timeout=60) as client:
            client.app = app
            yield client


@pytest.fixture(scope="session")
async def asgi_client(anyio_backend) -> AsyncIterator[httpx.AsyncClient]:
    async with serve_in_process(workers=2) as client:
        yield client


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def server_url() -> Any:
    """`gradserve serve` on a free loopback port, one API process with one worker (tests/api/
    test_processes.py runs several); stopped after the session."""
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
             "--processes", "1", "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url, process, log)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def serving_in_thread(**settings: Any) -> Iterator[int]:
    """What `gradserve serve` runs (app.server's listeners), for an app with these settings and
    one worker, on a free loopback port, in a thread of this process: yields the port."""
    configured = Settings(**{"workers": 1, **settings})
    port = _free_port()
    listeners = server.servers(create_app(configured), configured, "127.0.0.1", port, "critical")
    thread = threading.Thread(target=asyncio.run, args=(server.serve_together(listeners),), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not all(listener.started for listener in listeners):
            assert thread.is_alive() and time.monotonic() < deadline, "the servers did not start"
            time.sleep(0.05)
        yield port
    finally:
        for listener in listeners:
            listener.should_exit = True
        thread.join(timeout=30)


def _wait_ready(url: str, process: subprocess.Popen, log) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"gradserve serve exited with {process.returncode}:\n{log.read().decode()}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("gradserve serve did not become ready within 60 s")


@pytest.fixture(scope="session")
async def server_client(server_url, anyio_backend) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server_url, timeout=60) as client:
        yield client


@pytest.fixture(params=["in-process", "uvicorn"])
def client(request) -> httpx.AsyncClient:
    """Each test using it runs twice: against the app in-process and against the real server."""
    return request.getfixturevalue("asgi_client" if request.param == "in-process" else "server_client")


# ---- reading responses, independently of app.arrays ----

_NON_FINITE = {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}


def array(value: Any) -> np.ndarray:
    """An array from a response: nested JSON (non-finite numbers as strings) or base64."""
    if isinstance(value, dict):
        raw = base64.b64decode(value["data"])
        return np.frombuffer(raw, dtype=np.dtype(value["dtype"]).newbyteorder("<")).reshape(value["shape"])
    return np.array(_replace_strings(value), dtype=np.float64)


def _replace_strings(value: Any) -> Any:
    if isinstance(value, list):
        return [_replace_strings(v) for v in value]
    return _NON_FINITE.get(value, value) if isinstance(value, str) else value


def b64(values: Any, dtype: str = "float64") -> dict[str, Any]:
    data = np.asarray(values, dtype=np.dtype(dtype).newbyteorder("<"))
    return {"dtype": dtype, "shape": list(data.shape), "data": base64.b64encode(data.tobytes()).decode()}


def assert_problem(response: httpx.Response, status: int, kind: str, location: str | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["type"] == TYPE_BASE + kind, body
    assert body["status"] == status
    assert body["title"] and body["detail"]
    assert "Traceback" not in response.text
    if location is not None:
        assert body.get("location") == location, body
    return body
