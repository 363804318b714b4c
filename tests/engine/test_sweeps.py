"""Chunked and compressed Jacobians and Hessians (engine.sweeps) against PyTorch's dense ones,
in every format and mode, on banded, block-diagonal, arrowhead and dense structures."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
import torch

from engine import boundary, sweeps
from engine.errors import TOO_LARGE, EngineError
from engine.limits import DEFAULT_LIMITS, Limits
from engine.operations import Options

N = 24  # above sweeps.PATTERN_WORTH_FROM: the pattern is worth computing for a dense result too
RNG = np.random.default_rng(7)
X = RNG.uniform(0.5, 1.5, N)
Y = RNG.uniform(0.5, 1.5, N)

# name -> (expression, its PyTorch twin, the colours a compressed sweep needs at most)
JACOBIANS = {
    "elementwise (diagonal)": ("sin(x) * x**2", lambda x: torch.sin(x) * x**2, 1),
    "stencil (bidiagonal)": ("x[1:] * x[:-1] - x[:-1]", lambda x: x[1:] * x[:-1] - x[:-1], 2),
    "tridiagonal": (
        "concatenate([x[:1], x[1:-1]**2 - x[:-2] * x[2:], x[-1:]])",
        lambda x: torch.cat([x[:1], x[1:-1] ** 2 - x[:-2] * x[2:], x[-1:]]),
        3,
    ),
    "block-diagonal": (
        "reshape(matmul(reshape(x, (6, 4, 1)), reshape(sin(x), (6, 1, 4))), (96,))",
        lambda x: (x.reshape(6, 4, 1) @ torch.sin(x).reshape(6, 1, 4)).reshape(96),
        4,
    ),
    "arrowhead": ("x * x[0] + sin(x)", lambda x: x * x[0] + torch.sin(x), 2),
    "dense": ("x * sum(x)", lambda x: x * x.sum(), N),
}

HESSIANS = {
    "diagonal": ("sum(sin(x) * x**2)", lambda x: (torch.sin(x) * x**2).sum(), 1),
    "tridiagonal": ("sum(sin(x[1:] * x[:-1]))", lambda x: torch.sin(x[1:] * x[:-1]).sum(), 3),
    "block-diagonal": (
        "sum(sum(reshape(x, (6, 4)), axis=1)**3)",
        lambda x: (x.reshape(6, 4).sum(dim=1) ** 3).sum(),
        4,
    ),
    "arrowhead": ("x[0] * sum(x**2) + sum(cos(x))", lambda x: x[0] * (x**2).sum() + torch.cos(x).sum(), 3),
    "dense": ("sum(x)**2 + sum(sin(x))", lambda x: x.sum() ** 2 + torch.sin(x).sum(), N),
}


def _compute(expression, inputs, operation, limits=DEFAULT_LIMITS, progress=None, **options):
    task = boundary.prepare({"expression": expression}, inputs, operation, None, Options(**options), limits)
    return task, task.run(progress=progress)


def _dense(block, shape):
    """A result block as a dense array of the plain path's shape."""
    if not isinstance(block, dict):
        return block
    rows, columns, data = sweeps.entries(block)
    matrix = scipy.sparse.coo_array((data, (rows, columns)), shape=block["shape"]).toarray()
    if block["format"] == "csr":
        rebuilt = scipy.sparse.csr_array((block["data"], block["indices"], block["indptr"]), shape=block["shape"])
        np.testing.assert_array_equal(rebuilt.toarray(), matrix)
    return matrix.reshape(shape)


@pytest.mark.parametrize("format", sweeps.FORMATS)
@pytest.mark.parametrize("mode", ["auto", "forward", "reverse"])
@pytest.mark.parametrize("case", JACOBIANS)
def test_jacobian_equals_pytorchs_in_every_format_and_mode(case, mode, format):
    expression, reference, colours = JACOBIANS[case]
    _, answer = _compute(expression, {"x": X}, "jacobian", mode=mode, format=format)
    expected = torch.autograd.functional.jacobian(reference, torch.tensor(X)).numpy()
    np.testing.assert_allclose(_dense(answer.fields["jacobian"]["x"], expected.shape), expected, rtol=1e-12,
                               atol=1e-12)  # fmt: skip
    if answer.sweep is not None:
        assert answer.fields["mode"] == answer.sweep["direction"]
    if mode == "auto" and colours < N // 2:
        assert answer.sweep["compressed"] and answer.sweep["seeds"] <= colours


@pytest.mark.parametrize("format", sweeps.FORMATS)
@pytest.mark.parametrize("case", HESSIANS)
def test_hessian_equals_pytorchs_in_every_format(case, format):
    expression, reference, colours = HESSIANS[case]
    _, answer = _compute(expression, {"x": X}, "hessian", format=format)
    expected = torch.autograd.functional.hessian(reference, torch.tensor(X)).numpy()
    np.testing.assert_allclose(_dense(answer.fields["hessian"]["x"]["x"], expected.shape), expected, rtol=1e-11,
                               atol=1e-11)  # fmt: skip
    if colours < N // 2:
        assert answer.sweep["compressed"] and answer.sweep["seeds"] <= colours
        np.testing.assert_allclose(answer.fields["value"], reference(torch.tensor(X)).item(), rtol=1e-14)


@pytest.mark.parametrize("format", sweeps.FORMATS)
def test_blocks_of_two_inputs_are_cut_from_one_joint_derivative(format):
    inputs = {"x": X, "y": Y[:6].reshape(2, 3)}
    expression = "sum(sin(x) * x) * sum(y) + sum(cos(y)**2)"

    def reference(x, y):
        return (torch.sin(x) * x).sum() * y.sum() + (torch.cos(y) ** 2).sum()

    _, answer = _compute(expression, inputs, "hessian", format=format)
    tensors = (torch.tensor(X), torch.tensor(inputs["y"]))
    expected = torch.autograd.functional.hessian(reference, tensors)
    for a, name_a in enumerate("xy"):
        for b, name_b in enumerate("xy"):
            block = answer.fields["hessian"][name_a][name_b]
            want = expected[a][b].numpy()
            np.testing.assert_allclose(_dense(block, want.shape), want, rtol=1e-11, atol=1e-11)

    jacobian_expression = "concatenate([x * y[0, 0], reshape(y, (6,)) * x[:6]])"
    _, answer = _compute(jacobian_expression, inputs, "jacobian", format=format)
    expected = torch.autograd.functional.jacobian(lambda x, y: torch.cat([x * y[0, 0], y.reshape(6) * x[:6]]), tensors)
    for name, want in zip("xy", expected):
        np.testing.assert_allclose(_dense(answer.fields["jacobian"][name], want.shape), want.numpy(), rtol=1e-12)


def test_float32_is_compressed_in_float32():
    _, answer = _compute("sum(sin(x) * x**2)", {"x": X}, "hessian", format="csr", dtype="float32")
    block = answer.fields["hessian"]["x"]["x"]
    assert block["data"].dtype == np.float32
    expected = np.diag(torch.autograd.functional.hessian(HESSIANS["diagonal"][1], torch.tensor(X)).numpy())
    np.testing.assert_allclose(block["data"], expected, rtol=1e-5)


def test_a_batch_past_the_intermediate_limit_is_run_in_chunks_with_the_same_numbers():
    expression = "sin(x) * sum(x**2) + x"  # dense: no colouring helps, only chunks
    plain_task, plain = _compute(expression, {"x": X}, "jacobian", mode="forward")
    assert plain_task.sweep is None
    limits = Limits(max_intermediate_elements=5 * N)
    done = []
    task, chunked = _compute(expression, {"x": X}, "jacobian", limits, lambda d, t: done.append((d, t)), mode="forward")
    assert chunked.sweep == {"direction": "forward", "compressed": False, "seeds": N, "batch": 5, "runs": 5,
                             "nonzeros": N * N, "colors": N}  # fmt: skip
    np.testing.assert_allclose(chunked.fields["jacobian"]["x"], plain.fields["jacobian"]["x"], rtol=1e-14)
    assert done == [(k, 5) for k in range(1, 6)]
    assert task.estimate.largest_intermediate <= limits.max_intermediate_elements


def test_a_chunked_hessian_has_the_same_numbers():
    expression = HESSIANS["dense"][0]
    _, plain = _compute(expression, {"x": X}, "hessian")
    _, chunked = _compute(expression, {"x": X}, "hessian", Limits(max_intermediate_elements=7 * N))
    assert chunked.sweep["batch"] == 7 and chunked.sweep["runs"] == 4
    np.testing.assert_allclose(chunked.fields["hessian"]["x"]["x"], plain.fields["hessian"]["x"]["x"], rtol=1e-14)


def test_a_dense_result_too_large_is_refused_with_the_sparse_format_suggested():
    n = 5_000
    x = RNG.uniform(0.5, 1.5, n)
    limits = Limits(max_result_elements=1_000_000)
    with pytest.raises(EngineError) as refused:
        _compute("sum(sin(x) * x**2)", {"x": x}, "hessian", limits)
    assert refused.value.kind == TOO_LARGE
    assert 'format "csr"' in refused.value.message and f"{n:,} structural nonzeros" in refused.value.message
    _, answer = _compute("sum(sin(x) * x**2)", {"x": x}, "hessian", limits, format="csr")
    np.testing.assert_allclose(answer.fields["hessian"]["x"]["x"]["data"], 2 * np.sin(x) + 4 * x * np.cos(x)
                               - x**2 * np.sin(x), rtol=1e-12)  # fmt: skip


def test_a_dense_pattern_is_not_suggested_as_sparse():
    limits = Limits(max_result_elements=N * N // 2)
    with pytest.raises(EngineError) as refused:
        _compute(HESSIANS["dense"][0], {"x": X}, "hessian", limits)
    assert "csr" not in refused.value.message


def test_verify_checks_a_sparse_result():
    _, answer = _compute(JACOBIANS["tridiagonal"][0], {"x": X}, "jacobian", format="csr", verify=True)
    assert answer.verification["verdict"] == "pass"
    _, answer = _compute(HESSIANS["arrowhead"][0], {"x": X}, "hessian", format="coo", verify=True)
    assert answer.verification["verdict"] == "pass"


def test_an_unknown_format_is_refused_at_its_field():
    with pytest.raises(EngineError) as refused:
        _compute("sum(x)", {"x": X}, "hessian", format="dia")
    assert refused.value.location == "/format"


@pytest.mark.parametrize("format", sweeps.FORMATS)
def test_no_input_differentiated_gives_no_block(format):
    _, answer = _compute("softmax(x)", {"x": X}, "jacobian", format=format, wrt=())
    assert answer.fields["jacobian"] == {}
    np.testing.assert_allclose(answer.fields["value"], torch.softmax(torch.tensor(X), 0).numpy(), rtol=1e-14)
