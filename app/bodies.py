"""JSON request bodies, from the bytes received to the endpoint's validated model.

A body is inflated when it was sent compressed (gzip or deflate, held to the body limit once
inflated), outlined (app.jsontext) so that an array over the element limit is refused before
anything is parsed, then parsed (orjson: several times faster than the standard library on
large arrays, and strict, refusing the bare NaN that json.loads accepts), checked for keys
given twice (which orjson accepts, the last one winning), and validated against the
endpoint's model, where the long lists that the outline shows to hold numbers alone are read
by numpy straight into floats (app.arrays) instead of element by element. A small body takes
a few milliseconds at most and is read in place. A larger or compressed one is read in a
thread, one at a time: its parsing and validation hold the GIL in steps of a fraction of a
second, between which the event loop answers health checks and small requests, and its
Python objects (some twenty times the body's size) are held for one body at once.
"""

from __future__ import annotations

import asyncio
import email.message
import functools
import json
import zlib
from typing import Any

import orjson
from fastapi.exceptions import RequestValidationError

from app import arrays, jsontext
from app.errors import MalformedJsonError, UnsupportedContentEncodingError
from engine import cost
from engine.errors import TOO_LARGE, EngineError, pointer
from engine.limits import Limits

# Reading a body of numbers takes ~5-7 ms a MB on 2 cores. Handed to a thread, it costs ~0.3-0.5 ms
# more (the handoff, and the thread's own malloc arena faulting its pages in afresh), and the loop
# still waits for the GIL up to the switch interval (5 ms) at a time while the thread parses: a
# body up to a MB, which holds the loop about as long, is read in place (issue 14: 1e5 floats).
READ_IN_PLACE_BYTES = 1 << 20
# Outlining costs ~0.2 ms whatever the size (numpy's calls): a body this small has its keys
# checked by the standard library's parser instead (~20 µs), and can hold no array over the limit.
SMALL_BODY_BYTES = 16 << 10
# A list this long in the text is read by numpy straight into floats when its text holds numbers
# alone (~2 ms for 100,000 numbers, against ~6 ms checking each element's type); a shorter one
# is checked element by element, which costs less than finding where it is in the document.
NUMBER_ARRAY_BYTES = 4 << 10
# gzip or zlib framing, told apart by the header (HTTP's "deflate" is zlib's format).
_GZIP_OR_ZLIB = zlib.MAX_WBITS | 32


@functools.lru_cache(maxsize=64)
def is_json(content_type: str | None) -> bool:
    """Whether a Content-Type is JSON, by the rule FastAPI uses to decide to parse a body."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


class BodyReader:
    def __init__(self, limits: Limits, max_body_bytes: int):
        self.limits = limits
        self.max_body_bytes = max_body_bytes
        self._one_large_body_at_a_time = asyncio.Semaphore(1)

    async def read(self, raw: bytes, content_encoding: str | None, model: Any) -> Any:
        """The body validated by `model` (FastAPI's ModelField of the endpoint's body); raises
        the problem of the first thing wrong with it."""
        if len(raw) < READ_IN_PLACE_BYTES and not content_encoding:
            return self._read(raw, content_encoding, model)
        async with self._one_large_body_at_a_time:
            return await asyncio.to_thread(self._read, raw, content_encoding, model)

    def _read(self, raw: bytes, content_encoding: str | None, model: Any) -> Any:
        text = self._inflated(raw, content_encoding)
        if len(text) <= SMALL_BODY_BYTES and len(text) < 2 * self.limits.max_array_elements:
            document = _small_document(text)
            if document is not None:
                return self._validated(document, model)
        outlined = jsontext.outline(text)
        # An array of more values than the limit spans over twice the limit in bytes (a byte
        # and a comma a value): a body no longer than that holds none.
        if outlined is not None and len(text) > 2 * self.limits.max_array_elements:
            self._check_array_sizes(outlined)
        try:
            document = orjson.loads(text)
        except orjson.JSONDecodeError as error:
            raise MalformedJsonError(f"the body is not valid JSON: {error.msg} (at byte {error.pos:,})") from None
        if outlined is not None and (path := jsontext.duplicate_key(outlined)):
            detail = f"the key {path[-1]!r} appears twice in this object; give it once (parsers differ on which counts)"
            raise RequestValidationError([{"type": "duplicate_key", "loc": ("body", *path), "msg": detail}])
        with arrays.numbers_only(number_lists(document, outlined) if outlined is not None else ()):
            return self._validated(document, model)

    def _validated(self, document: Any, model: Any) -> Any:
        value, errors = model.validate(document, {}, loc=("body",))
        if errors:
            raise RequestValidationError(errors, body=document)
        return value

    def _check_array_sizes(self, outlined: jsontext.Outline) -> None:
        try:
            largest = jsontext.largest_array(outlined, self.limits.max_array_elements)
        except ValueError:
            return  # not JSON: the parser says where
        if largest is not None:
            path, elements = largest
            raise EngineError(TOO_LARGE, cost.array_limit_detail(elements, self.limits), pointer(*path))

    def _inflated(self, raw: bytes, content_encoding: str | None) -> bytes:
        codings = [c for c in (content_encoding or "").lower().replace(" ", "").split(",") if c not in ("", "identity")]
        if not codings:
            return raw
        if codings not in (["gzip"], ["x-gzip"], ["deflate"]):
            raise UnsupportedContentEncodingError(
                f"the body is sent with Content-Encoding {', '.join(codings)!r}; send it uncompressed, or with gzip "
                "or deflate"
            )
        inflater = zlib.decompressobj(wbits=_GZIP_OR_ZLIB)
        try:
            # At most one byte past the limit is inflated: enough to know the body is over it.
            text = inflater.decompress(raw, self.max_body_bytes + 1)
        except zlib.error:
            raise MalformedJsonError(f"the body is not valid {codings[0]} data") from None
        if len(text) > self.max_body_bytes:
            detail = f"the request body inflates to more than the limit of {self.max_body_bytes:,} bytes"
            raise EngineError(TOO_LARGE, detail)
        if not inflater.eof:
            raise MalformedJsonError(f"the body's {codings[0]} data ends before its end")
        return text


def number_lists(document: Any, outlined: jsontext.Outline, min_bytes: int = NUMBER_ARRAY_BYTES) -> list[list]:
    """The lists of the parsed document whose text holds numbers alone (and lists of them)."""
    found = []
    for path in jsontext.number_arrays(outlined, min_bytes):
        value = document
        try:
            for token in path:
                value = value[token]
        except (KeyError, IndexError, TypeError):
            continue  # the outline and the parser disagree (they should not): checked element by element
        if type(value) is list:
            found.append(value)
    return found


class _DuplicateKeyError(Exception):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        raise _DuplicateKeyError
    return document


def _small_document(text: bytes) -> Any:
    """A small body parsed (orjson) and found free of keys given twice (the standard library's
    parser, whose hook sees every pair); None when it is not (or the standard library refuses
    what orjson read): the outline then says where."""
    try:
        document = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    try:
        # orjson read it, so it is UTF-8: decoded here, and given to one decoder made once
        # (json.loads makes a decoder per call when given a hook, and guesses the encoding).
        _PAIRS_CHECKED.decode(text.decode())
    except (_DuplicateKeyError, ValueError, RecursionError):
        return None
    return document


_PAIRS_CHECKED = json.JSONDecoder(object_pairs_hook=_unique_keys)
