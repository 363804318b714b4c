"""Random programs in the documented subset against the same source run as plain Python on
PyTorch tensors: value, gradient and Hessian, or the same refusal.

The programs rebind parameters, assign in one branch only, unpack tuples, augment, nest
`if/elif/else`, `for ... in range` and counted `while` loops with `break`/`continue`, and return
early: the ways a name gets bound that hand-picked cases miss. The test compiles its own
generated reference code; the service never does.
"""

from __future__ import annotations

import ast

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import api
from engine.errors import UNKNOWN_NAME, EngineError
from engine.frontends import from_program

PARAMETERS = ("x", "y", "s")  # two vectors and a scalar
LOCALS = ("a", "b", "c")
CONSTANTS = ("0.5", "-1.25", "2.0", "0.75", "3")
THRESHOLDS = ("0.37", "-0.41", "1.3", "-2.7")
MAX_DEPTH = 3


def _tensor(value):
    return value if isinstance(value, torch.Tensor) else torch.tensor(value, dtype=torch.float64)


def _unary(function):
    return lambda value: function(_tensor(value))


# The program's vocabulary, as PyTorch spells it (constants and loop counters become tensors).
TORCH_NAMES = {
    "sin": _unary(torch.sin),
    "cos": _unary(torch.cos),
    "tanh": _unary(torch.tanh),
    "sum": _unary(torch.sum),
    "detach": _unary(torch.Tensor.detach),
    "maximum": lambda a, b: torch.maximum(_tensor(a), _tensor(b)),
    "where": lambda condition, a, b: torch.where(_tensor(condition).bool(), _tensor(a), _tensor(b)),
}


class _Scope:
    """Names usable at a point of the program: parameters always, locals once assigned
    textually before (maybe only on some paths: then the run may refuse them), loop counters
    inside their loop."""

    def __init__(self, assigned=None, counters=(), depth=0, in_loop=False):
        self.assigned = set() if assigned is None else assigned  # shared with inner blocks
        self.counters = tuple(counters)
        self.depth = depth
        self.in_loop = in_loop

    def inner(self, counter=None, loop=False):
        counters = self.counters + ((counter,) if counter else ())
        return _Scope(self.assigned, counters, self.depth + 1, self.in_loop or loop)

    def names(self):
        return [*PARAMETERS, *sorted(self.assigned), *self.counters]


@st.composite
def expressions(draw, scope: _Scope, depth: int = 0):
    leaf = st.sampled_from(scope.names() * 3 + list(CONSTANTS))
    if depth >= 3:
        return draw(leaf)

    def sub() -> str:
        return draw(expressions(scope, depth + 1))

    form = draw(st.integers(0, 9))
    if form <= 2:
        return draw(leaf)
    if form == 3:
        return f"{draw(st.sampled_from(['sin', 'cos', 'tanh', 'detach']))}({sub()})"
    if form == 4:
        return f"({sub()} {draw(st.sampled_from(['+', '-']))} {sub()})"
    if form == 5:
        # Products through tanh keep magnitudes bounded however often a loop repeats them.
        return f"({sub()} * tanh({sub()}))"
    if form == 6:
        return f"sum({sub()})"
    if form == 7:
        return f"maximum({sub()}, {sub()})"
    if form == 8:
        return f"where({sub()} > {draw(st.sampled_from(THRESHOLDS))}, {sub()}, {sub()})"
    return f"-{sub()}"


@st.composite
def conditions(draw, scope: _Scope):
    def single() -> str:
        comparison = draw(st.sampled_from(["<", ">"]))
        return f"sum({draw(expressions(scope, 1))}) {comparison} {draw(st.sampled_from(THRESHOLDS))}"

    form = draw(st.integers(0, 3))
    if form == 0:
        return f"{single()} and {single()}"
    if form == 1:
        return f"not {single()}"
    return single()


def _indent(lines):
    return ["    " + line for line in lines]


@st.composite
def blocks(draw, scope: _Scope, size: int):
    lines = []
    for _ in range(size):
        lines += draw(statements(scope))
    return lines or ["pass"]


@st.composite
def statements(draw, scope: _Scope):
    kinds = ["assign", "assign", "augment", "unpack"]
    if scope.depth < MAX_DEPTH:
        kinds += ["if", "for", "while"]
    if scope.in_loop:
        kinds += ["break", "continue"]
    kinds.append("return")
    kind = draw(st.sampled_from(kinds))
    if kind == "assign":
        value = draw(expressions(scope))
        target = draw(st.sampled_from([*PARAMETERS, *LOCALS]))
        scope.assigned.add(target) if target in LOCALS else None
        return [f"{target} = {value}"]
    if kind == "augment":
        target = draw(st.sampled_from([name for name in scope.names() if name not in scope.counters]))
        operator = draw(st.sampled_from(["+=", "-=", "*="]))
        value = draw(expressions(scope))
        return [f"{target} {operator} " + (f"tanh({value})" if operator == "*=" else value)]
    if kind == "unpack":
        first, second = draw(st.permutations([*PARAMETERS[:2], *LOCALS]))[:2]
        values = draw(expressions(scope)), draw(expressions(scope))
        scope.assigned.update(name for name in (first, second) if name in LOCALS)
        return [f"{first}, {second} = {values[0]}, {values[1]}"]
    if kind in ("break", "continue"):
        return [f"if {draw(conditions(scope))}:", f"    {kind}"]
    if kind == "return":
        return [f"if {draw(conditions(scope))}:", f"    return sum(1.0 * ({draw(expressions(scope))}))"]
    if kind == "if":
        lines = [f"if {draw(conditions(scope))}:", *_indent(draw(blocks(scope.inner(), draw(st.integers(1, 3)))))]
        if draw(st.booleans()):
            lines += [f"elif {draw(conditions(scope))}:", *_indent(draw(blocks(scope.inner(), 1)))]
        if draw(st.booleans()):
            lines += ["else:", *_indent(draw(blocks(scope.inner(), draw(st.integers(1, 2)))))]
        return lines
    counter = f"{'i' if kind == 'for' else 'n'}{scope.depth}"
    body = draw(blocks(scope.inner(counter, loop=True), draw(st.integers(1, 3))))
    # Names bound in a body are bound afterwards only when it ran: the scope keeps them as
    # maybe-bound, and a path that skipped them must be refused like Python refuses it.
    if kind == "for":
        return [f"for {counter} in range({draw(st.integers(0, 3))}):", *_indent(body)]
    bound = draw(st.integers(0, 3))
    extra = f" and {draw(conditions(scope))}" if draw(st.booleans()) else ""
    return [f"{counter} = 0", f"while {counter} < {bound}{extra}:", f"    {counter} += 1", *_indent(body)]


@st.composite
def programs(draw):
    scope = _Scope()
    body = draw(blocks(scope, draw(st.integers(1, 5))))
    body.append(f"return sum(1.0 * ({draw(expressions(scope))}))")
    return "def f(x, y, s):\n" + "\n".join(_indent(body)) + "\n"


class _Rebinding(ast.NodeTransformer):
    """`x += v` as `x = x + v`: in a program arrays are never changed in place, while PyTorch's
    `+=` would write into a leaf tensor (and into every name bound to it)."""

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.Assign:
        load = ast.Name(node.target.id, ast.Load())
        return ast.Assign([node.target], ast.BinOp(load, node.op, node.value), lineno=node.lineno)


def _reference(source: str):
    tree = ast.fix_missing_locations(_Rebinding().visit(ast.parse(source)))
    namespace = dict(TORCH_NAMES)
    exec(compile(tree, "<generated>", "exec"), namespace)  # test-generated code, never a user's
    return namespace["f"]


def _torch_results(source: str, inputs: dict[str, np.ndarray]):
    function = _reference(source)
    tensors = tuple(torch.tensor(inputs[name], requires_grad=True) for name in PARAMETERS)
    value = _tensor(function(*tensors))
    if value.requires_grad:
        gradients = torch.autograd.grad(value, tensors, allow_unused=True)
    else:
        gradients = (None,) * len(tensors)
    gradient = {name: np.zeros_like(inputs[name]) if g is None else g.numpy() for name, g in zip(PARAMETERS, gradients)}
    hessian = torch.autograd.functional.hessian(lambda *ts: _tensor(function(*ts)), tensors)
    return value.detach().numpy(), gradient, hessian


def _close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=1e-9, atol=1e-9)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    programs(),
    st.lists(st.floats(-2, 2, allow_subnormal=False), min_size=7, max_size=7),
)
def test_random_program_matches_pytorch(source, numbers):
    inputs = {"x": np.array(numbers[:3]), "y": np.array(numbers[3:6]), "s": np.array(numbers[6])}
    try:
        expected_value, expected_gradient, expected_hessian = _torch_results(source, inputs)
    except UnboundLocalError:
        # Python refused a name that this path left unbound: the engine must refuse it too,
        # with its own error and the name's place, never a crash.
        try:
            from_program(source, inputs)
        except EngineError as error:
            assert error.kind == UNKNOWN_NAME, (source, error)
            assert error.location.startswith("line "), error.location
            return
        raise AssertionError(f"the engine ran a program that Python refuses:\n{source}") from None
    fn = from_program(source, inputs)
    value, gradient = api.value_and_grad(fn, inputs)
    _close(value, expected_value)
    for name in PARAMETERS:
        _close(gradient[name], expected_gradient[name])
    _, hessian = api.hessian(fn, inputs)
    for row, first in enumerate(PARAMETERS):
        for column, second in enumerate(PARAMETERS):
            _close(hessian[first][second], expected_hessian[row][column].numpy())
