"""Arrays on the wire: both encodings, exact float64, dtypes, non-finite numbers, strictness."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from app import arrays, bodies, jsontext
from tests.api.conftest import array, assert_problem, b64
from tests.api.test_jsontext import holds_numbers_alone

pytestmark = pytest.mark.anyio


def request(expression: str, encoding: str = "json", **inputs) -> dict:
    return {"function": {"expression": expression}, "inputs": inputs, "encoding": encoding}


async def test_base64_float64_round_trips_exactly(asgi_client):
    x = np.random.default_rng(0).standard_normal((3, 5)) * 10.0 ** np.arange(-7, 8).reshape(3, 5)
    response = await asgi_client.post("/v1/evaluate", json=request("x", "base64", x=b64(x)))
    value = response.json()["value"]
    assert value["dtype"] == "float64" and value["shape"] == [3, 5]
    np.testing.assert_array_equal(array(value), x)
    assert array(value).tobytes() == x.astype("<f8").tobytes()


async def test_json_float64_round_trips_exactly(asgi_client):
    x = np.random.default_rng(1).standard_normal(50)
    response = await asgi_client.post("/v1/grad", json=request("sum(x)", x=x.tolist()))
    np.testing.assert_array_equal(array(response.json()["value"]), np.sum(x))
    response = await asgi_client.post("/v1/evaluate", json=request("x", x=x.tolist()))
    np.testing.assert_array_equal(array(response.json()["value"]), x)


async def test_gradient_in_base64_has_the_input_shape(asgi_client):
    response = await asgi_client.post("/v1/grad", json=request("sum(x ** 2)", "base64", x=b64(np.ones((2, 3)))))
    body = response.json()
    assert body["gradient"]["x"]["shape"] == [2, 3]
    np.testing.assert_array_equal(array(body["gradient"]["x"]), 2 * np.ones((2, 3)))


@pytest.mark.parametrize("dtype", ["float32", "int64", "int32", "bool"])
async def test_base64_inputs_of_every_dtype(asgi_client, dtype):
    values = np.array([1, 0, 3], dtype=dtype)
    response = await asgi_client.post("/v1/evaluate", json=request("x", "base64", x=b64(values, dtype)))
    value = response.json()["value"]
    expected_dtype = "float64" if dtype == "float32" else dtype  # floating inputs take the request's dtype
    assert value["dtype"] == expected_dtype
    np.testing.assert_array_equal(array(value), values.astype(expected_dtype))


async def test_integer_inputs_are_constants(asgi_client):
    body = {**request("x * n", x=[1.0, 2.0], n=b64([3, 4], "int64"))}
    response = await asgi_client.post("/v1/grad", json={**body, "reduce": "sum"})
    assert list(response.json()["gradient"]) == ["x"]
    np.testing.assert_array_equal(array(response.json()["gradient"]["x"]), [3.0, 4.0])


async def test_dtype_float32_computes_in_float32(asgi_client):
    response = await asgi_client.post(
        "/v1/grad", json={**request("sum(x * x)", "base64", x=[0.1, 0.2]), "dtype": "float32"}
    )
    body = response.json()
    assert body["value"]["dtype"] == "float32" and body["gradient"]["x"]["dtype"] == "float32"
    np.testing.assert_array_equal(array(body["gradient"]["x"]), 2 * np.array([0.1, 0.2], dtype=np.float32))


async def test_non_finite_results_are_strings_never_null(asgi_client):
    response = await asgi_client.post("/v1/evaluate", json=request("log(x)", x=[0.0, 1.0, -1.0]))
    assert response.json()["value"] == ["-Infinity", 0.0, "NaN"]
    assert "null" not in response.text
    response = await asgi_client.post("/v1/evaluate", json=request("exp(x)", x=1000.0))
    assert response.json()["value"] == "Infinity"


async def test_non_finite_strings_are_accepted_in_inputs(asgi_client):
    response = await asgi_client.post("/v1/evaluate", json=request("x * 2", x=["NaN", "Infinity", "-Infinity", 1.5]))
    assert response.json()["value"] == ["NaN", "Infinity", "-Infinity", 3.0]


async def test_non_finite_values_survive_base64(asgi_client):
    response = await asgi_client.post("/v1/evaluate", json=request("x", "base64", x=b64([np.nan, np.inf, -np.inf])))
    value = array(response.json()["value"])
    assert np.isnan(value[0]) and value[1] == np.inf and value[2] == -np.inf


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (True, "boolean"),
        ([1.0, False], "element [1] is a boolean"),
        ("1", "string"),
        ([1.0, "2"], "element [1] is the string"),
        ([[1.0, 2.0], [3.0]], "ragged"),
        ([[1.0, 2.0], 3.0], "ragged"),
        ([1.0, None], "null"),
        ({"dtype": "float64", "shape": [3], "data": "AAAA"}, "base64 of 24 bytes"),
        ({"dtype": "float16", "shape": [1], "data": "AAA="}, "dtype"),
        ({"dtype": "float64", "shape": [1.5], "data": ""}, "shape"),
        ({"dtype": "float64", "shape": [1], "data": "!!!!!!!!!!!="}, "base64"),
        ({"dtype": "float64", "shape": [1]}, "keys"),
        ({"dtype": "bool", "shape": [3], "data": "AQAC"}, "element [2] is the byte 2; bool bytes are 0 (false) or 1"),
        ({"dtype": "bool", "shape": [2, 2], "data": "AAH/AA=="}, "element [1, 0] is the byte 255"),
        ({"dtype": "float64", "shape": [0, 2**63], "data": ""}, "no array can have the shape [0, 9223372036854775808]"),
    ],
)
async def test_malformed_arrays_are_refused_with_their_location(asgi_client, value, message):
    response = await asgi_client.post("/v1/evaluate", json=request("x", x=value))
    body = assert_problem(response, 422, "invalid-request", "/inputs/x")
    assert message in body["detail"]


async def test_a_shape_no_array_can_have_is_refused_in_validate_too(asgi_client):
    body = {**request("x", x={"dtype": "float64", "shape": [0, 2**62]}), "operation": "grad"}
    response = await asgi_client.post("/v1/validate", json=body)
    assert "no array can have the shape" in assert_problem(response, 422, "invalid-request", "/inputs/x")["detail"]


@pytest.mark.parametrize(
    ("expression", "x"), [("sum(x) * 3", [0.1, 0.2]), ("x * 3", [0.3, 0.7]), ("log(x) * 3", [0.3, 0.0, -1.0])]
)
async def test_float32_results_are_written_with_float32_digits(asgi_client, expression, x):
    """0.3 * 3 in float32 is the float32 nearest 0.90000004: written so, not as the float64
    0.9000000357627869 that widening it gives; read back as float32, it is the same number."""
    response = await asgi_client.post("/v1/evaluate", json={**request(expression, x=x), "dtype": "float32"})
    x32 = np.array(x, dtype=np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = {"sum(x) * 3": np.sum(x32) * np.float32(3), "x * 3": x32 * np.float32(3),
                    "log(x) * 3": np.log(x32) * np.float32(3)}[expression]  # fmt: skip
    value = response.json()["value"]
    np.testing.assert_array_equal(array(value).astype(np.float32), expected)
    for number in np.atleast_1d(expected):
        if np.isfinite(number):
            assert str(number) in response.text  # numpy's shortest float32 digits
            assert str(float(number)) not in response.text


@pytest.mark.parametrize("encoding", ["json", "base64"])
def test_encode_then_decode_is_the_identity(encoding):
    x = np.array([[1.5, -0.0, np.nan], [np.inf, -np.inf, 1e-300]])
    decoded = arrays.decode(arrays.encode(x, encoding) if encoding == "base64" else arrays.encode(x, "json"))
    np.testing.assert_array_equal(decoded, x)
    assert np.signbit(decoded[0, 1])


def test_decoding_a_large_nested_list_is_fast():
    import time

    values = np.random.default_rng(2).standard_normal((1000, 100)).tolist()
    started = time.perf_counter()
    decoded = arrays.decode(values)
    assert decoded.shape == (1000, 100)
    assert time.perf_counter() - started < 0.5


async def test_a_number_beyond_float32_is_refused_not_made_infinite(client):
    body = {"function": {"expression": "x * 2"}, "inputs": {"x": [1.0, 1e300]}, "dtype": "float32"}
    problem = assert_problem(await client.post("/v1/evaluate", json=body), 422, "bad-input", "/inputs/x")
    assert "1e+300" in problem["detail"] and "float32" in problem["detail"]


# What a JSON array may hold: numbers of every kind orjson reads (ints past int64 and past
# uint64, which it reads as floats; -0.0; subnormals), and what the service refuses or reads
# specially: booleans, null, strings, ragged nesting.
NUMBERS = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(2**70), 2**70))
ELEMENTS = st.one_of(
    NUMBERS, NUMBERS, NUMBERS, st.booleans(), st.none(), st.sampled_from(["NaN", "Infinity", "-Infinity", "1", "nan"])
)
RECTANGULAR = st.recursive(
    st.lists(NUMBERS, max_size=4),
    lambda inner: st.integers(0, 3).flatmap(lambda n: st.lists(inner, min_size=n, max_size=n)),
    max_leaves=20,
)
LISTS = st.one_of(RECTANGULAR, st.recursive(st.lists(ELEMENTS, max_size=4), lambda inner: st.lists(inner, max_size=3)))


def decoded(value) -> tuple:
    try:
        result = arrays.decode(value)
    except ValueError as error:
        return ("refused", str(error))
    return (result.dtype, result.shape, result.tobytes())  # bit for bit: -0.0, NaN


def deep(depth: int) -> list:
    value: list = [1.0]
    for _ in range(depth - 1):
        value = [value]
    return value


@settings(max_examples=400, deadline=None)
@given(LISTS, st.sampled_from(["", " ", "\n"]))
@example([[1.0, 2.0], [3.0]], "")
@example([[1.0, 2.0], 3.0], "")
@example([1, True], "")
@example(deep(arrays.MAX_NDIM + 1), "")
@example(deep(70), "")
@example([2**63, 2**64 - 1, -(2**63), 2**53 + 1], "")
def test_lists_read_by_numpy_from_their_text_decode_as_checked_ones(value, space):
    """A list whose text holds numbers alone is read by numpy straight into floats: the same
    array, bit for bit, as the one checked element by element, or the same refusal."""
    text = json.dumps({"x": value}, separators=("," + space, ":" + space)).encode()
    document = orjson.loads(text)
    found = bodies.number_lists(document, jsontext.outline(text), min_bytes=0)
    assert any(array is document["x"] for array in found) == holds_numbers_alone(value)
    with arrays.numbers_only(found):
        fast = decoded(document["x"])
    assert fast == decoded(document["x"])


async def test_a_long_list_of_numbers_is_read_by_numpy_and_others_are_refused_as_before(asgi_client, monkeypatch):
    read_by_numpy = []
    numbers = arrays._numbers
    monkeypatch.setattr(arrays, "_numbers", lambda value: read_by_numpy.append(len(value)) or numbers(value))
    x = np.linspace(-1.0, 1.0, 3000)
    response = await asgi_client.post("/v1/grad", json=request("sum(x * x)", x=x.tolist()))
    assert response.status_code == 200, response.text
    np.testing.assert_array_equal(array(response.json()["gradient"]["x"]), 2 * x)
    assert read_by_numpy == [3000]
    for sent, message in [
        ([*x.tolist(), True], "element [3000] is a boolean"),
        ([*x.tolist(), None], "element [3000] is null"),
        ([*x.tolist(), "1"], "element [3000] is the string '1'"),
        ([x.tolist(), x.tolist()[1:]], "ragged"),
    ]:
        response = await asgi_client.post("/v1/grad", json=request("sum(x * x)", x=sent))
        assert message in assert_problem(response, 422, "invalid-request", "/inputs/x")["detail"]
    assert read_by_numpy == [3000, 2]  # the ragged one was tried, and refused by the careful path
    response = await asgi_client.post("/v1/grad", json=request("sum(x * x)", x=[*x.tolist(), "NaN"]))
    assert response.json()["gradient"]["x"][-1] == "NaN"
