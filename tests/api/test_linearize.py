"""Linearize handles over HTTP: products through a handle equal the stateless endpoints'
answers (both encodings), handles expire and are evicted within their bounds, a killed
worker loses no handle, and a wrong shape or an unknown handle is a clear problem."""

from __future__ import annotations

import asyncio
import os
import signal

import numpy as np
import pytest

from app.handles import HandleStore
from bench.server import spawned_children
from engine import linearize
from engine.operations import Options
from tests.api.conftest import array, assert_problem, b64, serve_in_process

pytestmark = pytest.mark.anyio

RNG = np.random.default_rng(3)
MLP = {"expression": "sum(tanh(tanh(x @ W1) @ W2))"}
INPUTS = {"x": RNG.standard_normal((3, 4)), "W1": RNG.standard_normal((4, 5)), "W2": RNG.standard_normal((5, 2))}
TANGENTS = {"W1": RNG.standard_normal((4, 5)), "W2": RNG.standard_normal((5, 2))}


def request(encoding: str, **fields) -> dict:
    encode = (lambda a: b64(a)) if encoding == "base64" else (lambda a: np.asarray(a).tolist())
    converted = {
        name: {k: encode(v) for k, v in value.items()} if isinstance(value, dict) else encode(value)
        for name, value in fields.items()
    }
    return {**converted, "encoding": encoding}


def close(actual, expected) -> None:
    np.testing.assert_allclose(array(actual), array(expected), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("encoding", ["json", "base64"])
async def test_products_through_a_handle_equal_the_stateless_answers(client, encoding):
    stateless = {"function": MLP, **request(encoding, inputs=INPUTS), "wrt": ["W1", "W2"]}
    linearized = await client.post("/v1/linearize", json=stateless)
    assert linearized.status_code == 200, linearized.text
    handle = linearized.json()["handle"]["id"]
    assert linearized.json()["handle"]["expires_at"].endswith("Z")
    evaluated = await client.post("/v1/evaluate", json={"function": MLP, **request(encoding, inputs=INPUTS)})
    close(linearized.json()["value"], evaluated.json()["value"])

    for product, extra in (
        ("jvp", {"tangents": TANGENTS}),
        ("vjp", {"cotangent": 1.5}),
        ("hvp", {"tangents": TANGENTS}),
    ):
        through = await client.post(f"/v1/linearize/{handle}/{product}", json=request(encoding, **extra))
        assert through.status_code == 200, through.text
        direct = (await client.post(f"/v1/{product}", json={**stateless, **request(encoding, **extra)})).json()
        for field in ("value", *(r for r in ("jvp", "vjp", "gradient", "hvp") if r in direct)):
            if isinstance(direct[field], dict) and "data" not in direct[field]:
                for name in direct[field]:
                    close(through.json()[field][name], direct[field][name])
            else:
                close(through.json()[field], direct[field])
    assert (await client.delete(f"/v1/linearize/{handle}")).status_code == 204
    gone = await client.post(f"/v1/linearize/{handle}/vjp", json={"cotangent": 1.0})
    assert_problem(gone, 404, "handle-not-found")


async def test_a_wrong_shape_or_a_missing_product_is_a_clear_problem(client):
    body = {"function": {"expression": "sin(x)"}, "inputs": {"x": [0.1, 0.2, 0.3]}}
    handle = (await client.post("/v1/linearize", json=body)).json()["handle"]["id"]
    wrong = await client.post(f"/v1/linearize/{handle}/jvp", json={"tangents": {"x": [1.0, 2.0]}})
    assert_problem(wrong, 422, "bad-input", "/tangents/x")
    vector_output = await client.post(f"/v1/linearize/{handle}/hvp", json={"tangents": {"x": [1.0, 2.0, 3.0]}})
    assert_problem(vector_output, 422, "not-scalar")
    unknown = await client.post("/v1/linearize/no-such-handle/jvp", json={"tangents": {"x": [1.0, 2.0, 3.0]}})
    assert_problem(unknown, 404, "handle-not-found")


async def test_a_program_is_linearized_on_the_path_it_took(client):
    source = "def f(x):\n    y = x\n    while sum(y * y) < 10:\n        y = y * 2\n    return y\n"
    linearized = await client.post(
        "/v1/linearize", json={"function": {"program": source}, "inputs": {"x": [0.5, -0.25]}}
    )
    assert linearized.status_code == 200, linearized.text
    handle = linearized.json()["handle"]["id"]
    jvp = await client.post(f"/v1/linearize/{handle}/jvp", json={"tangents": {"x": [1.0, 2.0]}})
    close(jvp.json()["jvp"], [8.0, 16.0])


async def test_a_killed_worker_loses_no_handle():
    before = spawned_children(os.getpid())
    async with serve_in_process(workers=1, inline_work_elements=0) as client:
        body = {"function": MLP, **request("json", inputs=INPUTS), "wrt": ["W1", "W2"]}
        handle = (await client.post("/v1/linearize", json=body)).json()["handle"]["id"]
        (worker,) = spawned_children(os.getpid()) - before
        os.kill(worker, signal.SIGKILL)
        await asyncio.sleep(0.2)
        response = await client.post(f"/v1/linearize/{handle}/vjp", json={"cotangent": 2.0})
        if response.status_code == 500:  # the dead worker was picked before pebble noticed: once more
            response = await client.post(f"/v1/linearize/{handle}/vjp", json={"cotangent": 2.0})
        assert response.status_code == 200, response.text
        direct = (await client.post("/v1/vjp", json={**body, "cotangent": 2.0})).json()
        close(response.json()["vjp"]["W1"], direct["vjp"]["W1"])


def test_handles_expire_and_the_least_recently_used_go_first():
    now = [1000.0]
    task = linearize.prepare({"expression": "sum(x * x)"}, {"x": np.ones(100)}, Options())
    linearization = task.run().fields["linearization"]
    store = HandleStore(max_count=2, max_bytes=10 * linearization.nbytes, ttl_seconds=60, clock=lambda: now[0])
    first, second = store.add(linearization), store.add(linearization)
    store.get(first.id)  # first is now the most recently used
    third = store.add(linearization)  # the count bound: second goes
    assert {h for h in (first.id, second.id, third.id) if _present(store, h)} == {first.id, third.id}
    now[0] += 61
    assert not _present(store, first.id) and len(store) == 0 and store.bytes == 0


def test_the_byte_bound_evicts_and_refuses_what_cannot_fit():
    task = linearize.prepare({"expression": "sum(x * x)"}, {"x": np.ones(1000)}, Options())
    linearization = task.run().fields["linearization"]
    store = HandleStore(max_count=100, max_bytes=int(2.5 * linearization.nbytes), ttl_seconds=60)
    handles = [store.add(linearization) for _ in range(3)]
    assert [_present(store, h.id) for h in handles] == [False, True, True]
    assert store.bytes <= store.max_bytes
    tiny = HandleStore(max_count=100, max_bytes=linearization.nbytes - 1, ttl_seconds=60)
    with pytest.raises(Exception) as refused:
        tiny.add(linearization)
    assert getattr(refused.value, "kind", None) == "too_large"


def _present(store: HandleStore, handle_id: str) -> bool:
    try:
        store.get(handle_id)
    except Exception:  # noqa: BLE001 - HandleNotFoundError: not present
        return False
    return True
