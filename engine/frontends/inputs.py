"""Input arrays as the front-ends see them: names with a shape and a dtype."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from engine.errors import BAD_INPUT, EngineError, pointer
from engine.ir import DTYPES, ShapedArray

# numpy's dtype of each name, and each one's name: asarray given a name parses it, and
# dtype.name is computed in Python on every access, microseconds a request.
NUMPY_DTYPES = {name: np.dtype(name) for name in DTYPES}
_NAMES = {dtype: name for name, dtype in NUMPY_DTYPES.items()}


def dtype_name(array: np.ndarray) -> str:
    return _NAMES.get(array.dtype) or array.dtype.name


def input_pointer(name: Any) -> str:
    return pointer("inputs", name)


def as_array(name: Any, value: Any) -> np.ndarray:
    if not isinstance(name, str):
        raise EngineError(BAD_INPUT, f"input names are strings, got {name!r}", "/inputs")
    try:
        array = np.asarray(value)
    except (ValueError, TypeError) as error:
        raise EngineError(BAD_INPUT, f"input {name!r} is not an array: {error}", input_pointer(name)) from None
    if dtype_name(array) not in DTYPES:
        raise EngineError(
            BAD_INPUT,
            f"input {name!r} has dtype {array.dtype.name}; the dtypes are {', '.join(DTYPES)}",
            input_pointer(name),
        )
    return array


def aval_of(array: np.ndarray) -> ShapedArray:
    return ShapedArray(tuple(array.shape), dtype_name(array))


def avals_of(inputs: Mapping[str, Any]) -> dict[str, ShapedArray]:
    return {name: aval_of(as_array(name, value)) for name, value in inputs.items()}
