"""Colourings of sparsity patterns: valid (structurally orthogonal, or star), economical on
the shapes they are made for, and recovering every matrix on its pattern exactly."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse

from engine.colouring import (
    colour_columns,
    colour_rows,
    colour_symmetric,
    decompress_columns,
    decompress_rows,
    decompress_symmetric,
    seed_matrix,
)


def _banded(n: int, width: int) -> sparse.csr_array:
    index = np.arange(n)
    return sparse.csr_array(np.abs(index[:, None] - index[None, :]) <= width)


def _arrowhead(n: int) -> sparse.csr_array:
    index = np.arange(n)
    return sparse.csr_array((index[:, None] == 0) | (index[None, :] == 0) | (index[:, None] == index[None, :]))


def _block_diagonal(sizes) -> sparse.csr_array:
    return sparse.block_diag([sparse.coo_array(np.ones((s, s), bool)) for s in sizes], format="csr").astype(bool)


SHAPED = {
    "diagonal": sparse.eye_array(7, format="csr", dtype=bool),
    "tridiagonal": _banded(9, 1),
    "pentadiagonal": _banded(9, 2),
    "arrowhead": _arrowhead(8),
    "block diagonal": _block_diagonal([3, 1, 4, 2]),
    "dense": sparse.csr_array(np.ones((5, 5), bool)),
    "empty": sparse.csr_array((4, 4), dtype=bool),
}


def _values_on(pattern: sparse.csr_array, rng, symmetric: bool = False) -> sparse.csr_array:
    """A matrix with random nonzero values exactly on the pattern (symmetric if asked)."""
    values = sparse.csr_array(
        (rng.uniform(1.0, 2.0, pattern.nnz), pattern.indices, pattern.indptr), shape=pattern.shape
    )
    if symmetric:
        values = (values + values.T).tocsr()
        values.sort_indices()
    return values


def _assert_structurally_orthogonal(pattern: sparse.csr_array, colours: np.ndarray) -> None:
    for row in range(pattern.shape[0]):
        in_row = colours[pattern.indices[pattern.indptr[row] : pattern.indptr[row + 1]]]
        assert len(set(in_row.tolist())) == in_row.size, (row, in_row)


def _assert_colours(colours: np.ndarray, n: int) -> None:
    assert colours.shape == (n,) and colours.dtype.kind == "i"
    if n:
        assert set(colours.tolist()) == set(range(colours.max() + 1))  # 0..k-1, none skipped


def _check_columns(pattern: sparse.csr_array, rng) -> None:
    colours = colour_columns(pattern)
    _assert_colours(colours, pattern.shape[1])
    _assert_structurally_orthogonal(pattern, colours)
    matrix = _values_on(pattern, rng)
    compressed = matrix @ seed_matrix(colours, np.float64).T
    np.testing.assert_array_equal(decompress_columns(pattern, colours, compressed), matrix.data)


def _check_rows(pattern: sparse.csr_array, rng) -> None:
    colours = colour_rows(pattern)
    _assert_colours(colours, pattern.shape[0])
    _assert_structurally_orthogonal(sparse.csr_array(pattern.T), colours)
    matrix = _values_on(pattern, rng)
    compressed = seed_matrix(colours, np.float64) @ matrix
    np.testing.assert_array_equal(decompress_rows(pattern, colours, compressed), matrix.data)


def _assert_no_two_coloured_path_on_four_vertices(pattern: sparse.csr_array, colours: np.ndarray) -> None:
    """The star condition: no path a-b-c-d coloured x, y, x, y."""
    neighbours = [
        set(pattern.indices[pattern.indptr[v] : pattern.indptr[v + 1]].tolist()) - {v} for v in range(pattern.shape[0])
    ]
    for b, around in enumerate(neighbours):
        for c in around:
            ends_a = {a for a in around - {c} if colours[a] == colours[c]}
            ends_d = {d for d in neighbours[c] - {b} if colours[d] == colours[b]}
            assert not any(a != d for a in ends_a for d in ends_d), (b, c)


def _check_symmetric(pattern: sparse.csr_array, rng) -> None:
    pattern = sparse.csr_array(pattern + pattern.T)
    pattern.sort_indices()
    colours = colour_symmetric(pattern)
    _assert_colours(colours, pattern.shape[0])
    # distance-1 on the adjacency graph: a row's other nonzeros differ from its own colour
    for row in range(pattern.shape[0]):
        others = pattern.indices[pattern.indptr[row] : pattern.indptr[row + 1]]
        assert colours[row] not in colours[others[others != row]]
    _assert_no_two_coloured_path_on_four_vertices(pattern, colours)
    matrix = _values_on(pattern, rng, symmetric=True)
    compressed = matrix @ seed_matrix(colours, np.float64).T
    np.testing.assert_array_equal(decompress_symmetric(pattern, colours, compressed), matrix.data)


@pytest.mark.parametrize("name", SHAPED)
def test_shaped_patterns_are_recovered(name):
    rng = np.random.default_rng(0)
    _check_columns(SHAPED[name], rng)
    _check_rows(SHAPED[name], rng)
    _check_symmetric(SHAPED[name], rng)


@pytest.mark.parametrize(
    "name,columns,symmetric",
    [
        ("diagonal", 1, 1),
        ("tridiagonal", 3, 3),
        ("pentadiagonal", 5, 5),
        ("arrowhead", 8, 2),  # every column meets the first row; as a star graph, two colours
        ("block diagonal", 4, 4),
        ("dense", 5, 5),
    ],
)
def test_colour_counts(name, columns, symmetric):
    assert colour_columns(SHAPED[name]).max() + 1 == columns
    assert colour_symmetric(SHAPED[name]).max() + 1 == symmetric


def test_empty_pattern_needs_one_colour_a_column_with_nothing_to_collide_with():
    assert colour_columns(SHAPED["empty"]).tolist() == [0, 0, 0, 0]
    assert colour_symmetric(SHAPED["empty"]).tolist() == [0, 0, 0, 0]


def test_seed_matrix():
    seeds = seed_matrix(np.array([0, 1, 0, 2]), np.float32)
    assert seeds.dtype == np.float32
    np.testing.assert_array_equal(seeds, [[1, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])


def test_rectangular_patterns():
    rng = np.random.default_rng(1)
    wide = sparse.csr_array(rng.random((3, 8)) < 0.3)
    _check_columns(wide, rng)
    _check_rows(wide, rng)
    assert colour_columns(wide).shape == (8,) and colour_rows(wide).shape == (3,)


def test_decompression_follows_the_patterns_own_order():
    """Values come back in pattern.indices order, even when a row's indices are not sorted."""
    pattern = sparse.csr_array((np.ones(3, bool), np.array([1, 0, 1]), np.array([0, 2, 3])), shape=(2, 2))
    colours = np.array([0, 1])
    compressed = np.array([[10.0, 20.0], [0.0, 30.0]])  # J = [[10, 20], [0, 30]], S the identity
    np.testing.assert_array_equal(decompress_columns(pattern, colours, compressed), [20.0, 10.0, 30.0])


@st.composite
def sparse_patterns(draw, square: bool = False):
    rows = draw(st.integers(1, 12))
    columns = rows if square else draw(st.integers(1, 12))
    density = draw(st.sampled_from([0.05, 0.2, 0.5, 0.9]))
    seed = draw(st.integers(0, 2**32 - 1))
    return sparse.csr_array(np.random.default_rng(seed).random((rows, columns)) < density), seed


@settings(max_examples=60, deadline=None)
@given(sparse_patterns())
def test_random_patterns_by_columns_and_rows(drawn):
    pattern, seed = drawn
    rng = np.random.default_rng(seed)
    _check_columns(pattern, rng)
    _check_rows(pattern, rng)


@settings(max_examples=60, deadline=None)
@given(sparse_patterns(square=True), st.booleans())
def test_random_symmetric_patterns(drawn, with_diagonal):
    pattern, seed = drawn
    if with_diagonal:
        pattern = sparse.csr_array(pattern + sparse.eye_array(pattern.shape[0], dtype=bool))
    _check_symmetric(pattern, np.random.default_rng(seed))


def test_symmetric_decompression_refuses_colours_that_cannot_recover():
    pattern = _arrowhead(4)
    with pytest.raises(ValueError, match="do not recover"):
        decompress_symmetric(pattern, np.zeros(4, dtype=np.int64), np.zeros((4, 1)))
