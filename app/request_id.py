"""Each request's id: the client's `X-Request-ID` when it is a safe token, else a new one.

It is held in a context variable for the duration of the request, so that whatever answers
(a route, an exception handler, a middleware that refuses early) and whatever logs can name
it without being handed it."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

HEADER = "X-Request-ID"
# Letters, digits and a few separators, bounded: the id is echoed in a header and written into
# log lines, so it must not carry line breaks, quotes or a 70 KB payload.
_SAFE = re.compile(r"[A-Za-z0-9._:=+/-]{1,128}")

current: ContextVar[str | None] = ContextVar("request_id", default=None)


def accept(sent: str | None) -> str:
    """The id the client sent, if it is safe to echo and log; a new one otherwise."""
    if sent is not None and _SAFE.fullmatch(sent):
        return sent
    return uuid.uuid4().hex
