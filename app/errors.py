"""The service's own failures (load, time, crashes), as data: `app.problems` turns each into
an RFC 9457 response. Sizes are the engine's (`EngineError` of kind `too_large`), whichever
side finds them."""

from __future__ import annotations


class ServiceError(Exception):
    """A failure with a stable problem `kind`, an HTTP status and, where it applies, a location."""

    kind = "internal"
    status = 500
    title = "Internal error"

    def __init__(self, detail: str, location: str | None = None):
        super().__init__(detail)
        self.detail = detail
        self.location = location

    def __reduce__(self):
        return (type(self), (self.detail, self.location))

    @property
    def headers(self) -> dict[str, str]:
        return {}


class MalformedJsonError(ServiceError):
    kind = "malformed-json"
    status = 400
    title = "Malformed request"


class UnsupportedContentEncodingError(ServiceError):
    kind = "unsupported-media-type"
    status = 415
    title = "Unsupported media type"

    @property
    def headers(self) -> dict[str, str]:
        # RFC 9110, 15.5.16: a 415 for a content coding says which codings would be accepted.
        return {"Accept-Encoding": "gzip, deflate"}


class OverloadedError(ServiceError):
    kind = "overloaded"
    status = 503
    title = "Service overloaded"

    def __init__(self, detail: str, location: str | None = None, retry_after: int = 1):
        super().__init__(detail, location)
        self.retry_after = retry_after

    def __reduce__(self):
        return (type(self), (self.detail, self.location, self.retry_after))

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class NotReadyError(OverloadedError):
    kind = "not-ready"
    title = "Service not ready"


class DeadlineExceededError(ServiceError):
    kind = "deadline-exceeded"
    status = 504
    title = "Deadline exceeded"


class WorkerCrashedError(ServiceError):
    kind = "worker-crashed"
    status = 500
    title = "Worker crashed"
