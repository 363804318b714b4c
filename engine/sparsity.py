"""Sparsity patterns of derivatives, found from a function's IR alone: which outputs may
depend on which inputs, without running anything.

A pattern is a boolean scipy.sparse csr_array over flattened (C order) arrays. Each
equation's pattern, against the differentiated inputs, is the union over its inputs of the
primitive's own dependency pattern (`Primitive.dependencies`) times that input's pattern; a
DENSE input gives every output element the union of that input's rows. A pattern may claim a
dependency whose derivative happens to be zero (max's, at the elements that are not the
maximum), never miss one. Patterns are cached per (function, wrt): the caller must not
modify them.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from engine.cache import TRANSFORMS
from engine.derivatives import gradient_function
from engine.ir import Atom, Function, Literal
from engine.primitive import DENSE, MAX_PATTERN_ENTRIES

# A pattern is a sparse matrix per array of the function: past this many entries in any one
# (or rows, that is elements of an array), the derivative is taken as having no useful
# pattern rather than spending the memory and time (a sparse format could not carry it either).
MAX_ENTRIES = MAX_PATTERN_ENTRIES


class PatternTooLargeError(Exception):
    """The pattern would pass MAX_ENTRIES somewhere on the way."""


def _pattern_bytes(patterns: list[sparse.csr_array]) -> int:
    return sum(p.indices.nbytes + p.indptr.nbytes + p.data.nbytes for p in patterns)


_cached = TRANSFORMS.memoize(_pattern_bytes)


def _empty(rows: int, columns: int) -> sparse.csr_array:
    return sparse.csr_array((rows, columns), dtype=bool)


def _every_row_the_union(pattern: sparse.csr_array, rows: int) -> sparse.csr_array:
    columns = np.unique(pattern.indices)
    if rows * columns.size > MAX_ENTRIES:
        raise PatternTooLargeError
    indptr = np.arange(rows + 1) * columns.size
    return sparse.csr_array(
        (np.ones(rows * columns.size, bool), np.tile(columns, rows), indptr), shape=(rows, pattern.shape[1])
    )


def _canonical(pattern: sparse.csr_array) -> sparse.csr_array:
    """Indices sorted within each row (a sparse product leaves them in any order), so that
    a pattern's csr order is the row-major order of its nonzeros."""
    pattern.sort_indices()
    return pattern


def _is_identity(rule: sparse.csr_array) -> bool:
    rows, columns = rule.shape
    if rows != columns or rule.nnz != rows:
        return False
    diagonal = np.arange(rows + 1)
    return np.array_equal(rule.indptr, diagonal) and np.array_equal(rule.indices, diagonal[:-1])


def _through(rule, pattern: sparse.csr_array, rows: int) -> sparse.csr_array:
    """The pattern of an equation's output through one input of the given pattern."""
    if rule is DENSE:
        return _every_row_the_union(pattern, rows)
    # elementwise on operands of one shape: most equations, and a product costs more than the check
    return pattern if _is_identity(rule) else rule @ pattern


def _output_patterns(fn: Function, wrt: tuple[int, ...]) -> list[sparse.csr_array]:
    if max(fn.array_sizes, default=0) > MAX_ENTRIES:
        raise PatternTooLargeError
    width = sum(fn.inputs[i].aval.size for i in wrt)
    patterns: dict[Atom, sparse.csr_array] = {}
    offset = 0
    for i in wrt:
        size = fn.inputs[i].aval.size
        # the identity block of this input's columns
        patterns[fn.inputs[i]] = sparse.csr_array(
            (np.ones(size, bool), np.arange(offset, offset + size), np.arange(size + 1)), shape=(size, width)
        )
        offset += size

    def pattern_of(atom: Atom) -> sparse.csr_array | None:
        """None for what depends on no wrt input (a constant, another input)."""
        return None if isinstance(atom, Literal) else patterns.get(atom)

    for eqn in fn.equations:
        out = eqn.output.aval
        dependent = [pattern_of(atom) for atom in eqn.inputs]
        if all(p is None or p.nnz == 0 for p in dependent):
            continue
        rules = eqn.primitive.dependencies(out, [atom.aval for atom in eqn.inputs], eqn.kwargs)
        contributions = [_through(rule, p, out.size) for rule, p in zip(rules, dependent) if p is not None and p.nnz]
        total = contributions[0]
        for contribution in contributions[1:]:
            if contribution is not total:  # x * x: one pattern twice
                total = total + contribution  # on booleans, a union
        if total.nnz > MAX_ENTRIES:
            raise PatternTooLargeError
        patterns[eqn.output] = total.tocsr()
    found = [pattern_of(o) for o in fn.outputs]
    return [_canonical(p) if p is not None else _empty(o.aval.size, width) for p, o in zip(found, fn.outputs)]


_cached_output_patterns = _cached(_output_patterns)


def output_patterns(fn: Function, wrt: tuple[int, ...]) -> list[sparse.csr_array]:
    """For each output of fn, which of the inputs at positions `wrt` it may depend on: shape
    (output size, N), N the sizes of the wrt inputs summed, their columns in wrt order."""
    return list(_cached_output_patterns(fn, tuple(wrt)))


def jacobian_pattern(fn: Function, wrt: tuple[int, ...]) -> sparse.csr_array:
    """The pattern of d fn.output / d (the wrt inputs, flattened and concatenated)."""
    return output_patterns(fn, wrt)[0]


@TRANSFORMS.memoize(lambda pattern: _pattern_bytes([pattern]))
def _hessian_pattern(fn: Function, wrt: tuple[int, ...], reduce_sum: bool) -> sparse.csr_array:
    gradient = gradient_function(fn, wrt, reduce_sum)
    blocks = _output_patterns(gradient, wrt)[1:]
    if not blocks:
        return _empty(0, 0)
    rows = sparse.vstack(blocks, format="csr")
    return _canonical((rows + rows.T).tocsr())


def hessian_pattern(fn: Function, wrt: tuple[int, ...], reduce_sum: bool = False) -> sparse.csr_array:
    """The pattern of the Hessian of fn's output (its sum with `reduce_sum`) in the wrt
    inputs, shape (N, N): the Jacobian pattern of the gradient, made symmetric (a product
    rule can leave one triangle claimed that the other is not, the Hessian being symmetric)."""
    return _hessian_pattern(fn, tuple(wrt), reduce_sum)
