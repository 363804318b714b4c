"""Every error is RFC 9457 problem+json with a stable type, the right status and, where it
applies, a location; bad input is never a 5xx."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from tests.api.conftest import TYPE_BASE, assert_problem, b64

pytestmark = pytest.mark.anyio


DEEP = "[" * 1000 + "1" + "]" * 1000  # JSON text: nested 1000 levels deep


def expression(source: str, **fields) -> dict:
    return {"function": {"expression": source}, "inputs": {"x": [1.0, 2.0, 3.0]}, **fields}


@pytest.mark.parametrize(
    ("endpoint", "body", "kind", "location"),
    [
        ("evaluate", expression("2 * (x +"), "syntax", "offset 4"),
        ("evaluate", expression("sin(y)"), "unknown-name", "offset 4"),
        ("evaluate", expression("sinn(x)"), "unknown-name", "offset 0"),
        ("evaluate", expression("dot(x, x, x)"), "arity", "offset 0"),
        ("evaluate", expression("x + ones"), "unknown-name", "offset 4"),
        ("evaluate", {"function": {"expression": "x + y"}, "inputs": {"x": [1.0, 2.0], "y": [1.0, 2.0, 3.0]}},
         "shape", "offset 2"),
        ("evaluate", expression("sum(x, axis=3)"), "bad-param", None),
        ("grad", expression("x * x"), "not-scalar", None),
        ("grad", expression("sum(x)", wrt=["z"]), "bad-wrt", "/wrt"),
        ("grad", {"function": {"expression": "sum(x * n)"}, "inputs": {"x": [1.0], "n": b64([2], "int64")},
                  "wrt": ["n"]}, "bad-wrt", "/wrt"),
        ("vjp", expression("x * x", cotangent=[1.0, 1.0]), "bad-input", "/cotangent"),
        ("jvp", expression("x * x", tangents={"x": [1.0]}), "bad-input", "/tangents/x"),
        ("jvp", expression("x * x", tangents={"x/y": [1.0]}), "bad-input", "/tangents/x~1y"),
        ("evaluate", {"function": {"graph": {"inputs": ["x"], "nodes": [{"id": "y", "op": "sine", "args": ["x"]}],
                                             "output": "y"}}, "inputs": {"x": 1.0}}, "unknown-op", None),
        ("evaluate", {"function": {"graph": {"inputs": ["x"], "nodes": [
            {"id": "a", "op": "sin", "args": ["b"]}, {"id": "b", "op": "cos", "args": ["a"]}], "output": "b"}},
            "inputs": {"x": 1.0}}, "graph", None),
        ("evaluate", {"function": {"program": "def f(x):\n    return x +\n"}, "inputs": {"x": 1.0}}, "syntax", None),
        ("evaluate", {"function": {"program": "def f(x):\n    return x\n"}, "inputs": {"x": 1.0, "y": 2.0}},
         "bad-input", "/inputs/y"),
        ("evaluate", {"function": {"program": "def f(x):\n    while True:\n        pass\n    return x\n"},
                      "inputs": {"x": 1.0}}, "limit", "line 2, column 5"),
        ("evaluate", {"function": {"expression": "inv(A)"}, "inputs": {"A": [[1.0, 2.0], [2.0, 4.0]]}}, "numeric",
         None),
    ],
)  # fmt: skip
async def test_invalid_functions_are_422_with_the_engine_kind(client, endpoint, body, kind, location):
    response = await client.post(f"/v1/{endpoint}", json=body)
    assert_problem(response, 422, kind, location)


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"inputs": {"x": 1.0}}, "/function"),
        ({"function": {}, "inputs": {}}, "/function"),
        ({"function": {"expression": "x", "program": "def f(x):\n    return x\n"}, "inputs": {}}, "/function"),
        ({"function": {"expression": 3}, "inputs": {}}, "/function/expression"),
        ({"function": {"expression": None}, "inputs": {}}, "/function/expression"),
        ({"function": {"expression": "x", "graph": None}, "inputs": {"x": 1.0}}, "/function/graph"),
        ({"function": {"expression": "x"}, "inputs": {"x": 1.0}, "bogus": 1}, "/bogus"),
        ({"function": {"expression": "x"}, "inputs": {"x": 1.0}, "dtype": "float16"}, "/dtype"),
        ({"function": {"expression": "x"}, "inputs": {"x": 1.0}, "encoding": "hex"}, "/encoding"),
        ({"function": {"expression": "x"}, "inputs": [1.0]}, "/inputs"),
        ({"function": {"expression": "x"}, "inputs": {"x": 1.0}, "wrt": "x"}, "/wrt"),
        ({"function": {"expression": "x"}, "inputs": {"x": 1.0}, "wrt": ["x", "x[0]"]}, "/wrt/1"),
        (
            {"function": {"graph": {"inputs": ["x"], "nodes": [{"id": 1, "op": "sin"}], "output": "y"}}, "inputs": {}},
            "/function/graph/nodes/0/id",
        ),
    ],
)
async def test_requests_off_the_schema_are_422_invalid_request(client, body, location):
    response = await client.post("/v1/grad", json=body)
    assert_problem(response, 422, "invalid-request", location)


@pytest.mark.parametrize("field", ["shape", "dtype"])
async def test_a_deeply_nested_field_is_refused_without_echoing_it(client, field):
    """Nesting just under the JSON parser's own limit (orjson reads 1024 levels; Python's
    encoders will not even write it): the detail must not repr the value whole."""
    encoded = {"dtype": '"float64"', "shape": "[1]", "data": '"AAAAAAAAAAA="', field: DEEP}
    fields = ", ".join(f'"{key}": {value}' for key, value in encoded.items())
    body = '{"function": {"expression": "x"}, "inputs": {"x": {' + fields + "}}}"
    response = await client.post("/v1/evaluate", content=body, headers={"content-type": "application/json"})
    assert_problem(response, 422, "invalid-request", "/inputs/x")


async def test_a_missing_operation_field_is_named(client):
    response = await client.post("/v1/vjp", json=expression("x * x"))
    body = assert_problem(response, 422, "invalid-request", "/cotangent")
    assert "required" in body["detail"]


async def test_every_validation_error_is_listed(client):
    response = await client.post("/v1/jacobian", json={"function": {"expression": 1}, "mode": "sideways"})
    body = assert_problem(response, 422, "invalid-request")
    assert {e["location"] for e in body["errors"]} == {"/function/expression", "/mode"}


@pytest.mark.parametrize("content", [b"{not json", b'{"function": {"expression": "x"}, "inputs": {"x": NaN}}', b""])
async def test_malformed_json_is_400(client, content):
    response = await client.post("/v1/evaluate", content=content, headers={"content-type": "application/json"})
    if content:
        assert_problem(response, 400, "malformed-json")
    else:
        assert_problem(response, 422, "invalid-request")


async def test_a_body_that_is_not_json_is_415(client):
    response = await client.post("/v1/evaluate", content=b"x=1", headers={"content-type": "text/plain"})
    assert_problem(response, 415, "unsupported-media-type")
    response = await client.post("/v1/evaluate", content=b"[1, 2]", headers={"content-type": "application/json"})
    body = assert_problem(response, 422, "invalid-request", "")
    assert "JSON object" in body["detail"]


async def test_what_a_problem_repeats_of_the_request_is_bounded(client):
    """A 60 KB path, or an input named with 70 KB, is not echoed back whole."""
    response = await client.get("/v1/" + "x" * 60_000)
    assert len(assert_problem(response, 404, "not-found")["detail"]) < 200
    response = await client.post("/v1/evaluate", json={"function": {"expression": "y"}, "inputs": {"x" * 70_000: 1.0}})
    assert len(response.content) < 3000
    assert_problem(response, 422, "unknown-name", "offset 0")


async def test_a_value_is_described_in_the_users_words(client):
    program = "def f(x):\n    return reshape(x, x)\n"
    response = await client.post("/v1/evaluate", json={"function": {"program": program}, "inputs": {"x": [2.0, 1.0]}})
    body = assert_problem(response, 422, "bad-param", "line 2, column 12")
    assert body["detail"] == "a shape is a tuple of integers, got an array of shape [2]"


async def test_unknown_path_is_404_and_wrong_method_405(client):
    assert_problem(await client.get("/v1/nothing"), 404, "not-found")
    response = await client.get("/v1/grad")
    assert_problem(response, 405, "method-not-allowed")
    assert response.headers["allow"] == "POST"


async def test_an_unexpected_failure_is_500_without_a_traceback(asgi_client, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(asgi_client.app.state.dispatcher, "prepare", broken)
    transport = httpx.ASGITransport(app=asgi_client.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gradserve.test") as client:
        response = await client.post("/v1/evaluate", json=expression("x"))
    body = assert_problem(response, 500, "internal")
    assert "secret" not in response.text and "location" not in body


@pytest.mark.parametrize(
    "request_bytes", [b"NOT HTTP AT ALL\r\n\r\n", b"POST /v1/grad HTTP/1.1\r\nHost: x\r\nContent-Length: 1x\r\n\r\n"]
)
def test_bytes_that_are_not_http_are_answered_with_a_problem(server_url, request_bytes):
    host, port = server_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(request_bytes)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"content-type: application/problem+json" in head.lower()
    problem = json.loads(body)
    assert problem["type"] == TYPE_BASE + "malformed-http" and problem["status"] == 400 and problem["detail"]
