"""Small expressions and graphs are computed in the API process, without the worker's round
trip: the same answers as the pool's, for every example, and nothing refused that the pool
would accept. Built functions are cached by their text and input shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.api.conftest import serve_in_process

pytestmark = pytest.mark.anyio

DOCUMENT = json.loads((Path(__file__).resolve().parents[2] / "openapi" / "openapi.json").read_text())
# No arrays to compare (validate, derivative), a handle (linearize), or a 202 (a job, whose
# results tests/api/test_jobs.py holds to the endpoints').
NOT_COMPUTED_HERE = ("/v1/validate", "/v1/linearize", "/v1/derivative", "/v1/jobs")
EXAMPLES = [
    (path, example["value"])
    for path, item in DOCUMENT["paths"].items()
    if "post" in item and path not in NOT_COMPUTED_HERE and "{" not in path
    for example in item["post"]["requestBody"]["content"]["application/json"]["examples"].values()
]


def counter(metrics: str, name: str) -> float:
    return float(next(row for row in metrics.splitlines() if row.startswith(name + " ")).split()[-1])


def without_meta(body: dict) -> dict:
    return {field: value for field, value in body.items() if field != "meta"}


async def answers(**settings) -> tuple[list[dict], str]:
    async with serve_in_process(**settings) as client:
        responses = [await client.post(path, json={**body, "encoding": "base64"}) for path, body in EXAMPLES]
        assert [r.status_code for r in responses] == [200] * len(responses), [r.text for r in responses]
        return [without_meta(r.json()) for r in responses], (await client.get("/metrics")).text


async def test_inline_answers_are_the_pools_bit_for_bit():
    inline, inline_metrics = await answers()
    pooled, pooled_metrics = await answers(inline_work_elements=0)
    assert inline == pooled
    programs = sum("program" in body["function"] for _, body in EXAMPLES)
    assert counter(inline_metrics, "gradserve_inline_answers_total") == len(EXAMPLES) - programs
    assert counter(pooled_metrics, "gradserve_inline_answers_total") == 0


async def test_a_repeated_function_is_built_once():
    body = {"function": {"graph": {"inputs": ["x"], "nodes": [{"id": "y", "op": "sin", "args": ["x"]},
                                                              {"id": "z", "op": "sum", "args": ["y"]}],
                                   "output": "z"}}, "inputs": {"x": [0.5, 1.5]}}  # fmt: skip
    reordered = {"inputs": body["inputs"], "function": {"graph": dict(reversed(body["function"]["graph"].items()))}}
    async with serve_in_process() as client:
        before = (await client.get("/metrics")).text
        for request in (body, body, reordered):
            assert (await client.post("/v1/grad", json=request)).status_code == 200
        after = (await client.get("/metrics")).text
    hits = 'gradserve_function_cache_total{result="hit"}'
    misses = 'gradserve_function_cache_total{result="miss"}'
    assert counter(after, hits) - counter(before, hits) == 2
    assert counter(after, misses) - counter(before, misses) == 1
