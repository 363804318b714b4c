"""Array namespaces the engine runs on, chosen by name.

Every primitive's implementation is written against the array API standard through the
namespace handed to it, so the same code runs on numpy, on cupy (a GPU), and on
array-api-strict (the tests use it to prove no numpy-only call slipped in).
"""

from __future__ import annotations

import types
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np

from engine.errors import BAD_INPUT, EngineError

BACKENDS = ("numpy", "cupy", "array_api_strict")


@cache
def namespace(name: str = "numpy") -> Any:
    if name == "numpy":
        xp = _numpy_namespace()
    elif name == "cupy":
        if not gpu_available():
            raise EngineError(BAD_INPUT, "the cupy backend needs cupy and a CUDA GPU; neither is present here")
        import array_api_compat.cupy as xp
    elif name == "array_api_strict":
        import array_api_strict as xp
    else:
        raise EngineError(BAD_INPUT, f"unknown backend {name!r}; expected one of {', '.join(BACKENDS)}")
    return xp


def _numpy_namespace() -> types.ModuleType:
    """array_api_compat's numpy namespace, with the calls a small plan makes most often bound
    to the array's own methods, which run the same C code: numpy's module functions reach it
    through Python wrappers (array-function dispatch, keyword handling) that cost 1 to 4 µs a
    call, more than a reduction of a thousand elements or a transpose's whole work. The
    engine's arrays are numpy's (ndarrays and numpy scalars), which have every such method."""
    import array_api_compat.numpy as compat

    xp = types.ModuleType(compat.__name__, compat.__doc__)
    xp.__dict__.update(vars(compat))
    xp.sum = lambda x, /, *, axis=None, dtype=None, keepdims=False: x.sum(axis=axis, dtype=dtype, keepdims=keepdims)
    xp.prod = lambda x, /, *, axis=None, dtype=None, keepdims=False: x.prod(axis=axis, dtype=dtype, keepdims=keepdims)
    xp.max = lambda x, /, *, axis=None, keepdims=False: x.max(axis=axis, keepdims=keepdims)
    xp.min = lambda x, /, *, axis=None, keepdims=False: x.min(axis=axis, keepdims=keepdims)
    xp.reshape = lambda x, /, shape: x.reshape(shape)
    xp.permute_dims = lambda x, /, axes: x.transpose(axes)
    xp.matrix_transpose = lambda x, /: x.mT
    xp.astype = lambda x, dtype, /, *, copy=True: x.astype(dtype, copy=copy)
    return xp


@cache
def gpu_available() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - no cupy, no driver or no device all mean "no GPU"
        return False


def is_cupy(xp: Any) -> bool:
    return getattr(xp, "__name__", "").endswith("cupy")


def raising_linalg_errors(run: Callable[..., Any]) -> Callable[..., Any]:
    """`run` on cupy, raising LinAlgError for a singular matrix as numpy does: cupy reads
    cuSOLVER's status back only when asked (a synchronisation a call), else it answers inf
    and nan where numpy's request gets a 422."""
    import cupyx

    def checked(*args: Any) -> Any:
        with cupyx.errstate(linalg="raise"):
            return run(*args)

    return checked


def to_backend(xp: Any, array: np.ndarray) -> Any:
    # A numpy array is numpy's own: asarray would hand back the same array, a microsecond later.
    if type(array) is np.ndarray and xp is namespace("numpy"):
        return array
    return xp.asarray(array)


def to_host(array: Any) -> np.ndarray:
    if type(array) is np.ndarray:
        return array
    if isinstance(array, (np.ndarray, np.generic)):
        return np.asarray(array)
    if hasattr(array, "get"):  # cupy
        return array.get()
    return np.from_dlpack(array)


def host() -> Any:
    """The namespace for work done while building a function (folding scalar constants)."""
    return namespace("numpy")


def quiet():
    """Let overflow and invalid operations give inf and nan, as IEEE arithmetic does,
    without numpy's warnings: the results carry the information."""
    return np.errstate(all="ignore")


# `quiet` as a decorator: numpy sets its state around each call (per thread) without making
# a context manager each time, which is much of the cost of running a small function.
quietly = np.errstate(all="ignore")
