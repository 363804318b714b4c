"""User text: parsing it safely, and saying where a place in it is.

Expressions are located by character offset ("offset 12", 0-based), programs by line and
column ("line 3, column 5", both 1-based, as editors count). Python's `ast` gives columns
in UTF-8 bytes; `Source` turns them into characters.
"""

from __future__ import annotations

import ast
import bisect
import re
import warnings

from engine.errors import BAD_INPUT, LIMIT, SYNTAX, EngineError
from engine.frontends.limits import check_length, check_lexical_depth, check_tree_depth
from engine.limits import Limits

# Python's tokenizer ends a line at \r\n, \r or \n.
_LINE_BREAK = r"\r\n|\r|\n"
# The parser refuses these with ValueError or UnicodeEncodeError, not SyntaxError.
_UNPARSABLE = "[\x00\ud800-\udfff]"


class Source:
    def __init__(self, text: str, *, by_line: bool):
        self.text = text
        self.by_line = by_line
        self._line_starts = [0, *(m.end() for m in re.finditer(_LINE_BREAK, text))]

    def at_offset(self, offset: int) -> str:
        offset = max(0, min(offset, len(self.text)))
        if not self.by_line:
            return f"offset {offset}"
        line = bisect.bisect_right(self._line_starts, offset)
        return f"line {line}, column {offset - self._line_starts[line - 1] + 1}"

    def offset(self, line: int, column: int) -> int:
        """The character offset of a 1-based line and a 0-based character column."""
        line = max(1, min(line, len(self._line_starts)))
        return self._line_starts[line - 1] + max(column, 0)

    def at_line_column(self, line: int, column: int) -> str:
        return self.at_offset(self.offset(line, column))

    def node_offset(self, line: int, utf8_column: int) -> int:
        """The character offset of a position as `ast` gives it (column in UTF-8 bytes)."""
        start = self.offset(line, 0)
        line_text = self.text[start : start + utf8_column]  # at least as many characters as needed
        prefix = line_text.encode("utf-8")[:utf8_column].decode("utf-8", errors="ignore")
        return start + len(prefix)

    def start_of(self, node: ast.AST) -> int:
        return self.node_offset(getattr(node, "lineno", 1), getattr(node, "col_offset", 0))

    def end_of(self, node: ast.AST) -> int:
        return self.node_offset(getattr(node, "end_lineno", 1), getattr(node, "end_col_offset", 0))

    def of(self, node: ast.AST) -> str:
        return self.at_offset(self.start_of(node))


def parse(text: str, *, mode: str, limits: Limits) -> tuple[Source, ast.AST]:
    """Check `text` against the limits and parse it with Python's grammar (mode "eval" for
    an expression, "exec" for a program). Every failure is an EngineError."""
    if not isinstance(text, str):
        what = "an expression" if mode == "eval" else "a program"
        raise EngineError(BAD_INPUT, f"{what} is a string, got {type(text).__name__}", "/function")
    source = Source(text, by_line=mode != "eval")
    check_length(text, limits, source)
    refused = re.search(_UNPARSABLE, text)
    if refused:
        raise EngineError(
            SYNTAX,
            f"the source holds the character {refused.group()!r}, which is not allowed",
            source.at_offset(refused.start()),
        )
    check_lexical_depth(text, limits, source)
    try:
        with warnings.catch_warnings():
            # Warnings about the text (an invalid escape, `x is 1`) are not the service's to print.
            warnings.simplefilter("ignore", SyntaxWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            tree = ast.parse(text, mode=mode)
    except SyntaxError as error:
        # Python reports some errors at the end of the text (an unfinished expression)
        # as offset 0; the end is where they are.
        if error.offset:
            location = source.at_line_column(error.lineno or 1, error.offset - 1)
        else:
            location = source.at_offset(len(text))
        message = error.msg if error.msg.startswith("invalid syntax") else f"invalid syntax: {error.msg}"
        raise EngineError(SYNTAX, message, location) from None
    except (MemoryError, RecursionError):
        # Not reached when the lexical bound holds; kept so that no parser limit escapes.
        raise EngineError(
            LIMIT, "the source is too complex to parse; split it into smaller steps", source.at_offset(0)
        ) from None
    check_tree_depth(tree, limits, source)
    return source, tree
