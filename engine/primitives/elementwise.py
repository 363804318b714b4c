"""Elementwise primitives. Each differentiable one is given by its partial derivatives,
written with engine ops: the JVP is tangent * partial and the VJP cotangent * partial,
and the transforms broadcast or un-broadcast the result to the right shape.

Conventions at non-differentiable points follow PyTorch: abs'(0) = 0 (sign), relu'(0) = 0,
ties of maximum/minimum split the gradient in half, floor/ceil/round/sign have zero
derivative, and power's exponent partial is 0 where the base is 0.
"""

from __future__ import annotations

from engine import language
from engine.errors import BAD_PARAM, EngineError
from engine.ir import Literal, ShapedArray, literal
from engine.primitives.broadcasting import broadcast_to, broadcasting
from engine.primitives.common import broadcast_shapes, elementwise_dependencies, same_dtype
from engine.primitives.dtypes import cast, promote, promoted, promoted_to_float


def _scaled(term, partial):
    if isinstance(partial, (int, float)) and not isinstance(partial, bool):
        return term if partial == 1 else negative(term) if partial == -1 else term * partial
    return term * partial


def _rules_from_partials(partials):
    def forward(partial):
        return lambda tangent, out, *args: _scaled(tangent, partial(out, *args))

    def backward(partial):
        return lambda cotangent, out, *args: _scaled(cotangent, partial(out, *args))

    return [forward(p) if p else None for p in partials], [backward(p) if p else None for p in partials]


def _elementwise_shape(*avals: ShapedArray) -> ShapedArray:
    return ShapedArray(broadcast_shapes(*(a.shape for a in avals)), same_dtype(*avals))


def _comparison_shape(*avals: ShapedArray) -> ShapedArray:
    return ShapedArray(broadcast_shapes(*(a.shape for a in avals)), "bool")


def _prepare_numeric(args, params):
    # Arithmetic on booleans counts, as Python's True + True == 2 does (numpy would
    # compute a logical or, or refuse -True).
    atoms = promote(args)
    return ([cast(a, "int64") for a in atoms] if atoms[0].aval.dtype == "bool" else atoms), params


def elementwise(name, impl, *partials, floating=False, shape=_elementwise_shape, doc=None):
    """An elementwise primitive; `partials[i](out, *args)` is d out / d args[i] (None: constant).
    With `doc`, users call it as numpy's f(x) or f(a, b)."""
    jvp, vjp = _rules_from_partials(partials)
    if shape is _comparison_shape:
        prepare = promoted
    else:
        prepare = promoted_to_float if floating else _prepare_numeric
    user = language.unary if len(partials) == 1 else language.binary
    sparsity = elementwise_dependencies([partial is not None for partial in partials])
    return broadcasting(
        name, impl=impl, shape=shape, jvp=jvp, vjp=vjp, prepare=prepare, sparsity=sparsity, doc=doc, user=user
    )


def _floating(name, impl, partial, doc):
    return elementwise(name, impl, partial, floating=True, doc=doc)


# Unary float functions, with their derivatives in terms of the output where that is cheaper.
exp = _floating("exp", lambda xp, x: xp.exp(x), lambda out, x: out, doc="e ** x")
log = _floating("log", lambda xp, x: xp.log(x), lambda out, x: 1.0 / x, doc="natural logarithm")
log1p = _floating("log1p", lambda xp, x: xp.log1p(x), lambda out, x: 1.0 / (1.0 + x), doc="log(1 + x), accurate near 0")
expm1 = _floating("expm1", lambda xp, x: xp.expm1(x), lambda out, x: out + 1.0, doc="exp(x) - 1, accurate near 0")
sqrt = _floating("sqrt", lambda xp, x: xp.sqrt(x), lambda out, x: 0.5 / out, doc="square root")
sin = _floating("sin", lambda xp, x: xp.sin(x), lambda out, x: cos(x), doc="sine")
cos = _floating("cos", lambda xp, x: xp.cos(x), lambda out, x: -sin(x), doc="cosine")
tan = _floating("tan", lambda xp, x: xp.tan(x), lambda out, x: 1.0 + out * out, doc="tangent")
arcsin = _floating("arcsin", lambda xp, x: xp.asin(x), lambda out, x: 1.0 / sqrt(1.0 - x * x), doc="inverse sine")
arccos = _floating("arccos", lambda xp, x: xp.acos(x), lambda out, x: -1.0 / sqrt(1.0 - x * x), doc="inverse cosine")
arctan = _floating("arctan", lambda xp, x: xp.atan(x), lambda out, x: 1.0 / (1.0 + x * x), doc="inverse tangent")
sinh = _floating("sinh", lambda xp, x: xp.sinh(x), lambda out, x: cosh(x), doc="hyperbolic sine")
cosh = _floating("cosh", lambda xp, x: xp.cosh(x), lambda out, x: sinh(x), doc="hyperbolic cosine")
tanh = _floating("tanh", lambda xp, x: xp.tanh(x), lambda out, x: 1.0 - out * out, doc="hyperbolic tangent")


def _sigmoid_impl(xp, x):
    # exp(-|x|) never overflows, so both branches stay finite for any x.
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


sigmoid = _floating(
    "sigmoid", _sigmoid_impl, lambda out, x: out * (1.0 - out), doc="1 / (1 + exp(-x)), stable for large |x|"
)
# log(1 + e^x) as logaddexp(x, 0): exact for large |x| where the naive form overflows.
softplus = _floating(
    "softplus",
    lambda xp, x: xp.logaddexp(x, xp.zeros_like(x)),
    lambda out, x: sigmoid(x),
    doc="log(1 + exp(x)), stable for large |x|",
)

negative = elementwise("negative", lambda xp, x: -x, lambda out, x: -1, doc="-x")
abs = elementwise(  # noqa: A001 - numpy's name
    "abs", lambda xp, x: xp.abs(x), lambda out, x: sign(x), doc="|x|; abs'(0) = 0 as in PyTorch"
)
sign = elementwise("sign", lambda xp, x: xp.sign(x), None, doc="-1, 0 or 1 (zero derivative)")
floor = elementwise("floor", lambda xp, x: xp.floor(x), None, doc="round down (zero derivative)")
ceil = elementwise("ceil", lambda xp, x: xp.ceil(x), None, doc="round up (zero derivative)")
# numpy and PyTorch both round half to even.
round = elementwise(  # noqa: A001 - numpy's name
    "round", lambda xp, x: xp.round(x), None, doc="round half to even (zero derivative)"
)
stop_gradient = elementwise(
    "stop_gradient", lambda xp, x: x, None, doc="the value, treated as a constant when differentiating"
)
language.alias("detach", "stop_gradient", "alias of stop_gradient, as in PyTorch")

add = elementwise("add", lambda xp, a, b: a + b, lambda out, a, b: 1, lambda out, a, b: 1, doc="a + b, broadcasting")
subtract = elementwise(
    "subtract", lambda xp, a, b: a - b, lambda out, a, b: 1, lambda out, a, b: -1, doc="a - b, broadcasting"
)
multiply = elementwise(
    "multiply", lambda xp, a, b: a * b, lambda out, a, b: b, lambda out, a, b: a, doc="a * b, broadcasting"
)
divide = elementwise(
    "divide",
    lambda xp, a, b: a / b,
    lambda out, a, b: 1.0 / b,
    lambda out, a, b: -out / b,
    floating=True,
    doc="a / b, broadcasting",
)


def _power_base_partial(out, a, b):
    # PyTorch: zero where the exponent is zero, so that 0 ** 0 does not give 0 * inf.
    return where(equal(b, 0), 0.0, b * power(a, b - 1.0))


def _power_exponent_partial(out, a, b):
    # PyTorch: zero where the base is zero instead of 0 * log(0) = nan.
    return where(equal(a, 0), 0.0, out * log(a))


_power = elementwise(
    "power", lambda xp, a, b: xp.pow(a, b), _power_base_partial, _power_exponent_partial, floating=True
)


def _integer_value(x):
    value = x.value if isinstance(x, Literal) else x
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@language.declare("a ** b; d/db is 0 where a is 0, as in PyTorch")
def power(a, b):
    """a ** b; the exponents 1 and 2 need no pow call (numpy's own `**` does the same), and
    an integer constant to a non-negative integer power stays an integer, as in Python."""
    base, exponent = _integer_value(a), _integer_value(b)
    if base is not None and exponent is not None and exponent >= 0:
        if abs(base) > 1 and exponent > 64:
            raise EngineError(BAD_PARAM, "an integer constant does not fit in 64 bits")
        return literal(base**exponent)
    if isinstance(b, (int, float, Literal)) and not isinstance(b, bool):
        exponent = b.value if isinstance(b, Literal) else b
        (base,) = promote([a], floating=True)
        if exponent == 1:
            return base
        if exponent == 2:
            return base * base
    return _power(a, b)


def _extremum(name, impl, wins, doc):
    """maximum or minimum: where `wins(a, b)` a is the result; ties split the gradient in half."""

    def partial(wins):
        return lambda out, a, b: where(wins(a, b), 1.0, where(equal(a, b), 0.5, 0.0))

    return elementwise(name, impl, partial(wins), partial(lambda a, b: wins(b, a)), doc=doc)


maximum = _extremum(
    "maximum",
    lambda xp, a, b: xp.maximum(a, b),
    lambda a, b: greater(a, b),
    "elementwise maximum; ties split the gradient in half",
)
minimum = _extremum(
    "minimum",
    lambda xp, a, b: xp.minimum(a, b),
    lambda a, b: less(a, b),
    "elementwise minimum; ties split the gradient in half",
)


def _comparison(name, impl, doc):
    return elementwise(name, impl, None, None, shape=_comparison_shape, doc=doc)


greater = _comparison("greater", lambda xp, a, b: a > b, "a > b (boolean, not differentiable)")
greater_equal = _comparison("greater_equal", lambda xp, a, b: a >= b, "a >= b (boolean, not differentiable)")
less = _comparison("less", lambda xp, a, b: a < b, "a < b (boolean, not differentiable)")
less_equal = _comparison("less_equal", lambda xp, a, b: a <= b, "a <= b (boolean, not differentiable)")
equal = _comparison("equal", lambda xp, a, b: a == b, "a == b (boolean, not differentiable)")
not_equal = _comparison("not_equal", lambda xp, a, b: a != b, "a != b (boolean, not differentiable)")


def _where_shape(cond: ShapedArray, x: ShapedArray, y: ShapedArray) -> ShapedArray:
    return ShapedArray(broadcast_shapes(cond.shape, x.shape, y.shape), same_dtype(x, y))


def _prepare_where(args, params):
    cond, x, y = args
    x, y = promote([x, y])
    return [cast(promote([cond])[0], "bool"), x, y], params


_where = broadcasting(
    "where",
    impl=lambda xp, cond, x, y: xp.where(cond, x, y),
    shape=_where_shape,
    jvp=[
        None,
        lambda t, out, cond, x, y: where(cond, t, 0.0),
        lambda t, out, cond, x, y: where(cond, 0.0, t),
    ],
    vjp=[
        None,
        lambda g, out, cond, x, y: where(cond, g, 0.0),
        lambda g, out, cond, x, y: where(cond, 0.0, g),
    ],
    prepare=_prepare_where,
    # the condition selects, its derivative is zero
    sparsity=elementwise_dependencies([False, True, True]),
)


@language.declare("x where condition holds, else y")
def where(condition, x, y):
    """numpy's where; a literal condition picks its branch when the rules are written."""
    if isinstance(condition, bool) or isinstance(condition, Literal):
        chosen, other = (x, y) if (condition.value if isinstance(condition, Literal) else condition) else (y, x)
        x_atom, y_atom = promote([chosen, other])
        shape = broadcast_shapes(x_atom.aval.shape, y_atom.aval.shape)
        return x_atom if x_atom.aval.shape == shape else broadcast_to(x_atom, shape=shape)
    return _where(condition, x, y)


@language.declare("max(x, 0); relu'(0) = 0 as in PyTorch")
def relu(x):
    # A select rather than maximum(x, 0): maximum would split the gradient at 0, while
    # PyTorch defines relu'(0) = 0.
    (x,) = promote([x])
    return where(greater(x, 0), x, 0)


@language.declare("x * x")
def square(x):
    (x,) = promote([x])
    return x * x
