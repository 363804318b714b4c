"""The whitelist: which parts of Python's syntax expressions and programs may use.

A parsed tree is checked whole, with an explicit stack, before any of it runs: every node
type, operator, constant, attribute and called name must be one this language knows, so
a branch a program never takes is held to the same rules. Anything else is refused with
a message that says what to write instead.
"""

from __future__ import annotations

import ast

from engine import language
from engine.errors import SYNTAX, UNKNOWN_NAME, UNKNOWN_OP, EngineError
from engine.frontends.source import Source
from engine.ir import INT64_RANGE

BINARY_OPERATORS = {
    ast.Add: "add", ast.Sub: "subtract", ast.Mult: "multiply", ast.Div: "divide", ast.Pow: "power",
    ast.MatMult: "matmul",
}  # fmt: skip
COMPARISONS = {
    ast.Lt: "less", ast.LtE: "less_equal", ast.Gt: "greater", ast.GtE: "greater_equal", ast.Eq: "equal",
    ast.NotEq: "not_equal",
}  # fmt: skip
SYMBOLS = {
    ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**", ast.MatMult: "@", ast.Mod: "%",
    ast.FloorDiv: "//", ast.LShift: "<<", ast.RShift: ">>", ast.BitOr: "|", ast.BitXor: "^", ast.BitAnd: "&",
    ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=", ast.In: "in",
    ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not", ast.Invert: "~",
}  # fmt: skip
TRANSPOSE_ATTRIBUTE = "T"

_CONDITIONS = (ast.BoolOp, ast.IfExp)
_EXPRESSION_NODES = (
    ast.BinOp, ast.UnaryOp, ast.Compare, ast.Call, ast.keyword, ast.Name, ast.Constant, ast.Attribute,
    ast.Subscript, ast.Slice, ast.List, ast.Tuple, *_CONDITIONS,
)  # fmt: skip
_UNARY_OPERATORS = (ast.USub, ast.UAdd, ast.Not)
# Operators and load/store markers are checked with the node that holds them.
_MARKERS = (ast.expr_context, ast.operator, ast.unaryop, ast.cmpop, ast.boolop)
_DESCRIPTIONS = {
    ast.Lambda: "lambda expressions", ast.ListComp: "comprehensions", ast.SetComp: "comprehensions",
    ast.DictComp: "comprehensions", ast.GeneratorExp: "generator expressions", ast.Dict: "dictionaries",
    ast.Set: "sets", ast.JoinedStr: "f-strings", ast.Starred: "starred arguments (*args)",
    ast.NamedExpr: "assignment expressions (:=)", ast.Await: "await", ast.Yield: "yield", ast.YieldFrom: "yield",
    ast.Import: "import", ast.ImportFrom: "import", ast.Global: "global", ast.Nonlocal: "nonlocal",
    ast.With: "with", ast.AsyncWith: "with", ast.Try: "try", ast.TryStar: "try", ast.ClassDef: "class definitions",
    ast.FunctionDef: "nested function definitions", ast.AsyncFunctionDef: "async functions",
    ast.AsyncFor: "async for", ast.Delete: "del", ast.Raise: "raise", ast.Assert: "assert", ast.Match: "match",
    ast.AnnAssign: "type annotations",
}  # fmt: skip
_HINTS = {
    ast.Import: "every function is already available by name, without a prefix",
    ast.ImportFrom: "every function is already available by name, without a prefix",
    ast.ListComp: "use a for loop in a program, or stack([...])",
    ast.Lambda: "write the function's body out where it is used",
}


def refused(node: ast.AST, source: Source, where: str) -> EngineError:
    what = _DESCRIPTIONS.get(type(node), f"this construct ({type(node).__name__})")
    hint = _HINTS.get(type(node))
    message = f"{what} cannot be used in {where}"
    return EngineError(SYNTAX, message + (f"; {hint}" if hint else ""), source.of(node))


def reserved(name: str) -> bool:
    return name.startswith("__")


def check_expression(tree: ast.Expression, source: Source) -> None:
    Checker(source, program=False).run([(tree.body, False)])


class Checker:
    """Walks a tree with an explicit stack, refusing what the language does not have.
    Program statements are checked in `engine.frontends.program`, which hands the
    expressions inside them to `run`."""

    def __init__(self, source: Source, *, program: bool):
        self.source = source
        self.program = program
        self.where = "a program" if program else "an expression"
        self.loaded: list[ast.Name] = []  # every name read, for a program's static check

    def run(self, roots: list[tuple[ast.AST, bool]]) -> None:
        """Check expression trees; each root comes with whether it is a `for` loop's
        `range(...)` call."""
        stack = list(reversed(roots))
        while stack:
            node, is_range = stack.pop()
            # Reversed, so that the leftmost of several faults is the one reported.
            stack.extend((child, False) for child in reversed(self.check(node, is_range)))

    def check(self, node: ast.AST, is_range: bool) -> list[ast.AST]:
        """Check one node; returns the children still to check."""
        if not isinstance(node, _EXPRESSION_NODES):
            raise refused(node, self.source, self.where)
        if not self.program and (isinstance(node, _CONDITIONS) or isinstance(getattr(node, "op", None), ast.Not)):
            raise EngineError(
                SYNTAX,
                "and, or, not and if-else need a program; in an expression use where(condition, x, y)",
                self.source.of(node),
            )
        if isinstance(node, ast.Name):
            if reserved(node.id):
                raise EngineError(
                    UNKNOWN_NAME, f"names that start with '__' (like {node.id!r}) are not allowed", self.source.of(node)
                )
            self.loaded.append(node)
        elif isinstance(node, ast.Constant):
            self.constant(node)
        elif isinstance(node, ast.Call):
            return self.call(node, is_range)
        elif isinstance(node, ast.Attribute):
            if node.attr != TRANSPOSE_ATTRIBUTE:
                raise self.unknown_attribute(node.attr, node)
        elif isinstance(node, ast.Compare):
            self.compare(node)
        elif (isinstance(node, ast.BinOp) and type(node.op) not in BINARY_OPERATORS) or (
            isinstance(node, ast.UnaryOp) and not isinstance(node.op, _UNARY_OPERATORS)
        ):
            raise EngineError(
                UNKNOWN_OP,
                f"the operator {SYMBOLS.get(type(node.op), '?')} is not supported; "
                "the operators are + - * / ** @ and comparisons",
                self.source.of(node),
            )
        return [child for child in ast.iter_child_nodes(node) if not isinstance(child, _MARKERS)]

    def constant(self, node: ast.Constant) -> None:
        value = node.value
        if isinstance(value, int) and not isinstance(value, bool) and value not in INT64_RANGE:
            # Not formatted into the message: Python refuses to print very long integers.
            raise EngineError(SYNTAX, "this integer does not fit in 64 bits; write it as a float", self.source.of(node))
        if not (value is None or value is Ellipsis or isinstance(value, (int, float))):
            raise EngineError(
                SYNTAX,
                f"{type(value).__name__} constants are not values in this language; only numbers are",
                self.source.of(node),
            )

    def call(self, node: ast.Call, is_range: bool) -> list[ast.AST]:
        function = node.func
        for keyword in node.keywords:
            if keyword.arg is None:
                raise EngineError(SYNTAX, "**keywords are not supported; name each keyword", self.source.of(keyword))
        arguments = [*node.args, *node.keywords]
        if isinstance(function, ast.Attribute):
            if function.attr not in language.METHODS:
                raise self.unknown_attribute(function.attr, function)
            return [function.value, *arguments]
        if not isinstance(function, ast.Name):
            if not isinstance(function, _EXPRESSION_NODES):
                raise refused(function, self.source, self.where)
            raise EngineError(SYNTAX, "only functions can be called, by name, like sin(x)", self.source.of(node))
        if function.id == "range" and self.program:
            if not is_range:
                raise EngineError(
                    SYNTAX, "range(...) is only allowed as the loop of a for statement", self.source.of(node)
                )
        else:
            language.lookup(function.id, self.source.of(function))
        return arguments

    def compare(self, node: ast.Compare) -> None:
        if len(node.ops) > 1:
            raise EngineError(
                SYNTAX,
                "chained comparisons like a < b < c are not supported; compare two values at a time",
                self.source.of(node),
            )
        if type(node.ops[0]) not in COMPARISONS:
            raise EngineError(
                UNKNOWN_OP,
                f"the comparison {SYMBOLS[type(node.ops[0])]!r} is not supported; use <, <=, >, >=, == or !=",
                self.source.of(node),
            )

    def unknown_attribute(self, attribute: str, node: ast.Attribute) -> EngineError:
        methods = ", ".join(f".{m}()" for m in language.METHODS)
        close = "" if reserved(attribute) else language.suggestion(attribute, [*language.METHODS, TRANSPOSE_ATTRIBUTE])
        return EngineError(
            UNKNOWN_NAME,
            f"unknown attribute {attribute!r}{close}; arrays have the methods {methods} and the attribute .T",
            self.source.at_offset(self.source.end_of(node) - len(attribute)),
        )
