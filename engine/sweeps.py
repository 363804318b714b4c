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
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from itertools import accumulate
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
    colors: int | None  # of the pattern's colouring in this direction, where it was computed

    def __post_init__(self):
        # Of numbers alone, whose hashes every process agrees on: a sweep is pickled to workers.
        object.__setattr__(self, "_hash", hash((self.seeds, self.batch, self.compressed)))

    def __hash__(self) -> int:
        # Every answer's `prepared` lookup hashes its sweep: once per sweep, not once per lookup.
        return self._hash

    @property
    def runs(self) -> int:
        """At least one: an empty derivative still runs once, for the value."""
        return max(1, math.ceil(self.seeds / self.batch))

    def report(self) -> dict[str, Any]:
        return {"direction": self.direction, "compressed": self.compressed, "seeds": self.seeds,
                "batch": self.batch, "runs": self.runs, "nonzeros": self.nonzeros, "colors": self.colors}  # fmt: skip


@dataclass(frozen=True)
class Block:
    """Where one block of a derivative sits among its pattern's nonzeros (`entries`: their
    positions in csr order), and its own csr arrays (read-only: shared by every answer)."""

    shape: list[int]
    entries: slice | np.ndarray
    indptr: np.ndarray
    rows: np.ndarray
    columns: np.ndarray

    def sparse(self, values: np.ndarray, format: str) -> dict[str, Any]:
        """The block as scipy.sparse's arrays, from the values at the whole pattern's nonzeros."""
        data = values[self.entries]
        if format == "coo":
            return {"format": "coo", "shape": self.shape, "row": self.rows, "col": self.columns, "data": data}
        return {"format": "csr", "shape": self.shape, "indptr": self.indptr, "indices": self.columns, "data": data}


@dataclass(frozen=True)
class Structure:
    """A derivative's sparsity pattern (bool csr), a colouring of the side its sweeps seed,
    and what every answer reads from them, computed once: each nonzero's row, where the
    compressed products hold it, and the blocks the answer is cut into."""

    pattern: Any
    colours: np.ndarray
    # Where each nonzero is among a sweep's products (one row per seed, flattened): with the
    # colours' seeds (compressed), or with the basis's (plain); and in the dense matrix.
    # Each a slice where the positions step evenly (a diagonal's), which reads as a view.
    compressed_positions: slice | np.ndarray
    plain_positions: slice | np.ndarray
    dense_positions: slice | np.ndarray
    blocks: tuple[Block, ...]

    @cached_property
    def count(self) -> int:
        """Colours: the seed vectors a compressed sweep takes."""
        return int(self.colours.max()) + 1 if self.colours.size else 0

    @property
    def approximate_bytes(self) -> int:
        arrays = [self.pattern.indices, self.pattern.indptr, self.colours, self.compressed_positions,
                  self.plain_positions, self.dense_positions]  # fmt: skip
        arrays = [a for a in arrays if isinstance(a, np.ndarray)]
        arrays += [a for b in self.blocks for a in (b.indptr, b.rows, b.columns)]
        return sum(a.nbytes for a in arrays) + 512 * (1 + len(self.blocks))


# Colouring visits every pair of columns that share a row (of rows that share a column, for
# a reverse sweep): past this many pairs a pattern is taken as dense, one colour a seed.
COLOURING_PAIRS = 20_000_000
_COLOURINGS = {FORWARD: colouring.colour_columns, REVERSE: colouring.colour_rows, HESSIAN: colouring.colour_symmetric}
_SOURCES = {FORWARD: colouring.column_sources, REVERSE: colouring.row_sources, HESSIAN: colouring.symmetric_sources}


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
    too_many_pairs = np.square(sharing, dtype=np.int64).sum() > COLOURING_PAIRS
    colours = np.arange(seeded) if too_many_pairs else _COLOURINGS[direction](pattern)
    rows = _read_only(_rows(pattern.indptr))
    blocks = tuple(_block(rows, pattern.indices, span) for span in _spans(fn, wrt, direction == HESSIAN))
    compressed = _among_products(_SOURCES[direction](pattern, colours), direction, pattern.shape)
    plain = _among_products((rows, pattern.indices), direction, pattern.shape)
    dense = _among_products((rows, pattern.indices), REVERSE, pattern.shape)
    return Structure(pattern, colours, compressed, plain, dense, blocks)


def _among_products(at: tuple[np.ndarray, np.ndarray], direction: str, shape: tuple[int, int]) -> slice | np.ndarray:
    """Flat positions in a sweep's products of the derivative's (row, column) entries `at`: a
    reverse sweep's product is a row of the matrix, a forward (or Hessian) sweep's a column."""
    rows, columns = at
    if direction == REVERSE:
        return _progression(rows.astype(np.int64) * shape[1] + columns)
    return _progression(columns.astype(np.int64) * shape[0] + rows)


def _progression(positions: np.ndarray) -> slice | np.ndarray:
    """The positions as a slice where they step evenly upwards, else read-only."""
    if positions.size == 0:
        return slice(0, 0)
    start, step = int(positions[0]), int(positions[1] - positions[0]) if positions.size > 1 else 1
    if step > 0 and np.array_equal(positions, np.arange(start, start + step * positions.size, step)):
        return slice(start, start + step * positions.size, step)
    return _read_only(positions)


def _spans(fn: Function, wrt: tuple[int, ...], hessian: bool) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Each block's rows and columns in the derivative's matrix, in the results' layout
    order: per wrt input for a Jacobian, per pair (a, b) for a Hessian."""
    offsets = list(accumulate((fn.inputs[i].aval.size for i in wrt), initial=0))
    ranges = list(zip(offsets, offsets[1:]))
    if hessian:
        return [(across, down) for across in ranges for down in ranges]
    return [((0, fn.output.aval.size), columns) for columns in ranges]


def _block(rows: np.ndarray, columns: np.ndarray, span: tuple) -> Block:
    (r0, r1), (c0, c1) = span
    inside = (rows >= r0) & (rows < r1) & (columns >= c0) & (columns < c1)
    entries = slice(None) if inside.all() else np.flatnonzero(inside)
    block_rows, block_columns = rows[entries] - r0, columns[entries] - c0
    shape = [r1 - r0, c1 - c0]
    indptr = np.concatenate([[0], np.cumsum(np.bincount(block_rows, minlength=shape[0]))])
    return Block(shape, entries, *(_read_only(a.astype(np.int64)) for a in (indptr, block_rows, block_columns)))


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def basis_size(fn: Function, wrt: tuple[int, ...], direction: str) -> int:
    """Seed vectors of a dense sweep: the output's size (reverse) or the inputs' (else)."""
    return fn.output.aval.size if direction == REVERSE else sum(fn.inputs[i].aval.size for i in wrt)


# Every request binds its sweep: planned once per (function, wrt, directions, format,
# limits), a dozen lookups and a pattern's count that would otherwise cost as much as the
# product of a diagonal Hessian of a thousand inputs.
@TRANSFORMS.memoize(lambda sweep: 256)
def plan(
    fn: Function, wrt: tuple[int, ...], directions: tuple[str, ...], format: str, limits: Limits | None
) -> Sweep | None:
    """The sweep that takes fewest seed vectors among `directions` (the first wins a tie
    between dense ones), dense or compressed, in batches that keep intermediates under the
    limit; None where that is the one batched dense sweep over the whole basis in a dense
    result (the plain path)."""
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
    # Between compressed sweeps of as many colours, forward's: a JVP reads slices where a VJP
    # scatters into zeros.
    candidates = dense + [(known.count, True, d != FORWARD, d) for d, known in structures.items()]
    seeds, compressed, _, direction = min(candidates)
    batch = min(seeds, within)
    if not compressed and batch == seeds and format == "dense":
        return None
    known = structures.get(direction)
    nonzeros, colors = (known.pattern.nnz, known.count) if known is not None else (None, None)
    return Sweep(direction, compressed, seeds, max(batch, 1), nonzeros, colors)


def _batch_within(fn: Function, limits: Limits | None) -> int:
    """Seed vectors one run may carry: cost.estimate bounds a run's largest array by the
    batch times the function's largest."""
    if limits is None:
        return math.inf
    return limits.max_intermediate_elements // max((*fn.array_sizes, 1))


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


@dataclass(frozen=True)
class Prepared:
    """What every answer of one sweep reads, made once per (sweep, function, wrt, format,
    backend): a call costs one cache lookup, then only its array work. The compiled seeded
    function, and a compressed sweep's seeds (host arrays, shared with `_colour_seeds`: a
    GPU's memory is not held for them between answers); where those seeds are one number per
    seed array (one colour: ones), the function has them as constants
    (`derivatives.constantly_seeded_products`) and takes no seeds."""

    compiled: interpreter.Plan
    colour_seeds: tuple[tuple[np.ndarray, ...], ...] | None  # a compressed sweep's, per run
    seeded_avals: tuple[Any, ...]  # of the seed inputs of `seeded_products`, for unit vectors
    known: Structure | None  # where the answer is compressed or sparse

    @property
    def constant_seeds(self) -> bool:
        """Whether the compiled function has its seeds as constants: one run that takes none."""
        return self.colour_seeds == ((),)

    @property
    def approximate_bytes(self) -> int:
        seeds = sum(seed.nbytes for run in self.colour_seeds or () for seed in run)
        return self.compiled.approximate_bytes + seeds + 512

    def seed_runs(self, sweep: Sweep) -> Iterator[tuple[Any, ...]]:
        """Each run's seed vectors on the backend, split as the seeded function takes them (a
        full batch: the last is padded with zeros): the indicators of colours, or unit vectors
        of the basis, made as they are needed (all of them would be the identity)."""
        xp, avals = self.compiled.xp, self.seeded_avals
        runs = self.colour_seeds
        if runs is None:
            runs = (_split(_unit_vectors(sweep, index * sweep.batch, avals), avals) for index in range(sweep.runs))
        return (tuple(backend.to_backend(xp, seed) for seed in run) for run in runs)


@TRANSFORMS.memoize(lambda prepared: prepared.approximate_bytes)
def prepared(sweep: Sweep, fn: Function, wrt: tuple[int, ...], format: str, backend_name: str) -> Prepared:
    seeded = derivatives.seeded_products(fn, wrt, sweep.direction, sweep.batch)
    avals = tuple(v.aval for v in seeded.inputs[len(fn.inputs) :])
    known = structure(fn, wrt, sweep.direction) if sweep.compressed or format != "dense" else None
    colour_seeds = None
    if sweep.compressed:
        colour_seeds = _colour_seeds(fn, wrt, sweep.direction, sweep.batch)
        values = _uniform(colour_seeds[0]) if len(colour_seeds) == 1 else None
        if values is not None:
            seeded = derivatives.constantly_seeded_products(fn, wrt, sweep.direction, sweep.batch, values)
            colour_seeds = ((),)
    return Prepared(interpreter.plan(seeded, backend_name), colour_seeds, avals, known)


def _uniform(seeds: tuple[np.ndarray, ...]) -> tuple[float, ...] | None:
    """The one number each seed array is filled with; None where one holds two."""
    firsts = [seed.flat[0] if seed.size else None for seed in seeds]
    if None in firsts or not all(bool((seed == first).all()) for seed, first in zip(seeds, firsts)):
        return None
    return tuple(float(first) for first in firsts)


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
    ready = prepared(sweep, fn, wrt, format, backend_name)
    compiled = ready.compiled
    primals = [backend.to_backend(compiled.xp, a) for a in arguments[: len(fn.inputs)]]  # once, for every run
    parts = []
    for index, seeds in enumerate(ready.seed_runs(sweep)):
        value, *outputs = [backend.to_host(o) for o in compiled.run([*primals, *seeds])]
        count = min(sweep.batch, sweep.seeds - index * sweep.batch)
        flat = [o.reshape(sweep.batch, -1)[:count] for o in outputs]
        parts.append(flat[0] if len(flat) == 1 else np.concatenate(flat, axis=1))
        if progress is not None:
            progress(index + 1, sweep.runs)
    products = parts[0] if len(parts) == 1 else np.concatenate(parts)
    known = ready.known
    if known is None:
        # products holds, per seed, one column of the matrix (forward, hessian) or one row (reverse)
        matrix = products if sweep.direction == REVERSE else products.T
        return value, _dense_blocks(fn, wrt, sweep.direction == HESSIAN, matrix)
    positions = known.compressed_positions if sweep.compressed else known.plain_positions
    values = np.ascontiguousarray(products).ravel()[positions]
    if format != "dense":
        return value, [block.sparse(values, format) for block in known.blocks]
    scattered = np.zeros(known.pattern.shape, dtype=values.dtype)
    scattered.ravel()[known.dense_positions] = values
    return value, _dense_blocks(fn, wrt, sweep.direction == HESSIAN, scattered)


@TRANSFORMS.memoize(lambda runs: sum(seed.nbytes for run in runs for seed in run) + 256)
def _colour_seeds(fn: Function, wrt: tuple[int, ...], direction: str, batch: int) -> tuple[tuple[np.ndarray, ...], ...]:
    seeded = derivatives.seeded_products(fn, wrt, direction, batch)
    avals = [v.aval for v in seeded.inputs[len(fn.inputs) :]]
    indicators = colouring.seed_matrix(structure(fn, wrt, direction).colours, avals[0].dtype)
    padded = np.zeros((math.ceil(indicators.shape[0] / batch) * batch, indicators.shape[1]), dtype=indicators.dtype)
    padded[: indicators.shape[0]] = indicators
    return tuple(_split(padded[start : start + batch], avals) for start in range(0, padded.shape[0], batch))


def _unit_vectors(sweep: Sweep, start: int, avals: list) -> np.ndarray:
    width = sum(aval.size for aval in avals) // sweep.batch
    block = np.zeros((sweep.batch, width), dtype=avals[0].dtype)
    count = min(sweep.batch, sweep.seeds - start)
    block[np.arange(count), start + np.arange(count)] = 1
    return block


def _split(block: np.ndarray, avals: list) -> tuple[np.ndarray, ...]:
    """A batch of flat seed vectors as the seeded function's inputs, one per seeded array."""
    parts, offset = [], 0
    for aval in avals:
        size = aval.size // block.shape[0]
        parts.append(_read_only(np.ascontiguousarray(block[:, offset : offset + size]).reshape(aval.shape)))
        offset += size
    return tuple(parts)


def _dense_blocks(fn: Function, wrt: tuple[int, ...], hessian: bool, matrix: np.ndarray) -> list[np.ndarray]:
    """The derivative's matrix cut into its blocks, shaped as the plain path shapes them."""
    shapes = [fn.inputs[i].aval.shape for i in wrt]
    if hessian:
        block_shapes = [across + down for across in shapes for down in shapes]
    else:
        block_shapes = [fn.output.aval.shape + shape for shape in shapes]
    return [
        matrix[r0:r1, c0:c1].reshape(shape)
        for ((r0, r1), (c0, c1)), shape in zip(_spans(fn, wrt, hessian), block_shapes)
    ]


def entries(block: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The rows, columns and values of a sparse block, whichever its format."""
    if block["format"] == "coo":
        return block["row"], block["col"], block["data"]
    return _rows(block["indptr"]), block["indices"], block["data"]


def _rows(indptr: np.ndarray) -> np.ndarray:
    """The row of each entry of a csr array."""
    return np.repeat(np.arange(len(indptr) - 1), np.diff(indptr))
