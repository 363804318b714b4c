"""Algebraic identities that make a derivative read like one written by hand: x * 1, 0 * x,
x + 0, x - 0, 0 - x, --x, x + -y, x * (1 / y), x + x, 2x + x, chains of constant factors,
where(c, 1, 0) * x, broadcasts that numpy's own broadcasting makes implicit (`ones * y` is
`y`, `reshape(v, (1, 3)) + w` is `v + w`, `exp(broadcast(v))` is `broadcast(exp(v))`), and
the shapes a vjp moves through (a column times a row is a product; a matrix times ones is a
sum; a transpose that moves only axes of size 1 is a reshape). IR in, IR out, shapes kept.

Every rewrite is exact in floating point or moves a value by an ulp or so (a reassociated
constant, a / b for a * (1 / b), a sum in another order), except the zero rules: 0 * x is 0
here even where x is inf or nan (and so are 0 / x, a matrix product with zeros and
where(c, 1, 0) * x where c is false). `engine.formula` applies them all, for text; a function
that runs applies the rest (`exact=True`): `engine.derivatives` does so where constants
entered its IR (the seeds of a sweep of one colour), leaving its answers what the unsimplified
function computes, inf and nan included.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from engine.ir import Atom, Equation, Function, Literal, ShapedArray, Var
from engine.primitives.broadcasting import broadcast_to, reshape
from engine.primitives.broadcasting import sum as sum_
from engine.primitives.common import broadcast_shapes
from engine.primitives.elementwise import add, divide, multiply, negative, subtract, where
from engine.primitives.linalg import matmul
from engine.tracing import building, read
from engine.transforms.cse import eliminate_common_subexpressions
from engine.transforms.dce import eliminate_dead_code

# Primitives that broadcast their operands as numpy does: an operand broadcast beforehand
# can be given as it is when the others make the output's shape anyway.
BROADCASTING = frozenset({
    "add", "subtract", "multiply", "divide", "power", "maximum", "minimum", "where", "greater", "greater_equal",
    "less", "less_equal", "equal", "not_equal",
})  # fmt: skip

# Elementwise primitives of one operand: f(broadcast(v)) is broadcast(f(v)).
UNARY = frozenset({
    "exp", "log", "log1p", "expm1", "sqrt", "sin", "cos", "tan", "arcsin", "arccos", "arctan", "sinh", "cosh",
    "tanh", "sigmoid", "softplus", "negative", "abs", "sign", "floor", "ceil", "round", "stop_gradient", "convert",
})  # fmt: skip

Definitions = dict[Var, Equation]


def apply_identities(fn: Function, passes: int = 6, exact: bool = False) -> Function:
    """The identities applied until nothing changes (at most `passes` times), then common
    subexpressions merged and dead code dropped; with `exact`, without the zero rules, which
    change what an inf or a nan gives."""
    for _ in range(passes):
        simpler = eliminate_dead_code(eliminate_common_subexpressions(_rewrite(fn, exact)))
        if len(simpler.equations) == len(fn.equations) and simpler.key == fn.key:
            return simpler
        fn = simpler
    return fn


def _rewrite(fn: Function, exact: bool) -> Function:
    with building() as builder:
        inputs = [Var(v.aval) for v in fn.inputs]
        env: dict[Var, Atom] = dict(zip(fn.inputs, inputs))
        definitions: Definitions = {}
        for eqn in fn.equations:
            builder.origin = eqn.origin
            args = _implicitly_broadcast(eqn, [read(env, a) for a in eqn.inputs], definitions)
            result = _constant_moved(eqn, args, definitions)
            if result is None:
                result = _hoisted_broadcast(eqn, args, definitions)
            rule = _RULES.get(eqn.primitive.name)
            if result is None and rule is not None:
                result = rule(args, eqn, definitions, exact)
            if result is None:
                result = _zero(eqn.output.aval) if _maps_zeros_to_zero(eqn, args, definitions, exact) else None
            if result is None:
                result = builder.bind(eqn.primitive, args, eqn.kwargs)
            if isinstance(result, Var) and builder.equations and builder.equations[-1].output is result:
                definitions[result] = builder.equations[-1]
            env[eqn.output] = _fit(result, eqn.output.aval)
        builder.origin = None
        return builder.function(inputs, fn.input_names, [read(env, o) for o in fn.outputs])


# ---- recognising values ----


def _constant(atom: Atom, definitions: Definitions) -> float | None:
    """The value of a constant array: a literal, or a literal broadcast or filled."""
    if isinstance(atom, Literal):
        return atom.value
    eqn = definitions.get(atom)
    if eqn is None:
        return None
    if eqn.primitive.name == "broadcast_to" and isinstance(eqn.inputs[0], Literal):
        return eqn.inputs[0].value
    if eqn.primitive.name == "full":
        return eqn.kwargs["value"]
    return None


def _is(value: float) -> Callable[[Atom, Definitions], bool]:
    def check(atom: Atom, definitions: Definitions) -> bool:
        constant = _constant(atom, definitions)
        return constant is not None and not isinstance(constant, bool) and constant == value

    return check


_is_zero, _is_one, _is_minus_one = _is(0), _is(1), _is(-1)


def _defined_as(atom: Atom, name: str, definitions: Definitions) -> Equation | None:
    eqn = definitions.get(atom) if isinstance(atom, Var) else None
    return eqn if eqn is not None and eqn.primitive.name == name else None


def _zero(aval: ShapedArray) -> Atom:
    zero = Literal(0.0 if aval.is_float else 0, aval.dtype)
    return broadcast_to(zero, shape=aval.shape) if aval.shape else zero


def _fit(atom: Atom, aval: ShapedArray) -> Atom:
    """`atom` with the shape (and a literal with the dtype) of what it replaces."""
    if isinstance(atom, Literal) and atom.dtype != aval.dtype and aval.is_float:
        atom = Literal(float(atom.value), aval.dtype)
    return atom if atom.aval.shape == aval.shape else broadcast_to(atom, shape=aval.shape)


def _maps_zeros_to_zero(eqn: Equation, args: list[Atom], definitions: Definitions, exact: bool) -> bool:
    """A linear primitive of zeros, or (not `exact`: inf times 0 is nan) a product with a
    zero matrix, is zero."""
    zeros = [_is_zero(a, definitions) for a in args]
    if eqn.primitive.name == "matmul":
        return not exact and any(zeros)
    return eqn.primitive.linear and bool(args) and all(zeros) and eqn.output.aval.is_float


# ---- implicit broadcasting ----


def _unbroadcast_operand(atom: Atom, definitions: Definitions) -> Atom | None:
    """What `atom` was broadcast or reshaped from, when numpy's right-aligned broadcasting
    would recover it: broadcast_to(v), or reshape(v) that only adds leading axes of size 1."""
    eqn = definitions.get(atom) if isinstance(atom, Var) else None
    if eqn is None:
        return None
    (source,) = eqn.inputs if len(eqn.inputs) == 1 else (None,)
    if source is None:
        return None
    if eqn.primitive.name == "broadcast_to":
        return source
    if eqn.primitive.name == "reshape":
        shape, inner = eqn.output.aval.shape, source.aval.shape
        leading = len(shape) - len(inner)
        if leading >= 0 and shape[leading:] == inner and all(n == 1 for n in shape[:leading]):
            return source
    return None


def _implicitly_broadcast(eqn: Equation, args: list[Atom], definitions: Definitions) -> list[Atom]:
    if eqn.primitive.name not in BROADCASTING:
        return args
    shape = eqn.output.aval.shape
    for position in range(len(args)):
        while (source := _unbroadcast_operand(args[position], definitions)) is not None:
            trial = [source if i == position else a for i, a in enumerate(args)]
            if broadcast_shapes(*(a.aval.shape for a in trial)) != shape:
                break
            args = trial
    return args


# Primitives that only move or repeat elements: of a constant array, a constant array.
MOVING = frozenset({"reshape", "transpose", "getitem", "broadcast_to", "concatenate"})


def _constant_moved(eqn: Equation, args: list[Atom], definitions: Definitions) -> Atom | None:
    if eqn.primitive.name not in MOVING or not args:
        return None
    values = {_constant(a, definitions) for a in args}
    if len(values) != 1 or None in values:
        return None
    (value,) = values
    return _fit(Literal(value, eqn.output.aval.dtype), eqn.output.aval)


def _hoisted_broadcast(eqn: Equation, args: list[Atom], definitions: Definitions) -> Atom | None:
    """An elementwise primitive of broadcasts, computed before broadcasting: only on the
    sources' shape, and its own broadcast may then be implicit where it is used."""
    name = eqn.primitive.name
    if name not in BROADCASTING and name not in UNARY:
        return None
    sources = [a if _defined_as(a, "broadcast_to", definitions) is None else _source(a, definitions) for a in args]
    if all(s is a for s, a in zip(sources, args)):
        return None
    result = eqn.primitive.bind(*sources, **eqn.kwargs)
    return _fit(result, eqn.output.aval)


def _source(atom: Atom, definitions: Definitions) -> Atom:
    return definitions[atom].inputs[0]


# ---- the rules, by primitive: each returns the simpler value, or None to keep the equation ----


def _scaled(atom: Atom, definitions: Definitions) -> tuple[float, Atom]:
    """(c, v) with atom = c * v: a literal's multiple, or the atom itself once."""
    eqn = _defined_as(atom, "multiply", definitions)
    if eqn is not None:
        a, b = eqn.inputs
        if isinstance(a, Literal) and isinstance(b, Var) and b.aval.shape == atom.aval.shape:
            return a.value, b
        if isinstance(b, Literal) and isinstance(a, Var) and a.aval.shape == atom.aval.shape:
            return b.value, a
    return 1, atom


def _multiply(args: list[Atom], eqn: Equation, definitions: Definitions, exact: bool) -> Atom | None:
    aval = eqn.output.aval
    a, b = args
    if not exact and (_is_zero(a, definitions) or _is_zero(b, definitions)):
        return _zero(aval)
    for one, other in ((a, b), (b, a)):
        if _is_one(one, definitions):
            return _fit(other, aval)
        if _is_minus_one(one, definitions):
            return negative(_fit(other, aval))
    for constant, other in ((a, b), (b, a)):
        inner = _defined_as(other, "multiply", definitions)
        if isinstance(constant, Literal) and inner is not None:
            literals = [x for x in inner.inputs if isinstance(x, Literal)]
            if literals:
                (rest,) = [x for x in inner.inputs if x is not literals[0]] or [literals[0]]
                return multiply(multiply(constant, literals[0]), rest)
    for numerator, other in ((a, b), (b, a)):
        reciprocal = _defined_as(other, "divide", definitions)
        if reciprocal is not None and _is_one(reciprocal.inputs[0], definitions):
            return divide(numerator, reciprocal.inputs[1])
    for selector, other in ((a, b), (b, a)):
        chosen = _defined_as(selector, "where", definitions)
        if chosen is not None and isinstance(other, Var) and not exact:
            condition, if_true, if_false = chosen.inputs
            if _is_one(if_true, definitions) and _is_zero(if_false, definitions):
                return _fit(where(condition, other, 0), aval)
            if _is_zero(if_true, definitions) and _is_one(if_false, definitions):
                return _fit(where(condition, 0, other), aval)
    return None


def _add(args: list[Atom], eqn: Equation, definitions: Definitions, exact: bool) -> Atom | None:
    aval = eqn.output.aval
    a, b = args
    if _is_zero(b, definitions):
        return _fit(a, aval)
    if _is_zero(a, definitions):
        return _fit(b, aval)
    if (negated := _defined_as(b, "negative", definitions)) is not None:
        return subtract(a, negated.inputs[0])
    if (negated := _defined_as(a, "negative", definitions)) is not None:
        return subtract(b, negated.inputs[0])
    for kept, product in ((a, b), (b, a)):  # a + -b * c is a - b * c
        factors = _defined_as(product, "multiply", definitions)
        if factors is not None and (negated := _defined_as(factors.inputs[0], "negative", definitions)) is not None:
            return subtract(kept, multiply(negated.inputs[0], factors.inputs[1]))
    (c, left), (d, right) = _scaled(a, definitions), _scaled(b, definitions)
    if left is right and isinstance(left, Var) and left.aval.shape == aval.shape:
        return multiply(Literal(float(c + d), aval.dtype), left)
    return None


def _subtract(args: list[Atom], eqn: Equation, definitions: Definitions, exact: bool) -> Atom | None:
    aval = eqn.output.aval
    a, b = args
    if _is_zero(b, definitions):
        return _fit(a, aval)
    if _is_zero(a, definitions):
        return negative(_fit(b, aval))
    if (negated := _defined_as(b, "negative", definitions)) is not None:
        return add(a, negated.inputs[0])
    return None


def _negative(args: list[Atom], eqn: Equation, definitions: Definitions, exact: bool) -> Atom | None:
    (a,) = args
    if (negated := _defined_as(a, "negative", definitions)) is not None:
        return negated.inputs[0]
    if _is_zero(a, definitions):
        return a
    scaled = _defined_as(a, "multiply", definitions)
    if scaled is not None and isinstance(scaled.inputs[0], Literal):
        return multiply(negative(scaled.inputs[0]), scaled.inputs[1])
    return None


def _divide(args: list[Atom], eqn: Equation, definitions: Definitions, exact: bool) -> Atom | None:
    aval = eqn.output.aval
    a, b = args
    if _is_one(b, definitions):
        return _fit(a, aval)
    if _is_zero(a, definitions) and not exact:  # 0 / 0 is nan
        return _zero(aval)
    return None


def _where(args: list[Atom], eqn: Equation, definitions: Definitions, exact: bool) -> Atom | None:
    aval = eqn.output.aval
    _, a, b = args
    same = a is b or (_constant(a, definitions) is not None and _constant(a, definitions) == _constant(b, definitions))
    return _fit(a, aval) if same else None


def _broadcast(args: list[Atom], eqn: Equation, definitions: Definitions, exact: bool) -> Atom | None:
    aval = eqn.output.aval
    source = _unbroadcast_operand(args[0], definitions)
    if source is not None:
        return broadcast_to(source, shape=aval.shape)
    (a,) = args
    if isinstance(a, Var) and a.aval.size == aval.size and _constant(a, definitions) is None:
        # Only axes of size 1 added: the same elements in a new shape, which numpy's reshape
        # gives as a view for a third of broadcast_to's cost (a constant stays a broadcast,
        # the form the rules recognise).
        return reshape(a, shape=aval.shape)
    return None


def _reshape(args: list[Atom], eqn: Equation, definitions: Definitions, exact: bool) -> Atom | None:
    aval = eqn.output.aval
    (a,) = args
    if (value := _constant(a, definitions)) is not None:  # constants take any shape
        return broadcast_to(Literal(value, aval.dtype), shape=aval.shape)
    if (inner := _defined_as(a, "reshape", definitions)) is not None:
        source = inner.inputs[0]
        return source if source.aval.shape == aval.shape else reshape(source, shape=aval.shape)
    product = _defined_as(a, "matmul", definitions)
    if product is not None and a.aval.ndim == 2:  # a matrix times a vector made a column (or a row) and back
        left, right = product.inputs
        column, row = _defined_as(right, "reshape", definitions), _defined_as(left, "reshape", definitions)
        if column is not None and column.inputs[0].aval.ndim == 1 and aval.shape == a.aval.shape[:1]:
            return matmul(left, column.inputs[0])
        if row is not None and row.inputs[0].aval.ndim == 1 and aval.shape == a.aval.shape[1:]:
            return matmul(row.inputs[0], right)
    summed = _defined_as(a, "sum", definitions)
    if summed is not None and summed.kwargs["keepdims"]:
        axis = summed.kwargs["axis"]
        if aval.shape == tuple(n for i, n in enumerate(a.aval.shape) if i not in axis):
            return sum_(summed.inputs[0], axis=axis)
    return None


def _transpose(args: list[Atom], eqn: Equation, definitions: Definitions, exact: bool) -> Atom | None:
    """A transpose that moves only axes of size 1 keeps the elements' order: a reshape."""
    aval = eqn.output.aval
    (a,) = args
    moved = [axis for axis in eqn.kwargs["axes"] if a.aval.shape[axis] != 1]
    return reshape(a, shape=aval.shape) if moved == sorted(moved) else None


def _matmul(args: list[Atom], eqn: Equation, definitions: Definitions, exact: bool) -> Atom | None:
    aval = eqn.output.aval
    a, b = args
    if a.aval.ndim == 2 and b.aval.ndim == 2 and a.aval.shape[1] == 1:
        return multiply(a, b)  # a column times a row: one product per entry, no sum
    if a.aval.ndim == 2 and b.aval.ndim <= 2 and (value := _constant(b, definitions)) is not None:
        total = sum_(a, axis=(1,), keepdims=b.aval.ndim == 2)
        return _fit(multiply(Literal(value, aval.dtype), total), aval)
    if b.aval.ndim == 2 and (value := _constant(a, definitions)) is not None and a.aval.ndim == 2:
        return _fit(multiply(Literal(value, aval.dtype), sum_(b, axis=(0,), keepdims=True)), aval)
    return None


def _sum(args: list[Atom], eqn: Equation, definitions: Definitions, exact: bool) -> Atom | None:
    """The sum of a constant is a constant; sum(transpose(a)) is a sum of a itself, when the
    axes it keeps stay in order."""
    (a,) = args
    if (value := _constant(a, definitions)) is not None and not isinstance(value, bool):
        count = math.prod(a.aval.shape[axis] for axis in eqn.kwargs["axis"])
        return _fit(Literal(value * count, eqn.output.aval.dtype), eqn.output.aval)
    transposed = _defined_as(a, "transpose", definitions)
    if transposed is None or eqn.kwargs["keepdims"]:
        return None
    axes, axis = transposed.kwargs["axes"], eqn.kwargs["axis"]
    kept = [axes[i] for i in range(len(axes)) if i not in axis]
    if kept != sorted(kept):
        return None
    return sum_(transposed.inputs[0], axis=tuple(sorted(axes[i] for i in axis)))


_RULES = {
    "multiply": _multiply,
    "add": _add,
    "subtract": _subtract,
    "negative": _negative,
    "divide": _divide,
    "where": _where,
    "reshape": _reshape,
    "broadcast_to": _broadcast,
    "transpose": _transpose,
    "matmul": _matmul,
    "sum": _sum,
}
