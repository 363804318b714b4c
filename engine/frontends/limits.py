"""Bounds on what a front-end accepts, and the checks that hold source text to them.

Python's parser and its AST constructor recurse on nesting: a few hundred nested
parentheses or a few thousand unary minuses make them fail with MemoryError or
RecursionError. So source text is measured twice before anything recursive sees it: a
lexical scan (tokens only, one loop) before `ast.parse`, and an explicit-stack walk of the
tree after it, before the front-ends' recursive evaluation.
"""

from __future__ import annotations

import ast
import io
import tokenize
from typing import TYPE_CHECKING

from engine.errors import LIMIT, TOO_LARGE, EngineError
from engine.limits import Limits

if TYPE_CHECKING:
    from engine.frontends.source import Source


# Past this depth Python's own parser may fail (measured on CPython 3.11: 200 nested
# parentheses holding three unary minuses each exhaust its stack), so a larger
# configured max_depth is held to it.
DEPTH_CEILING = 100
# A token-level estimate counts every operator, so it overestimates the tree's depth
# (`a*b + c*d` is 3 operators, 2 levels); the exact bound is applied to the tree.
LEXICAL_SLACK = 4

_OPENING = frozenset("([{")
_CLOSING = frozenset(")]}")
# Tokens that separate siblings rather than nest: what follows starts a new chain.
_SEPARATORS = frozenset({",", ":", ";", "=", "->"})
_KEYWORD_OPERATORS = frozenset({"not", "and", "or", "in", "is", "if", "else", "lambda", "await", "yield"})
_COMPARISONS = frozenset({"==", "!=", "<=", ">="})


def depth_limit(limits: Limits) -> int:
    return min(limits.max_depth, DEPTH_CEILING)


def _too_deep(limits: Limits, location: str) -> EngineError:
    return EngineError(
        LIMIT,
        f"the source is nested too deeply (the limit is {depth_limit(limits)} levels of parentheses, "
        "operators, calls and blocks); split it into smaller steps",
        location,
    )


def check_length(text: str, limits: Limits, source: Source) -> None:
    if len(text) > limits.max_source_chars:
        raise EngineError(
            TOO_LARGE,
            f"the source is {len(text):,} characters long; the limit is {limits.max_source_chars:,}",
            source.at_offset(limits.max_source_chars),
        )


def check_lexical_depth(text: str, limits: Limits, source: Source) -> None:
    """Bound bracket depth exactly, and an estimate of the tree's depth (open brackets plus
    the chains of operators within each) loosely, in one pass over the tokens."""
    brackets_allowed = depth_limit(limits)
    estimate_allowed = LEXICAL_SLACK * brackets_allowed
    chains = [0]  # per open bracket: operators and trailers since the last separator
    estimate = 0  # sum(chains) + indentation
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            kind, string = token.type, token.string
            if kind == tokenize.OP and string in _OPENING:
                chains[-1] += 1
                estimate += 1
                chains.append(0)
                if len(chains) - 1 > brackets_allowed:
                    raise _too_deep(limits, source.at_line_column(*token.start))
            elif kind == tokenize.OP and string in _CLOSING:
                if len(chains) > 1:
                    estimate -= chains.pop()
            elif kind == tokenize.NEWLINE or (
                kind == tokenize.OP and (string in _SEPARATORS or (string.endswith("=") and string not in _COMPARISONS))
            ):
                estimate -= chains[-1]
                chains[-1] = 0
            elif kind == tokenize.OP or (kind == tokenize.NAME and string in _KEYWORD_OPERATORS):
                chains[-1] += 1
                estimate += 1
            elif kind == tokenize.INDENT:
                estimate += 1
            elif kind == tokenize.DEDENT:
                estimate -= 1
            if estimate > estimate_allowed:
                raise _too_deep(limits, source.at_line_column(*token.start))
    except (tokenize.TokenError, SyntaxError):
        # Malformed text: everything before the fault was measured; the parser, which
        # stops at the same fault, says what is wrong.
        return


def check_tree_depth(tree: ast.AST, limits: Limits, source: Source) -> None:
    """The depth of expressions and statements in the tree, with an explicit stack."""
    allowed = depth_limit(limits)
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (ast.expr, ast.stmt)):
            depth += 1
            if depth > allowed:
                raise _too_deep(limits, source.of(node))
        stack.extend((child, depth) for child in ast.iter_child_nodes(node))
