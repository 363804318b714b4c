"""Schemathesis against the app in-process: every operation of the OpenAPI document the app
serves, with every check, on the documented examples, the schema's coverage cases and a few
hundred generated requests each, valid and invalid."""

from __future__ import annotations

import re

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings

from app.main import create_app
from app.settings import Settings
from tests.api.conftest import TYPE_BASE

SETTINGS = Settings(workers=1)

# What JSON Schema cannot say, a request the schema accepts may still break, and the service
# refuses it by design: the function must parse and fit its inputs (422 with the engine's kind),
# a nested list must be rectangular and base64 data must fill its shape (422 invalid-request at
# that array), and sizes are limited by settings over sums of arrays (413). So valid data may be
# answered 413 and 422; `refused_only_for_what_the_schema_cannot_say` narrows the 422s back down.
# A linearize handle's id is state, not schema: a generated one is answered 404.
CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {"max-examples": 300},
        "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", 404, 413, 422]}},
    }
)
schema = schemathesis.openapi.from_dict(create_app(SETTINGS).openapi(), config=CONFIG)

# Input names may be any string, the empty one included.
ARRAY_POINTER = re.compile(r"/(inputs/[^/]*|tangents/[^/]*|cotangent)")


def refused_only_for_what_the_schema_cannot_say(ctx, response, case) -> None:
    """A request generated from the schema may be `invalid-request` only for an array's
    contents: everything else the request model requires, the schema must say too."""
    if case.meta is None or not case.meta.generation.mode.is_positive or response.status_code != 422:
        return
    problem = response.json()
    if problem["type"] != TYPE_BASE + "invalid-request":
        return
    unsaid = [error for error in problem["errors"] if not ARRAY_POINTER.fullmatch(error["location"])]
    assert not unsaid, f"the request model refuses what the schema allows: {unsaid}"


@pytest.fixture
def app() -> FastAPI:
    """A fresh app per operation: schemathesis starts its lifespan on the first request and its
    pytest plugin ends it after each test, and a stopped pool is not started again."""
    return create_app(SETTINGS)


@pytest.mark.slow
@schema.parametrize()
# One app serves all the examples of an operation, on purpose.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_every_operation_holds_every_check(case, app):
    case.call_and_validate(app=app, additional_checks=[refused_only_for_what_the_schema_cannot_say])
