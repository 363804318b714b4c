"""The cache of transformed functions and plans is bounded by bytes: each entry's estimate
holds above what it really takes, and the cache never holds more than its bound."""

from __future__ import annotations

import gc
import tracemalloc

import numpy as np

from engine import api, operations, ops, tasks
from engine.cache import WeightedCache
from engine.frontends import build
from engine.interpreter import Plan
from engine.ir import ShapedArray
from engine.operations import Options
from engine.tracing import trace


def chain_graph(length: int, scale: float) -> dict:
    nodes = [
        {"id": f"n{i}", "op": "sin", "args": [f"n{i - 1}" if i else "x"]}
        if i % 2
        else {"id": f"n{i}", "op": "multiply", "args": [f"n{i - 1}" if i else "x", scale]}
        for i in range(length)
    ]
    nodes.append({"id": "total", "op": "sum", "args": [f"n{length - 1}"]})
    return {"graph": {"inputs": ["x"], "nodes": nodes, "output": "total"}}


def measured_bytes(make) -> tuple[object, int]:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        made = make()
        gc.collect()
        return made, tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()


def test_estimates_hold_above_the_measured_bytes_of_a_large_gradient():
    fn = build(chain_graph(2000, 1.0001), {"x": np.ones(3)})
    gradient, gradient_bytes = measured_bytes(lambda: tasks.transformed(fn, "hvp", Options()))
    # The measurement includes the intermediate functions the construction cached on the way.
    assert gradient.approximate_bytes * 2 >= gradient_bytes
    plan, plan_bytes = measured_bytes(lambda: Plan(gradient, np))
    assert plan.approximate_bytes >= plan_bytes


def test_the_cache_keeps_within_its_bytes_and_drops_the_least_recently_used():
    cache = WeightedCache(max_bytes=1000)
    built = []
    sized = cache.memoize(lambda size: size)(lambda size: built.append(size) or size)
    for size in (400, 400, 300):
        sized(size)
    assert built == [400, 300] and cache.bytes == 700
    sized(500)  # 1,200 bytes: the least recently used (400) goes
    assert cache.bytes == 800
    sized(300)
    sized(400)  # built again; 500 is now the least recently used and goes
    assert built == [400, 300, 500, 400] and cache.bytes == 700
    sized(2000)  # larger than the whole cache: built, not kept
    assert cache.bytes == 700


def test_distinct_large_gradients_do_not_grow_a_bounded_cache():
    cache = operations.derivatives.TRANSFORMS
    limit, cache.max_bytes = cache.max_bytes, 20 << 20
    try:
        for scale in np.linspace(1.0, 1.1, 6):
            fn = build(chain_graph(3000, float(scale)), {"x": np.ones(2)})
            api.grad(fn, {"x": np.ones(2)})
            assert cache.bytes <= cache.max_bytes
    finally:
        cache.max_bytes = limit
        cache.clear()


def test_cached_results_are_reused():
    fn = trace(lambda x: ops.sum(ops.sin(x)), {"x": ShapedArray((3,), "float64")})
    assert tasks.transformed(fn, "grad") is tasks.transformed(fn, "grad")
