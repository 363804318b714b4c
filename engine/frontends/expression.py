"""Expressions: Python's expression syntax, evaluated over engine values by a walk of the
checked tree (never by Python itself).

`Evaluator` turns each node into an engine value, recording equations in the current
builder as it goes; every function and operator is applied through `language.call`, so
`a * (a + b)` records what the graph `multiply(a, add(a, b))` records. Programs reuse it,
adding variables and conditions decided on real values.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Mapping
from typing import Any

from engine import language
from engine.errors import BAD_PARAM, SYNTAX, UNKNOWN_NAME, EngineError
from engine.frontends.source import Source, parse
from engine.frontends.syntax import BINARY_OPERATORS, COMPARISONS, SYMBOLS, TRANSPOSE_ATTRIBUTE, check_expression
from engine.ir import Function, Literal, Origin, ShapedArray, Var, describe
from engine.limits import DEFAULT_LIMITS, Limits
from engine.primitives.shape import getitem
from engine.tracing import Builder, building

# numpy's method forms that take a shape or axes as separate arguments: x.reshape(2, 3).
_VARIADIC_METHODS = ("reshape", "transpose")


def from_expression(source: str, avals: Mapping[str, ShapedArray], limits: Limits = DEFAULT_LIMITS) -> Function:
    located, tree = parse(source, mode="eval", limits=limits)
    check_expression(tree, located)
    inputs = {name: Var(aval) for name, aval in avals.items()}
    with building(Builder(max_equations=limits.max_nodes)) as builder:
        result = ExpressionEvaluator(located, builder, inputs).output(tree.body)
        return builder.function(list(inputs.values()), list(inputs), [result])


def plain(value: Any) -> Any:
    """Constants as Python values (a folded `2 * 3` is a Literal), so that they can be
    shapes, axes and indices."""
    if isinstance(value, Literal):
        return value.value
    if isinstance(value, (list, tuple)):
        return type(value)(plain(item) for item in value)
    return value


class Evaluator:
    """What expressions and programs share. Subclasses say what a name means (`lookup`,
    `holds_value`) and whether values are known while building (`concrete`)."""

    def __init__(self, source: Source, builder: Builder):
        self.source = source
        self.builder = builder
        self._handlers: dict[type, Callable[[Any], Any]] = {
            ast.Constant: lambda node: node.value,
            ast.Name: self.lookup,
            ast.BinOp: self._binary,
            ast.UnaryOp: self._unary,
            ast.Compare: self._compare,
            ast.BoolOp: self._boolean,
            ast.IfExp: self._conditional,
            ast.Call: self._call,
            ast.Attribute: self._transpose,
            ast.Subscript: self._subscript,
            ast.List: lambda node: [self.value(item) for item in node.elts],
            ast.Tuple: lambda node: tuple(self.value(item) for item in node.elts),
        }

    # ---- what subclasses define ----

    def lookup(self, node: ast.Name) -> Any:
        raise NotImplementedError

    def holds_value(self, name: str) -> bool:
        """Whether `name` is bound to a value (which then hides a function of that name)."""
        raise NotImplementedError

    def concrete(self, value: Var, node: ast.AST, what: str) -> Any:
        """The Python scalar a scalar Var holds, where it is known while building."""
        raise EngineError(BAD_PARAM, f"{what} must be a constant, known before the function runs", self.source.of(node))

    def truth(self, value: Any, node: ast.AST) -> bool:
        raise EngineError(
            SYNTAX, "conditions need a program; in an expression use where(condition, x, y)", self.source.of(node)
        )

    # ---- evaluation ----

    def value(self, node: ast.AST) -> Any:
        handler = self._handlers.get(type(node))
        if handler is None:  # the syntax check refuses these first
            raise EngineError(SYNTAX, f"{type(node).__name__} cannot be used here", self.source.of(node))
        return handler(node)

    def array(self, node: ast.AST) -> Any:
        """A value that must be an array or a number (an operand, or the output)."""
        value = self.value(node)
        if isinstance(value, (Var, Literal, int, float)):
            return value
        raise EngineError(
            BAD_PARAM,
            f"expected an array or a number, got {describe(value)}; lists and tuples are only arguments of "
            "functions, as in concatenate([x, y]) or reshape(x, (2, 3))",
            self.source.of(node),
        )

    output = array

    def apply(self, name: str, args: list, keywords: dict, location: str) -> Any:
        self.builder.origin = Origin(name, location)
        return language.call(name, args, keywords, location)

    def integer(self, node: ast.AST, what: str, *, integral_floats: bool = False) -> int:
        value = plain(self.value(node))
        if isinstance(value, Var):
            value = self.concrete(value, node, what)
        if isinstance(value, float) and integral_floats and value.is_integer():
            value = int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise EngineError(BAD_PARAM, f"{what} must be an integer, got {describe(value)}", self.source.of(node))

    def _operator_location(self, node: ast.AST, left: ast.AST, right: ast.AST, operator: ast.AST) -> str:
        """Where the operator itself is: the text between its operands holds only it."""
        found = self.source.text.find(SYMBOLS[type(operator)], self.source.end_of(left), self.source.start_of(right))
        return self.source.at_offset(found if found >= 0 else self.source.start_of(node))

    def _binary(self, node: ast.BinOp) -> Any:
        operands = [self.array(node.left), self.array(node.right)]
        location = self._operator_location(node, node.left, node.right, node.op)
        return self.apply(BINARY_OPERATORS[type(node.op)], operands, {}, location)

    def _compare(self, node: ast.Compare) -> Any:
        (operator,), (right,) = node.ops, node.comparators
        operands = [self.array(node.left), self.array(right)]
        location = self._operator_location(node, node.left, right, operator)
        return self.apply(COMPARISONS[type(operator)], operands, {}, location)

    def _unary(self, node: ast.UnaryOp) -> Any:
        if isinstance(node.op, ast.Not):
            return not self.truth(self.value(node.operand), node.operand)
        operand = self.array(node.operand)
        if isinstance(node.op, ast.UAdd):
            return operand
        return self.apply("negative", [operand], {}, self.source.of(node))

    def _boolean(self, node: ast.BoolOp) -> Any:
        # Python's semantics: `a and b` is a when a is false, else b; `or` the other way.
        stop_when = isinstance(node.op, ast.Or)
        result = self.value(node.values[0])
        for operand, following in zip(node.values, node.values[1:]):
            if self.truth(result, operand) == stop_when:
                return result
            result = self.value(following)
        return result

    def _conditional(self, node: ast.IfExp) -> Any:
        return self.value(node.body if self.truth(self.value(node.test), node.test) else node.orelse)

    def _call(self, node: ast.Call) -> Any:
        function = node.func
        if isinstance(function, ast.Attribute):  # a method: x.sum(axis=0)
            name = function.attr
            location = self.source.at_offset(self.source.end_of(function) - len(name))
            receiver = self.array(function.value)
        else:
            name = function.id
            location = self.source.of(function)
            if self.holds_value(name):
                raise EngineError(
                    UNKNOWN_NAME,
                    f"{name!r} holds a value here (an input or a variable), so it "
                    "cannot be called as a function; rename the value",
                    location,
                )
        args = [plain(self.value(argument)) for argument in node.args]
        keywords = {keyword.arg: self._keyword(keyword) for keyword in node.keywords}
        if isinstance(function, ast.Attribute):
            if name in _VARIADIC_METHODS and len(args) > 1:
                args = [tuple(args)]
            args = [receiver, *args]
        return self.apply(name, args, keywords, location)

    def _keyword(self, keyword: ast.keyword) -> Any:
        value = plain(self.value(keyword.value))
        items = value if isinstance(value, (list, tuple)) else (value,)
        if any(isinstance(item, (Var, list, tuple)) for item in items):
            raise EngineError(
                BAD_PARAM,
                f"the keyword argument {keyword.arg}= takes a constant: a number, a "
                "tuple of numbers, True, False or None",
                self.source.of(keyword),
            )
        return tuple(value) if isinstance(value, list) else value

    def _transpose(self, node: ast.Attribute) -> Any:
        if node.attr != TRANSPOSE_ATTRIBUTE:  # the syntax check refuses the rest first
            raise EngineError(UNKNOWN_NAME, f"unknown attribute {node.attr!r}", self.source.of(node))
        return self.apply("transpose", [self.array(node.value)], {}, self.source.of(node))

    def _subscript(self, node: ast.Subscript) -> Any:
        target = self.array(node.value)
        items = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        index = tuple(self._index_item(item) for item in items)
        location = self.source.of(node)
        self.builder.origin = Origin("indexing", location)
        try:
            return getitem(target, index=index if isinstance(node.slice, ast.Tuple) else index[0])
        except EngineError as error:
            raise error.at(location) from None

    def _index_item(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Slice):
            parts = (node.lower, node.upper, node.step)
            return slice(*(None if _is_none(part) else self.integer(part, "a slice bound") for part in parts))
        if isinstance(node, ast.Constant) and (node.value is None or node.value is Ellipsis):
            return node.value
        return self.integer(node, "an index")


def _is_none(node: ast.AST | None) -> bool:
    """An omitted slice bound, or a written None."""
    return node is None or (isinstance(node, ast.Constant) and node.value is None)


class ExpressionEvaluator(Evaluator):
    def __init__(self, source: Source, builder: Builder, inputs: Mapping[str, Var]):
        super().__init__(source, builder)
        self.inputs = inputs

    def holds_value(self, name: str) -> bool:
        return name in self.inputs

    def lookup(self, node: ast.Name) -> Any:
        if node.id in self.inputs:
            return self.inputs[node.id]
        raise unknown_name(node.id, list(self.inputs), "inputs", self.source.of(node))


def unknown_name(name: str, known: list[str], what: str, location: str) -> EngineError:
    """The error for a name that is neither a value nor a function, `known` being the
    values' names (called `what` to the user)."""
    if name in language.FUNCTIONS:
        return EngineError(UNKNOWN_NAME, f"{name!r} is a function; call it, as in {name}(x)", location)
    close = language.suggestion(name, [*known, *language.FUNCTIONS])
    listed = f"; the {what} are {', '.join(known)}" if known else f"; there are no {what}"
    return EngineError(UNKNOWN_NAME, f"unknown name {name!r}{close}{listed}", location)
