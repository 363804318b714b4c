"""Arrays on the wire, as the client writes and reads them: base64 of the little-endian
C-order bytes (exact for float64), or JSON numbers and nested lists with non-finite numbers
as the strings "NaN", "Infinity" and "-Infinity"."""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

DTYPES = ("float64", "float32", "int64", "int32", "bool")
_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def as_array(value: Any) -> np.ndarray:
    """A numpy array keeps its dtype; Python numbers and lists are float64, as JSON numbers
    are to the service (so that [0, 1, 2] is differentiable, not an integer constant)."""
    if isinstance(value, (np.ndarray, np.generic)):
        array = np.asarray(value)
        if array.dtype.name not in DTYPES:
            raise TypeError(f"the service takes arrays of {', '.join(DTYPES)}, not {array.dtype.name}")
        return array
    return np.asarray(value, dtype=np.float64)


def encode(value: Any) -> dict[str, Any]:
    array = as_array(value)
    data = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<")).tobytes()
    return {"dtype": array.dtype.name, "shape": list(array.shape), "data": base64.b64encode(data).decode("ascii")}


def is_encoded(value: Any) -> bool:
    return isinstance(value, Mapping) and set(value) == {"dtype", "shape", "data"}


def decode(value: Any) -> np.ndarray:
    """An array as the service wrote it, in either encoding."""
    if is_encoded(value):
        raw = base64.b64decode(value["data"])
        wire = np.dtype(value["dtype"]).newbyteorder("<")
        return np.frombuffer(raw, dtype=wire).reshape(value["shape"]).astype(value["dtype"])
    return np.asarray(_numbers(value))


def _numbers(value: Any) -> Any:
    if isinstance(value, list):
        return [_numbers(item) for item in value]
    return _NON_FINITE.get(value, value) if isinstance(value, str) else value


def to_json(value: Any) -> Any:
    """Arrays (and the dicts and lists holding them) as plain JSON values, non-finite
    numbers as the strings the service uses: for printing an answer."""
    if isinstance(value, Mapping):
        return {key: to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    if isinstance(value, (np.ndarray, np.generic)):
        return to_json(np.asarray(value).tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    return value
