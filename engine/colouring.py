"""Colourings of sparsity patterns, so that a sparse Jacobian or Hessian is computed from a few
products with a seed matrix instead of one per column, and recovered from them.

Columns of one colour are structurally orthogonal (no row has a nonzero in two of them), so
J @ S.T holds each of J's nonzeros alone in its row and colour (`colour_columns`,
`decompress_columns`); rows alike for S @ J. A symmetric matrix needs fewer colours: with a
star colouring (Gebremedhin, Manne and Pothen, "What color is your Jacobian? Graph coloring
for computing derivatives", SIAM Review 47(4), 2005) every nonzero H[i, j] is alone in its
row and colour either at (i, colour of j) or, H being symmetric, at (j, colour of i).

Patterns are scipy.sparse matrices; values come back in the pattern's csr order, the data of
csr_array((values, pattern.indices, pattern.indptr)).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse


def _csr(pattern) -> sparse.csr_array:
    return pattern if isinstance(pattern, sparse.csr_array) else sparse.csr_array(pattern)


def _nonzero_coordinates(pattern: sparse.csr_array) -> tuple[np.ndarray, np.ndarray]:
    rows = np.repeat(np.arange(pattern.shape[0]), np.diff(pattern.indptr))
    return rows, pattern.indices


def _graph(matrix: sparse.csr_array) -> tuple[list[int], list[int], list[int]]:
    """A symmetric matrix's graph as Python lists (indptr, neighbours), self-loops dropped,
    which the greedy loops below index element by element fastest; and the order to colour
    in: by decreasing degree, ties in natural order, so that on a band every vertex inside
    it comes first, in order, which colours the band with as many colours as its width.
    Isolated vertices are left out of the order: they take colour 0 (`_colours`) unvisited."""
    rows, columns = _nonzero_coordinates(matrix)
    between = rows != columns
    degrees = np.bincount(rows[between], minlength=matrix.shape[0])
    indptr = np.concatenate(([0], np.cumsum(degrees)))
    order = np.argsort(-degrees, kind="stable")[: np.count_nonzero(degrees)]
    return indptr.tolist(), columns[between].tolist(), order.tolist()


def _colours(greedy: list[int]) -> np.ndarray:
    """The colours a greedy loop gave, colour 0 for the vertices it did not visit."""
    return np.maximum(np.array(greedy, dtype=np.int64), 0)


def _greedy_distance_one(indptr: list[int], neighbours: list[int], order: list[int]) -> np.ndarray:
    colours = [-1] * (len(indptr) - 1)
    for vertex in order:
        taken = {colours[u] for u in neighbours[indptr[vertex] : indptr[vertex + 1]]}
        colour = 0
        while colour in taken:
            colour += 1
        colours[vertex] = colour
    return _colours(colours)


def colour_columns(pattern) -> np.ndarray:
    """A colour per column (0..k-1) such that no row has nonzeros in two columns of one
    colour: a greedy distance-1 colouring of the column intersection graph."""
    pattern = _csr(pattern).astype(bool)
    intersections = (pattern.T @ pattern).tocsr()
    return _greedy_distance_one(*_graph(intersections))


def colour_rows(pattern) -> np.ndarray:
    """A colour per row such that no column has nonzeros in two rows of one colour."""
    return colour_columns(_csr(pattern).T)


def _multiplicities(rows: np.ndarray, column_colours: np.ndarray, row_count: int, count: int):
    """How many nonzeros each (row, colour) of a pattern holds, as a look-up on arrays of
    rows and colours: a nonzero alone in its row and colour is read whole from the product."""
    keys = rows * count + column_colours
    cells = row_count * count
    if cells <= 8 * keys.size + 1024:  # a table no larger than what sorting would cost
        table = np.bincount(keys, minlength=cells)
        return lambda at_rows, colours: table[at_rows * count + colours]
    distinct, multiplicity = np.unique(keys, return_counts=True)

    def look_up(at_rows, colours):
        wanted = at_rows * count + colours
        position = np.minimum(np.searchsorted(distinct, wanted), distinct.size - 1)
        return np.where(distinct[position] == wanted, multiplicity[position], 0)

    return look_up


def _symmetric_sources(pattern: sparse.csr_array, colours: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """For each nonzero (i, j) of a symmetric pattern, where H @ S.T holds it alone: at
    (i, colour of j), or else at (j, colour of i), H[j, i] being the same value; None when
    some nonzero is alone in neither."""
    rows, columns = _nonzero_coordinates(pattern)
    count = int(colours.max(initial=-1)) + 1
    column_colours, row_colours = colours[columns], colours[rows]
    multiplicity = _multiplicities(rows, column_colours, pattern.shape[0], count)
    shared = np.flatnonzero(multiplicity(rows, column_colours) != 1)
    # only where (i, colour of j) is shared is (j, colour of i) needed
    if np.any(multiplicity(columns[shared], row_colours[shared]) != 1):
        return None
    # both arrays are this call's own (the row of each nonzero, a gather of colours)
    rows[shared], column_colours[shared] = columns[shared], row_colours[shared]
    return rows, column_colours


def _greedy_star(indptr: list[int], neighbours: list[int], order: list[int]) -> np.ndarray:
    """Gebremedhin, Manne and Pothen's greedy star colouring (their Algorithm 4.1): distance-1,
    and no path on four vertices in two colours. Colouring v, a colour is forbidden when a
    neighbour w has it; when w is not coloured yet, any colour of w's neighbours (so that w
    will see distinct colours on its two sides); and when w is coloured, the colour of a
    neighbour x of w that has another neighbour of w's colour (v-w-x-y would alternate).
    `counts[x][c]` is how many coloured neighbours of x have colour c, so that last test is
    one look-up. The uncoloured (-1) and v itself may land among the forbidden: harmless,
    and cheaper than testing for them."""
    size = len(indptr) - 1
    colours = [-1] * size
    counts: list[dict[int, int]] = [{} for _ in range(size)]
    for vertex in order:
        forbidden = set()
        around = neighbours[indptr[vertex] : indptr[vertex + 1]]
        for w in around:
            colour_w = colours[w]
            beyond = neighbours[indptr[w] : indptr[w + 1]]
            if colour_w < 0:
                forbidden.update([colours[x] for x in beyond])
            else:
                forbidden.add(colour_w)
                forbidden.update([colours[x] for x in beyond if counts[x].get(colour_w, 0) > 1])
        colour = 0
        while colour in forbidden:
            colour += 1
        colours[vertex] = colour
        for w in around:
            seen = counts[w]
            seen[colour] = seen.get(colour, 0) + 1
    return _colours(colours)


def colour_symmetric(pattern) -> np.ndarray:
    """A colour per column of a symmetric pattern from which H @ S.T recovers H
    (`decompress_symmetric`): a star colouring of its adjacency graph, checked, and the
    column colouring should the check ever fail."""
    symmetric = (_csr(pattern) + _csr(pattern).T).tocsr().astype(bool)
    colours = _greedy_star(*_graph(symmetric))
    if _symmetric_sources(symmetric, colours) is None:
        return colour_columns(symmetric)
    return colours


def seed_matrix(colours: np.ndarray, dtype) -> np.ndarray:
    """S, shape (k, n): row c is the indicator of the columns (or rows) of colour c."""
    count = int(colours.max(initial=-1)) + 1
    return (np.arange(count)[:, None] == colours[None, :]).astype(dtype)


def column_sources(pattern, colours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where J @ S.T, shape (m, k), holds each of the pattern's nonzeros (in csr order)."""
    rows, columns = _nonzero_coordinates(_csr(pattern))
    return rows, colours[columns]


def row_sources(pattern, colours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where S @ J, shape (k, n), with a colour per row, holds each of the pattern's nonzeros."""
    rows, columns = _nonzero_coordinates(_csr(pattern))
    return colours[rows], columns


def symmetric_sources(pattern, colours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where H @ S.T, shape (n, k), with colours from `colour_symmetric`, holds each of the
    pattern's nonzeros alone."""
    sources = _symmetric_sources(_csr(pattern), colours)
    if sources is None:
        raise ValueError("these colours do not recover this symmetric pattern")
    return sources


# Values at the pattern's nonzeros from the compressed products. A caller decompressing many
# products of one pattern keeps its sources instead (engine.sweeps does).


def decompress_columns(pattern, colours: np.ndarray, compressed: np.ndarray) -> np.ndarray:
    return compressed[column_sources(pattern, colours)]


def decompress_rows(pattern, colours: np.ndarray, compressed: np.ndarray) -> np.ndarray:
    return compressed[row_sources(pattern, colours)]


def decompress_symmetric(pattern, colours: np.ndarray, compressed: np.ndarray) -> np.ndarray:
    return compressed[symmetric_sources(pattern, colours)]
