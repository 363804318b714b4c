"""Every knob of the service, read from the environment with the prefix ``GRADSERVE_``
(``GRADSERVE_WORKERS=4``, ``GRADSERVE_DEADLINE_SECONDS=2.5``, ...)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from engine.limits import Limits

MIN_API_KEY_CHARS = 16
DEFAULT_PROCESSES = 2


class Settings(BaseSettings):
    # An empty variable means the default, so a compose file can pass every setting through
    # (`GRADSERVE_X: ${GRADSERVE_X:-}`) without choosing values for the ones left unset.
    model_config = SettingsConfigDict(env_prefix="GRADSERVE_", extra="ignore", frozen=True, env_ignore_empty=True)

    # API processes, and the worker pool.
    processes: int | None = Field(
        None,
        ge=1,
        description="API processes serving the port (`gradserve serve`), the workers split between them; state "
        "such as linearize handles stays in the process that made it, and requests for it are forwarded there. "
        "Unset: 2 (measured best on 2 cores, README's Benchmarks), 1 with the ray executor",
    )
    workers: int = Field(2, ge=1, description="worker processes computing requests")
    queue_size: int = Field(
        256,
        ge=0,
        description="requests admitted beyond one per worker, a bound on memory (admission itself is by "
        "expected time: a request is admitted while the work ahead of it and its own fit the deadline)",
    )
    deadline_seconds: float = Field(10.0, gt=0, description="time a request may take from admission to its result")
    max_tasks_per_child: int = Field(0, ge=0, description="recycle a worker after this many tasks (0: never)")
    prepare_threads: int = Field(
        2, ge=1, description="requests parsed, built and checked at once in the API process (large functions: one)"
    )
    # Measured on 2 cores: the worker's round trip of 1e5 floats (the gradient of 2*dot(x,x),
    # 1.8 million elements by the static bound) costs more than its 0.4 ms of work, and the
    # slowest work under 2 million elements, a 640x640 matmul, takes 12 ms on one BLAS thread.
    inline_work_elements: int = Field(
        2_000_000,
        ge=0,
        description="array elements computed (the static bound) up to which an expression's or a "
        "graph's request is computed in the API process, without the worker round trip (0: never)",
    )
    long_work_operations: int = Field(
        2_000,
        ge=0,
        description="operations of a function past which its request is long work (long work may "
        "hold all workers but one; programs are always long work)",
    )
    long_work_elements: int = Field(
        1_000_000_000, ge=0, description="array elements computed (the static bound) past which a request is long work"
    )
    executor: Literal["local", "ray"] = Field(
        "local",
        description="where workers run: local processes, or Ray actors (one CPU slot each, and one GPU with "
        "the cupy backend) on a local Ray instance or the cluster at RAY_ADDRESS (the `ray` extra)",
    )
    ray_address: str | None = Field(
        None,
        validation_alias=AliasChoices("RAY_ADDRESS", "GRADSERVE_RAY_ADDRESS"),
        description="with the ray executor: the cluster this machine is a node of (`auto`, or the head's "
        "`HOST:6379`); unset: a private Ray instance on this machine. Read from RAY_ADDRESS, as Ray itself does",
    )
    backend: Literal["numpy", "cupy"] = Field("numpy", description="array namespace of the workers (cupy: a GPU)")
    worker_threads: int = Field(
        1,
        ge=1,
        description="BLAS threads of each worker: the pool runs requests in parallel, and waking BLAS "
        "threads costs milliseconds per call",
    )
    worker_memory_bytes: int = Field(
        8 << 30,
        ge=0,
        description="address-space limit of a numpy worker, so a runaway allocation fails (0: none). Each worker and "
        "API process also keeps up to 64 MiB of the memory its computations free for the next one (glibc's malloc, "
        "`app.worker.keep_freed_memory`), rather than fault it in again",
    )
    shared_memory_bytes: int = Field(
        64 << 10,
        ge=0,
        description="arrays of at least this many bytes travel to and from local workers through /dev/shm "
        "instead of pickled through a pipe (0: never)",
    )
    worker_cache_bytes: int = Field(
        256 << 20, ge=0, description="bytes of transformed functions and compiled plans each worker keeps for reuse"
    )

    # Linearize handles, kept in the API process.
    handles_max_count: int = Field(1_000, ge=1, description="linearize handles kept at once (least recently used out)")
    handles_max_bytes: int = Field(
        512 << 20, ge=1, description="bytes of residuals all handles may hold (least recently used out)"
    )
    handles_ttl_seconds: float = Field(600, gt=0, description="how long a linearize handle lives after it is made")

    # Jobs (POST /v1/jobs): long work run by the service, polled by the client.
    jobs_max_count: int = Field(
        100,
        ge=1,
        description="jobs kept at once; finished ones are evicted oldest first, and when all are "
        "unfinished a new job is refused (503)",
    )
    jobs_max_bytes: int = Field(
        1 << 30, ge=1, description="bytes of finished jobs' answers kept at once (the least recently read out)"
    )
    jobs_ttl_seconds: float = Field(600, gt=0, description="how long a finished job is kept after it finished")
    job_deadline_seconds: float = Field(
        100.0,
        gt=0,
        description="time a job may take from admission to its result (the deadline of synchronous "
        "requests is deadline_seconds)",
    )

    # Sizes, checked before anything is allocated where shapes allow (413 past them).
    max_body_bytes: int = Field(32 << 20, ge=1, description="request body size")
    max_array_elements: int = Field(4_000_000, ge=1, description="elements of any one array in a request")
    max_result_elements: int = Field(10_000_000, ge=1, description="elements of all the arrays of a response")
    max_intermediate_elements: int = Field(50_000_000, ge=1, description="elements of the largest array computed")
    max_live_elements: int = Field(
        200_000_000, ge=1, description="elements of all the arrays a running program holds at once"
    )
    max_total_elements: int = Field(
        4_000_000_000, ge=1, description="elements of all arrays computed, by a static bound (a work bound)"
    )

    # Budgets of the front-ends, enforced by the engine: 422 past them,
    # but 413 past the source length, which is a size; a program's arrays are held to
    # max_intermediate_elements as it runs.
    max_source_chars: int = Field(20_000, ge=1, description="characters of an expression or program")
    max_depth: int = Field(64, ge=1, description="nesting depth of an expression or program (at most 100)")
    max_nodes: int = Field(20_000, ge=1, description="nodes of a graph, operations of any built function")
    max_steps: int = Field(100_000, ge=1, description="statements a program may execute")
    max_trace_nodes: int = Field(
        1_000, ge=1, description="nodes /v1/trace lists, each with its value and adjoint (413 past them)"
    )

    # Slow clients (a connection's headers, then its body, must arrive in time) and the
    # connection cap: past it a request is answered 503 `overloaded` and its connection closed.
    header_timeout_seconds: float = Field(
        10.0, gt=0, description="time from a connection's first byte (or its opening) to its request's complete headers"
    )
    body_timeout_seconds: float = Field(
        30.0, gt=0, description="time from a request's headers to the end of its body; past it: 408, connection closed"
    )
    max_connections: int = Field(512, ge=1, description="open connections; a request on one past them: 503")

    # Security options for a deployment: all off by default, for the embedded run on loopback.
    api_keys: Annotated[list[SecretStr], NoDecode] = Field(
        default_factory=list,
        description="keys accepted in X-API-Key or Authorization: Bearer (comma-separated in the environment); "
        "empty: no authentication",
    )
    rate_limit_per_second: float = Field(
        0.0, ge=0, description="requests per second each caller (its API key, else its address) may sustain (0: none)"
    )
    rate_limit_burst: int = Field(20, ge=1, description="requests a client may make at once, above the sustained rate")
    rate_limit_clients: int = Field(
        10_000, ge=1, description="clients the rate limit remembers; past that the least recently seen is forgotten"
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="origins allowed to call from a browser (comma-separated in the environment; '*' for any); "
        "empty: none",
    )
    metrics_port: int | None = Field(
        None, ge=1, le=65535, description="serve /metrics on this port of metrics_host instead of the API's port"
    )
    metrics_host: str = Field("127.0.0.1", description="address of the metrics_port listener")
    log_format: Literal["text", "json"] = Field("text", description="log lines as text, or as one JSON object each")

    @field_validator("api_keys", "cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("api_keys")
    @classmethod
    def _long_enough(cls, keys: list[SecretStr]) -> list[SecretStr]:
        # A short key can be guessed; the constant-time comparison does not help against that.
        if any(len(key.get_secret_value()) < MIN_API_KEY_CHARS for key in keys):
            raise ValueError(f"an API key must have at least {MIN_API_KEY_CHARS} characters")
        return keys

    def api_processes(self) -> int:
        """The API processes `gradserve serve` runs: `processes`, or its default."""
        if self.processes is not None:
            return self.processes
        # Each process of a private Ray instance would start one of its own.
        return 1 if self.executor == "ray" else DEFAULT_PROCESSES

    def limits(self) -> Limits:
        """The engine's limits, from the settings of the same names."""
        return Limits(**{name: getattr(self, name) for name in Limits.__dataclass_fields__})
