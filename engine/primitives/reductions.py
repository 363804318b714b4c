"""Reductions over axes. `sum` is linear; the others are given by their partial
derivative P (shaped like the operand), so that JVP = sum(tangent * P) and
VJP = cotangent broadcast back * P.

max and min split the gradient evenly among tied elements, as torch.amax and
torch.max(x) without a dim do; prod is exact when the operand holds zeros; the norm's
derivative at the zero vector is 0, as in torch.linalg.vector_norm.
"""

from __future__ import annotations

from engine.errors import BAD_PARAM, SHAPE, EngineError
from engine.ir import Literal, ShapedArray, describe
from engine.primitives import elementwise as ew
from engine.primitives import shape as shp
from engine.primitives.common import normalize_axis, primitive, promote


def reduced_shape(shape: tuple[int, ...], axis: tuple[int, ...], keepdims: bool) -> tuple[int, ...]:
    if keepdims:
        return tuple(1 if i in axis else n for i, n in enumerate(shape))
    return tuple(n for i, n in enumerate(shape) if i not in axis)


def expand_reduced(reduced, shape: tuple[int, ...], axis: tuple[int, ...], keepdims: bool):
    """Broadcast a reduced array (a cotangent, an output) back over the reduced axes."""
    kept = reduced_shape(shape, axis, True)
    if isinstance(reduced, Literal):
        return shp.broadcast_to(reduced, shape=shape)
    if reduced.aval.shape != kept:
        reduced = shp.reshape(reduced, shape=kept)
    return shp.broadcast_to(reduced, shape=shape) if kept != tuple(shape) else reduced


def _prepare(floating: bool, accumulates: bool = False):
    """Promote the operand and normalise axis and keepdims. Sums and products of integers
    accumulate in int64, as numpy's do, so that int32 data does not overflow."""

    def prepare(args, params):
        (x,) = promote(args, floating=floating)
        if x.aval.dtype == "bool" or accumulates and x.aval.dtype == "int32":
            x = ew.convert(x, dtype="int64")
        axis = normalize_axis(params.get("axis"), x.aval.ndim)
        keepdims = params.get("keepdims", False)
        if not isinstance(keepdims, bool):
            raise EngineError(BAD_PARAM, f"keepdims must be true or false, got {describe(keepdims)}")
        return [x], {"axis": axis, "keepdims": keepdims}

    return prepare


def _shape(nonempty: bool):
    def rule(x: ShapedArray, *, axis, keepdims) -> ShapedArray:
        if nonempty and any(x.shape[a] == 0 for a in axis):
            raise EngineError(SHAPE, f"cannot reduce a zero-size axis of shape {list(x.shape)}")
        return ShapedArray(reduced_shape(x.shape, axis, keepdims), x.dtype)

    return rule


def _batch(prim):
    def rule(args, batched, *, axis, keepdims):
        return prim.bind(args[0], axis=tuple(a + 1 for a in axis), keepdims=keepdims)

    return rule


def reduction(name, impl, partial, *, floating=False, accumulates=False):
    """A reduction whose derivative is `partial(out, x, axis, keepdims)`, shaped like x."""

    def jvp(t, out, x, *, axis, keepdims):
        return sum(t * partial(out, x, axis, keepdims), axis=axis, keepdims=keepdims)

    def vjp(g, out, x, *, axis, keepdims):
        return expand_reduced(g, x.aval.shape, axis, keepdims) * partial(out, x, axis, keepdims)

    prepare = _prepare(floating, accumulates)
    prim = primitive(name, impl=impl, shape=_shape(nonempty=True), jvp=[jvp], vjp=[vjp], prepare=prepare)
    prim.batch = _batch(prim)
    return prim


sum = primitive(  # noqa: A001 - numpy's name
    "sum",
    impl=lambda xp, x, *, axis, keepdims: xp.sum(x, axis=axis, keepdims=keepdims, dtype=x.dtype),
    shape=_shape(nonempty=False),
    vjp=[lambda g, out, x, axis, keepdims: expand_reduced(g, x.aval.shape, axis, keepdims)],
    prepare=_prepare(floating=False, accumulates=True),
    linear=True,
)
sum.batch = _batch(sum)


def _extremum_partial(out, x, axis, keepdims):
    ties = ew.convert(ew.equal(x, expand_reduced(out, x.aval.shape, axis, keepdims)), dtype=x.aval.dtype)
    return ties / sum(ties, axis=axis, keepdims=True)


max = reduction("max", lambda xp, x, *, axis, keepdims: xp.max(x, axis=axis, keepdims=keepdims), _extremum_partial)  # noqa: A001
min = reduction("min", lambda xp, x, *, axis, keepdims: xp.min(x, axis=axis, keepdims=keepdims), _extremum_partial)  # noqa: A001


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
    zero_count = sum(ew.convert(is_zero, dtype=x.aval.dtype), axis=axis, keepdims=True)
    other_zero = sum(ew.where(is_zero, x, 0.0), axis=axis, keepdims=True) - x
    other_zeros = ew.where(ew.equal(zero_count, 1.0), 1.0, ew.where(ew.equal(zero_count, 2.0), other_zero, 0.0))
    return ew.where(is_zero, nonzero_product * other_zeros, at_nonzero)


prod = reduction(
    "prod",
    lambda xp, x, *, axis, keepdims: xp.prod(x, axis=axis, keepdims=keepdims, dtype=x.dtype),
    _prod_partial,
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
    floating=True,
)


def mean(x, axis=None, keepdims=False):
    (x,) = promote([x], floating=True)
    axes = normalize_axis(axis, x.aval.ndim)
    count = 1
    for a in axes:
        count *= x.aval.shape[a]
    return sum(x, axis=axes, keepdims=keepdims) / float(count)


def logsumexp(x, axis=None, keepdims=False):
    # Shift by the maximum so exp never overflows; the shift is a constant for
    # differentiation (its derivative cancels exactly), leaving softmax as the gradient.
    (x,) = promote([x], floating=True)
    axes = normalize_axis(axis, x.aval.ndim)
    shift = ew.stop_gradient(max(x, axis=axes, keepdims=True))
    result = ew.log(sum(ew.exp(x - shift), axis=axes, keepdims=True)) + shift
    return result if keepdims else shp.reshape(result, shape=reduced_shape(x.aval.shape, axes, False))


def softmax(x, axis=-1):
    (x,) = promote([x], floating=True)
    return ew.exp(x - logsumexp(x, axis=axis, keepdims=True))
