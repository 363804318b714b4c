"""The IR: typed variables, equations ``out = primitive(inputs, params)``, and functions.

Every front-end produces a `Function`, every transformation maps a `Function` to a new one,
and the interpreter runs one. Shapes and dtypes are inferred when an equation is recorded
(`engine.tracing`), so the size of everything a function will allocate is known before it
runs. This module is data only: what a primitive is lives in `engine.primitive`, how
equations are recorded in `engine.tracing`.
"""

from __future__ import annotations

import hashlib
import math
import reprlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

from engine.errors import BAD_PARAM, EngineError

if TYPE_CHECKING:
    from engine.primitive import Primitive

# The dtypes of every array the engine and the service handle, the default first.
FLOAT_DTYPES = ("float64", "float32")
INT_DTYPES = ("int64", "int32")
DTYPES = (*FLOAT_DTYPES, *INT_DTYPES, "bool")
DEFAULT_FLOAT = "float64"
# The integers an int64 holds: a Python int constant outside it cannot be one.
INT64_RANGE = range(-(2**63), 2**63)


@dataclass(frozen=True, slots=True)
class ShapedArray:
    """What is known of an array before it exists: its shape and dtype."""

    shape: tuple[int, ...]
    dtype: str

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_DTYPES

    def __str__(self) -> str:
        return f"{self.dtype}[{','.join(map(str, self.shape))}]"


# numpy and cupy count an array's bytes (8 an element at most) in a signed 64-bit integer, and
# check it for every shape, zero-size ones included: [0, 2**62] cannot be made either.
_MAX_ELEMENTS = (2**63 - 1) // 8


def unrepresentable(shape: Sequence[int]) -> str | None:
    """Why no array can have this shape, in the user's words; None when one can."""
    if math.prod(n for n in shape if n) <= _MAX_ELEMENTS:
        return None
    sizes = reprlib.repr(list(shape))
    return f"no array can have the shape {sizes}: its sizes other than 0 multiply past {_MAX_ELEMENTS:,}"


# What the operators of Vars and Literals compute. The ops are defined on top of this module
# (a primitive's rules are written with these very operators), so this module cannot import
# them: engine.ops fills the table, and the engine package imports engine.ops before anything
# of it runs.
_OPERATOR_NAMES = frozenset({
    "add", "subtract", "multiply", "divide", "power", "matmul", "negative", "getitem", "less", "less_equal",
    "greater", "greater_equal", "transpose",
})  # fmt: skip
_operators: dict[str, Callable[..., Any]] = {}


def define_operators(**implementations: Callable[..., Any]) -> None:
    """Say which op each operator calls: `add` for +, `getitem` (with `index=`) for [], ..."""
    if set(implementations) != _OPERATOR_NAMES:
        raise ValueError(f"the operators are {sorted(_OPERATOR_NAMES)}, got {sorted(implementations)}")
    _operators.update(implementations)


class _Operators:
    """Operator overloads, so derivative rules and front-ends read like numpy code."""

    __slots__ = ()

    def __add__(self, other):
        return _operators["add"](self, other)

    def __radd__(self, other):
        return _operators["add"](other, self)

    def __sub__(self, other):
        return _operators["subtract"](self, other)

    def __rsub__(self, other):
        return _operators["subtract"](other, self)

    def __mul__(self, other):
        return _operators["multiply"](self, other)

    def __rmul__(self, other):
        return _operators["multiply"](other, self)

    def __truediv__(self, other):
        return _operators["divide"](self, other)

    def __rtruediv__(self, other):
        return _operators["divide"](other, self)

    def __pow__(self, other):
        return _operators["power"](self, other)

    def __rpow__(self, other):
        return _operators["power"](other, self)

    def __matmul__(self, other):
        return _operators["matmul"](self, other)

    def __rmatmul__(self, other):
        return _operators["matmul"](other, self)

    def __neg__(self):
        return _operators["negative"](self)

    def __pos__(self):
        return self

    def __getitem__(self, index):
        return _operators["getitem"](self, index=index)

    def __lt__(self, other):
        return _operators["less"](self, other)

    def __le__(self, other):
        return _operators["less_equal"](self, other)

    def __gt__(self, other):
        return _operators["greater"](self, other)

    def __ge__(self, other):
        return _operators["greater_equal"](self, other)

    @property
    def T(self):  # noqa: N802 - numpy's spelling
        return _operators["transpose"](self)


class Var(_Operators):
    """A value in a function, identified by the object itself. Operators build equations."""

    __slots__ = ("aval",)

    def __init__(self, aval: ShapedArray):
        self.aval = aval

    @property
    def shape(self) -> tuple[int, ...]:
        return self.aval.shape

    @property
    def dtype(self) -> str:
        return self.aval.dtype

    @property
    def ndim(self) -> int:
        return self.aval.ndim

    def __repr__(self) -> str:
        return f"Var({self.aval})"


@dataclass(frozen=True, slots=True)
class Literal(_Operators):
    """A scalar constant written into the IR. It is weakly typed: it takes the dtype of
    the arrays it meets, as a Python number does in numpy and JAX."""

    value: bool | int | float
    dtype: str

    @property
    def aval(self) -> ShapedArray:
        return ShapedArray((), self.dtype)

    def __repr__(self) -> str:
        return repr(self.value)


Atom = Var | Literal


def literal(value: bool | int | float) -> Literal:
    if isinstance(value, bool):
        return Literal(value, "bool")
    if isinstance(value, int):
        if value not in INT64_RANGE:
            raise EngineError(BAD_PARAM, "an integer constant does not fit in 64 bits")
        return Literal(value, "int64")
    return Literal(float(value), DEFAULT_FLOAT)


def as_atom(value: Any) -> Atom:
    if isinstance(value, (Var, Literal)):
        return value
    if isinstance(value, (bool, int, float)):
        return literal(value)
    raise EngineError(BAD_PARAM, f"expected an array or a number, got {describe(value)}")


def _holds_array(value: Any) -> bool:
    return isinstance(value, (Var, Literal)) or isinstance(value, (list, tuple)) and any(map(_holds_array, value))


def describe(value: Any) -> str:
    """A value as a user would name it in a message: arrays by their shape, never by the
    IR's Vars (a parameter that must be a constant can be handed an array)."""
    if isinstance(value, (list, tuple)) and _holds_array(value):
        return f"a {type(value).__name__} holding arrays"
    if isinstance(value, (Var, Literal)):
        return f"an array of shape {list(value.aval.shape)}" if value.aval.shape else "a scalar"
    return "..." if value is Ellipsis else repr(value)


@dataclass(frozen=True, slots=True)
class Origin:
    """The operation the user wrote that an equation computes, or helps compute the
    derivative of, and where they wrote it (node id, source offset): an error raised while
    the equation runs is told in these terms, not in the primitives the user never wrote."""

    operation: str
    location: str | None = None
    in_derivative: bool = False

    def derivative(self) -> Origin:
        return self if self.in_derivative else Origin(self.operation, self.location, True)

    def __str__(self) -> str:
        return f"the derivative of {self.operation}" if self.in_derivative else self.operation


@dataclass(frozen=True, eq=False, slots=True)
class Equation:
    primitive: Primitive
    inputs: tuple[Atom, ...]
    params: tuple[tuple[str, Any], ...]
    output: Var
    origin: Origin

    @property
    def kwargs(self) -> dict[str, Any]:
        return dict(self.params)

    @property
    def location(self) -> str | None:
        return self.origin.location


@dataclass(frozen=True, eq=False)
class Function:
    """A typed straight-line program with named inputs and one or more outputs."""

    inputs: tuple[Var, ...]
    input_names: tuple[str, ...]
    equations: tuple[Equation, ...]
    outputs: tuple[Atom, ...]
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def output(self) -> Atom:
        return self.outputs[0]

    # Measured about 290 bytes an equation (the equation, its output Var and params) for
    # transformed functions, whose equations are made fresh.
    BYTES_PER_EQUATION = 450

    @property
    def approximate_bytes(self) -> int:
        return self.BYTES_PER_EQUATION * (len(self.equations) + len(self.inputs) + 1)

    @cached_property
    def array_sizes(self) -> tuple[int, ...]:
        """Elements of each array it computes with, from shapes alone: its inputs, then each
        equation's output (the bounds of its work, its pattern and its trace start here)."""
        return tuple(v.aval.size for v in self.inputs) + tuple(e.output.aval.size for e in self.equations)

    @cached_property
    def floating_positions(self) -> tuple[int, ...]:
        """The positions of its differentiable (floating) inputs: what wrt means when not given."""
        return tuple([i for i, v in enumerate(self.inputs) if v.aval.is_float])

    @property
    def input_avals(self) -> dict[str, ShapedArray]:
        return {name: var.aval for name, var in zip(self.input_names, self.inputs)}

    @cached_property
    def canonical_text(self) -> str:
        names: dict[Var, str] = {}

        def name(atom: Atom) -> str:
            if isinstance(atom, Literal):
                return f"{atom.value!r}:{atom.dtype}"
            if atom not in names:
                names[atom] = f"%{len(names)}"
            return names[atom]

        lines = ["in " + ", ".join(f"{n}={name(v)}:{v.aval}" for n, v in zip(self.input_names, self.inputs))]
        for eqn in self.equations:
            params = ", ".join(f"{k}={v!r}" for k, v in eqn.params)
            args = ", ".join(name(a) for a in eqn.inputs)
            lines.append(
                f"{name(eqn.output)}:{eqn.output.aval} = {eqn.primitive.name}({args}{'; ' + params if params else ''})"
            )
        lines.append("out " + ", ".join(name(o) for o in self.outputs))
        return "\n".join(lines)

    @cached_property
    def key(self) -> str:
        """A digest of the canonical text: functions that compute the same have equal keys,
        whatever built them."""
        return hashlib.sha256(self.canonical_text.encode()).hexdigest()

    @property
    def origins(self) -> tuple[Origin, ...]:
        return tuple(eqn.origin for eqn in self.equations)

    @cached_property
    def _identity(self) -> tuple[str, str]:
        """The key, and a digest of where the user wrote each equation: equality, which the
        caches of transforms and plans key on, asks for both, so that a gradient cached for
        one request's source never reports its errors at another's."""
        return self.key, hashlib.sha256("\n".join(map(repr, self.origins)).encode()).hexdigest()

    @cached_property
    def _hash(self) -> int:
        return hash(self._identity)

    def __hash__(self) -> int:
        # Every cache lookup hashes its Function: once per function, not once per lookup.
        return self._hash

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Function) and self._identity == other._identity

    def __str__(self) -> str:
        return self.canonical_text

    def __getstate__(self):
        state = dict(self.__dict__)
        for derived in ("canonical_text", "key", "_identity", "_hash"):
            state.pop(derived, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
