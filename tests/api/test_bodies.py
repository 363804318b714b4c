"""Request bodies: large ones read without stalling the event loop, arrays over the element
limit refused before parsing with their location, keys given twice refused, and compressed
bodies inflated within the body limit (or refused with 415 when the coding is unknown)."""

from __future__ import annotations

import asyncio
import gzip
import time
import zlib

import orjson
import pytest

from tests.api.conftest import array, assert_problem, serve_in_process

pytestmark = pytest.mark.anyio

JSON = {"content-type": "application/json"}


def zeros(elements: int) -> bytes:
    """A request summing a JSON array of `elements` zeros: two bytes a number."""
    return b'{"function": {"expression": "sum(x)"}, "inputs": {"x": [' + b"0," * (elements - 1) + b"0]}}"


@pytest.fixture(scope="module")
async def small(anyio_backend):
    async with serve_in_process(max_body_bytes=4000, max_array_elements=100) as client:
        yield client


async def test_health_is_answered_while_large_bodies_are_read(anyio_backend):
    """Four 16 MB bodies of 8 million numbers each, posted at once: decoded on the event loop,
    each held it for over a second before its 413; now each is measured from its bytes, off
    the loop, and refused in tens of milliseconds."""
    async with serve_in_process(max_array_elements=1_000_000) as client:
        body = zeros(8_000_000)
        posted = [asyncio.ensure_future(client.post("/v1/evaluate", content=body, headers=JSON)) for _ in range(4)]
        latencies = []
        while not all(post.done() for post in posted):
            started = time.perf_counter()
            assert (await client.get("/healthz")).status_code == 200
            latencies.append(time.perf_counter() - started)
            await asyncio.sleep(0.01)
        for post in posted:
            problem = assert_problem(post.result(), 413, "too-large", "/inputs/x")
            assert problem["detail"] == "the array has 8,000,000 elements; the limit is 1,000,000"
    assert max(latencies) < 0.5, latencies


@pytest.mark.parametrize(
    ("field", "location"),
    [
        ({"inputs": {"x": [1.0] * 101}}, "/inputs/x"),
        ({"inputs": {"x": [[1.0] * 11] * 10}}, "/inputs/x"),  # 110 in nested lists
        ({"inputs": {"x": [1.0], "y~/": ["NaN"] * 101}}, "/inputs/y~0~1"),
        ({"inputs": {"x": [1.0]}, "cotangent": [1.0] * 101}, "/cotangent"),
        ({"inputs": {"x": [1.0]}, "tangents": {"x": [1.0] * 101}}, "/tangents/x"),
    ],
)
async def test_a_json_array_over_the_element_limit_is_refused_with_its_location(small, field, location):
    body = {"function": {"expression": "x"}, **field}
    assert_problem(await small.post("/v1/vjp", json=body), 413, "too-large", location)


async def test_an_array_of_objects_is_not_counted_as_an_array_of_numbers(small):
    """A graph of 40 nodes has more than 100 commas in its list of nodes: not 100 values."""
    nodes = [{"id": f"n{i}", "op": "sin", "args": ["x" if i == 0 else f"n{i - 1}"]} for i in range(40)]
    body = {"function": {"graph": {"inputs": ["x"], "nodes": nodes, "output": "n39"}}, "inputs": {"x": 0.5}}
    response = await small.post("/v1/evaluate", json=body)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("text", "location"),
    [
        (b'{"function": {"expression": "x"}, "inputs": {"x": 1.0, "x": 2.0}}', "/inputs/x"),
        (b'{"function": {"expression": "x"}, "inputs": {"x": 1.0}, "inputs": {"x": 2.0}}', "/inputs"),
        (b'{"function": {"expression": "x", "expression": "2 * x"}, "inputs": {"x": 1.0}}', "/function/expression"),
        (b'{"function": {"expression": "x"}, "inputs": {"x": 1.0, "\\u0078": 2.0}}', "/inputs/x"),
        (b'{"function": {"graph": {"inputs": ["x"], "nodes": [{"id": "a", "op": "sin", "args": ["x"]}, '
         b'{"id": "b", "op": "cos", "op": "sin", "args": ["a"]}], "output": "b"}}, "inputs": {"x": 1.0}}',
         "/function/graph/nodes/1/op"),
    ],
)  # fmt: skip
async def test_a_key_given_twice_is_refused_with_its_location(client, text, location):
    response = await client.post("/v1/evaluate", content=text, headers=JSON)
    body = assert_problem(response, 422, "invalid-request", location)
    assert "appears twice" in body["detail"]


async def test_keys_that_only_look_alike_are_not_duplicates(client):
    text = b'{"function": {"expression": "x + y"}, "inputs": {"x": 1.0, "y": 2.0, "x\\"": 3.0}}'
    response = await client.post("/v1/evaluate", content=text, headers=JSON)
    assert response.status_code == 200, response.text
    assert response.json()["value"] == 3.0


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
async def test_a_compressed_body_is_inflated(client, coding):
    text = orjson.dumps({"function": {"expression": "sum(x * x)"}, "inputs": {"x": [1.0, 2.0, 3.0]}})
    compressed = gzip.compress(text) if coding == "gzip" else zlib.compress(text)
    response = await client.post("/v1/grad", content=compressed, headers={**JSON, "content-encoding": coding})
    assert response.status_code == 200, response.text
    assert array(response.json()["gradient"]["x"]).tolist() == [2.0, 4.0, 6.0]


async def test_a_compressed_body_is_held_to_the_body_limit_once_inflated(small):
    bomb = gzip.compress(b'{"function": {"expression": "x"}, "inputs": {"x": 1.0}, "pad": "' + b" " * 10_000 + b'"}')
    assert len(bomb) < 4000
    response = await small.post("/v1/evaluate", content=bomb, headers={**JSON, "content-encoding": "gzip"})
    assert "4,000 bytes" in assert_problem(response, 413, "too-large")["detail"]


@pytest.mark.parametrize(
    ("content", "detail"),
    [(b"not gzip at all", "not valid gzip data"), (gzip.compress(b'{"a": 1}')[:-12], "ends before its end")],
)
async def test_a_broken_compressed_body_is_400(client, content, detail):
    response = await client.post("/v1/evaluate", content=content, headers={**JSON, "content-encoding": "gzip"})
    assert detail in assert_problem(response, 400, "malformed-json")["detail"]


@pytest.mark.parametrize("coding", ["br", "zstd", "gzip, gzip"])
async def test_an_unknown_content_encoding_is_415(client, coding):
    text = orjson.dumps({"function": {"expression": "x"}, "inputs": {"x": 1.0}})
    response = await client.post("/v1/evaluate", content=text, headers={**JSON, "content-encoding": coding})
    assert_problem(response, 415, "unsupported-media-type")
    assert response.headers["accept-encoding"] == "gzip, deflate"
