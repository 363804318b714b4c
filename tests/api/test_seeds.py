"""The seed tutorials' examples, over HTTP, against PyTorch's autograd: each test runs against
the app in-process and against a real `gradserve serve`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app import examples
from app.settings import Settings
from tests.api.conftest import array

pytestmark = pytest.mark.anyio

X = [0.0, 1.0, 2.0, 3.0]


async def post(client, endpoint: str, body: dict) -> dict:
    response = await client.post(f"/v1/{endpoint}", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


def torch_grad(f, *values):
    tensors = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]
    out = f(*tensors)
    out.backward()
    return out.detach().numpy(), [t.grad.numpy() for t in tensors]


async def test_grad_of_two_dot_x_x_is_four_x(client):
    body = await post(client, "grad", {"function": {"expression": "2*dot(x, x)"}, "inputs": {"x": X}})
    value, (gradient,) = torch_grad(lambda x: 2 * torch.dot(x, x), X)
    np.testing.assert_allclose(array(body["value"]), value)
    np.testing.assert_allclose(array(body["gradient"]["x"]), gradient)
    np.testing.assert_array_equal(array(body["gradient"]["x"]), 4 * np.array(X))
    assert body["meta"]["device"] == ("gpu" if Settings().backend == "cupy" else "cpu") and body["meta"]["nodes"] >= 1


async def test_grad_of_detach_program_treats_u_as_constant(client):
    body = await post(client, "grad", {"function": {"program": examples.DETACH_PROGRAM}, "inputs": {"x": X}})

    def reference(x):
        u = (x * x).detach()
        return (u * x).sum()

    value, (gradient,) = torch_grad(reference, X)
    np.testing.assert_allclose(array(body["value"]), value)
    np.testing.assert_allclose(array(body["gradient"]["x"]), gradient)
    np.testing.assert_array_equal(array(body["gradient"]["x"]), np.array(X) ** 2)


def d2l_f(a):
    b = a * 2
    while b.norm() < 1000:
        b = b * 2
    c = b if b.sum() > 0 else 100 * b
    return c


@pytest.mark.parametrize("a", [0.3, -1.7, 1500.0])
async def test_grad_through_control_flow_is_f_of_a_over_a(client, a):
    body = await post(client, "grad", {"function": {"program": examples.CONTROL_FLOW_PROGRAM}, "inputs": {"a": a}})
    value, (gradient,) = torch_grad(d2l_f, a)
    np.testing.assert_allclose(array(body["value"]), value)
    np.testing.assert_allclose(array(body["gradient"]["a"]), gradient)
    np.testing.assert_allclose(array(body["gradient"]["a"]), array(body["value"]) / a)


@pytest.mark.parametrize("cotangent", [[1.0, 1.0, 1.0, 1.0], [0.5, -1.0, 2.0, 0.25]])
async def test_vjp_with_head_gradient_matches_backward_of_v(client, cotangent):
    body = await post(client, "vjp", {"function": {"expression": "x * x"}, "inputs": {"x": X}, "cotangent": cotangent})
    x = torch.tensor(X, dtype=torch.float64, requires_grad=True)
    y = x * x
    y.backward(torch.tensor(cotangent, dtype=torch.float64))
    np.testing.assert_allclose(array(body["value"]), y.detach().numpy())
    np.testing.assert_allclose(array(body["vjp"]["x"]), x.grad.numpy())


async def test_reduce_sum_gives_the_unreduced_value_and_the_gradient_of_the_sum(client):
    body = await post(client, "grad", {"function": {"expression": "x * x"}, "inputs": {"x": X}, "reduce": "sum"})
    np.testing.assert_array_equal(array(body["value"]), np.array(X) ** 2)
    np.testing.assert_array_equal(array(body["gradient"]["x"]), 2 * np.array(X))


W = [[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]]
V = [0.2, -0.4, 0.9]


@pytest.mark.parametrize("mode", ["forward", "reverse", "auto"])
async def test_jacobian_in_each_mode_equals_torch(client, mode):
    request = {"function": {"expression": "tanh(matmul(W, v))"}, "inputs": {"W": W, "v": V}, "mode": mode}
    body = await post(client, "jacobian", request)
    expected = torch.autograd.functional.jacobian(
        lambda w, v: torch.tanh(w @ v), (torch.tensor(W, dtype=torch.float64), torch.tensor(V, dtype=torch.float64))
    )
    np.testing.assert_allclose(array(body["jacobian"]["W"]), expected[0].numpy(), rtol=1e-12)
    np.testing.assert_allclose(array(body["jacobian"]["v"]), expected[1].numpy(), rtol=1e-12)
    assert body["mode"] == (mode if mode != "auto" else "reverse")  # 2 outputs < 9 inputs: reverse
    assert array(body["jacobian"]["W"]).shape == (2, 2, 3)


async def test_softmax_jacobian_is_the_same_in_both_modes(client):
    bodies = [
        await post(client, "jacobian", {"function": {"expression": "softmax(x)"}, "inputs": {"x": [1.0, 2.0, 3.0]},
                                        "mode": mode})
        for mode in ("forward", "reverse")
    ]  # fmt: skip
    expected = torch.autograd.functional.jacobian(
        lambda x: torch.softmax(x, -1), torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    )
    for body in bodies:
        np.testing.assert_allclose(array(body["jacobian"]["x"]), expected.numpy(), rtol=1e-12, atol=1e-15)


async def test_hessian_of_two_inputs_equals_torch(client):
    x, y = [0.3, -0.2, 0.5], [1.0, 2.0, -1.0]
    body = await post(
        client, "hessian", {"function": {"expression": "sum(exp(x) * y) + dot(x, y) ** 2"}, "inputs": {"x": x, "y": y}}
    )
    expected = torch.autograd.functional.hessian(
        lambda x, y: torch.sum(torch.exp(x) * y) + torch.dot(x, y) ** 2,
        (torch.tensor(x, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)),
    )
    for i, a in enumerate("xy"):
        for j, b in enumerate("xy"):
            np.testing.assert_allclose(array(body["hessian"][a][b]), expected[i][j].numpy(), rtol=1e-12, atol=1e-14)


async def test_hessian_of_quadratic_form_is_a_plus_a_transpose(client):
    body = await post(client, "hessian", examples.HESSIAN["quadratic_form"]["value"])
    a = np.array(examples.A)
    np.testing.assert_allclose(array(body["hessian"]["x"]["x"]), a + a.T)
    assert list(body["hessian"]) == ["x"]


async def test_hvp_equals_torch(client):
    x, v = [0.3, -0.2, 0.5], [1.0, 0.5, -2.0]
    body = await post(client, "hvp", {"function": {"expression": "sum(sin(x) * x ** 2)"}, "inputs": {"x": x},
                                      "tangents": {"x": v}})  # fmt: skip
    f = lambda t: torch.sum(torch.sin(t) * t**2)  # noqa: E731
    value, product = torch.autograd.functional.hvp(f, torch.tensor(x, dtype=torch.float64),
                                                   torch.tensor(v, dtype=torch.float64))  # fmt: skip
    _, (gradient,) = torch_grad(f, x)
    np.testing.assert_allclose(array(body["value"]), value.numpy())
    np.testing.assert_allclose(array(body["gradient"]["x"]), gradient)
    np.testing.assert_allclose(array(body["hvp"]["x"]), product.numpy(), rtol=1e-12)


async def test_hvp_of_the_sum_plots_sin_and_its_derivatives_without_cos(client):
    """D2L 2.5's exercise: sin's derivative computed, not written. For a function applied
    elementwise, the gradient of the output's sum is f'(x) and H @ ones is f''(x)."""
    x = np.linspace(-2 * np.pi, 2 * np.pi, 101)
    body = await post(client, "hvp", {"function": {"expression": "sin(x)"}, "inputs": {"x": x.tolist()},
                                      "tangents": {"x": [1.0] * x.size}, "reduce": "sum"})  # fmt: skip
    np.testing.assert_allclose(array(body["value"]), np.sin(x), rtol=1e-15, atol=1e-15)  # a GPU's sin: 1 ulp off
    np.testing.assert_allclose(array(body["gradient"]["x"]), np.cos(x), rtol=1e-15, atol=1e-15)
    np.testing.assert_allclose(array(body["hvp"]["x"]), -np.sin(x), rtol=1e-15, atol=1e-15)


async def test_jvp_equals_torch(client):
    body = await post(client, "jvp", examples.JVP["directional"]["value"])
    request = examples.JVP["directional"]["value"]
    value, tangent = torch.autograd.functional.jvp(
        lambda t: torch.sin(t) * t**2,
        torch.tensor(request["inputs"]["x"], dtype=torch.float64),
        torch.tensor(request["tangents"]["x"], dtype=torch.float64),
    )
    np.testing.assert_allclose(array(body["value"]), value.numpy())
    np.testing.assert_allclose(array(body["jvp"]), tangent.numpy(), rtol=1e-12)


async def test_graph_function_gradient(client):
    body = await post(client, "grad", examples.GRAD["graph"]["value"])
    value, (da, db) = torch_grad(lambda a, b: a * (a + b), 2.0, 3.0)
    np.testing.assert_allclose(array(body["value"]), value)
    np.testing.assert_allclose(array(body["gradient"]["a"]), da)
    np.testing.assert_allclose(array(body["gradient"]["b"]), db)


async def test_evaluate_and_base64_round_trip(client):
    body = await post(client, "evaluate", examples.EVALUATE["base64"]["value"])
    assert body["value"]["dtype"] == "float64" and body["value"]["shape"] == []
    assert array(body["value"]) == 28.0


async def test_validate_reports_shapes_and_cost_without_computing(client):
    body = await post(client, "validate", examples.VALIDATE["shapes_only"]["value"])
    assert body["output"] == {"shape": [30000, 30000], "dtype": "float64"}
    assert body["cost"]["results"] == {"x": [30000, 30000, 30000]}
    assert body["within_limits"] is False and "limit" in body["limit_detail"]


async def test_ops_catalogue_lists_detach_as_not_differentiable(client):
    response = await client.get("/v1/ops")
    ops = {op["name"]: op for op in response.json()["ops"]}
    assert ops["detach"]["differentiable"] is False and ops["sin"]["differentiable"] is True
    assert ops["dot"]["arity"] == 2 and "axis" in ops["sum"]["parameters"]


async def test_health_readiness_and_metrics(client):
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/readyz")).json() == {"status": "ready"}
    await client.post("/v1/evaluate", json={"function": {"expression": "x + 1"}, "inputs": {"x": 1.0}})
    metrics = (await client.get("/metrics")).text
    assert 'gradserve_requests_total{endpoint="/v1/evaluate",method="POST",status="200"}' in metrics
    assert "gradserve_request_duration_seconds_bucket" in metrics
    for name in ("gradserve_queue_depth", "gradserve_busy_workers", "gradserve_worker_restarts_total"):
        assert name in metrics
