"""Building functions from the case table and computing independent references."""

from __future__ import annotations

import numpy as np
import torch

from engine import api
from engine.ir import Function, ShapedArray
from engine.tracing import trace


def build(body, shapes, dtype: str = "float64") -> Function:
    return trace(body, {f"x{i}": ShapedArray(tuple(s), dtype) for i, s in enumerate(shapes)})


def named(fn: Function, arrays) -> dict[str, np.ndarray]:
    return dict(zip(fn.input_names, arrays))


def torch_call(reference, arrays, requires_grad: bool = False):
    tensors = [torch.tensor(a, dtype=torch.float64, requires_grad=requires_grad) for a in arrays]
    return reference(*tensors), tensors


def torch_jacobians(reference, arrays) -> list[np.ndarray]:
    tensors = tuple(torch.tensor(a, dtype=torch.float64) for a in arrays)
    jacobians = torch.autograd.functional.jacobian(reference, tensors)
    return [j.numpy() for j in jacobians]


def finite_difference_jacobians(fn: Function, arrays, eps: float = 1e-6) -> list[np.ndarray]:
    """Central differences, one input element at a time."""
    value = api.evaluate(fn, named(fn, arrays))
    jacobians = []
    for i, x in enumerate(arrays):
        jacobian = np.zeros(value.shape + x.shape)
        for index in np.ndindex(x.shape):
            step = np.zeros_like(x)
            step[index] = eps
            shifted = [a + step if j == i else a for j, a in enumerate(arrays)]
            plus = api.evaluate(fn, named(fn, shifted))
            shifted = [a - step if j == i else a for j, a in enumerate(arrays)]
            minus = api.evaluate(fn, named(fn, shifted))
            jacobian[(...,) + index] = (plus - minus) / (2 * eps)
        jacobians.append(jacobian)
    return jacobians
