"""A Function printed back as source in the expression language: an expression, or a
program whose assignments name the subexpressions used more than once.

Each primitive is spelled the way a user writes it: operators with the fewest parentheses
Python's precedence allows, functions by their names in `engine.language`, numbers as the
shortest text that reads back as the same double (1/6 where that is exact). Primitives a
user never writes are spelled with what the language has:
- a broadcast, or a constant array: times the ones of an input of that shape, `x**0` (1
  even where x is inf or nan); without such an input, an input's first elements reshaped;
- `convert`: `where(b, 1.0, 0.0)` for booleans, `1.0 * n` for integers, nothing between floats;
- `eye`: its entries written out (up to 64);
- `scatter` (the derivative of indexing): zeros of the sliced input's shape concatenated
  around the values; with a step other than 1 or -1 it has no spelling;
- `adjugate`: det(a) * inv(a), which is equal where a is invertible.
A primitive with no spelling is refused with an EngineError (`no_formula`) that names it.
"""

from __future__ import annotations

import itertools
import keyword
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from engine import language
from engine.errors import NO_FORMULA, EngineError
from engine.ir import Atom, Equation, Function, Literal, Var
from engine.primitives.common import broadcast_shapes

# Python's binding strengths, weakest last.
ATOM, POWER, UNARY, PRODUCT, SUM, COMPARISON = 100, 14, 13, 12, 11, 10

# The front-ends refuse sources nested deeper than 64 levels: a subexpression deeper than
# this is given a name of its own in a program.
NESTING = 40
LARGEST_LITERAL_ARRAY = 64


@dataclass(frozen=True)
class Text:
    source: str
    precedence: int
    depth: int = 1

    def at_least(self, precedence: int) -> str:
        """The source, parenthesised when it binds less tightly than `precedence`."""
        return self.source if self.precedence >= precedence else f"({self.source})"


def refuse(primitive: str, why: str = "") -> EngineError:
    detail = f"the derivative uses {primitive}, which the expression language cannot spell"
    return EngineError(NO_FORMULA, detail + (f": {why}" if why else ""))


def _deeper(*texts: Text) -> int:
    return 1 + max((t.depth for t in texts), default=0)


def number(value: bool | int | float, dtype: str, *, bare_integer: bool = False) -> Text:
    """A constant as source; an integral float is written as an integer where a floating
    operand beside it decides the dtype anyway (`4*x`)."""
    if isinstance(value, bool):
        return Text(repr(value), ATOM)
    if isinstance(value, int):
        return Text(repr(value), UNARY if value < 0 else ATOM)
    if math.isnan(value):
        return Text("0.0 / 0.0", PRODUCT)
    if math.isinf(value):
        return Text(f"{'-' if value < 0 else ''}1.0 / 0.0", PRODUCT)
    if value.is_integer() and abs(value) < 2**53:
        source = repr(int(value)) if bare_integer else repr(value)
    else:
        source = repr(value) if len(repr(value)) <= 8 else _fraction(value) or repr(value)
    if "/" in source:
        return Text(source, PRODUCT, 2)
    return Text(source, UNARY if value < 0 else ATOM)


def _fraction(value: float) -> str | None:
    """n/d for a small denominator when that division gives exactly this double."""
    for denominator in range(2, 17):
        numerator = round(value * denominator)
        if abs(numerator) < 1000 and numerator / denominator == value:
            return f"{numerator}/{denominator}"
    return None


def _broadcasts_to(shapes: list[tuple[int, ...]], shape: tuple[int, ...]) -> bool:
    try:
        return broadcast_shapes(*shapes) == shape
    except EngineError:
        return False


def _tuple(values) -> str:
    values = tuple(values)
    return f"({values[0]},)" if len(values) == 1 else f"({', '.join(map(str, values))})"


def _slice(start: int, stop: int | None, step: int, size: int) -> str:
    if (start, stop, step) == (0, size, 1):
        return ":"
    parts = [str(start) if start or step < 0 else "", "" if stop is None or (stop == size and step > 0) else str(stop)]
    return ":".join(parts) + (f":{step}" if step != 1 else "")


def index_source(index: tuple, shape: tuple[int, ...]) -> str:
    """A normalised index (engine.primitives.shape.normalize_index) as subscript text."""
    items, axis = [], 0
    for item in index:
        if item is None:
            items.append("None")
            continue
        items.append(str(item) if isinstance(item, int) else _slice(*item, shape[axis]))
        axis += 1
    while len(items) > 1 and items[-1] == ":":
        items.pop()
    return ", ".join(items) or "..."


class Printer:
    """Spells the equations of one function, each in terms of its operands' spellings."""

    def __init__(self, fn: Function, name_shared: bool):
        self.fn = fn
        self.name_shared = name_shared
        self.texts: dict[Var, Text] = {v: Text(name, ATOM) for v, name in zip(fn.inputs, fn.input_names)}
        self.statements: list[str] = []
        self.uses = Counter(a for eqn in fn.equations for a in eqn.inputs if isinstance(a, Var))
        self.uses.update(o for o in fn.outputs if isinstance(o, Var))
        taken = set(fn.input_names) | set(language.FUNCTIONS)
        self.fresh_names = (f"t{i}" for i in range(1, 1 << 30) if f"t{i}" not in taken)

    def text(self, atom: Atom, *, bare_integer: bool = False) -> Text:
        if isinstance(atom, Literal):
            return number(atom.value, atom.dtype, bare_integer=bare_integer)
        return self.texts[atom]

    def run(self) -> Text:
        for eqn in self.fn.equations:
            spell = SPELLINGS.get(eqn.primitive.name)
            if spell is None:
                if eqn.primitive.name not in language.FUNCTIONS:
                    raise refuse(eqn.primitive.name)
                spell = _function
            text = spell(self, eqn)
            if self.name_shared and self._worth_naming(eqn.output, text):
                name = next(self.fresh_names)
                self.statements.append(f"{name} = {text.source}")
                text = Text(name, ATOM)
            self.texts[eqn.output] = text
        (output,) = self.fn.outputs
        return self.text(output)

    def _worth_naming(self, var: Var, text: Text) -> bool:
        if var in self.fn.outputs or (text.precedence == ATOM and len(text.source) <= 4):
            return False
        return self.uses[var] > 1 or text.depth > NESTING

    # ---- helpers for spellings ----

    def operands(self, eqn: Equation) -> list[Text]:
        floating = [isinstance(a, Var) and a.aval.is_float for a in eqn.inputs]
        return [self.text(a, bare_integer=any(floating[:i] + floating[i + 1 :])) for i, a in enumerate(eqn.inputs)]

    def call(self, name: str, arguments: list[str], depth_of: list[Text]) -> Text:
        if name in self.fn.input_names:
            raise refuse(name, f"an input is named {name!r}, which hides the function")
        return Text(f"{name}({', '.join(arguments)})", ATOM, _deeper(*depth_of))

    def ones(self, shape: tuple[int, ...], primitive: str) -> Text:
        """An array of ones of `shape`, made from an input."""
        if not shape:
            return Text("1.0", ATOM)
        size = math.prod(shape)
        inputs = sorted(zip(self.fn.input_names, self.fn.inputs), key=lambda pair: not pair[1].aval.is_float)
        for name, var in inputs:
            if var.aval.shape == shape:
                return Text(f"{name}**0", POWER, 2)
        for name, var in inputs:
            if var.aval.size == size:
                return Text(f"reshape({name}**0, {_tuple(shape)})", ATOM, 3)
        for count in (2, 3):  # inputs that broadcast together to the shape
            for group in itertools.combinations(inputs, count):
                if _broadcasts_to([var.aval.shape for _, var in group], shape):
                    return Text(" * ".join(f"{name}**0" for name, _ in group), PRODUCT, 3)
        for name, var in inputs:
            if var.aval.size > size:
                return Text(f"reshape(reshape({name}, (-1,))[:{size}]**0, {_tuple(shape)})", ATOM, 5)
        return self._ones_axis_by_axis(shape, inputs, primitive)

    def _ones_axis_by_axis(self, shape: tuple[int, ...], inputs: list, primitive: str) -> Text:
        """The product of one vector of ones per axis, each shaped to broadcast along it, made
        from an input at least as long as the axis."""
        factors = []
        for axis, length in enumerate(shape):
            if length == 1:
                continue
            along = (length,) + (1,) * (len(shape) - axis - 1)
            name = next((n for n, v in inputs if v.aval.size >= length), None)
            if name is None:
                raise refuse(primitive, f"it needs an array of shape {list(shape)}, and no input is as large")
            var = dict(inputs)[name]
            if var.aval.shape == along:
                factors.append(f"{name}**0")
            elif var.aval.size == length:
                factors.append(f"reshape({name}, {_tuple(along)})**0")
            else:
                factors.append(f"reshape(reshape({name}, (-1,))[:{length}], {_tuple(along)})**0")
        product = " * ".join(factors)
        if factors and shape[0] != 1:  # the factors broadcast to the whole shape
            return Text(product, PRODUCT if len(factors) > 1 else POWER, 4)
        return Text(f"reshape({product or '1.0'}, {_tuple(shape)})", ATOM, 5)

    def scaled_ones(self, value: Text, shape: tuple[int, ...], primitive: str) -> Text:
        ones = self.ones(shape, primitive)
        if value.source == "1":
            return ones
        return Text(f"{value.at_least(PRODUCT)} * {ones.at_least(PRODUCT + 1)}", PRODUCT, _deeper(value, ones))


# ---- spellings, by primitive ----


def _binary(symbol: str, precedence: int, right_associative: bool = False):
    def spell(printer: Printer, eqn: Equation) -> Text:
        left, right = printer.operands(eqn)
        if eqn.primitive.name == "multiply" and isinstance(eqn.inputs[1], Literal) and left.precedence > PRODUCT:
            left, right = right, left  # 2 * x, not x * 2 (multiplication commutes exactly)
        if right_associative:
            left_source, right_source = left.at_least(precedence + 1), right.at_least(UNARY)
        else:
            left_source, right_source = left.at_least(precedence), right.at_least(precedence + 1)
        return Text(f"{left_source} {symbol} {right_source}", precedence, _deeper(left, right))

    return spell


def _power(printer: Printer, eqn: Equation) -> Text:
    base, exponent = printer.operands(eqn)
    return Text(f"{base.at_least(ATOM)}**{exponent.at_least(UNARY)}", POWER, _deeper(base, exponent))


def _negative(printer: Printer, eqn: Equation) -> Text:
    (operand,) = printer.operands(eqn)
    source = operand.at_least(UNARY + 1)  # -(-x), never --x
    return Text(f"-{source}", UNARY, _deeper(operand))


def _function(printer: Printer, eqn: Equation) -> Text:
    if eqn.params:
        raise refuse(eqn.primitive.name, f"with parameters {dict(eqn.params)}")
    operands = printer.operands(eqn)
    return printer.call(eqn.primitive.name, [o.source for o in operands], operands)


def _reduction(printer: Printer, eqn: Equation) -> Text:
    (operand,) = printer.operands(eqn)
    axis, keepdims = eqn.kwargs["axis"], eqn.kwargs["keepdims"]
    arguments = [operand.source]
    if tuple(axis) != tuple(range(eqn.inputs[0].aval.ndim)):
        arguments.append(f"axis={axis[0]}" if len(axis) == 1 else f"axis={_tuple(axis)}")
    if keepdims:
        arguments.append("keepdims=True")
    return printer.call(eqn.primitive.name, arguments, [operand])


def _reshape(printer: Printer, eqn: Equation) -> Text:
    (operand,) = printer.operands(eqn)
    return printer.call("reshape", [operand.source, _tuple(eqn.kwargs["shape"])], [operand])


def _transpose(printer: Printer, eqn: Equation) -> Text:
    (operand,) = printer.operands(eqn)
    axes = tuple(eqn.kwargs["axes"])
    if axes == (1, 0):
        return Text(f"{operand.at_least(ATOM)}.T", ATOM, _deeper(operand))
    arguments = [operand.source] if axes == tuple(reversed(range(len(axes)))) else [operand.source, _tuple(axes)]
    return printer.call("transpose", arguments, [operand])


def _getitem(printer: Printer, eqn: Equation) -> Text:
    (operand,) = printer.operands(eqn)
    subscript = index_source(eqn.kwargs["index"], eqn.inputs[0].aval.shape)
    return Text(f"{operand.at_least(ATOM)}[{subscript}]", ATOM, _deeper(operand))


def _concatenate(printer: Printer, eqn: Equation) -> Text:
    operands = printer.operands(eqn)
    listed = f"[{', '.join(o.source for o in operands)}]"
    axis = eqn.kwargs["axis"]
    return printer.call("concatenate", [listed] + ([f"axis={axis}"] if axis else []), operands)


def _where(printer: Printer, eqn: Equation) -> Text:
    operands = printer.operands(eqn)
    return printer.call("where", [o.source for o in operands], operands)


def _convert(printer: Printer, eqn: Equation) -> Text:
    (operand,) = printer.operands(eqn)
    source, target = eqn.inputs[0].aval.dtype, eqn.output.aval.dtype
    if not eqn.output.aval.is_float:
        raise refuse("convert", f"to {target}")
    if source == "bool":
        return printer.call("where", [operand.source, "1.0", "0.0"], [operand])
    if eqn.inputs[0].aval.is_float:
        return operand  # float32 and float64 values are written alike
    return Text(f"1.0 * {operand.at_least(PRODUCT + 1)}", PRODUCT, _deeper(operand))


def _broadcast_to(printer: Printer, eqn: Equation) -> Text:
    # The ones are floating, so a constant beside them is written as an integer where it is one.
    operand = printer.text(eqn.inputs[0], bare_integer=eqn.output.aval.is_float)
    return printer.scaled_ones(operand, tuple(eqn.kwargs["shape"]), "broadcast_to")


def _full(printer: Printer, eqn: Equation) -> Text:
    value = number(eqn.kwargs["value"], eqn.output.aval.dtype, bare_integer=eqn.output.aval.is_float)
    return printer.scaled_ones(value, tuple(eqn.kwargs["shape"]), "full")


def _eye(printer: Printer, eqn: Equation) -> Text:
    rows, columns = eqn.kwargs["rows"], eqn.kwargs["columns"]
    if rows * columns > LARGEST_LITERAL_ARRAY:
        raise refuse("eye", f"an identity matrix of {rows}x{columns} is written out only up to 64 entries")
    entries = ", ".join("1.0" if r == c else "0.0" for r in range(rows) for c in range(columns))
    return Text(f"reshape(stack([{entries}]), {_tuple((rows, columns))})", ATOM, 4)


def _adjugate(printer: Printer, eqn: Equation) -> Text:
    (operand,) = printer.operands(eqn)
    stack = eqn.inputs[0].aval.shape[:-2]
    determinant = printer.call("det", [operand.source], [operand])
    if stack:
        determinant = printer.call("reshape", [determinant.source, _tuple((*stack, 1, 1))], [determinant])
    inverse = printer.call("inv", [operand.source], [operand])
    return Text(f"{determinant.source} * {inverse.source}", PRODUCT, _deeper(determinant, inverse))


def _scatter(printer: Printer, eqn: Equation) -> Text:
    """The values g placed at `index` in zeros of `shape`: g with the axes the index drops
    put back, reversed where the index stepped backwards, then, axis by axis, zeros
    concatenated before and after it; each block of zeros is 0 times the ones of that part."""
    (values,) = printer.operands(eqn)
    index, shape = eqn.kwargs["index"], tuple(eqn.kwargs["shape"])
    ranges = []  # per axis of `shape`: (first, stop) of what g fills, ascending
    kept_shape, reversed_axes = [], []
    for item in (item for item in index if item is not None):
        axis = len(ranges)
        if isinstance(item, int):
            ranges.append((item, item + 1))
        else:
            start, stop, step = item
            count = len(range(start, -1 if stop is None else stop, step))
            if step not in (1, -1):
                raise refuse("scatter", "the derivative of indexing with a step other than 1 or -1")
            first = start if step == 1 else start - count + 1
            ranges.append((first, first + count))
            if step == -1 and count > 1:
                reversed_axes.append(axis)
        kept_shape.append(ranges[-1][1] - ranges[-1][0])
    block = values
    if tuple(kept_shape) != eqn.inputs[0].aval.shape:
        block = printer.call("reshape", [values.source, _tuple(kept_shape)], [values])
    if reversed_axes:
        flips = ", ".join("::-1" if axis in reversed_axes else ":" for axis in range(max(reversed_axes) + 1))
        block = Text(f"{block.at_least(ATOM)}[{flips}]", ATOM, _deeper(block))
    template = next((n for n, v in zip(printer.fn.input_names, printer.fn.inputs) if v.aval.shape == shape), None)
    current = list(kept_shape)
    for axis, (first, stop) in enumerate(ranges):
        pieces = []
        for size, part in ((first, (0, first)), (shape[axis] - stop, (stop, shape[axis]))):
            if not size:
                pieces.append(None)
            elif template is not None:  # 0 times the ones of the input's part that these zeros stand in for
                parts = [(0, n) for n in shape[:axis]] + [part] + ranges[axis + 1 :]
                subscript = index_source(tuple((a, b, 1) for a, b in parts), shape)
                pieces.append(Text(f"0 * {template}[{subscript}]**0", PRODUCT, 4))
            else:
                zeros_shape = (*current[:axis], size, *current[axis + 1 :])
                pieces.append(printer.scaled_ones(Text("0", ATOM), zeros_shape, "scatter"))
        if pieces == [None, None]:
            continue
        listed = [p for p in (pieces[0], block, pieces[1]) if p is not None]
        arguments = [f"[{', '.join(p.source for p in listed)}]"] + ([f"axis={axis}"] if axis else [])
        block = printer.call("concatenate", arguments, listed)
        current[axis] = shape[axis]
    return block


def _comparison(symbol: str):
    def spell(printer: Printer, eqn: Equation) -> Text:
        left, right = printer.operands(eqn)
        source = f"{left.at_least(SUM)} {symbol} {right.at_least(SUM)}"
        return Text(source, COMPARISON, _deeper(left, right))

    return spell


SPELLINGS: dict[str, Callable[[Printer, Equation], Text]] = {
    "add": _binary("+", SUM),
    "subtract": _binary("-", SUM),
    "multiply": _binary("*", PRODUCT),
    "divide": _binary("/", PRODUCT),
    "matmul": _binary("@", PRODUCT),
    "power": _power,
    "negative": _negative,
    "greater": _comparison(">"),
    "greater_equal": _comparison(">="),
    "less": _comparison("<"),
    "less_equal": _comparison("<="),
    "equal": _comparison("=="),
    "not_equal": _comparison("!="),
    "where": _where,
    "sum": _reduction,
    "max": _reduction,
    "min": _reduction,
    "prod": _reduction,
    "norm": _reduction,
    "reshape": _reshape,
    "transpose": _transpose,
    "getitem": _getitem,
    "concatenate": _concatenate,
    "convert": _convert,
    "broadcast_to": _broadcast_to,
    "full": _full,
    "eye": _eye,
    "adjugate": _adjugate,
    "scatter": _scatter,
}


@dataclass(frozen=True)
class Source:
    """A function as text: `kind` is "expression" or "program"."""

    kind: str
    text: str


def _valid_names(fn: Function) -> None:
    for name in fn.input_names:
        if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("__"):
            raise EngineError(NO_FORMULA, f"the input {name!r} is not a name an expression can use")


def to_source(fn: Function, function_name: str = "derivative") -> Source:
    """The single-output `fn` as the shorter of an expression and a program; a program when
    the expression would nest too deeply for the front-ends."""
    _valid_names(fn)
    program = Printer(fn, name_shared=True)
    returned = program.run()
    if not program.statements:
        return Source("expression", returned.source)
    expression = Printer(fn, name_shared=False).run() if _inline_size(fn) < 50_000 else None
    lines = [f"def {function_name}({', '.join(fn.input_names)}):", *(f"    {s}" for s in program.statements)]
    program_text = "\n".join([*lines, f"    return {returned.source}"]) + "\n"
    if expression is not None and expression.depth <= NESTING and len(expression.source) <= len(program_text):
        return Source("expression", expression.source)
    return Source("program", program_text)


def _inline_size(fn: Function) -> int:
    """How many equations the expression would spell out, each shared one once per use:
    an expression of a deep shared chain grows exponentially, and is not worth printing."""
    size: dict[Var, int] = {}
    for eqn in fn.equations:
        size[eqn.output] = 1 + sum(size.get(a, 0) for a in eqn.inputs if isinstance(a, Var))
    return sum(size.get(o, 0) for o in fn.outputs if isinstance(o, Var))
