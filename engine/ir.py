"""The IR: typed variables, equations ``out = primitive(inputs, params)``, and functions.

Every front-end produces a `Function`, every transformation maps a `Function` to a new one,
and the interpreter runs one. Shapes and dtypes are inferred when an equation is recorded,
so the size of everything a function will allocate is known before it runs.
"""

from __future__ import annotations

import hashlib
import math
import reprlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from engine.errors import BAD_PARAM, NUMERIC, SHAPE, EngineError

FLOAT_DTYPES = ("float32", "float64")
INT_DTYPES = ("int32", "int64")
DTYPES = (*FLOAT_DTYPES, *INT_DTYPES, "bool")
DEFAULT_FLOAT = "float64"


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


class _Operators:
    """Operator overloads, so derivative rules and front-ends read like numpy code."""

    __slots__ = ()

    def __add__(self, other):
        return _ops().add(self, other)

    def __radd__(self, other):
        return _ops().add(other, self)

    def __sub__(self, other):
        return _ops().subtract(self, other)

    def __rsub__(self, other):
        return _ops().subtract(other, self)

    def __mul__(self, other):
        return _ops().multiply(self, other)

    def __rmul__(self, other):
        return _ops().multiply(other, self)

    def __truediv__(self, other):
        return _ops().divide(self, other)

    def __rtruediv__(self, other):
        return _ops().divide(other, self)

    def __pow__(self, other):
        return _ops().power(self, other)

    def __rpow__(self, other):
        return _ops().power(other, self)

    def __matmul__(self, other):
        return _ops().matmul(self, other)

    def __rmatmul__(self, other):
        return _ops().matmul(other, self)

    def __neg__(self):
        return _ops().negative(self)

    def __pos__(self):
        return self

    def __getitem__(self, index):
        return _ops().getitem(self, index=index)

    def __lt__(self, other):
        return _ops().less(self, other)

    def __le__(self, other):
        return _ops().less_equal(self, other)

    def __gt__(self, other):
        return _ops().greater(self, other)

    def __ge__(self, other):
        return _ops().greater_equal(self, other)

    @property
    def T(self):  # noqa: N802 - numpy's spelling
        return _ops().transpose(self)


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


def _ops():
    from engine import ops

    return ops


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


_INT64_RANGE = range(-(2**63), 2**63)


def literal(value: bool | int | float) -> Literal:
    if isinstance(value, bool):
        return Literal(value, "bool")
    if isinstance(value, int):
        if value not in _INT64_RANGE:
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

    def __hash__(self) -> int:
        return hash(self._identity)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Function) and self._identity == other._identity

    def __str__(self) -> str:
        return self.canonical_text

    def __getstate__(self):
        state = dict(self.__dict__)
        for derived in ("canonical_text", "key", "_identity"):
            state.pop(derived, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)


class Primitive:
    """An operation with every rule that defines it, side by side.

    impl(xp, *arrays, **params) computes it on an array namespace; shape(*avals, **params)
    infers the output's ShapedArray (raising EngineError when the inputs do not fit);
    jvp and vjp hold one rule per input (None: not differentiable in that input):
    jvp[i](tangent, out, *inputs, **params) is the output tangent contributed by input i,
    vjp[i](cotangent, out, *inputs, **params) is the cotangent of input i. Both are written
    with engine ops, so they can be differentiated again. A variadic primitive gives its vjp
    as a function of the input position instead. batch(inputs, batched, **params)
    computes the primitive on inputs whose flagged members carry a leading batch axis,
    returning an output batched on axis 0.
    """

    def __init__(
        self,
        name: str,
        impl: Callable,
        shape: Callable,
        jvp: Sequence[Callable | None],
        vjp: Sequence[Callable | None] | Callable[[int], Callable],
        batch: Callable,
        *,
        linear: bool = False,
    ):
        self.name = name
        self.impl = impl
        self.shape = shape
        self.jvp = tuple(jvp)
        self.vjp = vjp if callable(vjp) else tuple(vjp)
        self.batch = batch
        # A linear primitive's JVP is the primitive itself applied to the tangent.
        self.linear = linear

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"

    def __reduce__(self):
        return (_primitive_by_name, (self.name,))

    def jvp_rule(self, position: int) -> Callable | None:
        return self.jvp[position] if position < len(self.jvp) else None

    def vjp_rule(self, position: int) -> Callable | None:
        if callable(self.vjp):
            return self.vjp(position)
        return self.vjp[position] if position < len(self.vjp) else None

    def bind(self, *args: Any, **params: Any) -> Var | Literal:
        return current_builder().bind(self, args, params)


PRIMITIVES: dict[str, Primitive] = {}


def register(primitive: Primitive) -> Primitive:
    if primitive.name in PRIMITIVES:
        raise ValueError(f"primitive {primitive.name} defined twice")
    PRIMITIVES[primitive.name] = primitive
    return primitive


def _primitive_by_name(name: str) -> Primitive:
    import engine.primitives  # noqa: F401 - fills the registry

    return PRIMITIVES[name]


class Builder:
    """Records equations. Ops called while a builder is current append to it."""

    def __init__(self, *, max_equations: int | None = None, on_bind: Callable | None = None):
        self.equations: list[Equation] = []
        # What the equations recorded now are for; front-ends and transforms set it.
        self.origin: Origin | None = None
        self.max_equations = max_equations
        # Called with each new equation; the program front-end uses it to run as it records.
        self.on_bind = on_bind

    @property
    def location(self) -> str | None:
        return self.origin.location if self.origin is not None else None

    def bind(self, primitive: Primitive, args: Sequence[Any], params: dict[str, Any]) -> Atom:
        inputs = tuple(as_atom(a) for a in args)
        try:
            aval = primitive.shape(*(a.aval for a in inputs), **params)
        except EngineError as error:
            raise error.at(self.location or f"equation {len(self.equations)}") from None
        except (TypeError, ValueError) as error:
            location = self.location or f"equation {len(self.equations)}"
            raise EngineError(SHAPE, f"{self.origin or primitive.name}: {error}", location) from None
        if not aval.shape and all(isinstance(a, Literal) for a in inputs):
            try:
                return _fold(primitive, inputs, params, aval)
            except ArithmeticError as error:
                raise EngineError(NUMERIC, f"{self.origin or primitive.name} failed: {error}", self.location) from None
        if self.max_equations is not None and len(self.equations) >= self.max_equations:
            raise EngineError("limit", f"the function grew past {self.max_equations:,} operations", self.location)
        out = Var(aval)
        origin = self.origin or Origin(primitive.name)
        eqn = Equation(primitive, inputs, tuple(sorted(params.items())), out, origin)
        self.equations.append(eqn)
        if self.on_bind is not None:
            self.on_bind(eqn)
        return out

    def function(self, inputs: Sequence[Var], names: Sequence[str], outputs: Sequence[Any]) -> Function:
        return Function(tuple(inputs), tuple(names), tuple(self.equations), tuple(as_atom(o) for o in outputs))


def _fold(primitive: Primitive, inputs: tuple[Literal, ...], params: dict[str, Any], aval: ShapedArray):
    """Compute a scalar made only of constants now, so rules like `2 * 1.0` leave no
    equation behind."""
    from engine import backend, integers

    xp = backend.host()
    impl = integers.checked(primitive.impl, aval.dtype)
    with backend.quiet():
        value = impl(xp, *(xp.asarray(a.value, dtype=getattr(xp, a.dtype)) for a in inputs), **params)
    return Literal(xp.asarray(value).item(), aval.dtype)


_builder: ContextVar[Builder | None] = ContextVar("gradserve_builder", default=None)


def current_builder() -> Builder:
    builder = _builder.get()
    if builder is None:
        raise RuntimeError("engine ops are called while building a function (inside `building`)")
    return builder


@contextmanager
def building(builder: Builder | None = None) -> Iterator[Builder]:
    """Make a builder current: the ops called inside record into it."""
    builder = builder or Builder()
    token = _builder.set(builder)
    try:
        yield builder
    finally:
        _builder.reset(token)


def trace(body: Callable[..., Any], avals: dict[str, ShapedArray], **builder_options: Any) -> Function:
    """Build a Function by calling `body` on one Var per named input."""
    with building(Builder(**builder_options)) as builder:
        inputs = [Var(aval) for aval in avals.values()]
        outputs = body(*inputs)
        if not isinstance(outputs, (tuple, list)):
            outputs = (outputs,)
        return builder.function(inputs, list(avals), outputs)


def inline(fn: Function, args: Sequence[Atom]) -> list[Atom]:
    """Replay `fn`'s equations into the current builder on new inputs; returns its outputs."""
    env: dict[Var, Atom] = dict(zip(fn.inputs, args))
    builder = current_builder()
    for eqn in fn.equations:
        builder.origin = eqn.origin
        env[eqn.output] = builder.bind(eqn.primitive, [read(env, a) for a in eqn.inputs], eqn.kwargs)
    builder.origin = None
    return [read(env, o) for o in fn.outputs]


def read(env: dict[Var, Any], atom: Atom) -> Any:
    return atom if isinstance(atom, Literal) else env[atom]
