"""What users of the engine call from Python: a built function's value and derivatives on
arrays. Each is one operation of `engine.operations`, bound and run: the same path, and the
same checks, as a request to the service, without its size limits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from engine.ir import Function
from engine.operations import Options
from engine.tasks import bind

# Options are values, made once for each combination a caller uses rather than on every call.
_options = lru_cache(maxsize=256)(Options)


def _answer(fn: Function, operation: str, inputs: Mapping[str, Any], extra: Any = None, **options: Any) -> dict:
    backend_name = options.pop("backend_name", "numpy")
    wrt = options.pop("wrt", None)
    options = _options(wrt=None if wrt is None else tuple(wrt), **options)
    return bind(fn, operation, inputs, extra, options, limits=None).run(backend_name).fields


def evaluate(fn: Function, inputs: Mapping[str, Any], *, backend_name: str = "numpy") -> np.ndarray:
    return _answer(fn, "evaluate", inputs, backend_name=backend_name)["value"]


def value_and_grad(
    fn: Function,
    inputs: Mapping[str, Any],
    *,
    wrt: Sequence[str] | None = None,
    reduce: str = "none",
    backend_name: str = "numpy",
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    fields = _answer(fn, "grad", inputs, wrt=wrt, reduce=reduce, backend_name=backend_name)
    return fields["value"], fields["gradient"]


def grad(fn: Function, inputs: Mapping[str, Any], **options: Any) -> dict[str, np.ndarray]:
    return value_and_grad(fn, inputs, **options)[1]


def vjp(
    fn: Function,
    inputs: Mapping[str, Any],
    cotangent: Any,
    *,
    wrt: Sequence[str] | None = None,
    backend_name: str = "numpy",
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    fields = _answer(fn, "vjp", inputs, cotangent, wrt=wrt, backend_name=backend_name)
    return fields["value"], fields["vjp"]


def jvp(
    fn: Function,
    inputs: Mapping[str, Any],
    tangents: Mapping[str, Any],
    *,
    wrt: Sequence[str] | None = None,
    backend_name: str = "numpy",
) -> tuple[np.ndarray, np.ndarray]:
    fields = _answer(fn, "jvp", inputs, tangents, wrt=wrt, backend_name=backend_name)
    return fields["value"], fields["jvp"]


def jacobian(
    fn: Function,
    inputs: Mapping[str, Any],
    *,
    wrt: Sequence[str] | None = None,
    mode: str = "auto",
    format: str = "dense",
    backend_name: str = "numpy",
) -> tuple[np.ndarray, dict[str, Any], str]:
    """Returns the value, the Jacobians by input name (dense arrays, or engine.sweeps' coo or
    csr blocks), and the mode used."""
    fields = _answer(fn, "jacobian", inputs, wrt=wrt, mode=mode, format=format, backend_name=backend_name)
    return fields["value"], fields["jacobian"], fields["mode"]


def hessian(
    fn: Function,
    inputs: Mapping[str, Any],
    *,
    wrt: Sequence[str] | None = None,
    format: str = "dense",
    backend_name: str = "numpy",
) -> tuple[np.ndarray, dict[str, dict[str, Any]]]:
    fields = _answer(fn, "hessian", inputs, wrt=wrt, format=format, backend_name=backend_name)
    return fields["value"], fields["hessian"]


def hvp(
    fn: Function,
    inputs: Mapping[str, Any],
    tangents: Mapping[str, Any],
    *,
    wrt: Sequence[str] | None = None,
    reduce: str = "none",
    backend_name: str = "numpy",
) -> tuple[np.ndarray, dict[str, np.ndarray], dict[str, np.ndarray]]:
    fields = _answer(fn, "hvp", inputs, tangents, wrt=wrt, reduce=reduce, backend_name=backend_name)
    return fields["value"], fields["gradient"], fields["hvp"]
