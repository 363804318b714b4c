"""Shared by the front-end tests: PyTorch as the independent reference for values and
gradients, and the engine's own gradient of what a front-end built."""

import numpy as np
import pytest
import torch

from engine import api


@pytest.fixture
def torch_gradients():
    """Value and gradients of the sum of `function(**tensors)` in PyTorch (float64), as
    `y.sum().backward()` gives them; an input the output ignores gets zeros."""

    def compute(function, **arrays):
        tensors = {
            name: torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True) for name, a in arrays.items()
        }
        value = function(**tensors)
        value.sum().backward()
        gradients = {
            name: t.grad.numpy() if t.grad is not None else np.zeros_like(arrays[name]) for name, t in tensors.items()
        }
        return value.detach().numpy(), gradients

    return compute


@pytest.fixture
def gradients():
    """The engine's value and gradients of the sum of a built function's output."""

    def compute(fn, **arrays):
        inputs = {name: np.asarray(a, dtype=np.float64) for name, a in arrays.items()}
        return api.value_and_grad(fn, inputs, reduce="sum")

    return compute
