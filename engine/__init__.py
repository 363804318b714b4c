"""gradserve's automatic differentiation engine: an IR, one table of primitives, forward
and reverse mode, batching, and an interpreter over numpy or cupy. No web imports."""

# engine.ops declares every op and gives Var its operators, which derivative rules are written with.
from engine import ops  # noqa: F401
from engine.api import evaluate, grad, hessian, hvp, jacobian, jvp, value_and_grad, vjp
from engine.errors import EngineError
from engine.ir import Function, ShapedArray

__all__ = [
    "EngineError", "Function", "ShapedArray", "evaluate", "grad", "hessian", "hvp", "jacobian", "jvp",
    "value_and_grad", "vjp",
]  # fmt: skip
