"""gradserve's Python client: `gradserve.client.Client` and `AsyncClient`, the problems they
raise (`gradserve.errors`) and the `gradserve` command. Importing it needs httpx and numpy
only; the service itself is the `app` and `engine` packages."""

from gradserve.client import AsyncClient, Client, Job, Result, Summary, Trace, TraceNode
from gradserve.errors import (
    AuthenticationError,
    DeadlineExceededError,
    FunctionError,
    GradserveConnectionError,
    GradserveError,
    InvalidRequestError,
    OverloadedError,
    RateLimitedError,
    ServerError,
    TooLargeError,
)

__all__ = [
    "AsyncClient", "AuthenticationError", "Client", "DeadlineExceededError", "FunctionError",
    "GradserveConnectionError", "GradserveError", "InvalidRequestError", "Job", "OverloadedError", "RateLimitedError",
    "Result", "ServerError", "Summary", "TooLargeError", "Trace", "TraceNode",
]  # fmt: skip
