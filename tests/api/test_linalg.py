"""det and logdet at singular matrices, over HTTP: det's derivatives are answered (they are
polynomials, defined everywhere); logdet's, where it has none, are a problem that names
the user's logdet, never an op they did not write."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.api.conftest import array, assert_problem

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


@pytest.mark.parametrize(
    ("function", "location"),
    [
        ({"expression": "sum(A) + logdet(A)"}, "offset 9"),
        ({"graph": {"inputs": ["A"], "nodes": [{"id": "l", "op": "logdet", "args": ["A"]}], "output": "l"}},
         "node 'l'"),
        ({"program": "def f(A):\n    return logdet(A)\n"}, "line 2, column 12"),
    ],
)  # fmt: skip
async def test_grad_of_logdet_at_a_singular_matrix_is_a_problem_naming_logdet(client, function, location):
    response = await client.post("/v1/grad", json={"function": function, "inputs": {"A": SINGULAR}})
    problem = assert_problem(response, 422, "numeric", location)
    assert "the derivative of logdet failed: the matrix is singular" in problem["detail"]
    assert "inv" not in problem["detail"]
