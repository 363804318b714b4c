"""docker-compose.yml brought up as a user would: the default profile (the API on numpy
workers), then the ray profile (a Ray head, two workers, and an API whose workers are actors
on them); a request through each, then `down` with the volumes."""

from __future__ import annotations

import httpx
import pytest

from tests.deploy.conftest import grad_of_two_dot, run, wait_healthy

pytestmark = [pytest.mark.containers, pytest.mark.timeout(1800)]


def service_containers(command: list[str], env: dict[str, str], service: str) -> list[str]:
    return run([*command, "ps", "--quiet", service], timeout=60, env=env).split()


def test_the_default_profile_serves_the_api(compose_project, cpu_image):
    command, env = compose_project
    run([*command, "up", "--detach", "--no-build"], timeout=300, env=env)
    (api,) = service_containers(command, env, "gradserve")
    wait_healthy(api)
    assert grad_of_two_dot(f"http://127.0.0.1:{env['API_PORT']}") == [0.0, 4.0, 8.0, 12.0]


def test_the_ray_profile_computes_on_the_ray_workers(compose_project, cpu_image, ray_image):
    command, env = compose_project
    run([*command, "--profile", "ray", "up", "--detach", "--no-build"], timeout=300, env=env)
    (api,) = service_containers(command, env, "gradserve-ray")
    wait_healthy(api, timeout=300)  # healthy once its actors have started on the workers
    url = f"http://127.0.0.1:{env['RAY_API_PORT']}"
    assert grad_of_two_dot(url) == [0.0, 4.0, 8.0, 12.0]
    assert "gradserve_inline_answers_total 0.0" in httpx.get(f"{url}/metrics", timeout=30).text  # computed by an actor
    workers = service_containers(command, env, "ray-worker")
    assert len(workers) == 2
    # One actor per worker node (one CPU slot each), none on the API's node or the head.
    actors = [run(["docker", "top", worker], timeout=30).count("ray::WorkerActor") for worker in workers]
    assert actors == [1, 1]
    assert "ray::WorkerActor" not in run(["docker", "top", api], timeout=30)
