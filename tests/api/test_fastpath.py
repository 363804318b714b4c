"""The compute POSTs answered by app.fastpath, outside FastAPI, answer what FastAPI's routes
answer: for any body (valid or not, JSON or not, well-typed or not), the same status, headers
and body (but for the timings in `meta`), and the same metrics and log labels.

The other side of each comparison is the same app with the fast path taken out of its
middlewares, so that every request goes through FastAPI's routing, dependencies and handlers."""

from __future__ import annotations

import base64
import gzip
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest
from fastapi import Request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.deps import get_dispatcher
from app.fastpath import ComputeFastPath
from engine.operations import OPERATIONS
from tests.api.conftest import serve_in_process

pytestmark = pytest.mark.anyio

PATHS = [f"/v1/{name}" for name in OPERATIONS]
SAME_ID = {"x-request-id": "fastpath-test"}  # written in problems: the same on both sides


@asynccontextmanager
async def serve_through_fastapi(**settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """serve_in_process's app, with every request handled by FastAPI's routes."""
    async with serve_in_process(**settings) as client:
        app = client.app
        app.user_middleware = [entry for entry in app.user_middleware if entry.cls is not ComputeFastPath]
        app.middleware_stack = None  # built again, without the fast path, by the next request
        yield client


@pytest.fixture(scope="module")
async def both(anyio_backend) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    # A small body limit and array limit, so that generated bodies also meet the 413s.
    limits = {"max_body_bytes": 2_000, "max_array_elements": 40}
    async with serve_in_process(**limits) as fast, serve_through_fastapi(**limits) as through_fastapi:
        yield fast, through_fastapi


def comparable(response: httpx.Response) -> tuple[int, dict[str, str], Any]:
    """Status, headers and body, less what differs from one request to the next: the timings
    (and so the body's length)."""
    headers = {name: value for name, value in response.headers.items() if name != "content-length"}
    try:
        body = response.json()
    except ValueError:
        return response.status_code, headers, response.content
    if isinstance(body, dict) and isinstance(body.get("meta"), dict):
        body["meta"].pop("timings_ms", None)
    return response.status_code, headers, body


async def assert_same(both, path: str, content: bytes, headers: dict[str, str]) -> int:
    fast, through_fastapi = both
    headers = {**SAME_ID, **headers}
    answers = [await client.post(path, content=content, headers=headers) for client in (fast, through_fastapi)]
    assert comparable(answers[0]) == comparable(answers[1]), (path, content, headers)
    return answers[0].status_code


NAMES = st.sampled_from(["x", "y", "z"])
NUMBERS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.integers(-3, 3),
    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400"]),
)
ARRAYS = st.one_of(
    NUMBERS,
    st.lists(NUMBERS, max_size=6),
    st.lists(st.lists(NUMBERS, min_size=2, max_size=2), max_size=3),
    st.lists(st.lists(NUMBERS, max_size=3), max_size=3),  # ragged, sometimes
    st.integers(1, 60).map(lambda n: [0.5] * n),  # over the element limit, sometimes
    st.sampled_from(
        [
            {"dtype": "float64", "shape": [2], "data": base64.b64encode(b"\0" * 16).decode()},
            {"dtype": "float64", "shape": [3], "data": base64.b64encode(b"\0" * 16).decode()},
            {"dtype": "float32", "shape": [], "data": "not base64!"},
            {"dtype": "complex128", "shape": [1], "data": ""},
            {"dtype": "float64", "shape": [2]},
        ]
    ),
    st.sampled_from([None, True, "text", {}, {"x": 1}]),
)
FUNCTIONS = st.one_of(
    st.sampled_from(
        [
            {"expression": "2*dot(x, x)"},
            {"expression": "sum(sin(x) * x)"},
            {"expression": "x * x"},
            {"expression": "x @ y"},
            {"expression": "sum(x * y) + z"},
            {"expression": "2 * (x +"},
            {"expression": "frobnicate(x)"},
            {"expression": "x[10]"},
            {"expression": ""},
            {"graph": {"inputs": ["x"], "nodes": [{"id": "s", "op": "sum", "args": ["x"]}], "output": "s"}},
            {"graph": {"inputs": ["x"], "nodes": [{"id": "s", "op": "nope", "args": ["x"]}], "output": "s"}},
            {"program": "def f(x):\n    return (x * x).sum()\n"},
            {"expression": "x", "graph": {"inputs": [], "nodes": [], "output": "x"}},
            {},
        ]
    ),
    st.sampled_from([None, 3, "2*x", []]),
)
OPTIONAL = {
    "wrt": st.one_of(st.lists(NAMES, max_size=2), st.just("x"), st.just([])),
    "reduce": st.sampled_from(["none", "sum", "mean"]),
    "encoding": st.sampled_from(["json", "base64", "hex"]),
    "dtype": st.sampled_from(["float32", "float64", "int8"]),
    "verify": st.sampled_from([True, False, "yes"]),
    "mode": st.sampled_from(["auto", "forward", "reverse", "sideways"]),
    "format": st.sampled_from(["dense", "coo", "csr", "csc"]),
    "cotangent": ARRAYS,
    "tangents": st.dictionaries(NAMES, ARRAYS, max_size=2),
    "unknown": st.integers(-(2**40), 2**40),
}


@st.composite
def sound_documents(draw, operation: str) -> dict[str, Any]:
    """Bodies that the operation mostly answers 200."""
    n = draw(st.integers(1, 4))
    vector = st.lists(st.floats(-10, 10, width=32), min_size=n, max_size=n)
    expression = draw(st.sampled_from(["2*dot(x, x)", "x * x", "sum(sin(x) * y)", "exp(x) / (1 + y)"]))
    document: dict[str, Any] = {"function": {"expression": expression}, "inputs": {"x": draw(vector)}}
    if "y" in expression:
        document["inputs"]["y"] = draw(st.one_of(vector, st.floats(-1, 1)))
    extra = OPERATIONS[operation].extra
    if extra is not None:
        document[extra.name] = draw(vector) if extra.name == "cotangent" else {"x": draw(vector)}
    options = {
        "reduce": st.sampled_from(["none", "sum", "sum"]),
        "encoding": st.sampled_from(["json", "base64"]),
        "dtype": st.sampled_from(["float32", "float64"]),
        "verify": st.booleans(),
        "mode": st.sampled_from(["auto", "forward", "reverse"]),
        "format": st.sampled_from(["dense", "coo", "csr"]),
        "wrt": st.just(["x"]),
    }
    for field in draw(st.lists(st.sampled_from(sorted(options)), max_size=4, unique=True)):
        document[field] = draw(options[field])
    return document


@st.composite
def documents(draw) -> Any:
    document: dict[str, Any] = {}
    if draw(st.booleans()) or draw(st.booleans()):
        document["function"] = draw(FUNCTIONS)
    if draw(st.booleans()) or draw(st.booleans()):
        document["inputs"] = draw(st.one_of(st.dictionaries(NAMES, ARRAYS, max_size=3), ARRAYS))
    for field in draw(st.lists(st.sampled_from(sorted(OPTIONAL)), max_size=3, unique=True)):
        document[field] = draw(OPTIONAL[field])
    return draw(st.one_of(st.just(document), st.just(document), st.sampled_from([[], None, 1, "text"])))


@st.composite
def bodies(draw, operation: str) -> bytes:
    text = orjson.dumps(draw(st.one_of(sound_documents(operation), documents())))
    change = draw(st.sampled_from(["none"] * 15 + ["truncate", "empty", "duplicate", "nan", "trailing"]))
    if change == "truncate":
        return text[: draw(st.integers(0, max(len(text) - 1, 0)))]
    if change == "empty":
        return b""
    if change == "duplicate" and text.startswith(b"{") and text != b"{}":
        return b'{"encoding": "json", ' + text[1:]
    if change == "nan":
        return text.replace(b'"NaN"', b"NaN")
    if change == "trailing":
        return text + b" x"
    return text


CONTENT_TYPES = st.sampled_from(
    ["application/json"] * 15
    + ["application/json; charset=utf-8", "application/problem+json", "text/plain", "application/x-www-form-urlencoded"]
    + [None]
)


@st.composite
def requests(draw) -> tuple[str, bytes]:
    operation = draw(st.sampled_from(sorted(OPERATIONS)))
    return operation, draw(bodies(operation))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(request=requests(), content_type=CONTENT_TYPES, gzipped=st.booleans())
async def test_the_fast_path_answers_what_fastapi_answers(both, request, content_type, gzipped):
    operation, body = request
    headers = {} if content_type is None else {"content-type": content_type}
    if gzipped and body:
        body, headers = gzip.compress(body), {**headers, "content-encoding": "gzip"}
    await assert_same(both, f"/v1/{operation}", body, headers)


@pytest.mark.parametrize(
    ("content", "headers"),
    [
        (b'{"function": {"expression": "2*dot(x, x)"}, "inputs": {"x": [0, 1, 2, 3]}}', {}),  # no content-type
        (b"", {"content-type": "application/json"}),
        (b'{"function": {"expression": "x"}, "inputs": {"x": [' + b"1," * 1500 + b"1]}}", {}),  # over 2,000 bytes
        (b"\x1f\x8b not gzip", {"content-type": "application/json", "content-encoding": "gzip"}),
        (b"{}", {"content-type": "application/json", "content-encoding": "br"}),
        (b'{"function": {"expression": "x"}, "inputs": {"x": 1}}', {"content-type": "application/json; x"}),
    ],
)
async def test_edges_of_the_body_are_answered_alike(both, content, headers):
    for path in ("/v1/grad", "/v1/evaluate"):
        await assert_same(both, path, content, headers)


async def test_a_chunked_body_over_the_limit_is_refused_alike(both):
    """Without a Content-Length the body limit is counted while reading: raised from receive,
    which the fast path hands to FastAPI as it came."""

    async def chunks():
        for _ in range(30):
            yield b" " * 100

    fast, through_fastapi = both
    answers = [
        await client.post("/v1/grad", content=chunks(), headers={"content-type": "application/json", **SAME_ID})
        for client in (fast, through_fastapi)
    ]
    assert answers[0].status_code == 413
    assert comparable(answers[0])[1:] == comparable(answers[1])[1:]


async def test_metrics_and_log_lines_are_labelled_alike(caplog):
    body = orjson.dumps({"function": {"expression": "2*dot(x, x)"}, "inputs": {"x": [1.0, 2.0]}})
    bad = orjson.dumps({"function": {"expression": "2*dot(x,"}, "inputs": {"x": [1.0, 2.0]}})
    async with serve_in_process() as fast, serve_through_fastapi() as through_fastapi:
        rows, lines = await _labels((fast, through_fastapi), body, bad, caplog)
    assert rows[0] == rows[1]
    assert [row.rsplit(" ", 1)[0] for row in rows[0]] == [
        'gradserve_requests_total{endpoint="/v1/hessian",method="POST",status="200"}',
        'gradserve_requests_total{endpoint="/v1/hessian",method="POST",status="400"}',
        'gradserve_requests_total{endpoint="/v1/hessian",method="POST",status="422"}',
    ]
    assert lines == [("/v1/hessian", 200, len(body))] * 2


async def _labels(both, body: bytes, bad: bytes, caplog) -> tuple[list[list[str]], list[tuple]]:
    for client in both:
        for content in (body, bad, b"not json"):
            await client.post("/v1/hessian", content=content, headers={"content-type": "application/json"})
    rows = []
    for client in both:
        metrics = (await client.get("/metrics")).text
        counted = 'gradserve_requests_total{endpoint="/v1/hessian"'
        rows.append(sorted(row for row in metrics.splitlines() if row.startswith(counted)))
    with caplog.at_level(logging.INFO, logger="gradserve.access"):
        for client in both:
            await client.post("/v1/hessian", content=body, headers={"content-type": "application/json"})
    return rows, [(record.endpoint, record.status, record.request_bytes) for record in caplog.records]


async def test_the_operations_are_answered_without_fastapis_handling():
    """FastAPI's dependencies are solved for /v1/validate (not an operation), not for /v1/grad."""
    solved = []

    async def dispatcher_counted(request: Request):
        solved.append(request.url.path)
        return request.app.state.dispatcher

    body = {"function": {"expression": "2*dot(x, x)"}, "inputs": {"x": [0.0, 1.0]}}
    async with serve_in_process() as client:
        client.app.dependency_overrides[get_dispatcher] = dispatcher_counted
        assert (await client.post("/v1/grad", json=body)).status_code == 200
        assert (await client.post("/v1/validate", json={**body, "operation": "grad"})).status_code == 200
    assert solved == ["/v1/validate"]
