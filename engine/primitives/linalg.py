"""Linear algebra: matmul (numpy's semantics, 1-D operands included), inv, solve, det,
logdet and the adjugate that det's derivatives are made of. inv, det, logdet and adjugate
act on stacks of matrices, so a batch axis is one more stack axis; matmul and solve promote
vector operands to matrices to share one batching rule."""

from __future__ import annotations

import numpy as np
from scipy import sparse

from engine import language
from engine.errors import SHAPE, EngineError
from engine.ir import ShapedArray
from engine.primitive import DENSE, MAX_PATTERN_ENTRIES, Primitive
from engine.primitives import elementwise as ew
from engine.primitives.broadcasting import broadcasting, lift_batch_axis, reshape, sum, unbroadcast
from engine.primitives.common import broadcast_shapes, logical_ndim, per_matrix_dependency, primitive, same_dtype
from engine.primitives.dtypes import promote, promoted, promoted_to_float
from engine.primitives.shape import expand_dims, eye, swap_last_axes


def _matmul_shape(a: ShapedArray, b: ShapedArray) -> ShapedArray:
    if a.ndim == 0 or b.ndim == 0:
        raise EngineError(SHAPE, "matmul needs arrays of at least one dimension; use * for scalars")
    a_rows = a.shape[-2] if a.ndim > 1 else None
    b_cols = b.shape[-1] if b.ndim > 1 else None
    inner_a = a.shape[-1]
    inner_b = b.shape[-2] if b.ndim > 1 else b.shape[0]
    if inner_a != inner_b:
        raise EngineError(
            SHAPE, f"matmul of shapes {list(a.shape)} and {list(b.shape)}: inner sizes {inner_a} and {inner_b} differ"
        )
    stack = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    shape = stack + tuple(n for n in (a_rows, b_cols) if n is not None)
    return ShapedArray(shape, same_dtype(a, b))


def _as_matrices(a, b):
    """1-D operands as a row (left) or column (right) matrix, as numpy's matmul reads them."""
    a2 = reshape(a, shape=(1, a.aval.shape[0])) if a.aval.ndim == 1 else a
    b2 = reshape(b, shape=(b.aval.shape[0], 1)) if b.aval.ndim == 1 else b
    return a2, b2


def _matmul_cotangent(position: int):
    def rule(g, out, a, b):
        if a.aval.ndim == 1 and b.aval.ndim == 1:  # an inner product: g is a scalar
            return g * (b if position == 0 else a)
        a2, b2 = _as_matrices(a, b)
        g2 = reshape(g, shape=_matmul_shape(a2.aval, b2.aval).shape)
        if position == 0:
            cotangent, operand = matmul(g2, swap_last_axes(b2)), a
        else:
            cotangent, operand = matmul(swap_last_axes(a2), g2), b
        operand2 = a2 if position == 0 else b2
        return reshape(unbroadcast(cotangent, operand2.aval.shape), shape=operand.aval.shape)

    return rule


def _batched_times_matrix(stacked, matrix):
    """(batch, [n,] k) @ (k, m) as one matrix product: numpy would loop over the batch."""
    shape = stacked.aval.shape
    flat = reshape(stacked, shape=(shape[0] * shape[1], shape[2])) if len(shape) == 3 else stacked
    return reshape(matmul(flat, matrix), shape=(*shape[:-1], matrix.aval.shape[-1]))


def _matmul_batch(args, batched):
    a, b = args
    # A plain matrix against a batch of vectors or matrices is one matrix product; this is
    # the case of every Jacobian (a basis pushed through a linear map).
    if batched == [True, False] and b.aval.ndim == 2 and a.aval.ndim <= 3:
        return _batched_times_matrix(a, b)
    if batched == [False, True] and a.aval.ndim == 2 and b.aval.ndim <= 3:
        if b.aval.ndim == 2:  # a batch of vectors: (a @ v) for each v is v @ a^T
            return matmul(b, swap_last_axes(a))
        swapped = _batched_times_matrix(swap_last_axes(b), swap_last_axes(a))
        return swap_last_axes(swapped)
    a_vector, b_vector = logical_ndim(a, batched[0]) == 1, logical_ndim(b, batched[1]) == 1
    if a_vector:
        a = expand_dims(a, a.aval.ndim - 1)
    if b_vector:
        b = expand_dims(b, b.aval.ndim)
    ndim = max(logical_ndim(a, batched[0]), logical_ndim(b, batched[1]))
    out = matmul(lift_batch_axis(a, batched[0], ndim), lift_batch_axis(b, batched[1], ndim))
    shape = list(out.aval.shape)
    if b_vector:
        shape.pop(-1)
    if a_vector:
        shape.pop(-1 if b_vector else -2)
    return reshape(out, shape=tuple(shape))


def _matmul_dependencies(out: ShapedArray, a: ShapedArray, b: ShapedArray) -> list:
    """C[..., i, j] depends on row i of A and column j of B in the matrices its stack index
    broadcasts from. 1-D operands are read as numpy does (a row, a column), and dropping
    their axis of length 1 leaves the flat order of C unchanged."""
    rows = a.shape[-2] if a.ndim > 1 else 1
    columns = b.shape[-1] if b.ndim > 1 else 1
    inner = a.shape[-1]
    if out.size * inner > MAX_PATTERN_ENTRIES:
        return [DENSE, DENSE]
    stack = broadcast_shapes(a.shape[:-2], b.shape[:-2])
    a_labels = np.arange(a.size).reshape(*a.shape[:-2], rows, inner)
    b_labels = np.arange(b.size).reshape(*b.shape[:-2], inner, columns)
    # [..., i, j, l]: the element of A, and of B, that C[..., i, j] reads at step l of its sum
    every_step = (*stack, rows, columns, inner)
    a_read = np.broadcast_to(a_labels[..., :, None, :], every_step)
    b_read = np.broadcast_to(np.swapaxes(b_labels, -1, -2)[..., None, :, :], every_step)
    indptr = np.arange(out.size + 1) * inner
    return [
        sparse.csr_array((np.ones(read.size, bool), read.ravel(), indptr), shape=(out.size, x.size))
        for read, x in ((a_read, a), (b_read, b))
    ]


matmul = primitive(
    "matmul",
    # The standard's operator: the same product as xp.matmul without a wrapper's call.
    impl=lambda xp, a, b: a @ b,
    shape=_matmul_shape,
    jvp=[lambda t, out, a, b: matmul(t, b), lambda t, out, a, b: matmul(a, t)],
    vjp=_matmul_cotangent,
    batch=_matmul_batch,
    prepare=promoted,
    sparsity=_matmul_dependencies,
    doc="matrix product (a @ b), numpy's rules for 1-D operands",
    user=language.binary,
)


def _square_shape(a: ShapedArray, drop: int = 0) -> ShapedArray:
    if a.ndim < 2 or a.shape[-1] != a.shape[-2]:
        raise EngineError(SHAPE, f"expected a square matrix (or a stack of them), got shape {list(a.shape)}")
    return ShapedArray(a.shape[: a.ndim - drop], a.dtype)


def _on_matrix_stacks(name: str, **rules) -> Primitive:
    """A primitive on a stack of square matrices, defined on floats: a batch axis is one more
    stack axis. Each result depends on all of its own matrix, none of the others."""

    def batch(args, batched, **params):
        return prim.bind(*args, **params)

    def sparsity(out, a):
        return [per_matrix_dependency(a, 2, out, out.ndim - (a.ndim - 2))]

    prim = primitive(name, batch=batch, prepare=promoted_to_float, sparsity=sparsity, **rules)
    return prim


def _inverse_transposed(a):
    return swap_last_axes(inv(a))


def _trace_of_product(m, t):
    """trace(m^T t) for each matrix of a stack: the contraction det and logdet need."""
    return sum(m * t, axis=(-2, -1))


inv = _on_matrix_stacks(
    "inv",
    impl=lambda xp, a: xp.linalg.inv(a),
    shape=_square_shape,
    jvp=[lambda t, out, a: -matmul(matmul(out, t), out)],
    vjp=[lambda g, out, a: -matmul(matmul(swap_last_axes(out), g), swap_last_axes(out))],
    doc="matrix inverse",
    user=language.unary,
)


def _per_matrix(x):
    """A quantity with one value per matrix of a stack, ready to broadcast over each matrix."""
    return reshape(x, shape=x.aval.shape + (1, 1))


# ---- the adjugate: det's derivative, defined at singular matrices too ----
#
# adj(A) = det(A) A^-1 where A is invertible, but it is a polynomial in A's entries, so it
# and its derivatives exist everywhere; the gradient of det is its transpose. Through the
# SVD A = U diag(s) Vh, adj(A) = det(U) det(Vh) Vh^T adj(diag(s) + E) U^T at A + U E Vh, and
# the adjugate of a diagonal matrix and its derivative are products of singular values with
# no division: exact at rank n-1 and below, where det A^-1 is 0 times infinity.


def _exclusive_products(xp, x):
    """out[..., j] = the product of x[..., l] over l != j, from prefix and suffix products
    (dividing the whole product by x[..., j] would fail where x holds zeros)."""
    before = xp.cumulative_prod(x, axis=-1, include_initial=True)[..., :-1]
    reversed_x = xp.flip(x, axis=-1)
    after = xp.flip(xp.cumulative_prod(reversed_x, axis=-1, include_initial=True)[..., :-1], axis=-1)
    return before * after


def _singular_frame(xp, a):
    """(u, s, vh, orientation, finite) with a = u diag(s) vh and orientation = det(u) det(vh).
    LAPACK's SVD does not converge on inf or nan, so a matrix holding them is decomposed as
    zeros and flagged, for the caller to answer nan as det's own LU does."""
    finite = xp.all(xp.isfinite(a), axis=(-2, -1), keepdims=True)
    u, s, vh = xp.linalg.svd(xp.where(finite, a, 0.0))
    orientation = (xp.linalg.det(u) * xp.linalg.det(vh))[..., None, None]
    return u, s, vh, orientation, finite


def _adjugate_impl(xp, a):
    u, s, vh, orientation, finite = _singular_frame(xp, a)
    columns_scaled = xp.matrix_transpose(vh) * _exclusive_products(xp, s)[..., None, :]
    return xp.where(finite, orientation * (columns_scaled @ xp.matrix_transpose(u)), xp.nan)


def _adjugate_derivative_impl(xp, a, t):
    """d adj(a)[t]. In the singular frame E = U^T t Vh^T, and with q_ij the product of the
    singular values other than s_i and s_j, d adj(diag(s))[E] has E_kk q_ik summed over
    k != i on its diagonal and -E_ij q_ij off it. a's stack broadcasts against t's."""
    u, s, vh, orientation, finite = _singular_frame(xp, a)
    diagonal = xp.eye(s.shape[-1], dtype=xp.bool)
    # row i is s with s_i replaced by 1, so that leaving out s_j too leaves out both
    pair_products = xp.where(diagonal, 0.0, _exclusive_products(xp, xp.where(diagonal, 1.0, s[..., None, :])))
    rotated = xp.matrix_transpose(u) @ t @ xp.matrix_transpose(vh)
    rotated_diagonal = xp.sum(xp.where(diagonal, rotated, 0.0), axis=-1)[..., None]
    in_frame = xp.where(diagonal, xp.matrix_transpose(pair_products @ rotated_diagonal), -pair_products * rotated)
    derivative = orientation * (xp.matrix_transpose(vh) @ in_frame @ xp.matrix_transpose(u))
    return xp.where(finite, derivative, xp.nan)


def _adjugate_derivative_shape(a: ShapedArray, t: ShapedArray) -> ShapedArray:
    _square_shape(a)
    _square_shape(t)
    if a.shape[-1] != t.shape[-1]:
        raise EngineError(SHAPE, f"matrices of shapes {list(a.shape)} and {list(t.shape)} differ in size")
    return ShapedArray(broadcast_shapes(a.shape[:-2], t.shape[:-2]) + a.shape[-2:], same_dtype(a, t))


def _second_derivative(a, first, second):
    """d^2 adj(a)[first, second]. Each entry of adj is a minor, and a minor of a + s u v^T is
    affine in s, so along a rank-one direction the derivative of d adj(.)[first] is exactly a
    difference; `second` is the sum of its columns, second[:, i] e_i^T. This costs n times
    d adj, and is reached only from the third order on."""
    n = a.aval.shape[-1]
    unit_rows = reshape(eye(rows=n, columns=n, dtype=a.aval.dtype), shape=(n, 1, n))
    columns = expand_dims(second, second.aval.ndim - 2) * unit_rows  # [..., i] = second[:, i] e_i^T
    shifted = expand_dims(a, a.aval.ndim - 2) + columns
    along_columns = adjugate_derivative(shifted, expand_dims(first, first.aval.ndim - 2))
    return sum(along_columns, axis=-3) - n * adjugate_derivative(a, first)


# adj is det's gradient transposed and d adj(a)[t] its Hessian applied to t:
# d adj(a)[t]_ij = d^2 det(a)[t, e_ji], symmetric in t and e_ji, so each cotangent rule is
# the tangent rule on transposed operands.
adjugate = _on_matrix_stacks(
    "adjugate",
    impl=_adjugate_impl,
    shape=_square_shape,
    jvp=[lambda t, out, a: adjugate_derivative(a, t)],
    vjp=[lambda g, out, a: swap_last_axes(adjugate_derivative(a, swap_last_axes(g)))],
)

# A primitive, not adjugate's JVP written out, so that second derivatives of det cost no
# more than n x n arrays at singular matrices as elsewhere.
adjugate_derivative = broadcasting(
    "adjugate_derivative",
    impl=_adjugate_derivative_impl,
    shape=_adjugate_derivative_shape,
    jvp=[
        lambda t, out, a, direction: _second_derivative(a, direction, t),
        lambda t, out, a, direction: adjugate_derivative(a, t),
    ],
    vjp=[
        lambda g, out, a, direction: swap_last_axes(_second_derivative(a, direction, swap_last_axes(g))),
        lambda g, out, a, direction: swap_last_axes(adjugate_derivative(a, swap_last_axes(g))),
    ],
    prepare=promoted_to_float,
    sparsity=lambda out, a, direction: [per_matrix_dependency(x, 2, out, 2) for x in (a, direction)],
)


def _cofactors(a):
    """The matrix of cofactors, det's gradient."""
    return swap_last_axes(adjugate(a))


det = _on_matrix_stacks(
    "det",
    impl=lambda xp, a: xp.linalg.det(a),
    shape=lambda a: _square_shape(a, drop=2),
    jvp=[lambda t, out, a: _trace_of_product(_cofactors(a), t)],
    vjp=[lambda g, out, a: _per_matrix(g) * _cofactors(a)],
    doc="determinant",
    user=language.unary,
)


def _logdet_impl(xp, a):
    # PyTorch's logdet: -inf for a singular matrix, nan for a negative determinant.
    sign, logabsdet = xp.linalg.slogdet(a)
    singular_or_negative = xp.where(sign == 0, xp.full_like(logabsdet, -xp.inf), xp.full_like(logabsdet, xp.nan))
    return xp.where(sign > 0, logabsdet, singular_or_negative)


def _unless_negative(a, x):
    """x, or 0 where det(a) < 0: torch.logdet is where(sign == -1, nan, logabsdet), so its
    derivatives are zero where its value is nan."""
    return ew.where(det(a) < 0, 0.0, x)


# A^-T rather than the cofactors over det: det overflows for large matrices whose logdet
# is fine. At a singular matrix logdet is -inf and has no derivative: inv fails there, and
# the error names the user's logdet.
logdet = _on_matrix_stacks(
    "logdet",
    impl=_logdet_impl,
    shape=lambda a: _square_shape(a, drop=2),
    jvp=[lambda t, out, a: _unless_negative(a, _trace_of_product(_inverse_transposed(a), t))],
    vjp=[lambda g, out, a: _per_matrix(_unless_negative(a, g)) * _inverse_transposed(a)],
    doc="log of the determinant (nan when it is negative, as torch.logdet)",
    user=language.unary,
)


def _solve_shape(a: ShapedArray, b: ShapedArray) -> ShapedArray:
    _square_shape(a)
    n = a.shape[-1]
    if b.ndim == 1:
        if b.shape[0] != n:
            raise EngineError(SHAPE, f"solve: a of shape {list(a.shape)} and b of shape {list(b.shape)} do not fit")
        return ShapedArray(a.shape[:-1], same_dtype(a, b))
    if b.shape[-2] != n:
        raise EngineError(SHAPE, f"solve: a of shape {list(a.shape)} and b of shape {list(b.shape)} do not fit")
    return ShapedArray(broadcast_shapes(a.shape[:-2], b.shape[:-2]) + b.shape[-2:], same_dtype(a, b))


def _column(x):
    return expand_dims(x, x.aval.ndim)


def _drop_column(x):
    return reshape(x, shape=x.aval.shape[:-1])


# A 1-D b is one right-hand side shared by every matrix of a stack of a's; the rules below
# keep that reading by working on columns and dropping them again.
def _solve_as_b(a, rhs, b):
    return _drop_column(solve(a, _column(rhs))) if b.aval.ndim == 1 else solve(a, rhs)


def _times_solution(m, out, b):
    return _drop_column(matmul(m, _column(out))) if b.aval.ndim == 1 else matmul(m, out)


def _solve_cotangent_a(g, out, a, b):
    solved = _solve_as_b(swap_last_axes(a), g, b)
    if b.aval.ndim == 1:
        product = _column(solved) * expand_dims(out, out.aval.ndim - 1)
    else:
        product = matmul(solved, swap_last_axes(out))
    return -unbroadcast(product, a.aval.shape)


def _solve_batch(args, batched):
    a, b = args
    b_vector = logical_ndim(b, batched[1]) == 1
    if b_vector:
        b = _column(b)
    ndim = max(logical_ndim(a, batched[0]), logical_ndim(b, batched[1]))
    out = solve(lift_batch_axis(a, batched[0], ndim), lift_batch_axis(b, batched[1], ndim))
    return _drop_column(out) if b_vector else out


def _solve_dependencies(out: ShapedArray, a: ShapedArray, b: ShapedArray) -> list:
    """Each solution depends on all of its matrix and its right-hand sides (a 1-D b is one
    right-hand side shared by every matrix)."""
    b_core = 1 if b.ndim == 1 else 2
    return [per_matrix_dependency(a, 2, out, b_core), per_matrix_dependency(b, b_core, out, b_core)]


def _solve_impl(xp, a, b):
    # numpy broadcasts a stack of a's against b's stack (and a 1-D b against every matrix);
    # cupy's solve takes equal stacks only, so both are broadcast here, for every backend alike.
    column = xp.expand_dims(b, axis=-1) if b.ndim == 1 else b
    stack = broadcast_shapes(a.shape[:-2], column.shape[:-2])
    a, column = xp.broadcast_to(a, stack + a.shape[-2:]), xp.broadcast_to(column, stack + column.shape[-2:])
    solution = xp.linalg.solve(a, column)
    return solution[..., 0] if b.ndim == 1 else solution


solve = primitive(
    "solve",
    impl=_solve_impl,
    shape=_solve_shape,
    jvp=[
        lambda t, out, a, b: -_solve_as_b(a, _times_solution(t, out, b), b),
        lambda t, out, a, b: _solve_as_b(a, t, b),
    ],
    vjp=[
        _solve_cotangent_a,
        lambda g, out, a, b: unbroadcast(_solve_as_b(swap_last_axes(a), g, b), b.aval.shape),
    ],
    batch=_solve_batch,
    prepare=promoted_to_float,
    sparsity=_solve_dependencies,
    doc="x such that a @ x = b",
    user=language.binary,
)


@language.declare("numpy's dot for scalars, vectors and matrices")
def dot(a, b):
    """numpy's dot for the cases where it means one thing: scalars, vectors, matrices."""
    a, b = promote([a, b])
    if a.aval.ndim == 0 or b.aval.ndim == 0:
        return a * b
    if b.aval.ndim > 2:
        raise EngineError(SHAPE, "dot of arrays with more than two dimensions is ambiguous; use matmul")
    return matmul(a, b)


@language.declare("outer product of two vectors")
def outer(a, b):
    a, b = promote([a, b])
    return reshape(a, shape=(a.aval.size, 1)) * reshape(b, shape=(1, b.aval.size))


@language.declare("sum of the diagonal of a matrix")
def trace(x):
    (x,) = promote([x])
    if x.aval.ndim != 2:
        raise EngineError(SHAPE, f"trace needs a matrix, got shape {list(x.aval.shape)}")
    rows, columns = x.aval.shape
    return sum(x * eye(rows=rows, columns=columns, dtype=x.aval.dtype))
