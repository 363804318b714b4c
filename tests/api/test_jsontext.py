"""The outline of a JSON text against the parsed document: generated texts (strings full of
quotes, backslashes, brackets, commas and colons; objects that may repeat keys; random
whitespace), each check compared with a walk over what orjson and json parse."""

from __future__ import annotations

import base64
import json

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app import jsontext

# Keys and strings that imitate structure, and two spellings of the same key ("a", "\u0061").
TRICKY = st.sampled_from(["a", "b", '"', "\\", '\\"', "[", "]", "{", "}", ",", ":", "x,y", "é", "\u2028"])
SCALARS = st.one_of(st.integers(-5, 5), st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.none(),
                    TRICKY)  # fmt: skip


class Pairs(list):
    """An object as written: its key-value pairs in order, repeats allowed."""


VALUES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.lists(st.tuples(TRICKY, children), max_size=4).map(Pairs),
    ),
    max_leaves=30,
)


def write(value, space: str) -> str:
    if isinstance(value, Pairs):
        return "{" + f",{space}".join(f"{write(k, space)}:{space}{write(v, space)}" for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + f",{space}".join(write(v, space) for v in value) + "]"
    if isinstance(value, str) and value == "a" and space:
        return '"\\u0061"'  # the same key, spelled otherwise
    return json.dumps(value)


def first_duplicate(value, path=()):
    """The first key, in the text's order, that repeats an earlier key of its object."""
    if isinstance(value, Pairs):
        seen = set()
        for key, child in value:
            if key in seen:
                return (*path, key)
            seen.add(key)
            if found := first_duplicate(child, (*path, key)):
                return found
    elif isinstance(value, list):
        for index, child in enumerate(value):
            if found := first_duplicate(child, (*path, index)):
                return found
    return None


def values_in(array) -> int | None:
    """The values of an array and its nested arrays; None when it holds an object."""
    total = 0
    for child in array:
        if isinstance(child, list) and not isinstance(child, Pairs):
            inner = values_in(child)
            if inner is None:
                return None
            total += inner
        elif isinstance(child, Pairs):
            return None
        else:
            total += 1
    return max(total, 1)  # an empty array is counted as one value, as its commas tell


def first_array_over(value, limit: int, path=()):
    """The first array, in the text's order, holding more than `limit` values, not nested in
    another array of numbers."""
    if isinstance(value, Pairs):
        children = ((key, child) for key, child in value)
    elif isinstance(value, list):
        count = values_in(value)
        if count is not None and count > limit:
            return path, count
        children = enumerate(value)
    else:
        return None
    for token, child in children:
        if found := first_array_over(child, limit, (*path, token)):
            return found
    return None


@settings(max_examples=300, deadline=None)
@given(VALUES.map(lambda v: Pairs([("top", v)])), st.sampled_from(["", " ", "\n  "]), st.integers(1, 6))
def test_the_outline_agrees_with_the_parsed_document(document, space, limit):
    text = write(document, space).encode()
    assert orjson.loads(text) is not None  # the text is JSON
    outlined = jsontext.outline(text)
    assert outlined is not None
    assert jsontext.duplicate_key(outlined) == first_duplicate(document)
    assert jsontext.largest_array(outlined, limit) == first_array_over(document, limit)


# Mostly the bytes of compact numbers (which stretches of text skip), with some of the rest.
NUMBER_BYTES = st.sampled_from(b"0123456789.,-+" * 4 + b'eE"[]{}: \n\\tx\xff')


@settings(max_examples=300)
@given(st.one_of(st.binary(max_size=300), st.lists(NUMBER_BYTES, max_size=300).map(bytes)), st.integers(1, 16),
       st.integers(0, 4), st.integers(1, 64))  # fmt: skip
def test_the_candidates_are_found_among_any_bytes_across_stretches_and_blocks(text, stretch, probed, block):
    # Stretches and blocks far shorter than the text, so that candidates fall on every side of
    # their edges, and texts of mostly number bytes, so that many stretches are skipped.
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jsontext, "_STRETCH_BYTES", stretch)
        patch.setattr(jsontext, "_PROBED_STRETCHES", probed)
        patch.setattr(jsontext, "_SIFTED_BYTES", block)
        found = jsontext._candidates(np.frombuffer(text, dtype=np.uint8))
    assert found.tolist() == [i for i, byte in enumerate(text) if is_candidate(byte)]


def is_candidate(byte: int) -> bool:
    """A quote, a colon, or a byte that reads as "{" or "}" with bit 5 set (brackets, \\ ^ _ | ~,
    DEL, bytes past ASCII)."""
    return byte in b'":' or byte | 0x20 >= ord("{")


def candidates_of(data: np.ndarray) -> list[int]:
    return np.flatnonzero((data == ord('"')) | (data == ord(":")) | ((data | 0x20) >= ord("{"))).tolist()


@settings(max_examples=100, deadline=None)
@given(VALUES.map(lambda v: Pairs([("top", v)])), st.sampled_from(["", " ", "\n  "]), st.integers(1, 16),
       st.integers(1, 16))  # fmt: skip
def test_the_outline_is_the_same_whatever_the_stretches_and_blocks_it_is_sifted_in(document, space, stretch, block):
    text = write(document, space).encode()
    whole = jsontext.outline(text)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jsontext, "_STRETCH_BYTES", stretch)
        patch.setattr(jsontext, "_SIFTED_BYTES", block)
        in_blocks = jsontext.outline(text)
    for field in ("quotes", "brackets", "partner", "container", "colons"):
        assert getattr(in_blocks, field).tolist() == getattr(whole, field).tolist()


@pytest.mark.parametrize("spaced", [False, True])
def test_the_candidates_of_a_long_list_of_plain_numbers_are_found(spaced):
    """Compact, its stretches of numbers alone are skipped; spaced, the text is sifted whole."""
    numbers = (np.arange(200_000) / 200_000).tolist()
    text = json.dumps({"x": numbers, "s": '"quoted"'}, separators=(", ", ": ") if spaced else (",", ":")).encode()
    data = np.frombuffer(text, dtype=np.uint8)
    found = jsontext._candidates(data)
    assert found.tolist() == candidates_of(data)
    assert len(found) < 100


def test_a_long_string_holds_no_candidates_but_its_quotes():
    """A base64 array's data: letters, digits, + / and =, none of them structure."""
    encoded = base64.b64encode(np.random.default_rng(0).bytes(600_000)).decode()
    text = orjson.dumps({"x": {"dtype": "float64", "shape": [75_000], "data": encoded}})
    found = jsontext._candidates(np.frombuffer(text, dtype=np.uint8))
    assert found.tolist() == candidates_of(np.frombuffer(text, dtype=np.uint8))
    assert len(found) < 40


def test_a_large_body_of_numbers_is_outlined_across_its_blocks():
    numbers = np.random.default_rng(0).standard_normal(50_000) * 10.0 ** np.arange(-25, 25).repeat(1_000)
    text = orjson.dumps({"inputs": {"x": numbers.tolist(), "y": [[1, 2], [3, 4]]}, "s": 'a "quoted" [text]'})
    assert len(text) > 2 * jsontext._SIFTED_BYTES
    data = np.frombuffer(text, dtype=np.uint8)
    assert jsontext._candidates(data).tolist() == candidates_of(data)
    outlined = jsontext.outline(text)
    assert jsontext.number_arrays(outlined, 0) == [("inputs", "x"), ("inputs", "y")]
    assert jsontext.largest_array(outlined, 49_999) == (("inputs", "x"), 50_000)
    assert jsontext.duplicate_key(outlined) is None


def test_text_that_is_not_json_has_no_outline():
    for text in [b'{"a": [1, 2}', b'{"a": "', b"]", b'{"a": [1, 2]}}', b"[" * 1025 + b"]" * 1025]:
        assert jsontext.outline(text) is None


def holds_numbers_alone(array) -> bool:
    return all(holds_numbers_alone(child) if type(child) is list else type(child) in (int, float) for child in array)


def number_arrays(value, path=(), in_object=False):
    """The paths, in the text's order, of the arrays that are values of an object's keys and
    hold numbers alone (or arrays of them)."""
    if isinstance(value, Pairs):
        for key, child in value:
            yield from number_arrays(child, (*path, key), in_object=True)
    elif isinstance(value, list):
        if in_object and holds_numbers_alone(value):
            yield path
        else:
            for index, child in enumerate(value):
                yield from number_arrays(child, (*path, index))


@settings(max_examples=300, deadline=None)
@given(VALUES.map(lambda v: Pairs([("top", v)])), st.sampled_from(["", " ", "\n  "]))
def test_the_arrays_of_numbers_alone_are_found_in_the_text(document, space):
    outlined = jsontext.outline(write(document, space).encode())
    assert jsontext.number_arrays(outlined, 0) == list(number_arrays(document))


def test_only_arrays_as_long_as_asked_are_looked_at():
    text = b'{"a": [1, 2], "b": [[1.5e-3, -2E+4], [3, 4]], "c": [1, true, null, "1"], "d": [[1, 2], "1"]}'
    assert jsontext.number_arrays(jsontext.outline(text), 0) == [("a",), ("b",)]
    assert jsontext.number_arrays(jsontext.outline(text), len(b"[1, 2]") + 1) == [("b",)]
