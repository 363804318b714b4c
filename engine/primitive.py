"""What a primitive is: an operation with every rule that defines it, side by side, and the
registry of primitives by name. The primitives themselves are in `engine.primitives`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from engine.ir import Atom, ShapedArray, as_atom
from engine.tracing import current_builder


class _Dense:
    """The sparsity of an input every output element may depend on, all of it."""

    def __repr__(self) -> str:
        return "DENSE"


DENSE = _Dense()

# A sparsity pattern past this many entries (a rule's matrix, or the pattern of any array
# on the way) is not worth its memory: a rule that would build a larger matrix says DENSE,
# and engine.sparsity gives up on a pattern that grows past it.
MAX_PATTERN_ENTRIES = 4_000_000


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
    returning an output batched on axis 0 (None for a primitive without inputs).

    sparsity(out, *inputs, **params), on ShapedArrays, gives for each input which of its
    elements each output element may depend on: a boolean scipy.sparse matrix of shape
    (out.size, input.size) over the flattened (C order) arrays, or DENSE. A primitive without
    the rule is DENSE in every input, which is always sound; an input of zero derivative
    (a comparison's, sign's) depends on nothing: an empty matrix.

    Called on Vars and numbers, a primitive records itself in the current builder, after
    prepare(args, params) has promoted dtypes and normalised parameters; when
    is_identity(x, **params) says the call would return its operand unchanged, no equation
    is recorded. A linear primitive's JVP is the primitive itself applied to the tangent.
    """

    def __init__(
        self,
        name: str,
        *,
        impl: Callable,
        shape: Callable,
        jvp: Sequence[Callable | None] = (),
        vjp: Sequence[Callable | None] | Callable[[int], Callable] = (),
        batch: Callable | None = None,
        prepare: Callable | None = None,
        is_identity: Callable | None = None,
        linear: bool = False,
        sparsity: Callable | None = None,
    ):
        self.name = name
        self.impl = impl
        self.shape = shape
        self.jvp = tuple(jvp)
        self.vjp = vjp if callable(vjp) else tuple(vjp)
        self.batch = batch
        self.prepare = prepare
        self.is_identity = is_identity
        self.linear = linear
        self.sparsity = sparsity

    def __repr__(self) -> str:
        return f"<primitive {self.name}>"

    def __reduce__(self):
        return (primitive_by_name, (self.name,))

    @property
    def differentiable(self) -> bool:
        """Whether it has a derivative that is not zero everywhere: sign, floor and the
        comparisons, whose rules are all None, do not."""
        rules = [*self.jvp, *(() if callable(self.vjp) else self.vjp)]
        return self.linear or callable(self.vjp) or any(rule is not None for rule in rules)

    def jvp_rule(self, position: int) -> Callable | None:
        return self.jvp[position] if position < len(self.jvp) else None

    def vjp_rule(self, position: int) -> Callable | None:
        if callable(self.vjp):
            return self.vjp(position)
        return self.vjp[position] if position < len(self.vjp) else None

    def dependencies(self, out: ShapedArray, inputs: Sequence[ShapedArray], params: dict[str, Any]) -> list:
        """Per input, its sparsity pattern (see the class) or DENSE."""
        if self.sparsity is None:
            return [DENSE] * len(inputs)
        return list(self.sparsity(out, *inputs, **params))

    def __call__(self, *args: Any, **params: Any) -> Atom:
        if self.prepare is not None:
            args, params = self.prepare(list(args), params)
        if self.is_identity is not None and self.is_identity(as_atom(args[0]), **params):
            return as_atom(args[0])
        return current_builder().bind(self, args, params)

    def bind(self, *args: Any, **params: Any) -> Atom:
        """Record the primitive on operands already prepared (a rule's own)."""
        return current_builder().bind(self, args, params)


PRIMITIVES: dict[str, Primitive] = {}


def register(primitive: Primitive) -> Primitive:
    if primitive.name in PRIMITIVES:
        raise ValueError(f"primitive {primitive.name} defined twice")
    PRIMITIVES[primitive.name] = primitive
    return primitive


def primitive_by_name(name: str) -> Primitive:
    """A primitive as unpickled (a function sent to a worker): the registry is full by then,
    since importing this module imports the engine package, and it every primitive."""
    return PRIMITIVES[name]
