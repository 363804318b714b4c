"""What the service sends is what its OpenAPI document says: real responses of every
endpoint, in both encodings, and its problems, validated against the schemas the document
declares for their status (responses forbid properties they do not declare)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from tests.api.conftest import b64

pytestmark = pytest.mark.anyio

DOCUMENT = json.loads((Path(__file__).resolve().parents[2] / "openapi" / "openapi.json").read_text())
ANSWERS_WITHOUT_ARRAYS = ("/v1/validate", "/v1/derivative")  # their requests take no encoding
POST_EXAMPLES = [
    pytest.param(path, example["value"], id=f"{path}:{name}")
    for path, item in DOCUMENT["paths"].items()
    if "post" in item and "{" not in path  # a linearize handle's products need a handle first
    for name, example in item["post"]["requestBody"]["content"]["application/json"]["examples"].items()
]


def assert_documented(method: str, path: str, response) -> None:
    """The response's body fits the schema its path, method and status declare."""
    declared = DOCUMENT["paths"][path][method]["responses"]
    assert str(response.status_code) in declared, f"{method} {path} answered an undeclared {response.status_code}"
    (media_type, content), *_ = declared[str(response.status_code)]["content"].items()
    assert response.headers["content-type"].split(";")[0] == media_type
    schema = {**content["schema"], "components": DOCUMENT["components"]}
    errors = sorted(Draft202012Validator(schema).iter_errors(response.json()), key=str)
    assert not errors, f"{method} {path} {response.status_code}: {errors[0].message} at {list(errors[0].path)}"


@pytest.mark.parametrize(("path", "body"), POST_EXAMPLES)
@pytest.mark.parametrize("encoding", ["json", "base64"])
async def test_every_example_answer_fits_its_declared_schema(asgi_client, path, body, encoding):
    if path not in ANSWERS_WITHOUT_ARRAYS:
        body = {**body, "encoding": encoding}
    response = await asgi_client.post(path, json=body)
    assert response.status_code == (202 if path == "/v1/jobs" else 200), response.text  # a job: started
    assert_documented("post", path, response)


NON_FINITE = {"function": {"expression": "log(x)"}, "inputs": {"x": [0.0, -1.0, 1.0]}}


@pytest.mark.parametrize(
    "body",
    [
        NON_FINITE,
        {"function": {"expression": "x * 2"}, "inputs": {"x": b64([1.5, 2.5], "float32")}, "encoding": "base64"},
        {"function": {"program": "def f(x):\n    return x * 2\n"}, "inputs": {"x": 3.0}},
        {"function": {"expression": "x > 1"}, "inputs": {"x": [0.5, 2.0]}},
        {"function": {"expression": "True"}, "inputs": {}},
    ],
    ids=["non-finite", "float32-base64", "program", "comparison", "boolean-constant"],
)
async def test_evaluate_answers_fit_for_every_kind_of_value(asgi_client, body):
    assert_documented("post", "/v1/evaluate", await asgi_client.post("/v1/evaluate", json=body))


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/grad", {"function": {"expression": "2 * (x +"}, "inputs": {"x": [1.0]}}),
        ("/v1/grad", {"function": {"expression": "x * x"}, "inputs": {"x": [1.0, 2.0]}}),
        ("/v1/jacobian", {"function": {"expression": "outer(x, x)"}, "inputs": {"x": b64([0.0] * 3000)}}),
        ("/v1/vjp", {"function": {"expression": "x"}, "inputs": {"x": [1.0]}}),
        ("/v1/hvp", {"function": {"expression": "sum(x)"}, "inputs": {"x": [1.0]}, "tangents": {"y": [1.0]}}),
        ("/v1/validate", {"function": {"graph": {"inputs": ["x"], "nodes": [], "output": "y"}}, "inputs": {"x": 1.0}}),
        ("/v1/evaluate", {"function": {"expression": "x", "program": "def f(x):\n    return x\n"}, "inputs": {}}),
    ],
    ids=["syntax", "not-scalar", "too-large", "missing-cotangent", "unknown-tangent", "graph", "two-functions"],
)
async def test_problems_fit_the_problem_schema(asgi_client, path, body):
    response = await asgi_client.post(path, json=body)
    assert response.status_code >= 400
    assert_documented("post", path, response)


async def test_malformed_json_fits_the_problem_schema(asgi_client):
    headers = {"content-type": "application/json"}
    response = await asgi_client.post("/v1/grad", content=b'{"function": ', headers=headers)
    assert response.status_code == 400
    assert_documented("post", "/v1/grad", response)


@pytest.mark.parametrize("path", ["/v1/ops", "/healthz", "/readyz"])
async def test_get_answers_fit_their_declared_schema(asgi_client, path):
    assert_documented("get", path, await asgi_client.get(path))
