"""Arrays on the wire, both ways: JSON numbers and nested lists, or base64 of the raw bytes.

JSON: a number or a rectangular nested list of numbers, read as float64. JSON has no NaN or
infinity, so they travel as the strings "NaN", "Infinity" and "-Infinity" (and are written
back the same way: a non-finite result never turns into `null`). Booleans are not numbers.

base64: ``{"dtype": "float64", "shape": [2, 3], "data": "..."}``, the little-endian C-order
bytes; exact for float64 and the fast path for large arrays.
"""

from __future__ import annotations

import base64
import binascii
import math
import reprlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np

from engine.ir import DTYPES, ShapedArray, unrepresentable

NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
_WIRE = {name: np.dtype(name).newbyteorder("<") for name in DTYPES}
_ALLOWED_ELEMENTS = {float, int, str}
MAX_NDIM = 32  # numpy's iterators stop there
# The ids of the lists being validated whose JSON text held numbers alone (app.bodies tells,
# from the bytes): a list's id is its own while the parsed document holding it is alive.
_NUMBERS_ONLY: ContextVar[frozenset[int]] = ContextVar("numbers_only", default=frozenset())


@contextmanager
def numbers_only(lists: Iterable[list]) -> Iterator[None]:
    """While decoding within, `lists` (of the document being validated, and kept alive by it)
    are known to hold numbers alone, or lists of them: numpy reads them straight into floats."""
    token = _NUMBERS_ONLY.set(frozenset(map(id, lists)))
    try:
        yield
    finally:
        _NUMBERS_ONLY.reset(token)


def decode(value: Any, *, allow_abstract: bool = False) -> np.ndarray | ShapedArray:
    """The array a request wrote; raises ValueError saying what is wrong with it.

    With `allow_abstract`, ``{"dtype", "shape"}`` without data stands for an array not sent
    (its shape and dtype are all /v1/validate needs) and gives a ShapedArray.
    """
    if isinstance(value, dict):
        return _decode_encoded(value, allow_abstract)
    if isinstance(value, list):
        return _decode_nested(value)
    return np.asarray(_number(value, "the array"), dtype=np.float64)


def _number(value: Any, where: str) -> float:
    if type(value) in (float, int):
        return value
    if isinstance(value, str) and value in NON_FINITE:
        return NON_FINITE[value]
    if isinstance(value, bool):
        raise ValueError(f"{where} is a boolean, not a number; send bool arrays as base64 with dtype bool")
    if isinstance(value, str):
        raise ValueError(
            f'{where} is the string {reprlib.repr(value)}; numbers are JSON numbers, or "NaN", "Infinity", "-Infinity"'
        )
    raise ValueError(f"{where} is {_json_type(value)}, not a number")


def _decode_nested(value: list) -> np.ndarray:
    if id(value) in _NUMBERS_ONLY.get() and (array := _numbers(value)) is not None:
        return array
    try:
        # An object array keeps each JSON value as it was, so a boolean or the string "1" is
        # caught below instead of being converted silently as np.asarray(..., float) would.
        cells = np.array(value, dtype=object)
    except ValueError:
        raise ValueError("the nested lists are ragged; arrays must be rectangular") from None
    if cells.ndim > MAX_NDIM:
        raise ValueError(f"the lists are nested more than {MAX_NDIM} deep; arrays have at most {MAX_NDIM} dimensions")
    kinds = set(map(type, cells.flat))
    if not kinds <= _ALLOWED_ELEMENTS or (str in kinds and not _only_non_finite(cells)):
        _raise_first_bad_element(cells)
    return cells.astype(np.float64)  # float() reads "NaN", "Infinity" and "-Infinity"


def _numbers(value: list) -> np.ndarray | None:
    """A list of numbers alone (or lists of them) read by numpy into float64, as the object
    array below would give it, in a third of the time; None when it is ragged or too deep, for
    the careful path to say where. (Python's ints, even past int64, round as float() rounds.)"""
    try:
        array = np.array(value, dtype=np.float64)
    except (ValueError, OverflowError):
        return None
    return array if array.ndim <= MAX_NDIM else None


def _only_non_finite(cells: np.ndarray) -> bool:
    return all(v in NON_FINITE for v in cells.flat if isinstance(v, str))


def _raise_first_bad_element(cells: np.ndarray) -> None:
    for index in np.ndindex(cells.shape):
        element = cells[index]
        if isinstance(element, list):
            raise ValueError(
                f"the nested lists are ragged (arrays must be rectangular): element {list(index)} is a list"
            )
        _number(element, f"element {list(index)}")


def _json_type(value: Any) -> str:
    return {dict: "an object", type(None): "null", list: "a list"}.get(type(value), type(value).__name__)


def _decode_encoded(value: dict, allow_abstract: bool) -> np.ndarray | ShapedArray:
    keys = set(value)
    expected = {"dtype", "shape", "data"}
    if keys - expected or not (keys == expected or (allow_abstract and keys == {"dtype", "shape"})):
        wanted = '{"dtype", "shape", "data"}' + (' (or {"dtype", "shape"} alone)' if allow_abstract else "")
        raise ValueError(f"an encoded array has exactly the keys {wanted}; got {reprlib.repr(sorted(keys))}")
    dtype, shape = value["dtype"], value["shape"]
    if dtype not in DTYPES:
        # reprlib bounds what is echoed back: the value is the client's, of any size or depth
        raise ValueError(f"dtype {reprlib.repr(dtype)} is not one of {', '.join(DTYPES)}")
    if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape) or len(shape) > MAX_NDIM:
        raise ValueError(f"shape must be a list of at most {MAX_NDIM} non-negative integers, got {reprlib.repr(shape)}")
    if problem := unrepresentable(shape):
        raise ValueError(problem)
    if "data" not in value:
        return ShapedArray(tuple(shape), dtype)
    if not isinstance(value["data"], str):
        raise ValueError("data must be a base64 string")
    wire = _WIRE[dtype]
    expected_bytes = math.prod(shape) * wire.itemsize
    # base64 length is known before decoding: refuse a mismatch without allocating.
    if len(value["data"]) != 4 * math.ceil(expected_bytes / 3):
        raise ValueError(f"data should be the base64 of {expected_bytes:,} bytes for shape {shape} and dtype {dtype}")
    try:
        raw = base64.b64decode(value["data"], validate=True)
    except binascii.Error as error:
        raise ValueError(f"data is not valid base64: {error}") from None
    if len(raw) != expected_bytes:
        raise ValueError(f"data holds {len(raw):,} bytes; shape {shape} of {dtype} needs {expected_bytes:,}")
    if dtype == "bool":
        _check_bool_bytes(raw, shape)
    return np.frombuffer(raw, dtype=wire).reshape(shape).astype(dtype)


def _check_bool_bytes(raw: bytes, shape: list[int]) -> None:
    """numpy reads any byte as a bool and keeps it: a 2 prints as True but is not equal to True."""
    bytes_over_one = np.flatnonzero(np.frombuffer(raw, dtype=np.uint8) > 1)
    if bytes_over_one.size:
        first = int(bytes_over_one[0])
        index = [int(i) for i in np.unravel_index(first, shape)]
        raise ValueError(f"element {index} is the byte {raw[first]}; bool bytes are 0 (false) or 1 (true)")


def encode(array: np.ndarray, encoding: str) -> Any:
    """An array as the response writes it: something orjson serialises with OPT_SERIALIZE_NUMPY,
    which writes float32 with the shortest digits that read back as the same float32 (0.9)."""
    array = np.asarray(array)
    if encoding == "base64":
        data = np.ascontiguousarray(array, dtype=_WIRE[array.dtype.name]).tobytes()
        return {"dtype": array.dtype.name, "shape": list(array.shape), "data": base64.b64encode(data).decode("ascii")}
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        return _with_non_finite_strings(array)
    if array.ndim == 0:
        return array[()]  # a numpy scalar: orjson writes a float32 with float32's shortest digits
    return np.ascontiguousarray(array)


def _with_non_finite_strings(array: np.ndarray) -> Any:
    if array.dtype == np.float32:
        # astype(object) makes Python floats, which orjson writes with float64's digits
        # (0.9000000357627869 for float32's 0.9): float32 cells stay numpy scalars.
        cells = np.array(list(array.flat), dtype=object).reshape(array.shape)
    else:
        cells = array.astype(object)
    cells[np.isnan(array)] = "NaN"
    cells[np.isposinf(array)] = "Infinity"
    cells[np.isneginf(array)] = "-Infinity"
    return cells.tolist()


def encode_tree(tree: Any, encoding: str) -> Any:
    """Every array in nested dicts encoded; other leaves (a mode's name) kept."""
    if isinstance(tree, dict):
        return {key: encode_tree(value, encoding) for key, value in tree.items()}
    if isinstance(tree, (np.ndarray, np.generic)):
        return encode(tree, encoding)
    return tree
