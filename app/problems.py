"""RFC 9457 problem details for every error the service gives, in one place.

Each kind of error has a stable `type` URI, ``https://gradserve.dev/problems/<kind>``, spelled
with hyphens whichever side finds it:
- the engine's kinds (syntax, unknown-name, unknown-op, arity, bad-param, shape, dtype, graph,
  not-scalar, bad-wrt, bad-input, limit, numeric): 422. `limit` there is a budget of the
  function itself (nesting depth, operations, program steps), so 422 like any function the
  service cannot process; sizes are 413 `too-large`, whichever side finds them;
- invalid-request (422, the request does not fit the schema, or gives a key twice),
  malformed-json (400, or compressed data that does not inflate), unsupported-media-type (415,
  a body that is not JSON, or compressed otherwise than with gzip or deflate), too-large (413),
  not-found (404), handle-not-found and job-not-found (404: expired, or never made),
  method-not-allowed (405), overloaded (503 with Retry-After), not-ready (503),
  deadline-exceeded (504: the worker was stopped and replaced), worker-crashed (500),
  internal (500, never with a traceback), malformed-http (400: bytes that are not an HTTP
  request, answered by the server's protocol in app.server);
- the security options' kinds: unauthorized (401 with WWW-Authenticate), rate-limited (429
  with Retry-After), request-timeout (408: the body did not arrive in time), cors-refused (400).

Every problem answered during a request carries its `request_id`, as in the X-Request-ID header.

Counts in a `detail` are written with thousands separators (50,000,000), as the engine's are.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from app import request_id
from app.bodies import is_json
from app.errors import ServiceError
from engine.errors import TOO_LARGE, EngineError, pointer

TYPE_BASE = "https://gradserve.dev/problems/"
MEDIA_TYPE = "application/problem+json"

_ENGINE_TITLES = {
    "syntax": "Syntax error",
    "unknown_name": "Unknown name",
    "unknown_op": "Unknown operation",
    "arity": "Wrong number of arguments",
    "bad_param": "Bad parameter",
    "shape": "Shapes do not fit",
    "dtype": "Wrong dtype",
    "graph": "Invalid graph",
    "not_scalar": "Output is not a scalar",
    "bad_wrt": "Bad wrt",
    "bad_input": "Bad input",
    "limit": "Function over budget",
    "numeric": "Numeric failure",
    "no_formula": "No formula for this derivative",
}
HTTP_KINDS = {
    400: ("malformed-json", "Malformed request"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    408: ("request-timeout", "Request timeout"),
    413: ("too-large", "Request too large"),
}


def problem(
    status: int, kind: str, title: str, detail: str, location: str | None = None, *,
    headers: dict[str, str] | None = None, errors: list[dict[str, str]] | None = None,
) -> Response:  # fmt: skip
    """A problem response. Details and locations may repeat the client's own text (a path, an
    input's name, a key), of any length: each is held to MAX_ECHO_CHARS here, whoever wrote it."""
    body: dict[str, Any] = {"type": TYPE_BASE + kind, "title": title, "status": status, "detail": bounded(detail)}
    if location is not None:
        body["location"] = bounded(location)
    if errors:
        body["errors"] = [{key: bounded(text) for key, text in error.items()} for error in errors]
    if (current_id := request_id.current.get()) is not None:
        body["request_id"] = current_id
    return Response(orjson.dumps(body), status_code=status, media_type=MEDIA_TYPE, headers=headers)


MAX_ECHO_CHARS = 1000


def bounded(text: str, limit: int = MAX_ECHO_CHARS) -> str:
    """`text`, or its beginning and end around "..." when it is longer than `limit`."""
    if len(text) <= limit:
        return text
    kept = limit - 3
    return text[: kept - kept // 2] + "..." + text[len(text) - kept // 2 :]


def engine_problem(error: EngineError) -> Response:
    """The engine's locations are already JSON pointers into the request ("/inputs/x"),
    node ids ("node 'c'") or source positions ("offset 12", "line 3, column 5")."""
    if error.kind == TOO_LARGE:
        return problem(413, "too-large", "Request too large", error.message, error.location)
    # The engine's kinds are Python identifiers (unknown_name); the problem types are spelled
    # with hyphens, as the service's own are (unknown-name): one spelling for every kind.
    kind = error.kind.replace("_", "-")
    return problem(422, kind, _ENGINE_TITLES.get(error.kind, "Invalid function"), error.message, error.location)


def error_problem(error: ServiceError | EngineError) -> Response:
    """The problem an error raised while computing is answered with."""
    if isinstance(error, EngineError):
        return engine_problem(error)
    return problem(error.status, error.kind, error.title, error.detail, error.location, headers=error.headers)


def json_pointer(loc: tuple[Any, ...]) -> str:
    """A pydantic error location, ("body", "inputs", "x"), as a JSON pointer: /inputs/x."""
    return pointer(*(loc[1:] if loc and loc[0] == "body" else loc))


def _validation_problem(request: Request, error: RequestValidationError) -> Response:
    content_type = request.headers.get("content-type", "application/json")
    if not is_json(content_type):
        detail = f"the body is sent as {bounded(content_type, 100)}; send JSON with Content-Type: application/json"
        return problem(415, "unsupported-media-type", "Unsupported media type", detail)
    issues = error.errors()
    listed = [{"location": json_pointer(tuple(i["loc"])), "detail": _message(i)} for i in issues]
    first = listed[0]
    detail = first["detail"] + (f" (and {len(listed) - 1:,} more: see errors)" if len(listed) > 1 else "")
    return problem(422, "invalid-request", "Invalid request", detail, first["location"], errors=listed)


def _message(issue: dict[str, Any]) -> str:
    message = issue["msg"].removeprefix("Value error, ")
    if issue["type"] == "missing":
        return "this field is required"
    if issue["type"] == "extra_forbidden":
        return "unknown field; see the schema at /docs"
    if issue["type"] == "model_attributes_type" and issue["loc"] == ("body",):
        return "the body must be a JSON object (sent with Content-Type: application/json)"
    return message


def _http_problem(request: Request, error: HTTPException) -> Response:
    kind, title = HTTP_KINDS.get(error.status_code, (f"http-{error.status_code}", "HTTP error"))
    detail = error.detail if isinstance(error.detail, str) else title
    path = bounded(request.url.path, 100)
    if error.status_code == 404:
        detail = f"no resource at {path}; the endpoints are listed at /docs"
    elif error.status_code == 405:
        detail = f"{bounded(request.method, 20)} is not allowed on {path}"
    return problem(error.status_code, kind, title, detail, headers=error.headers)


def _error_problem(request: Request, error: ServiceError | EngineError) -> Response:
    return error_problem(error)


# The exception handlers, by the class of what they answer: installed in FastAPI, and used as
# they are by app.fastpath, which answers the compute POSTs outside FastAPI.
HANDLERS = {
    RequestValidationError: _validation_problem,
    HTTPException: _http_problem,
    ServiceError: _error_problem,
    EngineError: _error_problem,
}
HANDLED = tuple(HANDLERS)


def install(app: FastAPI) -> None:
    for error_class, handler in HANDLERS.items():
        app.add_exception_handler(error_class, handler)


def answer(request: Request, error: Exception) -> Response:
    """The problem that the handler of `error`'s class (or its nearest base's, as Starlette
    looks it up) answers."""
    handler = next(HANDLERS[base] for base in type(error).__mro__ if base in HANDLERS)
    return handler(request, error)


def problem_response_doc(description: str) -> dict[str, Any]:
    return {"description": description, "content": {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


# The problem responses each endpoint declares in OpenAPI.
COMPUTE_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: problem_response_doc("malformed-json: the body is not JSON (or its gzip or deflate data is broken)"),
    415: problem_response_doc(
        "unsupported-media-type: the body is not sent as application/json, or its Content-Encoding is neither "
        "gzip nor deflate (the answer's Accept-Encoding lists them)"
    ),
    413: problem_response_doc(
        "too-large: the body (inflated, if compressed), an array, the result or an intermediate is over its limit"
    ),
    422: problem_response_doc(
        "invalid-request (a key given twice included), or an engine kind (syntax, shape, not-scalar, ...): see the type"
    ),
    500: problem_response_doc("worker-crashed, or internal"),
    503: problem_response_doc("overloaded (with Retry-After), or not-ready"),
    504: problem_response_doc("deadline-exceeded: the computation ran past the deadline and was stopped"),
}
