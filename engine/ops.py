"""Every op by name, for Python code written against the engine (tests, benchmarks), and
what Var's operators compute.

Nothing is declared here: each op is declared once, where it is defined. `ops.name` is the
op as users call it, with numpy's signature, when users may call it (`engine.language`), and
otherwise the primitive itself (convert, broadcast_to, getitem, adjugate, ...), which takes
its parameters by keyword as derivative rules call it.
"""

from __future__ import annotations

from typing import Any

from engine.ir import define_operators
from engine.language import FUNCTIONS
from engine.primitive import PRIMITIVES
from engine.primitives import elementwise, linalg, reductions, shape  # noqa: F401 - declare every op

define_operators(
    add=elementwise.add, subtract=elementwise.subtract, multiply=elementwise.multiply, divide=elementwise.divide,
    power=elementwise.power, matmul=linalg.matmul, negative=elementwise.negative, getitem=shape.getitem,
    less=elementwise.less, less_equal=elementwise.less_equal, greater=elementwise.greater,
    greater_equal=elementwise.greater_equal, transpose=shape.transpose,
)  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in FUNCTIONS:
        return FUNCTIONS[name].call
    if name in PRIMITIVES:
        return PRIMITIVES[name]
    raise AttributeError(f"engine.ops has no op {name!r}")


def __dir__() -> list[str]:
    return sorted({*FUNCTIONS, *PRIMITIVES})
