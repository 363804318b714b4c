"""Reductions over axes, given by their partial derivative P (shaped like the operand), so
that JVP = sum(tangent * P) and VJP = cotangent broadcast back * P. `sum` itself, linear and
broadcasting's transpose, is in `engine.primitives.broadcasting`.

max and min split the gradient evenly among tied elements, as torch.amax and
torch.max(x) without a dim do; prod is exact when the operand holds zeros; the norm's
derivative at the zero vector is 0, as in torch.linalg.vector_norm.
"""

from __future__ import annotations

from engine import language
from engine.primitives import elementwise as ew
from engine.primitives.broadcasting import expand_reduced, reduction_primitive, reshape, sum
from engine.primitives.common import normalize_axis, reduced_shape
from engine.primitives.dtypes import convert, promote


def reduction(name, impl, partial, *, doc, floating=False, accumulates=False):
    """A reduction whose derivative is `partial(out, x, axis, keepdims)`, shaped like x."""

    def jvp(t, out, x, *, axis, keepdims):
        return sum(t * partial(out, x, axis, keepdims), axis=axis, keepdims=keepdims)

    def vjp(g, out, x, *, axis, keepdims):
        return expand_reduced(g, x.aval.shape, axis, keepdims) * partial(out, x, axis, keepdims)

    return reduction_primitive(
        name, impl, jvp=[jvp], vjp=[vjp], nonempty=True, doc=doc, floating=floating, accumulates=accumulates
    )


def _extremum_partial(out, x, axis, keepdims):
    ties = convert(ew.equal(x, expand_reduced(out, x.aval.shape, axis, keepdims)), dtype=x.aval.dtype)
    return ties / sum(ties, axis=axis, keepdims=True)


max = reduction(  # noqa: A001 - numpy's name
    "max",
    lambda xp, x, *, axis, keepdims: xp.max(x, axis=axis, keepdims=keepdims),
    _extremum_partial,
    doc="maximum over axis; ties share the gradient evenly",
)
min = reduction(  # noqa: A001 - numpy's name
    "min",
    lambda xp, x, *, axis, keepdims: xp.min(x, axis=axis, keepdims=keepdims),
    _extremum_partial,
    doc="minimum over axis; ties share the gradient evenly",
)


def _prod_partial(out, x, axis, keepdims):
    """The product of the other factors, written so that its own derivative is right where x
    holds zeros (prod / x would divide by them; a constant 0 would lose the second derivative)."""
    is_zero = ew.equal(x, 0.0)
    zero_factors = ew.where(is_zero, x, 1.0)  # the zeros themselves: value 0, derivative 1
    nonzero_factors = ew.where(is_zero, 1.0, x)
    nonzero_product = prod(nonzero_factors, axis=axis, keepdims=True)
    # at a nonzero x_i: (the nonzero product without x_i) times the product of the zeros
    at_nonzero = nonzero_product / nonzero_factors * prod(zero_factors, axis=axis, keepdims=True)
    # at a zero x_i: the nonzero product times the other zeros: none (1), one (that zero,
    # whose value is 0 but whose derivative is not), or more (0 to second order)
    zero_count = sum(convert(is_zero, dtype=x.aval.dtype), axis=axis, keepdims=True)
    other_zero = sum(ew.where(is_zero, x, 0.0), axis=axis, keepdims=True) - x
    other_zeros = ew.where(ew.equal(zero_count, 1.0), 1.0, ew.where(ew.equal(zero_count, 2.0), other_zero, 0.0))
    return ew.where(is_zero, nonzero_product * other_zeros, at_nonzero)


prod = reduction(
    "prod",
    lambda xp, x, *, axis, keepdims: xp.prod(x, axis=axis, keepdims=keepdims, dtype=x.dtype),
    _prod_partial,
    doc="product over axis; exact derivative with zeros",
    accumulates=True,
)


def _norm_partial(out, x, axis, keepdims):
    norm_b = expand_reduced(out, x.aval.shape, axis, keepdims)
    is_zero = ew.equal(norm_b, 0.0)
    return ew.where(is_zero, 0.0, x / ew.where(is_zero, 1.0, norm_b))


norm = reduction(
    "norm",
    lambda xp, x, *, axis, keepdims: xp.linalg.vector_norm(x, axis=axis, keepdims=keepdims),
    _norm_partial,
    doc="Euclidean (Frobenius) norm over axis; derivative 0 at 0",
    floating=True,
)


@language.declare("mean over axis (all axes by default)")
def mean(x, axis=None, keepdims=False):
    (x,) = promote([x], floating=True)
    axes = normalize_axis(axis, x.aval.ndim)
    count = 1
    for a in axes:
        count *= x.aval.shape[a]
    return sum(x, axis=axes, keepdims=keepdims) / float(count)


@language.declare("log(sum(exp(x))) over axis, stable for large x")
def logsumexp(x, axis=None, keepdims=False):
    # Shift by the maximum so exp never overflows; the shift is a constant for
    # differentiation (its derivative cancels exactly), leaving softmax as the gradient.
    (x,) = promote([x], floating=True)
    axes = normalize_axis(axis, x.aval.ndim)
    shift = ew.stop_gradient(max(x, axis=axes, keepdims=True))
    result = ew.log(sum(ew.exp(x - shift), axis=axes, keepdims=True)) + shift
    return result if keepdims else reshape(result, shape=reduced_shape(x.aval.shape, axes, False))


@language.declare("exp(x) / sum(exp(x)) along axis (default: the last)")
def softmax(x, axis=-1):
    (x,) = promote([x], floating=True)
    return ew.exp(x - logsumexp(x, axis=axis, keepdims=True))
