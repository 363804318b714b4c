"""An outline of a JSON text, from a vectorised sift of its bytes (numpy): where each
array and object opens and closes, how many values each array holds, and the keys of each
object, all without building a Python object per value.

Parsed into Python objects, a 32 MB body of numbers takes seconds and twenty times its size
in memory, holding the GIL throughout; its outline takes tens of milliseconds and a few bytes
a byte. So an array over the size limit is refused before the body is parsed, and keys given
twice, which the parser (orjson) accepts silently, the last one winning, are found.

Brackets, commas and colons count only outside strings, and a string is delimited by quotes
that no odd run of backslashes escapes. On text that is not JSON the outline may be None, or
meaningless: it is only trusted as far as the parser then agrees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import orjson

_QUOTE, _BACKSLASH, _COMMA, _COLON = b'"', b"\\", b",", b":"
_OPEN_ARRAY, _OPEN_OBJECT = ord("["), ord("{")
_CLOSING_MINUS_OPENING = ord("]") - ord("[")  # and ord("}") - ord("{"): both 2
_LAST_IN_A_NUMBER = ord("e")  # the largest byte of a number (1e-5), a bracket, a comma or whitespace
# Every byte that may be structure (a bracket, a colon, a quote, a backslash) is a quote or lies
# past "9"; the bulk of a body of numbers (digits, signs, points, commas, whitespace) does not.
_LAST_DIGIT = ord("9")
# The text is first looked over in stretches of 4 KiB, by each one's largest and smallest byte
# (two reductions, about a fifth of the sift's time): a stretch whose bytes all lie past '"' and
# up to "9", as a compact list of numbers' do, holds no structure and is not sifted.
_STRETCH_BYTES = 4 << 10
# Whitespace lies below '"', so that in text spaced out (", ") every stretch may hold one: when
# these first stretches all may, the text is sifted whole without being looked over.
_PROBED_STRETCHES = 16
# The rest is sifted a block at a time: two masks of a block stay in the CPU's cache and come
# from memory the allocator holds, where masks of a whole 2 MB body took fresh pages each time
# (on the 2-core VM, 0.8 ms of page faults against 0.15 ms of comparisons for 0.8 MB).
_SIFTED_BYTES = 256 << 10
MAX_DEPTH = 1024  # orjson's own limit: deeper text is refused by the parser anyway

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Outline:
    text: bytes
    data: np.ndarray  # the same bytes, as numpy sees them
    quotes: np.ndarray  # positions of the quotes that open or close a string
    brackets: np.ndarray  # positions of [ ] { } outside strings, in order
    kinds: np.ndarray  # the byte of each bracket
    partner: np.ndarray  # for each bracket, the index of the bracket that closes or opens it
    # For the stretch of text after each bracket, up to the next one: the index of the
    # innermost bracket open there (-1 outside every one).
    container: np.ndarray
    colons: np.ndarray  # positions of the colons outside strings: one after each key


def outline(text: bytes) -> Outline | None:
    """The outline of `text`, or None when its brackets or quotes do not pair up."""
    data = np.frombuffer(text, dtype=np.uint8)
    candidates = _candidates(data)
    found = data[candidates]
    quotes = _string_delimiters(data, candidates[found == ord(_QUOTE)], candidates[found == ord(_BACKSLASH)])
    if len(quotes) % 2:
        return None
    # With bit 5 set, "[" and "]" read as "{" and "}", which no other byte does.
    folded = found | 0x20
    is_bracket = (folded == _OPEN_OBJECT) | (folded == _OPEN_OBJECT + _CLOSING_MINUS_OPENING)
    brackets = _outside_strings(quotes, candidates[is_bracket])
    kinds = data[brackets]
    opens = (kinds == _OPEN_ARRAY) | (kinds == _OPEN_OBJECT)
    depth = np.cumsum(np.where(opens, 1, -1))  # after each bracket
    if len(brackets) and (depth.min() < 0 or depth[-1] != 0 or depth.max() > MAX_DEPTH):
        return None
    depth = depth.astype(np.int16)  # so that the stable sorts below are radix sorts
    # At each level, brackets alternate: an open one, its closing one, the next open one...
    level = np.where(opens, depth, depth + 1)
    order = np.argsort(level, kind="stable")
    first, second = order[0::2], order[1::2]
    if not (opens[first].all() and (kinds[second] - kinds[first] == _CLOSING_MINUS_OPENING).all()):
        return None
    partner = np.empty(len(brackets), dtype=np.intp)
    partner[first], partner[second] = second, first
    # After a bracket, the innermost open one is the last opened at the depth it leaves.
    by_depth = np.argsort(depth, kind="stable")
    last_open = np.maximum.accumulate(np.where(opens[by_depth], np.arange(len(brackets)), -1))
    container = np.empty(len(brackets), dtype=np.intp)
    container[by_depth] = np.where(last_open >= 0, by_depth[last_open], -1)
    colons = _outside_strings(quotes, candidates[found == ord(_COLON)])
    return Outline(text, data, quotes, brackets, kinds, partner, container, colons)


def _candidates(data: np.ndarray) -> np.ndarray:
    """The positions of the bytes that may be structure, strings included: quotes, colons, and
    those that read as "{" or "}" with bit 5 set (the brackets, and \\ ^ _ | ~, DEL and bytes
    past ASCII, classified after among these few). Not letters: a long string (base64) holds
    none but its quotes."""
    whole = len(data) - len(data) % _STRETCH_BYTES
    stretches = data[:whole].reshape(-1, _STRETCH_BYTES)
    if _may_hold(stretches[:_PROBED_STRETCHES]).all():
        return _sifted(data)
    held = np.flatnonzero(_may_hold(stretches))
    found = _sifted(stretches[held].ravel())
    in_held = held[found // _STRETCH_BYTES] * _STRETCH_BYTES + found % _STRETCH_BYTES
    return np.concatenate((in_held, _sifted(data[whole:]) + whole))


def _may_hold(stretches: np.ndarray) -> np.ndarray:
    """Whether each stretch (a row) holds a byte past "9" or one no greater than '"': every
    candidate is one or the other."""
    return (stretches.max(axis=1) > _LAST_DIGIT) | (stretches.min(axis=1) <= ord(_QUOTE))


def _sifted(data: np.ndarray) -> np.ndarray:
    """The candidates' positions in `data`, a block at a time."""
    folded = np.empty(min(len(data), _SIFTED_BYTES), dtype=np.uint8)
    mask, other = np.empty(len(folded), dtype=bool), np.empty(len(folded), dtype=bool)
    found = [np.empty(0, dtype=np.intp)]
    for start in range(0, len(data), _SIFTED_BYTES):
        block = data[start : start + _SIFTED_BYTES]
        size = len(block)
        candidate = np.greater_equal(np.bitwise_or(block, 0x20, out=folded[:size]), _OPEN_OBJECT, out=mask[:size])
        candidate |= np.equal(block, ord(_QUOTE), out=other[:size])
        candidate |= np.equal(block, ord(_COLON), out=other[:size])
        found.append(np.flatnonzero(candidate) + start)
    return np.concatenate(found)


def _outside_strings(quotes: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The positions that an even number of string delimiters precede."""
    return positions[np.searchsorted(quotes, positions, side="right") % 2 == 0]


def _string_delimiters(data: np.ndarray, quotes: np.ndarray, backslashes: np.ndarray) -> np.ndarray:
    """The quotes (positions, in order) that no odd run of the backslashes before them escapes."""
    after_backslash = quotes[quotes > 0]
    after_backslash = after_backslash[data[after_backslash - 1] == ord(_BACKSLASH)]
    if not len(after_backslash):
        return quotes
    run_starts = backslashes[np.diff(backslashes, prepend=-2) != 1]
    run_start = run_starts[np.searchsorted(run_starts, after_backslash - 1, side="right") - 1]
    escaped = after_backslash[(after_backslash - run_start) % 2 == 1]
    return np.setdiff1d(quotes, escaped, assume_unique=True)


def _commas(outlined: Outline, start: int, end: int) -> int:
    """The commas outside strings in text[start:end], where `start` is outside any string."""
    is_comma = outlined.data[start:end] == ord(_COMMA)
    if np.searchsorted(outlined.quotes, start) == np.searchsorted(outlined.quotes, end):
        return int(np.count_nonzero(is_comma))  # no string in the stretch: the common case
    return len(_outside_strings(outlined.quotes, np.flatnonzero(is_comma) + start))


def largest_array(outlined: Outline, limit: int) -> tuple[Path, int] | None:
    """The path and the value count of the first array holding more than `limit` values.

    An array of n values holds n - 1 commas, nested arrays included ([[1, 2], [3, 4]] holds
    3), so they are counted, not parsed; and only in arrays long enough to hold more than
    `limit` (two bytes a value at least). An array holding objects is not an array of numbers
    (the graph's list of nodes is one, held to its own limit once parsed) and is not counted.
    """
    arrays = np.flatnonzero(outlined.kinds == _OPEN_ARRAY)
    ends = outlined.partner[arrays]
    objects_before = np.concatenate(([0], np.cumsum(outlined.kinds == _OPEN_OBJECT)))
    long_enough = outlined.brackets[ends] - outlined.brackets[arrays] > 2 * limit
    counted_to = -1
    for array, end in zip(arrays[long_enough].tolist(), ends[long_enough].tolist()):
        if array < counted_to or objects_before[end] > objects_before[array]:
            continue  # nested in an array that holds no more than the limit, or holds objects
        values = _commas(outlined, int(outlined.brackets[array]), int(outlined.brackets[end])) + 1
        if values > limit:
            return path_to(outlined, array), values
        counted_to = end
    return None


def number_arrays(outlined: Outline, min_bytes: int) -> list[Path]:
    """The paths of the arrays, values of an object's keys (as a request's arrays are) and at
    least `min_bytes` long with their brackets, that hold numbers alone, or arrays of them:
    between their brackets, no quote (a string) and no byte past "e" (an object's braces and
    every literal, true, false or null, have one; numbers, brackets, commas and whitespace do
    not). Their lists can be read by numpy straight into floats, with no check of each
    element's type (app.arrays)."""
    arrays = np.flatnonzero(outlined.kinds == _OPEN_ARRAY)
    arrays = arrays[arrays > 0]  # an array at the top is no key's value
    parents = outlined.container[arrays - 1]
    starts, stops = outlined.brackets[arrays], outlined.brackets[outlined.partner[arrays]]
    candidates = (parents >= 0) & (outlined.kinds[parents] == _OPEN_OBJECT) & (stops - starts + 1 >= min_bytes)
    return [
        path_to(outlined, array)
        for array, start, stop in zip(*(column[candidates].tolist() for column in (arrays, starts, stops)))
        if np.searchsorted(outlined.quotes, start) == np.searchsorted(outlined.quotes, stop)
        and outlined.data[start:stop].max() <= _LAST_IN_A_NUMBER
    ]


def duplicate_key(outlined: Outline) -> Path | None:
    """The path of the first key that repeats an earlier key of its object, or None."""
    closing = np.searchsorted(outlined.quotes, outlined.colons) - 1
    owners = outlined.container[np.searchsorted(outlined.brackets, outlined.colons) - 1]
    seen: set[tuple[int, str]] = set()
    for owner, start, end in zip(
        owners.tolist(), outlined.quotes[closing - 1].tolist(), outlined.quotes[closing].tolist()
    ):
        key = _key(outlined.text, start, end)
        if (owner, key) in seen:
            return (*path_to(outlined, owner), key)
        seen.add((owner, key))
    return None


def _key(text: bytes, start: int, end: int) -> str:
    raw = text[start + 1 : end]
    return orjson.loads(text[start : end + 1]) if b"\\" in raw else raw.decode()


def path_to(outlined: Outline, index: int) -> Path:
    """The JSON pointer's tokens of the array or object opened by bracket `index`. Raises
    ValueError where the text around it is not JSON."""
    tokens: list[str | int] = []
    while index > 0 and (parent := int(outlined.container[index - 1])) >= 0:
        if outlined.kinds[parent] == _OPEN_OBJECT:
            tokens.append(_key_before(outlined, int(outlined.brackets[index])))
        else:
            tokens.append(_position(outlined, parent, index))
        index = parent
    return tuple(reversed(tokens))


def _position(outlined: Outline, array: int, child: int) -> int:
    """The position in `array` of the value opened by bracket `child`: the commas before it
    in the stretches of text directly in the array."""
    stretches = np.flatnonzero(outlined.container[array:child] == array) + array
    brackets = outlined.brackets.tolist()
    return sum(_commas(outlined, brackets[s] + 1, brackets[s + 1]) for s in stretches.tolist())


def _key_before(outlined: Outline, position: int) -> str:
    closing = int(np.searchsorted(outlined.quotes, position)) - 1
    if closing < 1 or outlined.text[outlined.quotes[closing] + 1 : position].strip() != _COLON:
        raise ValueError("no key before the value")
    return _key(outlined.text, int(outlined.quotes[closing - 1]), int(outlined.quotes[closing]))
