"""A Python client for gradserve: numpy arrays in and out, base64 on the wire (float64
exact), a full service's 503 (and a rate limit's 429) retried after its Retry-After, and
problems raised as `GradserveError` subclasses. It needs httpx, numpy and scipy (a sparse
Jacobian or Hessian is a scipy.sparse array), nothing of the service.

    from gradserve.client import Client

    with Client("http://127.0.0.1:8000") as client:
        result = client.grad("2*dot(x, x)", {"x": [0, 1, 2, 3]})
        result.gradient["x"]  # array([ 0.,  4.,  8., 12.])

`AsyncClient` has the same methods, each a coroutine.

Long work runs as a job: `client.jobs` has every operation's method, which starts it and
answers a `Job` at once; `client.job(job)` polls it, `client.wait(job)` gives its result (or
raises its problem) and `client.cancel(job)` stops it.

    job = client.jobs.hessian("sum(sin(x)*x**2)", {"x": x}, format="csr")
    job.progress              # (done, total)
    client.wait(job).hessian  # {"x": {"x": <scipy.sparse csr_array>}}

A function is an expression string, a program (a string starting with `def`), a graph
(a dict with "nodes"), or the request's own {"expression" | "graph" | "program": ...}.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
from scipy import sparse

from gradserve import wire
from gradserve.errors import GradserveConnectionError, GradserveError, from_problem

DEFAULT_URL = "http://127.0.0.1:8000"
RETRIED = (429, 503)
FINISHED = ("done", "failed", "cancelled")
FUNCTION_KINDS = ("expression", "graph", "program")
# The fields of an answer that hold arrays (the others, like a Jacobian's mode, are kept as sent).
_ARRAY_FIELDS = ("value", "gradient", "vjp", "jvp", "jacobian", "hessian", "hvp")


@dataclass(frozen=True)
class Result:
    """An operation's answer: `value` always, and the fields of that operation (as the API
    names them), arrays as numpy arrays; `meta` as the service sent it."""

    value: np.ndarray
    gradient: dict[str, np.ndarray] | None = None
    vjp: dict[str, np.ndarray] | None = None
    jvp: np.ndarray | None = None
    jacobian: dict[str, np.ndarray] | None = None
    mode: str | None = None
    hessian: dict[str, dict[str, np.ndarray]] | None = None
    hvp: dict[str, np.ndarray] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Job:
    """A job as the service last told it: `state` is queued, running, done, failed or
    cancelled; `progress` (done, total) never goes back; `result` is the operation's `Result`
    (a `Trace` for trace) once done, and `error` the problem it failed with."""

    id: str
    operation: str
    state: str
    progress: tuple[int, int]
    result: Any = None
    error: GradserveError | None = None
    expires_at: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


@dataclass(frozen=True)
class Summary:
    """An array the service summarised instead of sending whole."""

    shape: tuple[int, ...]
    dtype: str
    min: float
    max: float
    mean: float
    entries: np.ndarray  # the first few elements, in C order


@dataclass(frozen=True)
class TraceNode:
    id: str
    primitive: str
    inputs: list[str | float]  # node ids, and constants
    params: str
    shape: tuple[int, ...]
    dtype: str
    value: np.ndarray | Summary
    adjoint: np.ndarray | Summary | None  # d output / d node; None where no gradient reaches
    name: str | None = None
    operation: str | None = None
    location: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class Trace:
    value: np.ndarray
    output: str | None
    nodes: list[TraceNode]
    dot: str
    meta: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, node_id: str) -> TraceNode:
        return next(node for node in self.nodes if node.id == node_id)


def function_spec(function: str | Mapping[str, Any]) -> dict[str, Any]:
    """A request's `function` from an expression, a program, a graph, or the spec itself."""
    if isinstance(function, str):
        return {"program": function} if function.lstrip().startswith("def ") else {"expression": function}
    if isinstance(function, Mapping) and len(function) == 1 and next(iter(function)) in FUNCTION_KINDS:
        return dict(function)
    if isinstance(function, Mapping) and "nodes" in function:
        return {"graph": dict(function)}
    raise TypeError("a function is an expression or program string, a graph dict, or {kind: definition}")


@dataclass(frozen=True)
class _Call:
    """One request, and how to read its answer."""

    path: str
    body: dict[str, Any] | None
    read: Any  # the answer's JSON -> what the method returns
    method: str = "POST"


class _Api:
    """The operations, written once: each builds a `_Call` that the client sends (`_send`
    returns the answer in Client, a coroutine in AsyncClient)."""

    encoding: str

    def _send(self, call: _Call) -> Any:
        raise NotImplementedError

    def _body(self, function, inputs, dtype: str, **fields: Any) -> dict[str, Any]:
        body = {
            "function": function_spec(function),
            "inputs": _arrays(inputs),
            "dtype": dtype,
            "encoding": self.encoding,
        }
        body.update((name, value) for name, value in fields.items() if value is not None)
        return body

    def _operation(self, name: str, function, inputs, dtype: str, **fields: Any):
        return self._send(_Call(f"/v1/{name}", self._body(function, inputs, dtype, **fields), _result))

    def evaluate(self, function, inputs: Mapping[str, Any], *, dtype: str = "float64"):
        """The function's output: `result.value`."""
        return self._operation("evaluate", function, inputs, dtype)

    def grad(self, function, inputs, *, wrt: Sequence[str] | None = None, reduce: str = "none", dtype: str = "float64"):
        """`result.value` and `result.gradient` (name -> array); reduce="sum" for a non-scalar output."""
        return self._operation("grad", function, inputs, dtype, wrt=_names(wrt), reduce=reduce)

    def vjp(self, function, inputs, cotangent, *, wrt: Sequence[str] | None = None, dtype: str = "float64"):
        """`result.vjp`: cotangent @ J for each input (y.backward(cotangent))."""
        return self._operation("vjp", function, inputs, dtype, wrt=_names(wrt), cotangent=wire.encode(cotangent))

    def jvp(
        self, function, inputs, tangents: Mapping[str, Any], *, wrt: Sequence[str] | None = None, dtype: str = "float64"
    ):
        """`result.jvp`: J @ tangents, shaped like the output."""
        return self._operation("jvp", function, inputs, dtype, wrt=_names(wrt), tangents=_arrays(tangents))

    def jacobian(
        self,
        function,
        inputs,
        *,
        wrt: Sequence[str] | None = None,
        mode: str = "auto",
        format: str = "dense",
        dtype: str = "float64",
    ):
        """`result.jacobian` (name -> output.shape + input.shape, or with format "csr" or "coo" a
        scipy.sparse array of shape (output size, input size)) and `result.mode`, the mode used."""
        return self._operation("jacobian", function, inputs, dtype, wrt=_names(wrt), mode=mode, format=format)

    def hessian(
        self, function, inputs, *, wrt: Sequence[str] | None = None, format: str = "dense", dtype: str = "float64"
    ):
        """`result.hessian`: name -> name -> in1.shape + in2.shape, or with format "csr" or "coo" a
        scipy.sparse array of shape (size1, size2)."""
        return self._operation("hessian", function, inputs, dtype, wrt=_names(wrt), format=format)

    def hvp(
        self,
        function,
        inputs,
        tangents: Mapping[str, Any],
        *,
        wrt: Sequence[str] | None = None,
        reduce: str = "none",
        dtype: str = "float64",
    ):
        """`result.gradient` and `result.hvp` (H @ tangents)."""
        return self._operation(
            "hvp", function, inputs, dtype, wrt=_names(wrt), tangents=_arrays(tangents), reduce=reduce
        )

    def trace(
        self,
        function,
        inputs,
        *,
        wrt: Sequence[str] | None = None,
        reduce: str = "none",
        summarize_above: int | None = None,
        dtype: str = "float64",
    ):
        """A `Trace`: every node with its value and its adjoint, and the graph as DOT text."""
        body = self._body(function, inputs, dtype, wrt=_names(wrt), reduce=reduce, summarize_above=summarize_above)
        return self._send(_Call("/v1/trace", body, _trace))

    def validate(
        self,
        function,
        inputs: Mapping[str, Any],
        *,
        operation: str = "evaluate",
        wrt: Sequence[str] | None = None,
        dtype: str = "float64",
    ) -> Any:
        """Shapes and cost without computing, as the service's JSON. An input may be an array,
        or {"dtype": ..., "shape": [...]} alone."""
        inputs = {name: value if _is_shape(value) else wire.encode(value) for name, value in inputs.items()}
        body = {
            "function": function_spec(function),
            "inputs": inputs,
            "dtype": dtype,
            "operation": operation,
            **({"wrt": _names(wrt)} if wrt is not None else {}),
        }
        return self._send(_Call("/v1/validate", body, lambda answer: answer))


class _JobStarter(_Api):
    """`client.jobs`: each operation's method, sent as a job (POST /v1/jobs) by the client it
    belongs to, answering a `Job` instead of the result."""

    def __init__(self, client: _Api):
        self._client = client
        self.encoding = client.encoding

    def _send(self, call: _Call) -> Any:
        body = {"operation": call.path.removeprefix("/v1/"), **call.body}
        return self._client._send(_Call("/v1/jobs", body, _job))


class _Jobs:
    """The calls on jobs both clients make alike (each returns a coroutine in AsyncClient)."""

    _send: Any

    @property
    def jobs(self) -> _JobStarter:
        """Every operation's method, started as a job: `client.jobs.jacobian(...)` answers a `Job`."""
        return _JobStarter(self)

    def job(self, job: Job | str):
        """The job as it is now."""
        return self._send(_Call(_job_path(job), None, _job, "GET"))

    def cancel(self, job: Job | str):
        """Stops the job (its worker is replaced) and answers it, cancelled, or as it finished."""
        return self._send(_Call(_job_path(job), None, _job, "DELETE"))


class _Transport:
    """What both clients share about sending: headers, retries, reading problems."""

    def __init__(
        self, base_url: str, api_key: str | None, timeout: float, max_retries: int, max_retry_wait: float, encoding: str
    ):
        if encoding not in ("base64", "json"):
            raise ValueError('encoding is "base64" or "json"')
        self.base_url = base_url.rstrip("/")
        self.headers = {"X-API-Key": api_key} if api_key else {}
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self.encoding = encoding

    def _retry_wait(self, response: httpx.Response, attempt: int) -> float | None:
        """Seconds to wait before trying `response`'s request again, or None to give up."""
        if response.status_code not in RETRIED or attempt >= self.max_retries:
            return None
        return min(_retry_after(response.headers.get("Retry-After")), self.max_retry_wait)

    @staticmethod
    def _answer(response: httpx.Response, call: _Call) -> Any:
        if response.is_success:
            return call.read(response.json())
        raise _problem(response)


class Client(_Transport, _Api, _Jobs):
    """A synchronous client. `timeout` is per request, in seconds; a 503 or 429 is retried
    `max_retries` times, each after its Retry-After (at most `max_retry_wait` seconds)."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        timeout: float = 60.0,
        *,
        max_retries: int = 3,
        max_retry_wait: float = 30.0,
        encoding: str = "base64",
    ):
        super().__init__(base_url, api_key, timeout, max_retries, max_retry_wait, encoding)
        self._http = httpx.Client(base_url=self.base_url, headers=self.headers, timeout=timeout)

    def _send(self, call: _Call) -> Any:
        attempt = 0
        while True:
            try:
                response = self._http.request(call.method, call.path, json=call.body)
            except httpx.TransportError as error:
                raise _unreachable(self.base_url, error) from None
            wait = self._retry_wait(response, attempt)
            if wait is None:
                return self._answer(response, call)
            attempt += 1
            time.sleep(wait)

    def wait(self, job: Job | str, timeout: float | None = None, interval: float = 0.1) -> Any:
        """The job's result once it is finished, polling every `interval` seconds; its problem
        raised if it failed or was cancelled; TimeoutError after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        job = job if isinstance(job, Job) and job.finished else self.job(job)
        while not _past(job, deadline, timeout):
            time.sleep(interval)
            job = self.job(job)
        return _outcome(job)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Transport, _Api, _Jobs):
    """The asynchronous client: Client's methods, each a coroutine."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        api_key: str | None = None,
        timeout: float = 60.0,
        *,
        max_retries: int = 3,
        max_retry_wait: float = 30.0,
        encoding: str = "base64",
    ):
        super().__init__(base_url, api_key, timeout, max_retries, max_retry_wait, encoding)
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=self.headers, timeout=timeout)

    async def _send(self, call: _Call) -> Any:
        attempt = 0
        while True:
            try:
                response = await self._http.request(call.method, call.path, json=call.body)
            except httpx.TransportError as error:
                raise _unreachable(self.base_url, error) from None
            wait = self._retry_wait(response, attempt)
            if wait is None:
                return self._answer(response, call)
            attempt += 1
            await asyncio.sleep(wait)

    async def wait(self, job: Job | str, timeout: float | None = None, interval: float = 0.1) -> Any:
        """As Client.wait."""
        deadline = None if timeout is None else time.monotonic() + timeout
        job = job if isinstance(job, Job) and job.finished else await self.job(job)
        while not _past(job, deadline, timeout):
            await asyncio.sleep(interval)
            job = await self.job(job)
        return _outcome(job)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


# ---- requests and answers ----


def _arrays(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: wire.encode(value) for name, value in values.items()}


def _names(wrt: Sequence[str] | None) -> list[str] | None:
    if isinstance(wrt, str):
        return [wrt]
    return None if wrt is None else list(wrt)


def _is_shape(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {"dtype", "shape"}


def _tree(value: Any) -> Any:
    """Arrays, in dicts keyed by input name (or two names, for a Hessian); a sparse block as
    the scipy.sparse array it describes."""
    if isinstance(value, Mapping) and value.get("format") == "csr":
        arrays = (wire.decode(value[name]) for name in ("data", "indices", "indptr"))
        return sparse.csr_array(tuple(arrays), shape=tuple(value["shape"]))
    if isinstance(value, Mapping) and value.get("format") == "coo":
        data, row, col = (wire.decode(value[name]) for name in ("data", "row", "col"))
        return sparse.coo_array((data, (row, col)), shape=tuple(value["shape"]))
    if isinstance(value, Mapping) and not wire.is_encoded(value):
        return {key: _tree(item) for key, item in value.items()}
    return wire.decode(value)


def _result(answer: dict[str, Any]) -> Result:
    arrays = {name: _tree(answer[name]) for name in _ARRAY_FIELDS if name in answer}
    return Result(**arrays, mode=answer.get("mode"), meta=answer.get("meta") or {})


def _job(answer: dict[str, Any]) -> Job:
    read = _trace if answer["operation"] == "trace" else _result
    problem = answer.get("problem")
    return Job(
        id=answer["id"],
        operation=answer["operation"],
        state=answer["state"],
        progress=(answer["progress"]["done"], answer["progress"]["total"]),
        result=None if answer.get("result") is None else read(answer["result"]),
        error=None if problem is None else from_problem(problem, problem.get("status", 500)),
        expires_at=answer.get("expires_at"),
    )


def _job_path(job: Job | str) -> str:
    return f"/v1/jobs/{job.id if isinstance(job, Job) else job}"


def _past(job: Job, deadline: float | None, timeout: float | None) -> bool:
    """Whether to stop polling: the job is finished, or else the deadline has passed (raised)."""
    if job.finished:
        return True
    if deadline is not None and time.monotonic() >= deadline:
        raise TimeoutError(f"job {job.id} is still {job.state} after {timeout} s")
    return False


def _outcome(job: Job) -> Any:
    if job.state == "done":
        return job.result
    if job.error is not None:
        raise job.error
    raise GradserveError({"type": "about:blank", "title": "Cancelled", "detail": f"job {job.id} was cancelled"})


def _node_array(value: Any) -> np.ndarray | Summary:
    if isinstance(value, Mapping) and "entries" in value:
        stats = {stat: float(wire.decode(value[stat])) for stat in ("min", "max", "mean")}
        return Summary(tuple(value["shape"]), value["dtype"], **stats, entries=wire.decode(value["entries"]))
    return wire.decode(value)


def _trace(answer: dict[str, Any]) -> Trace:
    nodes = [
        TraceNode(
            **{
                **node,
                "shape": tuple(node["shape"]),
                "value": _node_array(node["value"]),
                "adjoint": None if node["adjoint"] is None else _node_array(node["adjoint"]),
            }
        )
        for node in answer["nodes"]
    ]
    return Trace(wire.decode(answer["value"]), answer["output"], nodes, answer["dot"], answer.get("meta") or {})


def _retry_after(header: str | None) -> float:
    """Retry-After as seconds: a number, or an HTTP date; 1 when absent or unreadable."""
    if header is None:
        return 1.0
    try:
        return max(float(header), 0.0)
    except ValueError:
        pass
    try:
        return max(email.utils.parsedate_to_datetime(header).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return 1.0


def _problem(response: httpx.Response) -> GradserveError:
    try:
        problem = response.json()
    except ValueError:
        problem = None
    if not isinstance(problem, dict) or "type" not in problem:
        # Not the service's own answer (a proxy's page, say): told as a problem all the same.
        problem = {
            "type": "about:blank",
            "title": response.reason_phrase,
            "status": response.status_code,
            "detail": response.text[:500] or response.reason_phrase,
        }
    return from_problem(problem, response.status_code)


def _unreachable(base_url: str, error: httpx.TransportError) -> GradserveConnectionError:
    return GradserveConnectionError(
        {"type": "about:blank", "title": "No answer", "detail": f"no answer from {base_url}: {error!r}"}
    )
