"""Recording functions: a `Builder` collects the equations that the ops called while it is
current append, inferring each output's shape and dtype as it goes; `trace` builds a
Function from a Python callable (JAX's sense of tracing), `inline` replays one into the
current builder. `engine.trace`, by contrast, reports a built function's values and adjoints."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from engine import backend
from engine.errors import LIMIT, SHAPE, EngineError
from engine.evaluation import evaluate_equation, literal_array
from engine.ir import Atom, Equation, Function, Literal, Origin, ShapedArray, Var, as_atom

if TYPE_CHECKING:
    from engine.primitive import Primitive


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
        origin = self.origin or Origin(primitive.name)
        if not aval.shape and all(isinstance(a, Literal) for a in inputs):
            return _fold(primitive, inputs, params, aval, origin)
        if self.max_equations is not None and len(self.equations) >= self.max_equations:
            raise EngineError(LIMIT, f"the function grew past {self.max_equations:,} operations", self.location)
        out = Var(aval)
        eqn = Equation(primitive, inputs, tuple(sorted(params.items())), out, origin)
        self.equations.append(eqn)
        if self.on_bind is not None:
            self.on_bind(eqn)
        return out

    def function(self, inputs: Sequence[Var], names: Sequence[str], outputs: Sequence[Any]) -> Function:
        return Function(tuple(inputs), tuple(names), tuple(self.equations), tuple(as_atom(o) for o in outputs))


def _fold(primitive: Primitive, inputs: tuple[Literal, ...], params: dict[str, Any], aval: ShapedArray, origin: Origin):
    """Compute a scalar made only of constants now, so rules like `2 * 1.0` leave no
    equation behind."""
    xp = backend.host()
    value = evaluate_equation(primitive, xp, [literal_array(xp, a) for a in inputs], params, origin, aval.dtype)
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
