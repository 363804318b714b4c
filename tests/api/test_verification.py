"""`verify: true` on the derivative endpoints: meta.verification, as the OpenAPI document
declares it, for expressions, graphs and programs, computed in the API process or a worker."""

from __future__ import annotations

import numpy as np
import pytest

from tests.api.conftest import assert_problem
from tests.api.test_responses import assert_documented

pytestmark = pytest.mark.anyio

X = [0.5, 1.0, 2.0, 3.0]
SIN = {"expression": "sum(sin(x) * x**2)"}
BODIES = {
    "grad": {"function": SIN, "inputs": {"x": X}},
    "vjp": {"function": {"expression": "sin(x) * x"}, "inputs": {"x": X}, "cotangent": [1.0, -1.0, 2.0, 0.5]},
    "jvp": {"function": {"expression": "sin(x) * x"}, "inputs": {"x": X}, "tangents": {"x": [1.0, 0.0, 0.0, 1.0]}},
    "jacobian": {"function": {"expression": "softmax(x)"}, "inputs": {"x": X}},
    "hessian": {"function": SIN, "inputs": {"x": X}},
    "hvp": {"function": SIN, "inputs": {"x": X}, "tangents": {"x": [1.0, 0.0, 0.0, 1.0]}},
}


@pytest.mark.parametrize("operation", list(BODIES))
async def test_every_derivative_operation_verifies_itself(client, operation):
    response = await client.post(f"/v1/{operation}", json={**BODIES[operation], "verify": True})
    assert response.status_code == 200, response.text
    report = response.json()["meta"]["verification"]
    assert report["verdict"] == "pass"
    assert 0 <= report["error"] <= report["tolerance"] == 1e-6
    assert report["step"] == pytest.approx(np.cbrt(np.finfo(np.float64).eps))
    assert report["evaluations"] >= 2


async def test_verification_is_only_given_when_asked(asgi_client):
    response = await asgi_client.post("/v1/grad", json=BODIES["grad"])
    assert "verification" not in response.json()["meta"]


@pytest.mark.parametrize("operation", list(BODIES))
async def test_verified_answers_fit_the_document(asgi_client, operation):
    response = await asgi_client.post(f"/v1/{operation}", json={**BODIES[operation], "verify": True})
    assert_documented("post", f"/v1/{operation}", response)


async def test_a_program_whose_path_changes_under_the_step_is_reported_not_failed(client):
    program = "def f(x):\n    if x > 0:\n        return x * x\n    return -x\n"
    body = {"function": {"program": program}, "inputs": {"x": 1e-9}, "verify": True}
    response = await client.post("/v1/grad", json=body)
    assert response.status_code == 200
    report = response.json()["meta"]["verification"]
    assert report["verdict"] == "path-changed" and report["error"] is None
    assert_documented("post", "/v1/grad", response)
    far = await client.post("/v1/grad", json={**body, "inputs": {"x": 2.0}})
    assert far.json()["meta"]["verification"]["verdict"] == "pass"


async def test_float32_is_verified_with_its_own_step_and_tolerance(asgi_client):
    response = await asgi_client.post("/v1/grad", json={**BODIES["grad"], "dtype": "float32", "verify": True})
    report = response.json()["meta"]["verification"]
    assert report["verdict"] == "pass" and report["tolerance"] == 1e-2
    assert report["step"] == pytest.approx(np.cbrt(np.finfo(np.float32).eps))


async def test_a_large_request_is_verified_in_a_worker(asgi_client):
    rng = np.random.default_rng(0)
    # 2.75 million elements by the static bound: past the inline bound's 2 million
    body = {"function": {"expression": "sum(tanh(x @ w))"}, "inputs": {"x": rng.normal(size=(128, 256)).tolist(),
            "w": rng.normal(size=(256, 256)).tolist()}, "wrt": ["w"], "verify": True}  # fmt: skip
    before = asgi_client.app.state.dispatcher.inline_answers
    response = await asgi_client.post("/v1/grad", json=body)
    assert response.json()["meta"]["verification"]["verdict"] == "pass"
    assert asgi_client.app.state.dispatcher.inline_answers == before


async def test_verify_must_be_a_boolean(asgi_client):
    response = await asgi_client.post("/v1/grad", json={**BODIES["grad"], "verify": "yes"})
    assert_problem(response, 422, "invalid-request", "/verify")


async def test_evaluate_takes_no_verify(asgi_client):
    response = await asgi_client.post("/v1/evaluate", json={**BODIES["grad"], "verify": True})
    assert_problem(response, 422, "invalid-request", "/verify")
