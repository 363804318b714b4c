"""The primitive table, filled by one module per kind of operation."""

from engine.primitive import PRIMITIVES
from engine.primitives import broadcasting, dtypes, elementwise, linalg, reductions, shape

__all__ = ["PRIMITIVES", "broadcasting", "dtypes", "elementwise", "linalg", "reductions", "shape"]
