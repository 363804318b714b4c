"""`gradserve serve --processes N`: several API processes behind one port, each with its share
of the workers, and the state one makes (linearize handles) usable through any connection,
whichever process the connection lands on."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from app import ownership
from app.processes import shares
from app.settings import Settings
from bench.server import spawned_children
from tests.api.conftest import ROOT, _free_port, _wait_ready

PROCESSES = 2


KEY = "a-key-of-the-test-service-0123"


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[subprocess.Popen, str]]:
    with serving() as served:
        yield served


@contextmanager
def serving(**environment: str) -> Iterator[tuple[subprocess.Popen, str]]:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": _scratch(), **environment}
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--processes", str(PROCESSES),
             "--workers", str(PROCESSES), "--log-level", "warning"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            _wait_ready(f"http://127.0.0.1:{port}", process, log)
            yield process, f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            process.wait(timeout=60)
    assert process.returncode == 0
    assert not list(Path(env["TMPDIR"]).glob("gradserve-peers-*")), "the peer sockets' directory was left behind"


@pytest.fixture(scope="module")
def url(server: tuple[subprocess.Popen, str]) -> str:
    return server[1]


_SCRATCH: list[str] = []


def _scratch() -> str:
    _SCRATCH.append(tempfile.mkdtemp(prefix="gradserve-test-"))
    return _SCRATCH[-1]


def fresh(url: str) -> httpx.Client:
    """A client whose requests each open a new connection, landing on any of the processes."""
    return httpx.Client(base_url=url, timeout=60, limits=httpx.Limits(max_keepalive_connections=0))


def linearize(client: httpx.Client, headers: dict[str, str] | None = None) -> str:
    body = {"function": {"expression": "sum(sin(x) * x)"}, "inputs": {"x": [0.5, 1.0, 2.0]}}
    answer = client.post("/v1/linearize", json=body, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()["handle"]["id"]


def owner(owned_id: str) -> int:
    return int(owned_id.split(".")[0].removeprefix("p"))  # "p<owner>.<random>"


def test_handles_of_every_process_are_usable_through_any_connection(url):
    with fresh(url) as client:
        handles: dict[int, str] = {}
        for _ in range(200):  # each through a new connection, until every process has made one
            handle = linearize(client)
            handles.setdefault(owner(handle), handle)
            if len(handles) == PROCESSES:
                break
        assert sorted(handles) == list(range(PROCESSES)), f"connections landed on processes {sorted(handles)} only"
        for handle in handles.values():
            answers = [client.post(f"/v1/linearize/{handle}/vjp", json={"cotangent": 1.0}) for _ in range(12)]
            assert {answer.status_code for answer in answers} == {200}
            for answer in answers:  # x*cos(x) + sin(x) at each x
                assert answer.json()["vjp"]["x"] == pytest.approx([0.91821682, 1.38177329, 0.07700375])
            assert client.delete(f"/v1/linearize/{handle}").status_code == 204
            gone = [client.post(f"/v1/linearize/{handle}/jvp", json={"tangents": {"x": [1, 0, 0]}}) for _ in range(6)]
            assert {answer.status_code for answer in gone} == {404}
            assert {answer.json()["type"] for answer in gone} == {"https://gradserve.dev/problems/handle-not-found"}


def test_jobs_of_every_process_are_readable_and_cancellable_through_any_connection(url):
    body = {"operation": "hessian", "function": {"expression": "sum(sin(x) * x**2)"}, "inputs": {"x": [0.5, 1.0]},
            "format": "csr"}  # fmt: skip
    with fresh(url) as client:
        jobs: dict[int, str] = {}
        for _ in range(200):
            submitted = client.post("/v1/jobs", json=body)
            assert submitted.status_code == 202, submitted.text
            job = submitted.headers["location"].rsplit("/", 1)[1]
            jobs.setdefault(owner(job), job)
            if len(jobs) == PROCESSES:
                break
        assert sorted(jobs) == list(range(PROCESSES)), f"connections landed on processes {sorted(jobs)} only"
        for job in jobs.values():
            for _ in range(6):
                answer = client.get(f"/v1/jobs/{job}")
                assert answer.status_code == 200, answer.text
            deadline = time.monotonic() + 30
            while (state := client.get(f"/v1/jobs/{job}").json())["state"] != "done":
                assert time.monotonic() < deadline, state
            assert state["result"]["hessian"]["x"]["x"]["shape"] == [2, 2]
            assert client.delete(f"/v1/jobs/{job}").json()["state"] == "done"


def test_a_forwarded_answer_keeps_the_callers_request_id_and_headers(url):
    with fresh(url) as client:
        handles = [linearize(client) for _ in range(8)]
        for handle in handles:
            answer = client.post(f"/v1/linearize/{handle}/jvp", json={"tangents": {"x": [1, 0, 0]}},
                                 headers={"X-Request-ID": "forwarded-1"})  # fmt: skip
            assert answer.status_code == 200
            assert answer.headers["x-request-id"] == "forwarded-1"
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.headers.get_list("content-length") == [str(len(answer.content))]


def test_connections_kept_open_are_spread_evenly_over_the_processes(url):
    deadline = time.monotonic() + 60
    while owners_answering(url) != set(range(PROCESSES)):  # until every process serves
        assert time.monotonic() < deadline, "an API process never started serving"
    for _ in range(3):
        clients = [httpx.Client(base_url=url, timeout=60, limits=httpx.Limits(max_connections=1)) for _ in range(8)]
        try:  # each client's one connection, opened by its first request and kept open
            owners = [owner(linearize(client)) for client in clients]
            assert sorted(owners.count(index) for index in range(PROCESSES)) == [4, 4], owners
            assert [owner(linearize(client)) for client in clients] == owners  # the same connections
        finally:
            for client in clients:
                client.close()


def test_health_and_metrics_answer_from_any_process(url):
    with fresh(url) as client:
        answered = set()
        for _ in range(200):
            assert client.get("/readyz").status_code == 200
            scrape = client.get("/metrics").text
            assert "gradserve_requests" in scrape
            answered |= set(re.findall(r'gradserve_api_process\{index="(\d)",processes="2"\} 1\.0', scrape))
            if len(answered) == PROCESSES:
                break
        assert answered == {"0", "1"}


def owners_answering(url: str) -> set[int]:
    with fresh(url) as client:
        return {owner(linearize(client)) for _ in range(30)}


def test_an_api_process_that_dies_is_replaced(server):
    process, url = server
    api_processes = spawned_children(process.pid)
    assert len(api_processes) == PROCESSES
    os.kill(min(api_processes), signal.SIGKILL)
    deadline = time.monotonic() + 60
    while owners_answering(url) != set(range(PROCESSES)):  # the survivor answers meanwhile
        assert time.monotonic() < deadline, "the dead API process was not replaced"
        time.sleep(0.5)
    assert len(spawned_children(process.pid)) == PROCESSES


def test_the_caller_is_checked_where_the_request_lands_before_it_is_forwarded():
    with serving(GRADSERVE_API_KEYS=KEY) as (_, url), fresh(url) as client:
        key = {"X-API-Key": KEY}
        handles: dict[str, str] = {}
        for _ in range(200):  # until every process has made one
            handle = linearize(client, key)
            handles.setdefault(handle.split(".")[0], handle)
            if len(handles) == PROCESSES:
                break
        assert len(handles) == PROCESSES
        for handle in handles.values():
            path, body = f"/v1/linearize/{handle}/vjp", {"cotangent": 1.0}
            assert client.post(path, json=body).status_code == 401
            assert client.post(path, json=body, headers={"X-API-Key": KEY[:-1] + "x"}).status_code == 401
            assert client.post(path, json=body, headers=key).status_code == 200


def test_owned_ids_name_their_process():
    try:
        ownership.configure(1, 3, "/nonexistent")
        made = ownership.new_owned_id()
        assert made.startswith("p1.") and ownership.owner_of(made) == 1
        assert ownership.elsewhere(made) is None
        assert ownership.elsewhere("p2." + made[3:]) == 2
        assert ownership.owner_of("p3." + made[3:]) is None  # no such process
        assert ownership.owner_of("anything-else") is None
    finally:
        ownership.configure(0, 1, None)
    assert ownership.elsewhere("p1.x") is None  # alone, every id is answered here


def test_the_workers_and_bounds_are_split_between_the_processes():
    settings = Settings(workers=5, max_connections=512, queue_size=0)
    split = shares(settings, 2)
    assert [part["workers"] for part in split] == [3, 2]
    assert [part["max_connections"] for part in split] == [256, 256]
    assert [part["queue_size"] for part in split] == [1, 1]  # at least one each
    assert [part["workers"] for part in shares(Settings(workers=1), 3)] == [1, 1, 1]


def test_two_processes_by_default_one_with_ray():
    assert Settings().api_processes() == 2
    assert Settings(executor="ray").api_processes() == 1  # a private Ray instance per process otherwise
    assert Settings(processes=3, executor="ray").api_processes() == 3
