"""The OpenAPI document: exported without drift, complete, and its examples work; the docs
pages and their assets are served by the service itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.main import create_app

pytestmark = pytest.mark.anyio

EXPORTED = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"
DOCUMENT = json.loads(json.dumps(create_app().openapi()))
OPERATIONS = [(path, method, op) for path, item in DOCUMENT["paths"].items() for method, op in item.items()]
POSTS = [(path, op) for path, method, op in OPERATIONS if method == "post"]
# Paths with a parameter (a linearize handle) need state first: tests/api/test_linearize.py runs them.
EXAMPLES = [
    pytest.param(path, name, example["value"], id=f"{path}:{name}")
    for path, op in POSTS
    if "{" not in path
    for name, example in op["requestBody"]["content"]["application/json"]["examples"].items()
]


def test_exported_document_matches_the_app():
    assert json.loads(EXPORTED.read_text()) == DOCUMENT, "run: .venv/bin/python scripts/export_openapi.py"


@pytest.mark.parametrize(("path", "method", "op"), OPERATIONS, ids=[f"{m} {p}" for p, m, _ in OPERATIONS])
def test_every_endpoint_has_a_summary_and_a_description(path, method, op):
    assert op.get("summary") and op.get("description")


@pytest.mark.parametrize(("path", "op"), POSTS, ids=[p for p, _ in POSTS])
def test_every_post_has_examples_and_declares_its_problems(path, op):
    assert op["requestBody"]["content"]["application/json"]["examples"]
    for status in ("400", "413", "415", "422", "500", "503", "504"):
        schema = op["responses"][status]["content"]["application/problem+json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/Problem"}


def test_non_finite_numbers_are_documented_as_strings():
    schema = DOCUMENT["components"]["schemas"]["NestedNumbers"]
    assert {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]} in schema["anyOf"]
    assert "null" not in json.dumps(schema)
    assert DOCUMENT["components"]["schemas"]["Problem"]["required"] == ["type", "title", "status", "detail"]


@pytest.mark.parametrize(("path", "name", "body"), EXAMPLES)
async def test_every_example_runs(asgi_client, path, name, body):
    response = await asgi_client.post(path, json=body)
    assert response.status_code == (202 if path == "/v1/jobs" else 200), response.text


async def test_the_served_document_is_the_exported_one(asgi_client):
    assert (await asgi_client.get("/openapi.json")).json() == DOCUMENT


async def test_swagger_ui_is_served_from_local_assets(asgi_client):
    page = (await asgi_client.get("/docs")).text
    assert "/static/docs/swagger-ui-bundle.js" in page and "cdn" not in page
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        response = await asgi_client.get(f"/static/docs/{asset}")
        assert response.status_code == 200 and len(response.content) > 10_000
    assert (await asgi_client.get("/docs/oauth2-redirect")).status_code == 200


async def test_redoc_is_served_from_a_local_script(asgi_client):
    page = (await asgi_client.get("/redoc")).text
    assert "/static/docs/redoc.standalone.js" in page and "cdn" not in page and "googleapis" not in page
    response = await asgi_client.get("/static/docs/redoc.standalone.js")
    assert response.status_code == 200 and len(response.content) > 100_000
