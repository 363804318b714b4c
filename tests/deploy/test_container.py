"""The CPU image, started with `docker run` as a user would: its own HEALTHCHECK reports
healthy, and the API's core cases pass against it over HTTP: the seed tutorials' examples,
an error, and a computation stopped at the deadline. The GPU image is built, not run (there
is no GPU here)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.api import test_seeds
from tests.api.conftest import assert_problem
from tests.api.test_pool import ENDLESS_STEPS, FOREVER, TWO_DOT
from tests.deploy.conftest import build, grad_of_two_dot, inspect, published_url, run, wait_healthy

pytestmark = [pytest.mark.anyio, pytest.mark.containers, pytest.mark.timeout(1800)]

DEADLINE_SECONDS = 2

# The seed tutorials' examples (tests/api/test_seeds.py), collected here too, where their
# `client` is the container's.
globals().update({name: test for name, test in vars(test_seeds).items() if name.startswith("test_")})


@pytest.fixture(scope="module")
def container(cpu_image) -> Iterator[str]:
    """The image run with a short deadline (and a step budget only the deadline stops), its
    API published on a free loopback port; removed after the module."""
    container = run(["docker", "run", "--detach", "--publish", "127.0.0.1::8000",
                     "--env", f"GRADSERVE_DEADLINE_SECONDS={DEADLINE_SECONDS}",
                     "--env", f"GRADSERVE_MAX_STEPS={ENDLESS_STEPS}", cpu_image], timeout=60).strip()  # fmt: skip
    try:
        wait_healthy(container)
        yield container
    finally:
        run(["docker", "rm", "--force", "--volumes", container], timeout=60, check=False)


@pytest.fixture
async def client(container) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=published_url(container), timeout=60) as client:
        yield client


def test_the_image_runs_as_a_numeric_non_root_user_with_its_own_healthcheck(container):
    config = inspect(container)["Config"]
    assert config["User"] == "10001"
    assert config["Healthcheck"]["Test"][0] == "CMD"  # exec form: no shell needed in the image
    assert "/healthz" in " ".join(config["Healthcheck"]["Test"])


async def test_an_invalid_expression_is_a_422_problem_with_a_location(client):
    response = await client.post("/v1/evaluate", json={"function": {"expression": "2 * (x +"}, "inputs": {"x": 1.0}})
    assert_problem(response, 422, "syntax", "offset 4")


async def test_a_computation_past_the_deadline_is_stopped_and_the_next_is_served(client):
    body = assert_problem(await client.post("/v1/evaluate", json=FOREVER), 504, "deadline-exceeded")
    assert f"{DEADLINE_SECONDS} s" in body["detail"]
    response = await client.post("/v1/grad", json=TWO_DOT)
    assert response.status_code == 200, response.text


def test_grad_over_plain_http(container):
    assert grad_of_two_dot(published_url(container)) == [0.0, 4.0, 8.0, 12.0]


def test_the_gpu_image_builds_and_computes_with_cupy(docker):
    config = inspect(build("gpu"))["Config"]
    assert "GRADSERVE_BACKEND=cupy" in config["Env"]
    assert config["User"] == "10001"
