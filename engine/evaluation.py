"""Computing one equation on arrays, and telling its failure in the user's words: the one
evaluator the interpreter, the program front-end and constant folding share."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from engine import backend, integers
from engine.errors import NUMERIC, EngineError
from engine.ir import Literal, Origin

if TYPE_CHECKING:
    from engine.primitive import Primitive

# What an array library raises for a computation that cannot be done (a singular matrix, a
# shape it refuses); anything else is a fault of the engine, not of the user's function.
NUMERIC_ERRORS = (ArithmeticError, ValueError, TypeError, RuntimeError)

# The array libraries' words for a failure, in the words of a user's request.
_REASONS = {"Singular matrix": "the matrix is singular"}


def numeric_failure(origin: Origin, error: Exception) -> EngineError:
    """An array library's error while computing an equation, told as a failure of the
    operation the user wrote there, or of its derivative: for `logdet(A)` at a singular A,
    "the derivative of logdet failed", never the `inv` its derivative rule calls."""
    reason = _REASONS.get(str(error), str(error))
    return EngineError(NUMERIC, f"{origin} failed: {reason}", origin.location)


def literal_array(xp: Any, atom: Literal) -> Any:
    """A literal as a zero-dimensional array of its dtype."""
    return xp.asarray(atom.value, dtype=getattr(xp, atom.dtype))


def evaluate_equation(
    primitive: Primitive, xp: Any, arguments: Sequence[Any], params: dict[str, Any], origin: Origin, dtype: str
) -> Any:
    """`primitive` computed on arrays into a result of `dtype`, with IEEE results (inf, nan)
    rather than warnings, and integer results that wrap around refused."""
    impl = integers.checked(primitive.impl, dtype)
    with backend.quiet():
        try:
            return impl(xp, *arguments, **params)
        except NUMERIC_ERRORS as error:
            raise numeric_failure(origin, error) from None
