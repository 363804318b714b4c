"""POST /v1/trace over HTTP, in-process and against a real `gradserve serve`: every node's
value and adjoint against PyTorch's retain_grad, in both encodings; summaries; the node limit;
and answers that fit the documented schema."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app import examples
from tests.api.conftest import array, assert_problem, b64, serve_in_process
from tests.api.test_responses import assert_documented

pytestmark = pytest.mark.anyio

X = [0.0, 1.0, 2.0, 3.0]


async def post_trace(client, body: dict) -> dict:
    response = await client.post("/v1/trace", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def d2l_nodes(a_value: float) -> list[torch.Tensor]:
    """D2L 2.5.4's f in torch, each tensor in the order the program records its node."""
    nodes = [torch.tensor(a_value, dtype=torch.float64, requires_grad=True)]

    def record(tensor):
        if tensor.requires_grad:
            tensor.retain_grad()
        nodes.append(tensor)
        return tensor

    b = record(nodes[0] * 2)
    while record(record(torch.linalg.vector_norm(b)) < 1000):
        b = record(b * 2)
    c = b if record(record(b.sum()) > 0) else record(100 * b)
    c.backward()
    return nodes


@pytest.mark.parametrize("encoding", ["json", "base64"])
@pytest.mark.parametrize("a", [0.3, -1.7])
async def test_the_d2l_program_traces_as_torch_computes_it(client, encoding, a):
    body = await post_trace(
        client, {"function": {"program": examples.CONTROL_FLOW_PROGRAM}, "inputs": {"a": a}, "encoding": encoding}
    )
    expected = d2l_nodes(a)
    assert [node["id"] for node in body["nodes"]] == [f"%{k}" for k in range(len(expected))]
    for node, tensor in zip(body["nodes"], expected, strict=True):
        np.testing.assert_allclose(array(node["value"]).astype(float), tensor.detach().numpy().astype(float))
        if tensor.grad is None:
            assert node["adjoint"] is None, node
        else:
            np.testing.assert_allclose(array(node["adjoint"]), tensor.grad.numpy(), rtol=1e-12)
    output = {node["id"]: node for node in body["nodes"]}[body["output"]]
    assert output["line"] == (4 if a > 0 else 8)
    np.testing.assert_array_equal(array(output["adjoint"]), 1.0)
    np.testing.assert_array_equal(array(output["value"]), array(body["value"]))
    assert [node["line"] for node in body["nodes"][:4]] == [None, 2, 3, 3]
    assert body["nodes"][1]["location"] == "line 2, column 11"  # the operator


async def test_the_csc321_graph_answers_its_adjoints_and_dot_text(client):
    body = await post_trace(client, {"function": {"graph": examples.CSC321_GRAPH}, "inputs": {"a": 2.0, "b": 3.0}})
    by_id = {node["id"]: node for node in body["nodes"]}
    assert [(n["name"], n["adjoint"]) for n in body["nodes"][:2]] == [("a", 7.0), ("b", 2.0)]
    assert by_id["%2"] | {"value": 5.0, "adjoint": 2.0} == by_id["%2"]
    assert (by_id["%2"]["primitive"], by_id["%2"]["inputs"], by_id["%2"]["location"]) == ("add", ["%0", "%1"],
                                                                                          "node 'c'")  # fmt: skip
    assert '"%0" -> "%3";' in body["dot"] and body["dot"].startswith("digraph trace {")
    assert body["meta"]["nodes"] == 2


async def test_wrt_leaves_other_inputs_without_an_adjoint(client):
    body = await post_trace(
        client, {"function": {"expression": "x @ A @ x"}, "inputs": {"x": [1.0, 2.0], "A": examples.A}, "wrt": ["x"]}
    )
    x_node, a_node, *_ = body["nodes"]
    assert a_node["adjoint"] is None
    A = np.array(examples.A)
    np.testing.assert_allclose(array(x_node["adjoint"]), (A + A.T) @ np.array([1.0, 2.0]))


async def test_large_arrays_are_summarised_in_either_encoding(client):
    x = np.linspace(-1.0, 2.0, 20)
    for encoding in ("json", "base64"):
        body = await post_trace(
            client,
            {"function": {"expression": "x * x"}, "inputs": {"x": b64(x)}, "reduce": "sum", "summarize_above": 10,
             "encoding": encoding},
        )  # fmt: skip
        x_node = body["nodes"][0]
        assert x_node["value"] == {"shape": [20], "dtype": "float64", "min": -1.0, "max": 2.0,
                                   "mean": pytest.approx(0.5), "entries": x[:8].tolist()}  # fmt: skip
        assert x_node["adjoint"]["entries"] == (2 * x[:8]).tolist()
        assert array(body["value"]).shape == (20,)


async def test_a_non_scalar_output_needs_reduce_sum(client):
    response = await client.post("/v1/trace", json={"function": {"expression": "x * x"}, "inputs": {"x": X}})
    assert "reduce" in assert_problem(response, 422, "not-scalar")["detail"]


async def test_a_syntax_error_is_located_in_the_source(client):
    response = await client.post("/v1/trace", json={"function": {"expression": "2 * (x +"}, "inputs": {"x": X}})
    assert_problem(response, 422, "syntax", "offset 4")  # the unclosed parenthesis


async def test_past_the_node_limit_a_trace_is_refused_with_413():
    async with serve_in_process(max_trace_nodes=3) as client:
        small = await client.post("/v1/trace", json={"function": {"expression": "sum(x)"}, "inputs": {"x": X}})
        assert small.status_code == 200
        response = await client.post("/v1/trace", json={"function": {"expression": "2*dot(x, x) + 1"},
                                                        "inputs": {"x": X}})  # fmt: skip
        assert "4 nodes" in assert_problem(response, 413, "too-large")["detail"]
        program = {"function": {"program": examples.CONTROL_FLOW_PROGRAM}, "inputs": {"a": 0.3}}
        assert_problem(await client.post("/v1/trace", json=program), 413, "too-large")


@pytest.mark.parametrize(
    "body",
    [
        {"function": {"expression": "sum(where(x > 1, log(x), x))"}, "inputs": {"x": [0.0, 2.0, -1.0]}},
        {"function": {"expression": "x * x"}, "inputs": {"x": list(range(100))}, "reduce": "sum", "encoding": "base64"},
        {"function": {"expression": "sum(log(x))"}, "inputs": {"x": [0.0] * 70}},
        {"function": {"program": examples.CONTROL_FLOW_PROGRAM}, "inputs": {"a": 0.3}, "encoding": "base64"},
    ],
    ids=["booleans-and-non-finite", "summaries-base64", "non-finite-summary", "program-base64"],
)
async def test_trace_answers_fit_the_documented_schema(asgi_client, body):
    assert_documented("post", "/v1/trace", await asgi_client.post("/v1/trace", json=body))
