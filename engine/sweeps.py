"""How a Jacobian or a Hessian is swept when one batched sweep over the whole basis is not
the best way: in chunks of seed vectors, when the batch's intermediates would pass the
intermediate limit although the result fits; or compressed, when the derivative's sparsity
pattern (`engine.sparsity`, from the IR alone) lets structurally orthogonal columns (or
rows) share one seed vector (`engine.colouring`), so that a diagonal Hessian of a million
inputs takes one Hessian-vector product instead of a million. Results come back dense, or
as the coo and csr arrays scipy.sparse builds its matrices from.

The derivative is a matrix over flattened spaces: a Jacobian is (output size, N) and a
Hessian (N, N), where N counts the elements of every differentiated input, in `wrt` order.
A forward sweep seeds columns (J @ v), a reverse one rows (v @ J), a Hessian's columns (H @ v).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine import backend, colouring, derivatives, interpreter, sparsity
from engine.cache import TRANSFORMS
from engine.errors import TOO_LARGE, EngineError
from engine.ir import Function
from engine.limits import Limits

FORMATS = ("dense", "coo", "csr")
FORWARD, REVERSE, HESSIAN = "forward", "reverse", "hessian"
# With fewer seed vectors than this a dense sweep is cheap: the pattern is computed only when
# a sparse format asks for it (a large function's pattern costs more than a small sweep).
PATTERN_WORTH_FROM = 16


@dataclass(frozen=True)
class Sweep:
    """How a derivative is swept: `seeds` vectors (the basis, or one per colour of its
    pattern when `compressed`), `batch` of them per run of the seeded function."""

    direction: str
    compressed: bool
    seeds: int
    batch: int
    nonzeros: int | None  # of the pattern, where it was computed

    @property
    def runs(self) -> int:
        """At least one: an empty derivative still runs once, for the value."""
        return max(1, math.ceil(self.seeds / self.batch))

    def report(self) -> dict[str, Any]:
        return {"direction": self.direction, "compressed": self.compressed, "seeds": self.seeds,
                "batch": self.batch, "runs": self.runs, "nonzeros": self.nonzeros}  # fmt: skip


@dataclass(frozen=True)
class Structure:
    """A derivative's sparsity pattern (bool csr) and a colouring of the side its sweeps seed."""

    pattern: Any
    colours: np.ndarray

    @property
    def count(self) -> int:
        return int(self.colours.max()) + 1 if self.colours.size else 0

    @property
    def approximate_bytes(self) -> int:
        return self.pattern.indices.nbytes + self.pattern.indptr.nbytes + self.colours.nbytes + 512


# Colouring visits every pair of columns that share a row (of rows that share a column, for
# a reverse sweep): past this many pairs a pattern is taken as dense, one colour a seed.
COLOURING_PAIRS = 20_000_000


@TRANSFORMS.memoize(lambda known: known.approximate_bytes if known is not None else 64)
def structure(fn: Function, wrt: tuple[int, ...], direction: str) -> Structure | None:
    """The pattern and the colouring of the side `direction` seeds; None where the pattern
    would be too large to be worth computing (engine.sparsity.MAX_ENTRIES)."""
    try:
        pattern = sparsity.hessian_pattern(fn, wrt) if direction == HESSIAN else sparsity.jacobian_pattern(fn, wrt)
    except sparsity.PatternTooLargeError:
        return None
    if direction == REVERSE:
        sharing, seeded = np.bincount(pattern.indices, minlength=pattern.shape[1]), pattern.shape[0]
    else:
        sharing, seeded = np.diff(pattern.indptr), pattern.shape[1]
    if np.square(sharing, dtype=np.int64).sum() > COLOURING_PAIRS:
        return Structure(pattern, np.arange(seeded))
    colour = {FORWARD: colouring.colour_columns, REVERSE: colouring.colour_rows, HESSIAN: colouring.colour_symmetric}
    return Structure(pattern, colour[direction](pattern))


def basis_size(fn: Function, wrt: tuple[int, ...], direction: str) -> int:
    """Seed vectors of a dense sweep: the output's size (reverse) or the inputs' (else)."""
    return fn.output.aval.size if direction == REVERSE else sum(fn.inputs[i].aval.size for i in wrt)


def plan(fn: Function, wrt: tuple[int, ...], directions: list[str], format: str, limits: Limits | None) -> Sweep | None:
    """The sweep that takes fewest seed vectors among `directions` (the first wins a tie),
    dense or compressed, in batches that keep intermediates under the limit; None where that
    is the one batched dense sweep over the whole basis in a dense result (the plain path)."""
    within = _batch_within(fn, limits)
    if within < 1 or not wrt:
        return None  # nothing to differentiate, or arrays past the limit: refused whatever the sweep
    dense = [(basis_size(fn, wrt, d), False, rank, d) for rank, d in enumerate(directions)]
    structures: dict[str, Structure] = {}
    if format != "dense" or min(seeds for seeds, *_ in dense) >= PATTERN_WORTH_FROM:
        structures = {d: known for d in directions if (known := structure(fn, wrt, d)) is not None}
    if format != "dense":
        if not structures:
            raise EngineError(
                TOO_LARGE,
                f"the derivative's sparsity pattern would pass {sparsity.MAX_ENTRIES:,} entries: "
                f'format "{format}" cannot carry it (differentiate with respect to fewer inputs)',
            )
        dense = [candidate for candidate in dense if candidate[-1] in structures]
    candidates = dense + [(known.count, True, directions.index(d), d) for d, known in structures.items()]
    seeds, compressed, _, direction = min(candidates)
    batch = min(seeds, within)
    if not compressed and batch == seeds and format == "dense":
        return None
    nonzeros = structures[direction].pattern.nnz if direction in structures else None
    return Sweep(direction, compressed, seeds, max(batch, 1), nonzeros)


def _batch_within(fn: Function, limits: Limits | None) -> int:
    """Seed vectors one run may carry: cost.estimate bounds a run's largest array by the
    batch times the function's largest."""
    if limits is None:
        return math.inf
    largest = max([v.aval.size for v in fn.inputs] + [e.output.aval.size for e in fn.equations] + [1])
    return limits.max_intermediate_elements // largest


def stored_elements(fn: Function, wrt: tuple[int, ...], sweep: Sweep | None, format: str, hessian: bool) -> int | None:
    """Elements the response's derivative arrays hold in a sparse format (None: dense)."""
    if format == "dense" or sweep is None:
        return None
    nonzeros = sweep.nonzeros
    if format == "coo":
        return 3 * nonzeros
    sizes = [fn.inputs[i].aval.size for i in wrt]
    row_counts = [size for size in sizes for _ in sizes] if hessian else [fn.output.aval.size] * len(sizes)
    return 2 * nonzeros + sum(rows + 1 for rows in row_counts)


def sparse_advice(fn: Function, wrt: tuple[int, ...], direction: str) -> str:
    """For a dense result too large: how many structural nonzeros the derivative has, when
    that is far fewer than its dense size (a sparse format would carry it)."""
    known = structure(fn, wrt, direction)
    if known is None:
        return ""
    pattern = known.pattern
    dense = pattern.shape[0] * pattern.shape[1]
    if pattern.nnz * 4 > dense:
        return ""
    return (
        f"; the derivative has only {pattern.nnz:,} structural nonzeros out of {dense:,}: "
        f'format "csr" sends about {2 * pattern.nnz + pattern.shape[0] + 1:,} elements'
    )


def run(
    sweep: Sweep,
    fn: Function,
    arguments: tuple[np.ndarray, ...],
    wrt: tuple[int, ...],
    format: str,
    backend_name: str,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, list[Any]]:
    """The value, and the derivative's blocks in the results' layout order: per wrt input
    for a Jacobian (output rows, that input's columns), per pair (a, b) for a Hessian."""
    xp = backend.namespace(backend_name)
    primals = [backend.to_backend(xp, a) for a in arguments[: len(fn.inputs)]]
    seeded = derivatives.seeded_products(fn, wrt, sweep.direction, sweep.batch)
    seed_avals = [v.aval for v in seeded.inputs[len(fn.inputs) :]]
    known = structure(fn, wrt, sweep.direction) if sweep.compressed or format != "dense" else None
    dtype = np.dtype(seed_avals[0].dtype)
    width = sum(aval.size for aval in seed_avals) // sweep.batch
    products = None
    for index in range(sweep.runs):
        start = index * sweep.batch
        count = min(sweep.batch, sweep.seeds - start)
        block = _seed_block(sweep, known, start, width, dtype)
        seeds = [backend.to_backend(xp, part) for part in _split(block, seed_avals)]
        value, *outputs = [backend.to_host(o) for o in interpreter.run(seeded, [*primals, *seeds], backend_name)]
        rows = np.concatenate([o.reshape(sweep.batch, -1) for o in outputs], axis=1)[:count]
        if products is None:
            products = np.empty((sweep.seeds, rows.shape[1]), dtype=rows.dtype)
        products[start : start + count] = rows
        if progress is not None:
            progress(index + 1, sweep.runs)
    # products holds, per seed, one column of the matrix (forward, hessian) or one row (reverse)
    matrix = products if sweep.direction == REVERSE else products.T
    if sweep.compressed:
        decompress = {FORWARD: colouring.decompress_columns, REVERSE: colouring.decompress_rows,
                      HESSIAN: colouring.decompress_symmetric}[sweep.direction]  # fmt: skip
        data = decompress(known.pattern, known.colours, matrix)
    else:
        data = None
    return value, _blocks(fn, wrt, sweep.direction == HESSIAN, format, matrix, known, data)


def _seed_block(sweep: Sweep, known: Structure | None, start: int, width: int, dtype: np.dtype) -> np.ndarray:
    """Seed vectors start, start+1, ... (a full batch: the last is padded with zeros): unit
    vectors of the basis, or the indicators of colours."""
    block = np.zeros((sweep.batch, width), dtype=dtype)
    if sweep.compressed:
        colours = known.colours
        members = np.flatnonzero((colours >= start) & (colours < start + sweep.batch))
        block[colours[members] - start, members] = 1
    else:
        count = min(sweep.batch, sweep.seeds - start)
        block[np.arange(count), start + np.arange(count)] = 1
    return block


def _split(block: np.ndarray, avals: list) -> list[np.ndarray]:
    """A batch of flat seed vectors as the seeded function's inputs, one per seeded array."""
    parts, offset = [], 0
    for aval in avals:
        size = aval.size // block.shape[0]
        parts.append(np.ascontiguousarray(block[:, offset : offset + size]).reshape(aval.shape))
        offset += size
    return parts


def _blocks(
    fn: Function,
    wrt: tuple[int, ...],
    hessian: bool,
    format: str,
    matrix: np.ndarray,
    known: Structure | None,
    data: np.ndarray | None,
) -> list[Any]:
    """The derivative cut into its blocks, each dense (shaped like the plain path's) or
    sparse. `data` holds the values at the pattern's nonzeros where the sweep was compressed;
    otherwise `matrix` is the whole derivative."""
    shapes = [fn.inputs[i].aval.shape for i in wrt]
    offsets = np.cumsum([0] + [math.prod(shape) for shape in shapes])
    if known is not None:
        rows = _rows(known.pattern.indptr)
        columns = known.pattern.indices
        if data is None:
            data = matrix[rows, columns]
        if format == "dense":
            matrix = np.zeros(known.pattern.shape, dtype=data.dtype)
            matrix[rows, columns] = data
    if hessian:
        spans = [((offsets[a], offsets[a + 1]), (offsets[b], offsets[b + 1])) for a in range(len(wrt))
                 for b in range(len(wrt))]  # fmt: skip
        dense_shapes = [shapes[a] + shapes[b] for a in range(len(wrt)) for b in range(len(wrt))]
    else:
        size = fn.output.aval.size
        spans = [((0, size), (offsets[j], offsets[j + 1])) for j in range(len(wrt))]
        dense_shapes = [fn.output.aval.shape + shape for shape in shapes]
    if format == "dense":
        return [matrix[r0:r1, c0:c1].reshape(shape) for ((r0, r1), (c0, c1)), shape in zip(spans, dense_shapes)]
    return [_sparse_block(rows, columns, data, span, format) for span in spans]


def _sparse_block(rows: np.ndarray, columns: np.ndarray, data: np.ndarray, span: tuple, format: str) -> dict:
    """One block of a csr pattern's values in scipy.sparse's coo or csr arrays."""
    (r0, r1), (c0, c1) = span
    inside = (rows >= r0) & (rows < r1) & (columns >= c0) & (columns < c1)
    block_rows, block_columns = rows[inside] - r0, (columns[inside] - c0).astype(np.int64)
    shape = [int(r1 - r0), int(c1 - c0)]
    if format == "coo":
        return {"format": "coo", "shape": shape, "row": block_rows.astype(np.int64), "col": block_columns,
                "data": data[inside]}  # fmt: skip
    indptr = np.concatenate([[0], np.cumsum(np.bincount(block_rows, minlength=shape[0]))]).astype(np.int64)
    return {"format": "csr", "shape": shape, "indptr": indptr, "indices": block_columns, "data": data[inside]}


def entries(block: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows, columns and values of a sparse block, whichever its format."""
    if block["format"] == "coo":
        return block["row"], block["col"], block["data"]
    return _rows(block["indptr"]), block["indices"], block["data"]


def _rows(indptr: np.ndarray) -> np.ndarray:
    """The row of each entry of a csr array."""
    return np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
