"""Findings of the hostile-client review, one class each, kept fixed: programs that rebind
their parameters, a connection kept usable after an unexpected error, and metrics labels
from closed sets."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import torch
import uvicorn
from fastapi import FastAPI

from app.main import create_app
from app.settings import Settings
from tests.api.conftest import _free_port, array, assert_problem

pytestmark = pytest.mark.anyio

ISSUE_LOOP = """def f(y):
    for i in range(10):
        if y.sum() > 5:
            break
        elif y.sum() < -3:
            y = y * 3
        else:
            y = y * 2
    return sum(y)
"""


def issue_loop_in_torch(y):
    for _ in range(10):
        if y.sum() > 5:
            break
        y = y * 3 if y.sum() < -3 else y * 2
    return y.sum()


REBINDING = [
    ("def f(x):\n    x = x * 2\n    return sum(x)\n", lambda x: (x * 2).sum()),
    ("def f(x):\n    x += 1\n    return sum(x * x)\n", lambda x: ((x + 1) * (x + 1)).sum()),
    ("def f(x):\n    x, t = x * 3, x\n    return sum(x * t)\n", lambda x: (3 * x * x).sum()),
    ("def f(x):\n    for x in range(3):\n        pass\n    return 1.0 * x\n", lambda x: x.sum() * 0 + 2.0),
    (ISSUE_LOOP.replace("(y)", "(x)").replace("y", "x"), lambda x: issue_loop_in_torch(x)),
]


@pytest.mark.parametrize(("source", "reference"), REBINDING)
async def test_a_program_that_rebinds_its_parameter_is_answered_on_every_operation(client, source, reference):
    x = np.array([0.5, -0.25, 1.0])
    body = {"function": {"program": source}, "inputs": {"x": x.tolist()}}
    tensor = torch.tensor(x, requires_grad=True)
    expected_value = reference(tensor)
    (expected_gradient,) = torch.autograd.grad(expected_value, tensor, allow_unused=True, materialize_grads=True)
    expected_hessian = torch.autograd.functional.hessian(reference, torch.tensor(x)).numpy()

    validated = await client.post("/v1/validate", json=body)
    assert validated.status_code == 200 and validated.json()["valid"], validated.text
    answers = {}
    for operation in ("evaluate", "grad", "jacobian", "hessian"):
        response = await client.post(f"/v1/{operation}", json=body)
        assert response.status_code == 200, (operation, response.text)
        answers[operation] = response.json()
    for answer in answers.values():
        np.testing.assert_allclose(array(answer["value"]), expected_value.detach().numpy())
    np.testing.assert_allclose(array(answers["grad"]["gradient"]["x"]), expected_gradient.numpy())
    np.testing.assert_allclose(array(answers["jacobian"]["jacobian"]["x"]), expected_gradient.numpy())
    np.testing.assert_allclose(array(answers["hessian"]["hessian"]["x"]["x"]), expected_hessian, atol=1e-12)


async def test_a_program_cannot_bind_range(client):
    source = "def f(x):\n    range = 3\n    for i in range(2):\n        x = x * 2\n    return sum(x)\n"
    response = await client.post("/v1/evaluate", json={"function": {"program": source}, "inputs": {"x": [1.0]}})
    assert_problem(response, 422, "syntax", "line 2, column 5")


# ---- an unexpected error keeps the connection ----


@contextmanager
def running_server(app: FastAPI) -> Iterator[int]:
    """A real uvicorn server for `app` on a free loopback port, in a thread of this process."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(600):
            if server.started:
                break
            time.sleep(0.05)
        assert server.started, "uvicorn did not start"
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_an_unexpected_error_is_a_problem_and_the_connection_stays_usable():
    app = create_app(Settings(workers=1))

    @app.get("/v1/failing-for-the-test")
    def fail() -> None:
        raise RuntimeError("a bug")

    with running_server(app) as port:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(3):
            connection.request("GET", "/v1/failing-for-the-test")
            failed = connection.getresponse()
            body = failed.read().decode()
            assert failed.status == 500
            assert failed.getheader("content-type") == "application/problem+json"
            assert "https://gradserve.dev/problems/internal" in body and "a bug" not in body
            assert failed.getheader("connection") != "close"
            socket_used = connection.sock
            connection.request("GET", "/healthz")
            healthy = connection.getresponse()
            healthy.read()
            assert healthy.status == 200
            assert connection.sock is socket_used, "the server closed the keep-alive connection"
        connection.close()


# ---- metrics labels from closed sets ----


def series_of(metrics: str) -> set[str]:
    """The series of a Prometheus text exposition: each sample's name and labels, no values."""
    return {row.rsplit(" ", 1)[0] for row in metrics.splitlines() if row and not row.startswith("#")}


async def test_metrics_labels_do_not_grow_with_made_up_methods_and_paths(client):
    async def hostile_round(first: int) -> set[str]:
        for index in range(first, first + 40):
            await client.request(f"MADEUP{index}", "/v1/grad")
            await client.get(f"/no/such/path/{index}")
        await client.request("PATCH", "/healthz")
        return series_of((await client.get("/metrics")).text)

    series = await hostile_round(0)
    assert not any("MADEUP" in row or "/no/such/path" in row for row in series)
    requests = [row for row in series if row.startswith("gradserve_requests_total{")]
    assert any('method="other"' in row and 'endpoint="/v1/grad"' in row and 'status="405"' in row for row in requests)
    assert any('endpoint="unmatched"' in row and 'status="404"' in row for row in requests)
    assert any('method="PATCH"' in row for row in requests)
    assert await hostile_round(40) == await hostile_round(80)
