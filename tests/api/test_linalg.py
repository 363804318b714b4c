"""det at singular matrices, over HTTP: its derivatives are answered (they are polynomials,
defined everywhere)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.api.conftest import array

pytestmark = pytest.mark.anyio

SINGULAR = [[1.0, 2.0], [2.0, 4.0]]


async def test_grad_of_det_at_a_singular_matrix_is_its_adjugate_transposed(client):
    body = {"function": {"expression": "det(A)"}, "inputs": {"A": SINGULAR}}
    response = await client.post("/v1/grad", json=body)
    assert response.status_code == 200, response.text
    np.testing.assert_allclose(array(response.json()["gradient"]["A"]), [[4.0, -2.0], [-2.0, 1.0]], atol=1e-12)


async def test_hessian_of_det_at_a_singular_matrix_matches_torch(client):
    body = {"function": {"expression": "det(A)"}, "inputs": {"A": SINGULAR}}
    response = await client.post("/v1/hessian", json=body)
    assert response.status_code == 200, response.text
    expected = torch.autograd.functional.hessian(torch.linalg.det, torch.tensor(SINGULAR, dtype=torch.float64))
    np.testing.assert_allclose(array(response.json()["hessian"]["A"]["A"]), expected.numpy(), atol=1e-12)
