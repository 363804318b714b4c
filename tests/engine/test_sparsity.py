"""Sparsity patterns against dense derivatives: a pattern may claim a dependency whose
derivative is zero, never miss a nonzero; where the primitives' rules are exact, it is the
nonzero set of the derivative at generic inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import api, ops
from engine.ir import ShapedArray
from engine.primitive import PRIMITIVES, Primitive
from engine.sparsity import hessian_pattern, jacobian_pattern, output_patterns
from tests.engine.cases import CASES, PIECEWISE_CONSTANT, RULE_CASES
from tests.engine.helpers import build, named, torch_jacobians

ALL_CASES = CASES + RULE_CASES + PIECEWISE_CONSTANT

# Cases whose derivative is zero at some structurally possible dependencies, wherever they
# are evaluated: max and min (and maximum, minimum, relu, where) pass the derivative to the
# selected element only; trace sums x * eye, whose zeros the pattern does not see; a solve's
# column depends on its own right-hand side only, and an adjugate entry (a cofactor) on
# neither the row nor the column it strikes out, while the rules claim the whole matrix.
OVER_APPROXIMATED = {
    "relu", "maximum", "minimum", "where", "max", "min", "trace", "solve(matrix)", "adjugate", "adjugate_derivative",
}  # fmt: skip


def _over_approximated(case) -> bool:
    return case.name in OVER_APPROXIMATED or case.name.split("(")[0] in OVER_APPROXIMATED


def _nonzero(matrix: np.ndarray) -> np.ndarray:
    """Nonzero beyond rounding (the SVD behind adjugate leaves 1e-17 where a minor is 0)."""
    scale = np.abs(matrix).max(initial=0.0)
    return np.abs(matrix) > 1e-12 * max(scale, 1.0)


def _flat_jacobian(fn, jacobians) -> np.ndarray:
    rows = fn.output.aval.size
    return np.hstack([np.reshape(j, (rows, x.aval.size)) for j, x in zip(jacobians, fn.inputs)])


def _engine_jacobian(fn, arrays) -> np.ndarray:
    _, jacobians, _ = api.jacobian(fn, named(fn, arrays), mode="reverse")
    return _flat_jacobian(fn, [jacobians[name] for name in fn.input_names])


def _pattern(fn) -> np.ndarray:
    return jacobian_pattern(fn, tuple(range(len(fn.inputs)))).toarray()


@pytest.mark.parametrize("case", ALL_CASES, ids=[c.id for c in ALL_CASES])
def test_pattern_covers_every_nonzero_of_the_jacobian(case):
    fn = build(case.engine, case.shapes)
    csr = jacobian_pattern(fn, tuple(range(len(fn.inputs))))
    assert csr.has_canonical_format
    pattern = csr.toarray()
    assert pattern.dtype == bool
    assert pattern.shape == (fn.output.aval.size, sum(v.aval.size for v in fn.inputs))
    for seed in range(3):
        arrays = case.inputs(seed)
        missed = _nonzero(_engine_jacobian(fn, arrays)) & ~pattern
        assert not missed.any(), np.argwhere(missed)
        if case not in PIECEWISE_CONSTANT:
            reference = _flat_jacobian(fn, torch_jacobians(case.reference, arrays))
            assert not (_nonzero(reference) & ~pattern).any()


PRECISE = [c for c in CASES + PIECEWISE_CONSTANT if not _over_approximated(c)]


@pytest.mark.parametrize("case", PRECISE, ids=[c.id for c in PRECISE])
def test_pattern_is_the_nonzero_set_at_generic_inputs(case):
    fn = build(case.engine, case.shapes)
    np.testing.assert_array_equal(_pattern(fn), _nonzero(_engine_jacobian(fn, case.inputs())))


def test_zero_derivative_primitives_depend_on_nothing():
    for case in PIECEWISE_CONSTANT:
        assert _pattern(build(case.engine, case.shapes)).sum() == 0, case.id


def test_every_primitive_with_inputs_has_a_rule():
    """A primitive without a rule is dense: sound, but it would hide every sparsity behind it."""
    without = {name for name, prim in PRIMITIVES.items() if prim.sparsity is None}
    assert without == {"full", "eye"}  # they have no inputs to depend on


def test_a_primitive_without_a_rule_is_dense_in_what_its_inputs_depend_on():
    pairs = Primitive(
        "pairs without a rule", impl=lambda xp, x: x[:2] + x[1:], shape=lambda x: ShapedArray((2,), x.dtype)
    )
    fn = build(lambda x: pairs(x[1:]), [(4,)])
    np.testing.assert_array_equal(_pattern(fn).astype(int), [[0, 1, 1, 1], [0, 1, 1, 1]])


def _random_index(draw, shape):
    index = []
    for n in shape:
        if draw(st.booleans()):
            index.append(draw(st.integers(-n, n - 1)))
        else:
            start, stop = draw(st.integers(-n - 1, n + 1)), draw(st.integers(-n - 1, n + 1))
            index.append(slice(start, stop, draw(st.sampled_from([1, 2, -1, -2]))))
    return tuple(index)


@st.composite
def structured_functions(draw):
    """One structural op or reduction, or a broadcasting product, on a random shape."""
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=3)))
    ndim = len(shape)
    kind = draw(st.sampled_from(["sum", "prod", "transpose", "getitem", "multiply", "matmul", "concatenate"]))
    if kind in ("sum", "prod"):
        axis = tuple(draw(st.sets(st.integers(0, ndim - 1), min_size=1)))
        keepdims = draw(st.booleans())
        return (lambda x: getattr(ops, kind)(x, axis=axis, keepdims=keepdims)), [shape]
    if kind == "transpose":
        axes = tuple(draw(st.permutations(range(ndim))))
        return (lambda x: ops.transpose(x, axes=axes)), [shape]
    if kind == "getitem":
        index = _random_index(draw, shape)
        return (lambda x: x[index]), [shape]
    if kind == "multiply":
        other = tuple(draw(st.sampled_from([1, n])) for n in shape[draw(st.integers(0, ndim)) :])
        return (lambda a, b: a * b), [shape, other]
    if kind == "matmul":
        inner, columns = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        left = (*shape[:-1], inner) if draw(st.booleans()) else (inner,)
        right = (inner, columns) if draw(st.booleans()) else (*shape[:-2], inner, columns)
        return (lambda a, b: ops.matmul(a, b)), [left, right]
    axis = draw(st.integers(0, ndim - 1))
    other = tuple(draw(st.integers(1, 3)) if i == axis else n for i, n in enumerate(shape))
    return (lambda a, b: ops.concatenate([a, b], axis=axis)), [shape, other]


@settings(max_examples=40, deadline=None)
@given(structured_functions(), st.integers(0, 2**32 - 1))
def test_structured_patterns_are_exact(function, seed):
    body, shapes = function
    fn = build(body, shapes)
    rng = np.random.default_rng(seed)
    arrays = [rng.uniform(0.5, 2.0, s) for s in shapes]  # no zeros: prod's derivative is generic
    np.testing.assert_array_equal(_pattern(fn), _nonzero(_engine_jacobian(fn, arrays)))


def test_output_patterns_columns_follow_wrt_order_and_skip_the_others():
    fn = build(lambda a, b, c: [a * c, ops.sum(b) + a[0]], [(2,), (3,), (2,)])
    first, second = output_patterns(fn, (2, 0))
    # columns: c's two elements, then a's
    np.testing.assert_array_equal(first.toarray(), [[1, 0, 1, 0], [0, 1, 0, 1]])
    np.testing.assert_array_equal(second.toarray(), [[0, 0, 1, 0]])


def test_outputs_that_are_inputs_or_constants():
    fn = build(lambda x, y: [x, 2.0, y], [(3,), (2,)])
    same, constant, other = output_patterns(fn, (0,))
    np.testing.assert_array_equal(same.toarray(), np.eye(3, dtype=bool))
    assert constant.shape == (1, 3) and constant.nnz == 0
    assert other.shape == (2, 3) and other.nnz == 0


def test_patterns_are_cached():
    fn = build(lambda x: ops.sin(x) * x, [(4,)])
    assert jacobian_pattern(fn, (0,)) is jacobian_pattern(fn, [0])
    assert all(a is b for a, b in zip(output_patterns(fn, (0,)), output_patterns(fn, (0,))))
    assert hessian_pattern(fn, (0,)) is hessian_pattern(fn, (0,), False)


def _block_sums_squared(x):
    return ops.sum(ops.sum(x, axis=1) ** 2)


HESSIAN_FUNCTIONS = [
    # (name, engine body, torch body, shapes, the pattern expected (None: only covering))
    ("diagonal", lambda x: ops.sum(ops.sin(x) * x**2), lambda x: torch.sum(torch.sin(x) * x**2), [(6,)], "diagonal"),
    (
        "differences",
        lambda x: ops.sum((x[1:] - x[:-1]) ** 2),
        lambda x: torch.sum((x[1:] - x[:-1]) ** 2),
        [(6,)],
        "tridiagonal",
    ),
    (
        "sin of products",
        lambda x: ops.sum(ops.sin(x[1:] * x[:-1])),
        lambda x: torch.sum(torch.sin(x[1:] * x[:-1])),
        [(6,)],
        "tridiagonal",
    ),
    ("block sums", _block_sums_squared, lambda x: torch.sum(torch.sum(x, 1) ** 2), [(3, 2)], "blocks"),
    ("arrowhead", lambda x: x[0] * ops.sum(x), lambda x: x[0] * torch.sum(x), [(5,)], "arrowhead"),
    ("dense", lambda x: ops.sum(x) ** 2, lambda x: torch.sum(x) ** 2, [(4,)], "dense"),
    ("max", lambda x: ops.max(x * x), lambda x: torch.max(x * x), [(4,)], None),
    (
        "two inputs",
        lambda x, y: ops.sum(x * y) + ops.sum(ops.sin(x)),
        lambda x, y: torch.sum(x * y) + torch.sum(torch.sin(x)),
        [(3,), (3,)],
        "two inputs",
    ),
]


def _expected_hessian_pattern(kind: str, n: int) -> np.ndarray:
    index = np.arange(n)
    distance = np.abs(index[:, None] - index[None, :])
    if kind == "diagonal":
        return distance == 0
    if kind == "tridiagonal":
        return distance <= 1
    if kind == "blocks":
        return index[:, None] // 2 == index[None, :] // 2
    if kind == "arrowhead":
        return (index[:, None] == 0) | (index[None, :] == 0)
    if kind == "two inputs":  # x's block diagonal, x against y diagonal, y's block empty
        third = n // 2
        return (distance % third == 0) & ~((index[:, None] >= third) & (index[None, :] >= third))
    return np.ones((n, n), bool)


def _flat_blocks(blocks, sizes) -> np.ndarray:
    """The Hessian as one matrix from its blocks per pair of inputs."""
    count = range(len(sizes))
    return np.block([[np.reshape(np.asarray(blocks[i][j]), (sizes[i], sizes[j])) for j in count] for i in count])


@pytest.mark.parametrize("name,body,reference,shapes,kind", HESSIAN_FUNCTIONS, ids=[f[0] for f in HESSIAN_FUNCTIONS])
def test_hessian_pattern(name, body, reference, shapes, kind):
    fn = build(body, shapes)
    wrt = tuple(range(len(shapes)))
    pattern = hessian_pattern(fn, wrt).toarray()
    n = sum(int(np.prod(s)) for s in shapes)
    assert pattern.shape == (n, n)
    np.testing.assert_array_equal(pattern, pattern.T)
    sizes = [int(np.prod(s)) for s in shapes]
    rng = np.random.default_rng(0)
    for _ in range(3):
        arrays = [rng.normal(size=s) for s in shapes]
        _, blocks = api.hessian(fn, named(fn, arrays))
        engine = _flat_blocks([[blocks[a][b] for b in fn.input_names] for a in fn.input_names], sizes)
        torch_blocks = torch.autograd.functional.hessian(reference, tuple(torch.tensor(a) for a in arrays))
        expected = _flat_blocks(torch_blocks, sizes)
        np.testing.assert_allclose(engine, expected, rtol=1e-10, atol=1e-12)
        assert not (_nonzero(engine) & ~pattern).any()
        if kind is not None:
            np.testing.assert_array_equal(pattern, _expected_hessian_pattern(kind, n))
            np.testing.assert_array_equal(pattern, _nonzero(engine))


def test_hessian_of_the_summed_output():
    fn = build(lambda x: ops.sin(x) * x, [(5,)])
    np.testing.assert_array_equal(hessian_pattern(fn, (0,), True).toarray(), np.eye(5, dtype=bool))
