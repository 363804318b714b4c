"""Every knob of the service, read from the environment with the prefix ``GRADSERVE_``
(``GRADSERVE_WORKERS=4``, ``GRADSERVE_DEADLINE_SECONDS=2.5``, ...)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from engine.limits import Limits


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GRADSERVE_", extra="ignore", frozen=True)

    # The worker pool.
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
    long_work_operations: int = Field(
        2_000,
        ge=0,
        description="operations of a function past which its request is long work (long work may "
        "hold all workers but one; programs are always long work)",
    )
    long_work_elements: int = Field(
        1_000_000_000, ge=0, description="array elements computed (the static bound) past which a request is long work"
    )
    backend: Literal["numpy", "cupy"] = Field("numpy", description="array namespace of the workers (cupy: a GPU)")
    worker_threads: int = Field(
        1,
        ge=1,
        description="BLAS threads of each worker: the pool runs requests in parallel, and waking BLAS "
        "threads costs milliseconds per call",
    )
    worker_memory_bytes: int = Field(
        8 << 30, ge=0, description="address-space limit of a numpy worker, so a runaway allocation fails (0: none)"
    )
    worker_cache_bytes: int = Field(
        256 << 20, ge=0, description="bytes of transformed functions and compiled plans each worker keeps for reuse"
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

    def limits(self) -> Limits:
        """The engine's limits, from the settings of the same names."""
        return Limits(**{name: getattr(self, name) for name in Limits.__dataclass_fields__})
