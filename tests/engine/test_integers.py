"""Integer arithmetic: a result that does not fit its dtype is refused where it is computed,
never wrapped around; a result that fits is exact (Python's integers are the reference)."""

from __future__ import annotations

import numpy as np
import pytest

from engine import api
from engine.errors import NUMERIC, EngineError
from engine.frontends import from_expression, from_program
from engine.ir import ShapedArray

BIG = 2**62
INT64_MAX = 2**63 - 1


def evaluate(source: str, backend_name: str, **inputs: np.ndarray):
    avals = {name: ShapedArray(value.shape, value.dtype.name) for name, value in inputs.items()}
    fn = from_expression(source, avals)
    return api.evaluate(fn, inputs, backend_name=backend_name)


@pytest.mark.parametrize(
    ("source", "values", "dtype", "location"),
    [
        ("n * n", [BIG], "int64", "offset 2"),
        ("sum(n)", [BIG, BIG], "int64", "offset 0"),
        ("n + 1", [INT64_MAX], "int64", "offset 2"),
        ("-n", [-(2**63)], "int64", "offset 0"),
        ("abs(n)", [-(2**63)], "int64", "offset 0"),
        ("prod(n)", [2**32, 2**32], "int64", "offset 0"),
        ("n * n", [2**16], "int32", "offset 2"),
        ("dot(n, n)", [2**31, 2**31, 2**31], "int64", "offset 0"),
    ],
)
def test_an_integer_result_that_does_not_fit_is_refused_at_its_step(source, values, dtype, location, backend_name):
    with pytest.raises(EngineError) as error:
        evaluate(source, backend_name, n=np.array(values, dtype=dtype))
    assert error.value.kind == NUMERIC and error.value.location == location
    assert f"does not fit in {dtype}" in error.value.message


@pytest.mark.parametrize(
    ("source", "values", "expected"),
    [
        ("n * 3", [2**61 - 1, -5], [3 * (2**61 - 1), -15]),
        ("sum(n)", [BIG, BIG, -BIG, -BIG, 7], 7),  # wraps on the way, fits at the end
        ("n + 1", [INT64_MAX - 1], [INT64_MAX]),
        ("n - 1", [-(2**63) + 1], [-(2**63)]),
        ("prod(n)", [2**31, 2**30, -2], -(2**62)),
    ],
)
def test_an_integer_result_that_fits_is_exact(source, values, expected, backend_name):
    value = evaluate(source, backend_name, n=np.array(values, dtype="int64"))
    assert np.asarray(value).tolist() == expected


def test_folded_constants_are_checked_too():
    with pytest.raises(EngineError) as error:
        from_expression("x * (2**62 * 4)", {"x": ShapedArray((), "float64")})
    assert error.value.kind == NUMERIC and "does not fit in int64" in error.value.message


def test_a_program_step_is_checked_as_it_runs():
    with pytest.raises(EngineError) as error:
        from_program("def f(x, n):\n    m = n.sum()\n    return x * m\n",
                     {"x": np.ones(2), "n": np.array([BIG, BIG])})  # fmt: skip
    assert error.value.kind == NUMERIC and error.value.location == "line 2, column 11"
