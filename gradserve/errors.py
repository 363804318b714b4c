"""The service's RFC 9457 problems as Python exceptions: one class per family of problem
`type` (https://gradserve.dev/problems/<kind>), each carrying the problem's fields."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

TYPE_BASE = "https://gradserve.dev/problems/"


class GradserveError(Exception):
    """A problem the service answered (or, for `GradserveConnectionError`, no answer at all).

    `type` is the problem's stable URI and `kind` its last part ("syntax", "not-scalar",
    "too-large"); `detail` says what to change; `location` says where: a JSON pointer into the
    request ("/inputs/x"), a graph node ("node 'c'") or a place in the source ("offset 4",
    "line 3, column 9"). `problem` is the whole problem object as sent."""

    def __init__(self, problem: Mapping[str, Any]):
        self.problem = dict(problem)
        self.type: str = self.problem.get("type", "about:blank")
        self.title: str = self.problem.get("title", "")
        self.status: int | None = self.problem.get("status")
        self.detail: str = self.problem.get("detail", "")
        self.location: str | None = self.problem.get("location")
        self.request_id: str | None = self.problem.get("request_id")
        super().__init__(str(self))

    @property
    def kind(self) -> str:
        return self.type.removeprefix(TYPE_BASE)

    def __str__(self) -> str:
        where = f" (at {self.location})" if self.location else ""
        return f"{self.kind}: {self.detail}{where}"


class FunctionError(GradserveError):
    """The function, its inputs or the options do not fit (422 with an engine kind: syntax,
    unknown-name, shape, not-scalar, bad-wrt, numeric, ...)."""


class InvalidRequestError(GradserveError):
    """The request does not fit the schema (invalid-request, malformed-json, unsupported-media-type)."""


class TooLargeError(GradserveError):
    """A size over a limit: the body, an array, the result, an intermediate, a trace's nodes (413)."""


class AuthenticationError(GradserveError):
    """No API key, or not one of the service's (401)."""


class RateLimitedError(GradserveError):
    """Over the rate limit (429), after the retries."""


class OverloadedError(GradserveError):
    """The service is full or starting (503), after the retries."""


class DeadlineExceededError(GradserveError):
    """The computation ran past the service's deadline and was stopped (504)."""


class ServerError(GradserveError):
    """The service failed (500: a worker crashed, or an internal error)."""


class GradserveConnectionError(GradserveError):
    """No answer: the service could not be reached, or the connection failed."""


_BY_KIND: dict[str, type[GradserveError]] = {
    **dict.fromkeys(("invalid-request", "malformed-json", "unsupported-media-type"), InvalidRequestError),
    "too-large": TooLargeError,
    "unauthorized": AuthenticationError,
    "rate-limited": RateLimitedError,
    **dict.fromkeys(("overloaded", "not-ready"), OverloadedError),
    "deadline-exceeded": DeadlineExceededError,
    **dict.fromkeys(("worker-crashed", "internal"), ServerError),
}


def from_problem(problem: Mapping[str, Any], status: int) -> GradserveError:
    """The exception for a problem the service answered with `status`."""
    kind = str(problem.get("type", "")).removeprefix(TYPE_BASE)
    if kind in _BY_KIND:
        return _BY_KIND[kind](problem)
    if status == 422:
        return FunctionError(problem)
    return (ServerError if status >= 500 else GradserveError)(problem)
