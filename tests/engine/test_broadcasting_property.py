"""Property test: any broadcastable pair of shapes, any binary op, against PyTorch."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from engine import api, ops
from engine.ir import ShapedArray
from engine.tracing import trace

BINARY = {
    "add": (ops.add, torch.add),
    "multiply": (ops.multiply, torch.multiply),
    "divide": (ops.divide, torch.divide),
    "maximum": (ops.maximum, torch.maximum),
    "subtract": (ops.subtract, torch.subtract),
}


@settings(max_examples=60, deadline=None)
@given(
    shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3),
    op=st.sampled_from(sorted(BINARY)),
    seed=st.integers(0, 2**16),
)
def test_binary_ops_broadcast_and_unbroadcast_like_pytorch(shapes, op, seed):
    engine_op, torch_op = BINARY[op]
    rng = np.random.default_rng(seed)
    a, b = (rng.uniform(0.5, 2.0, s) * rng.choice([-1.0, 1.0], s) for s in shapes.input_shapes)
    fn = trace(
        lambda a, b: engine_op(a, b), {"a": ShapedArray(a.shape, "float64"), "b": ShapedArray(b.shape, "float64")}
    )
    assert fn.output.aval.shape == shapes.result_shape
    value, gradients = api.value_and_grad(fn, {"a": a, "b": b}, reduce="sum")
    ta, tb = torch.tensor(a, requires_grad=True), torch.tensor(b, requires_grad=True)
    out = torch_op(ta, tb)
    out.sum().backward()
    np.testing.assert_allclose(value, out.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(gradients["a"], ta.grad.numpy(), rtol=1e-12)
    np.testing.assert_allclose(gradients["b"], tb.grad.numpy(), rtol=1e-12)
