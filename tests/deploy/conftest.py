"""Docker for the container tests: the engine started by the project's offline-docker script,
the images built from this checkout, and helpers that run and wait for containers.

Everything a test starts is stopped by its fixture, whether or not the test passed; every
command has a time limit. Where Docker cannot start, the tests fail and say why: on a machine
where the script works, not running them would hide a broken image."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
OFFLINE_DOCKER = ROOT.parent / "shared" / "containers" / "offline-docker.sh"
IMAGES = {"cpu": "gradserve:latest", "ray": "gradserve:ray", "gpu": "gradserve:gpu"}


@pytest.fixture(scope="session")
def anyio_backend() -> str:
    return "asyncio"


def run(command: list[str], timeout: float, env: dict[str, str] | None = None, check: bool = True) -> str:
    """`command`'s output; a failure (or the time limit) fails the test with what it printed."""
    try:
        done = subprocess.run(
            command, cwd=ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"{' '.join(command)} did not finish within {timeout:g} s:\n{_text(error.stdout)[-4000:]}")
    if check and done.returncode != 0:
        pytest.fail(f"{' '.join(command)} exited with {done.returncode}:\n{(done.stdout + done.stderr)[-4000:]}")
    return done.stdout


def _text(output: bytes | str | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


@pytest.fixture(scope="session")
def docker() -> None:
    """A Docker engine that answers, and the stand-in python:3.11-slim base image."""
    if not OFFLINE_DOCKER.exists():
        pytest.fail(f"{OFFLINE_DOCKER} is missing: the container tests need the project's shared/ beside the checkout")
    run(["bash", str(OFFLINE_DOCKER)], timeout=900)


def build_command() -> list[str]:
    """`docker build` with BuildKit, which the Dockerfile's cache and bind mounts need: the
    CLI's own where it has the buildx plugin, else the CLI of Debian's docker.io, whose
    builder is BuildKit under DOCKER_BUILDKIT=1 (a newer CLI without buildx has none)."""
    if subprocess.run(["docker", "buildx", "version"], capture_output=True).returncode == 0:
        return ["docker", "build"]
    if Path("/usr/bin/docker").exists():
        return ["/usr/bin/docker", "build"]
    pytest.fail("no docker CLI here builds with BuildKit: install the buildx plugin")


def build(target: str) -> str:
    """The image of one Dockerfile target, tagged as docker-compose.yml names it."""
    run([*build_command(), "--network", "host", "--target", target, "--tag", IMAGES[target], "."],
        timeout=1200, env={"DOCKER_BUILDKIT": "1"})  # fmt: skip
    return IMAGES[target]


@pytest.fixture(scope="session")
def cpu_image(docker) -> str:
    return build("cpu")


@pytest.fixture(scope="session")
def ray_image(docker) -> str:
    return build("ray")


def compose_command() -> list[str]:
    """Compose v1 (what the offline-docker script installs) or the CLI plugin v2."""
    return ["docker-compose"] if shutil.which("docker-compose") else ["docker", "compose"]


def inspect(container: str) -> dict:
    return json.loads(run(["docker", "inspect", container], timeout=30))[0]


def wait_healthy(container: str, timeout: float = 180) -> None:
    """Until the container's own HEALTHCHECK reports healthy; its logs when it does not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = inspect(container)["State"]
        if state["Status"] != "running" or state["Health"]["Status"] == "unhealthy":
            break
        if state["Health"]["Status"] == "healthy":
            return
        time.sleep(1)
    logs = run(["docker", "logs", "--tail", "60", container], timeout=30, check=False)
    pytest.fail(f"container {container[:12]} is not healthy ({state['Status']}, {state['Health']['Status']}):\n{logs}")


def published_url(container: str, port: int = 8000) -> str:
    """The URL of the container's `port` as published on loopback."""
    host, _, host_port = run(["docker", "port", container, f"{port}/tcp"], timeout=30).splitlines()[0].rpartition(":")
    return f"http://127.0.0.1:{host_port}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def grad_of_two_dot(url: str) -> list[float]:
    body = {"function": {"expression": "2*dot(x, x)"}, "inputs": {"x": [0.0, 1.0, 2.0, 3.0]}}
    response = httpx.post(f"{url}/v1/grad", json=body, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()["gradient"]["x"]


@pytest.fixture
def compose_project(docker) -> Iterator[tuple[list[str], dict[str, str]]]:
    """A compose project of its own (name and published ports), taken down with its volumes
    after the test, whatever happened."""
    name = f"gradserve-test-{os.getpid()}-{time.monotonic_ns() % 10**6}"
    env = {"API_BIND": "127.0.0.1", "API_PORT": str(free_port()), "GPU_API_PORT": str(free_port()),
           "RAY_API_PORT": str(free_port()),
           # Every request to the pool, even small ones; passed through compose like any setting.
           "GRADSERVE_INLINE_WORK_ELEMENTS": "0"}  # fmt: skip
    command = [*compose_command(), "--project-name", name, "--file", str(ROOT / "docker-compose.yml")]
    try:
        yield command, env
    finally:
        run([*command, "--profile", "ray", "--profile", "gpu", "down", "--volumes", "--remove-orphans",
             "--timeout", "10"], timeout=180, env=env, check=False)  # fmt: skip
