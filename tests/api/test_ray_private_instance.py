"""The Ray executor without RAY_ADDRESS: the service starts a Ray instance of its own, on
this machine, with a CPU slot per worker, and stops it with the pool."""

from __future__ import annotations

import pytest
import ray

from tests.api.conftest import serve_in_process
from tests.api.test_pool import THROUGH_THE_POOL, assert_serves

pytestmark = [pytest.mark.anyio, pytest.mark.ray]


async def test_without_an_address_the_pool_starts_and_stops_a_private_ray_instance(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert not ray.is_initialized()
    async with serve_in_process(executor="ray", workers=1, **THROUGH_THE_POOL) as client:
        await assert_serves(client)
        (node,) = ray.nodes()
        assert node["Resources"]["CPU"] == 1
    assert not ray.is_initialized()
