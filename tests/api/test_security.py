"""The security options: API keys, the rate limit, CORS, request ids, security headers, the
metrics port and JSON logs. Each is off by default; these tests turn them on one app at a time.

Most run in-process without the worker pool (the endpoints used compute nothing)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import anyio
import httpx
import pytest
from pydantic import ValidationError

from app import logs
from app.main import create_app
from app.security import TokenBuckets
from app.settings import Settings
from tests.api.conftest import _free_port, assert_problem, serve_in_process, serving_in_thread

pytestmark = pytest.mark.anyio

KEY = "k" * 8 + "-first-key"
OTHER_KEY = "o" * 8 + "-second-key"
ORIGIN = "https://notebook.example"
GENERATED_ID = re.compile(r"[0-9a-f]{32}")


@asynccontextmanager
async def client_of(**settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    """The app with these settings in-process, its pool not started."""
    app = create_app(Settings(workers=1, **settings))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gradserve.test") as client:
        client.app = app
        yield client


# ---- API keys ----


@pytest.mark.parametrize(
    "headers", [{"X-API-Key": KEY}, {"Authorization": f"Bearer {KEY}"}, {"Authorization": f"bearer {OTHER_KEY}"}]
)
async def test_a_key_is_accepted_in_either_header(headers):
    async with client_of(api_keys=[KEY, OTHER_KEY]) as client:
        assert (await client.get("/v1/ops", headers=headers)).status_code == 200
        assert (await client.get("/metrics", headers=headers)).status_code == 200


async def test_without_a_key_the_answer_is_401_with_a_bearer_challenge():
    async with client_of(api_keys=[KEY]) as client:
        for path in ("/v1/ops", "/metrics"):
            response = await client.get(path, headers={"Authorization": "Basic dXNlcjpwYXNz"})
            body = assert_problem(response, 401, "unauthorized")
            assert response.headers["www-authenticate"] == 'Bearer realm="gradserve"'
            assert "X-API-Key" in body["detail"]
        response = await client.post("/v1/grad", json={"function": {"expression": "x"}, "inputs": {"x": 1.0}})
        assert_problem(response, 401, "unauthorized")


@pytest.mark.parametrize("headers", [{"X-API-Key": KEY + "x"}, {"Authorization": f"Bearer {KEY[:-1]}"}])
async def test_a_wrong_key_is_refused_as_an_invalid_token(headers):
    async with client_of(api_keys=[KEY]) as client:
        response = await client.get("/v1/ops", headers=headers)
        assert_problem(response, 401, "unauthorized")
        assert 'error="invalid_token"' in response.headers["www-authenticate"]


@pytest.mark.parametrize(
    "path", ["/healthz", "/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect", "/static/docs/swagger-ui.css"]
)
async def test_health_docs_and_the_openapi_document_stay_open(path):
    async with client_of(api_keys=[KEY]) as client:
        assert (await client.get(path)).status_code == 200


async def test_readiness_stays_open():
    async with client_of(api_keys=[KEY]) as client:
        assert_problem(await client.get("/readyz"), 503, "not-ready")  # open, and the pool is not started


async def test_a_computation_is_answered_with_a_key():
    async with serve_in_process(api_keys=[KEY]) as client:
        body = {"function": {"expression": "sum(x * x)"}, "inputs": {"x": [1.0, 2.0]}}
        response = await client.post("/v1/grad", json=body, headers={"X-API-Key": KEY})
        assert response.status_code == 200, response.text
        assert response.json()["gradient"]["x"] == [2.0, 4.0]


def test_keys_come_comma_separated_from_the_environment_and_are_never_printed(monkeypatch):
    monkeypatch.setenv("GRADSERVE_API_KEYS", f"{KEY}, {OTHER_KEY}")
    settings = Settings()
    assert [key.get_secret_value() for key in settings.api_keys] == [KEY, OTHER_KEY]
    assert KEY not in repr(settings) and KEY not in str(settings.model_dump())


def test_a_short_key_is_refused_at_start():
    with pytest.raises(ValidationError, match="at least 16 characters"):
        Settings(api_keys=["guessable"])


def test_the_openapi_document_declares_the_keys_when_they_are_on():
    document = create_app(Settings(api_keys=[KEY], rate_limit_per_second=5)).openapi()
    key_scheme = {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert document["components"]["securitySchemes"]["apiKey"] == key_scheme
    assert {"apiKey": []} in document["security"]
    assert document["paths"]["/healthz"]["get"]["security"] == []
    assert {"401", "429"} <= set(document["paths"]["/v1/grad"]["post"]["responses"])


# ---- the rate limit ----


async def test_over_the_rate_a_client_is_answered_429_with_retry_after_and_then_recovers():
    async with client_of(rate_limit_per_second=1, rate_limit_burst=3) as client:
        statuses = [(await client.get("/v1/ops")).status_code for _ in range(3)]
        assert statuses == [200, 200, 200]
        refused = await client.get("/v1/ops")  # unless the three took a second
        body = assert_problem(refused, 429, "rate-limited")
        assert refused.headers["retry-after"] == "1"
        assert "retry in 1 s" in body["detail"]
        await anyio.sleep(1)
        assert (await client.get("/v1/ops")).status_code == 200


async def test_each_key_has_its_own_bucket_and_health_has_none():
    async with client_of(api_keys=[KEY, OTHER_KEY], rate_limit_per_second=0.01, rate_limit_burst=1) as client:
        assert (await client.get("/v1/ops", headers={"X-API-Key": KEY})).status_code == 200
        assert (await client.get("/v1/ops", headers={"X-API-Key": KEY})).status_code == 429
        assert (await client.get("/v1/ops", headers={"X-API-Key": OTHER_KEY})).status_code == 200
        assert [(await client.get("/healthz")).status_code for _ in range(5)] == [200] * 5


def test_buckets_refill_at_the_rate_up_to_the_burst():
    now = [0.0]
    buckets = TokenBuckets(rate=2, burst=2, max_clients=10, clock=lambda: now[0])
    assert [buckets.take("a"), buckets.take("a"), buckets.take("a")] == [0, 0, 1]
    now[0] += 0.5
    assert [buckets.take("a"), buckets.take("a")] == [0, 1]
    now[0] += 100
    assert [buckets.take("a"), buckets.take("a"), buckets.take("a")] == [0, 0, 1]


def test_made_up_clients_do_not_grow_the_buckets_past_their_cap():
    buckets = TokenBuckets(rate=1, burst=1, max_clients=100)
    for index in range(20_000):
        buckets.take(f"made-up-{index}")
    assert len(buckets) == 100
    assert buckets.take("made-up-19999") == 1, "the most recent clients are the ones remembered"


# ---- CORS ----

PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type, x-api-key"}


async def test_a_preflight_from_an_allowed_origin_is_answered_without_a_key():
    async with client_of(cors_origins=[ORIGIN], api_keys=[KEY]) as client:
        response = await client.options("/v1/grad", headers={"Origin": ORIGIN, **PREFLIGHT})
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == ORIGIN
        assert "POST" in response.headers["access-control-allow-methods"]
        assert "x-api-key" in response.headers["access-control-allow-headers"].lower()


async def test_a_preflight_from_another_origin_is_refused_as_a_problem():
    async with client_of(cors_origins=[ORIGIN]) as client:
        response = await client.options("/v1/grad", headers={"Origin": "https://elsewhere.example", **PREFLIGHT})
        assert_problem(response, 400, "cors-refused")
        assert "access-control-allow-origin" not in response.headers


async def test_a_browser_can_read_answers_and_refusals_with_their_request_id():
    async with client_of(cors_origins=[ORIGIN], api_keys=[KEY]) as client:
        for headers in ({"X-API-Key": KEY}, {}):
            response = await client.get("/v1/ops", headers={"Origin": ORIGIN, **headers})
            assert response.headers["access-control-allow-origin"] == ORIGIN
            assert "X-Request-ID" in response.headers["access-control-expose-headers"]


async def test_without_cors_origins_no_origin_is_allowed():
    async with client_of() as client:
        response = await client.options("/v1/grad", headers={"Origin": ORIGIN, **PREFLIGHT})
        assert response.status_code == 405 and "access-control-allow-origin" not in response.headers


# ---- request ids ----


async def test_a_safe_request_id_is_echoed_and_put_in_the_problem():
    async with client_of() as client:
        response = await client.get("/no/such/page", headers={"X-Request-ID": "trace-42:a/b=c"})
        assert response.headers["x-request-id"] == "trace-42:a/b=c"
        assert assert_problem(response, 404, "not-found")["request_id"] == "trace-42:a/b=c"


@pytest.mark.parametrize("sent", [None, "", "x" * 129, "two words", 'quote"d', "ünïcode"])
async def test_a_missing_or_unsafe_request_id_is_replaced_by_a_new_one(sent):
    async with client_of() as client:
        headers = {} if sent is None else {"X-Request-ID": sent.encode()}
        first = (await client.get("/healthz", headers=headers)).headers["x-request-id"]
        second = (await client.get("/healthz", headers=headers)).headers["x-request-id"]
        assert GENERATED_ID.fullmatch(first) and first != second


async def test_every_early_refusal_carries_the_request_id():
    async with client_of(api_keys=[KEY], rate_limit_per_second=0.01, rate_limit_burst=1, max_body_bytes=100) as client:
        keyed = {"X-API-Key": KEY}
        refusals = [
            (await client.get("/v1/ops", headers={"X-Request-ID": "no-key"}), 401),
            (await client.post("/v1/grad", content=b"[" * 200, headers={**keyed, "X-Request-ID": "too-big"}), 413),
            (await client.get("/v1/ops", headers={**keyed, "X-Request-ID": "too-often"}), 429),
        ]
        for response, status in refusals:
            assert response.status_code == status
            assert response.json()["request_id"] == response.headers["x-request-id"] != ""


async def test_an_unexpected_error_and_its_log_lines_carry_the_request_id(caplog):
    async with client_of() as client:

        @client.app.get("/v1/failing-for-the-test")
        def fail() -> None:
            raise RuntimeError("a bug")

        caplog.handler.addFilter(logs.RequestIdFilter())
        with caplog.at_level(logging.INFO, logger="gradserve"):
            response = await client.get("/v1/failing-for-the-test", headers={"X-Request-ID": "failing-1"})
        assert assert_problem(response, 500, "internal")["request_id"] == "failing-1"
        written = [record for record in caplog.records if record.name.startswith("gradserve")]
        assert {record.name for record in written} == {"gradserve", "gradserve.access"}
        assert all(record.request_id == "failing-1" for record in written)


# ---- security headers ----


async def test_security_headers_are_on_answers_problems_and_docs():
    async with client_of() as client:
        for response in (await client.get("/healthz"), await client.get("/nowhere"), await client.get("/docs")):
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["x-frame-options"] == "DENY"
            assert response.headers["referrer-policy"] == "no-referrer"
            assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert (await client.get("/healthz")).headers["content-security-policy"].startswith("default-src 'none'")


@pytest.mark.parametrize("page", ["/docs", "/redoc", "/docs/oauth2-redirect"])
async def test_the_docs_pages_may_run_their_own_scripts_and_no_others(page):
    async with client_of() as client:
        response = await client.get(page)
    directives = response.headers["content-security-policy"].split(";")
    policy = dict(directive.strip().split(" ", 1) for directive in directives)
    scripts = policy["script-src"].split()
    assert scripts[0] == "'self'" and "'unsafe-inline'" not in scripts and "'unsafe-eval'" not in scripts
    inline = re.findall(rb"<script>(.*?)</script>", response.content, re.DOTALL)
    expected = {f"'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'" for script in inline}
    assert set(scripts[1:]) == expected
    assert all(src.startswith("/static/docs/") for src in re.findall(r'<script src="([^"]+)"', response.text))


def test_the_real_server_sends_no_server_header_and_the_security_headers(server_url):
    response = httpx.get(f"{server_url}/healthz")
    assert "server" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"
    assert GENERATED_ID.fullmatch(response.headers["x-request-id"])


# ---- /metrics on its own port ----


def test_metrics_can_move_to_a_port_of_their_own():
    metrics_port = _free_port()
    with serving_in_thread(metrics_port=metrics_port) as port:
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 404
        metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics")
        assert metrics.status_code == 200
        assert 'gradserve_requests_total{endpoint="/healthz",method="GET",status="200"} 1.0' in metrics.text


# ---- log lines ----


@contextmanager
def log_lines(log_format: str) -> Iterator[io.StringIO]:
    """What the access log writes in `log_format`, through the handler `gradserve serve` installs."""
    written = io.StringIO()
    writer = logs.handler(log_format, written)
    access = logging.getLogger("gradserve.access")
    access.addHandler(writer)
    level = access.level
    access.setLevel(logging.INFO)
    try:
        yield written
    finally:
        access.removeHandler(writer)
        access.setLevel(level)


async def test_a_json_log_line_per_request_with_sizes_and_no_contents():
    body = json.dumps({"function": {"expression": "x"}, "inputs": {"x": [123456.789]}, "mode": "fast"}).encode()
    async with client_of() as client:
        with log_lines("json") as written:
            response = await client.post("/v1/grad", content=body, headers={"X-Request-ID": "json-1"})
    assert response.status_code == 422
    (line,) = written.getvalue().splitlines()
    assert "123456" not in line
    record = json.loads(line)
    assert {key: record[key] for key in ("level", "logger", "request_id", "method", "endpoint", "status")} == {
        "level": "info",
        "logger": "gradserve.access",
        "request_id": "json-1",
        "method": "POST",
        "endpoint": "/v1/grad",
        "status": 422,
    }
    assert record["request_bytes"] == len(body) and record["response_bytes"] == len(response.content)
    assert isinstance(record["duration_ms"], float) and record["time"].endswith("+00:00")


async def test_a_text_log_line_names_the_request():
    async with client_of() as client:
        with log_lines("text") as written:
            await client.get("/v1/ops", headers={"X-Request-ID": "text-1"})
    assert re.search(r"INFO gradserve.access \[text-1\] GET /v1/ops 200 [\d.]+ ms$", written.getvalue().strip())


def test_serve_sends_every_logger_to_stderr_as_json(capfd):
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        logs.configure("json", "info")
        logging.getLogger("any.library").info("Started %s", "server")
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    line = json.loads(capfd.readouterr().err.strip().splitlines()[-1])
    assert line["message"] == "Started server" and line["request_id"] == "-" and line["level"] == "info"
