"""Programs: one `def f(...)` in a small Python subset, run define-by-run.

The function runs on the concrete inputs while its operations are recorded: each
equation is computed as soon as it is recorded, so `if`, `while` and `for` decide on real
values and the IR is the path actually taken (as in PyTorch's autograd). Expressions
inside are evaluated by the expression front-end's `Evaluator`; this module adds
statements, variables and the step budget.
"""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from engine import backend
from engine.errors import (
    BAD_INPUT,
    BAD_PARAM,
    LIMIT,
    SHAPE,
    SYNTAX,
    TOO_LARGE,
    UNKNOWN_NAME,
    UNKNOWN_OP,
    EngineError,
)
from engine.evaluation import evaluate_equation, literal_array
from engine.frontends.expression import Evaluator, unknown_name
from engine.frontends.inputs import as_array, aval_of, input_pointer
from engine.frontends.source import Source, parse
from engine.frontends.syntax import BINARY_OPERATORS, Checker, refused, reserved
from engine.ir import Equation, Function, Literal, Var, describe
from engine.limits import DEFAULT_LIMITS, Limits
from engine.tracing import Builder, building

_LOOPS = (ast.While, ast.For)


def from_program(source: str, inputs: Mapping[str, Any], limits: Limits = DEFAULT_LIMITS) -> Function:
    located, definition, assigned = _parse(source, limits)
    parameters = [argument.arg for argument in definition.args.args]
    for argument in definition.args.args:
        if argument.arg not in inputs:
            raise EngineError(
                BAD_INPUT,
                f"the parameter {argument.arg!r} of {definition.name} has no input; give "
                f"inputs for {', '.join(parameters)}",
                located.of(argument),
            )
    for name in inputs:
        if name not in parameters:
            raise EngineError(
                BAD_INPUT,
                f"the input {name!r} is not a parameter of {definition.name}; its "
                f"parameters are {', '.join(parameters) or 'none'}",
                input_pointer(name),
            )
    runner = _Runner(located, limits, assigned)
    with building(runner.builder):
        # The function's inputs are the Vars bound at the call: the body may rebind a
        # parameter's name (`x = x * 2`, `x += 1`), which must not change what the input is.
        arguments = []
        for name in parameters:
            array = as_array(name, inputs[name])
            runner.variables[name] = var = Var(aval_of(array))
            runner.values[var] = array
            runner.live_elements += array.size
            arguments.append(var)
        output = runner.run(definition)
        return runner.builder.function(arguments, parameters, [output])


def check_program(source: str, limits: Limits = DEFAULT_LIMITS) -> list[str]:
    """Parse and check a program without running it; returns its parameters' names."""
    _, definition, _ = _parse(source, limits)
    return [argument.arg for argument in definition.args.args]


# ---- the static check: the whole function, every branch ----


def _parse(source: str, limits: Limits) -> tuple[Source, ast.FunctionDef, set[str]]:
    """The checked definition and the names it assigns anywhere."""
    located, tree = parse(source, mode="exec", limits=limits)
    body = tree.body
    if len(body) != 1 or not isinstance(body[0], ast.FunctionDef):
        misplaced = body[1] if body and isinstance(body[0], ast.FunctionDef) else body[0] if body else None
        raise EngineError(
            SYNTAX,
            "a program is one function definition, def f(x): ..., and nothing else",
            located.of(misplaced) if misplaced else located.at_offset(0),
        )
    definition = body[0]
    parameters = _check_signature(definition, located)
    checker = Checker(located, program=True)
    assigned: set[str] = set()
    statements = definition.body
    if isinstance(statements[0], ast.Expr) and isinstance(statements[0].value, ast.Constant):
        if isinstance(statements[0].value.value, str):  # a docstring
            statements = statements[1:]
    stack = [(statement, False) for statement in reversed(statements)]
    while stack:
        statement, in_loop = stack.pop()
        targets, expressions, blocks = _parts(statement, in_loop, located)
        for target in targets:
            for name in target.elts if isinstance(target, (ast.Tuple, ast.List)) else [target]:
                _check_name(name.id, located.of(name))
                assigned.add(name.id)
        checker.run(expressions)
        inner = in_loop or isinstance(statement, _LOOPS)
        stack.extend((child, inner) for block in reversed(blocks) for child in reversed(block))
    for name in checker.loaded:
        if name.id not in parameters and name.id not in assigned:
            raise unknown_name(name.id, [*parameters, *sorted(assigned)], "parameters and variables", located.of(name))
    return located, definition, assigned


def _check_signature(definition: ast.FunctionDef, source: Source) -> list[str]:
    arguments = definition.args
    refusals = [
        (definition.decorator_list, "decorators"),
        (arguments.posonlyargs, "positional-only parameters"),
        ([arguments.vararg] if arguments.vararg else [], "*args"),
        (arguments.kwonlyargs, "keyword-only parameters"),
        ([arguments.kwarg] if arguments.kwarg else [], "**kwargs"),
        (arguments.defaults, "default values"),
        ([a.annotation for a in arguments.args if a.annotation], "type annotations"),
        ([definition.returns] if definition.returns else [], "type annotations"),
    ]
    for nodes, what in refusals:
        if nodes:
            raise EngineError(
                SYNTAX,
                f"{what} cannot be used in a program; parameters are plain names, each bound to the input of that name",
                source.of(nodes[0]),
            )
    names: list[str] = []
    for argument in arguments.args:
        _check_name(argument.arg, source.of(argument))
        if argument.arg in names:
            raise EngineError(SYNTAX, f"the parameter name {argument.arg!r} is given twice", source.of(argument))
        names.append(argument.arg)
    return names


def _check_name(name: str, location: str) -> None:
    """A name a program binds (a parameter, an assignment's or a loop's target)."""
    if reserved(name):
        raise EngineError(SYNTAX, f"names that start with '__' (like {name!r}) are not allowed", location)
    if name == "range":
        # Python would then call the bound value in `for i in range(n)`; the loop keeps its meaning here.
        raise EngineError(SYNTAX, "'range' names the loop's range(...) and cannot be bound; choose another name",
                          location)  # fmt: skip


def _parts(statement: ast.stmt, in_loop: bool, source: Source):
    """Check one statement's own form; returns its assignment targets, its expressions
    (each with whether it is a for loop's range call) and its blocks of statements."""
    location = source.of(statement)
    if isinstance(statement, ast.Assign):
        for target in statement.targets:
            _check_target(target, source)
        return statement.targets, [(statement.value, False)], []
    if isinstance(statement, ast.AugAssign):
        _check_target(statement.target, source, unpacking=False)
        if type(statement.op) not in BINARY_OPERATORS:
            raise EngineError(UNKNOWN_OP, "augmented assignment takes += -= *= /= **= or @=", location)
        return [statement.target], [(statement.value, False)], []
    if isinstance(statement, ast.If):
        return [], [(statement.test, False)], [statement.body, statement.orelse]
    if isinstance(statement, _LOOPS) and statement.orelse:
        raise EngineError(SYNTAX, "else after a loop cannot be used in a program", source.of(statement.orelse[0]))
    if isinstance(statement, ast.While):
        return [], [(statement.test, False)], [statement.body]
    if isinstance(statement, ast.For):
        _check_target(statement.target, source, unpacking=False)
        loop = statement.iter
        if not (isinstance(loop, ast.Call) and isinstance(loop.func, ast.Name) and loop.func.id == "range"):
            raise EngineError(SYNTAX, "a for loop runs over range(...): for i in range(n)", source.of(loop))
        if not 1 <= len(loop.args) <= 3 or loop.keywords:
            raise EngineError(
                SYNTAX,
                "range takes one to three integers: range(stop), range(start, stop) or range(start, stop, step)",
                source.of(loop),
            )
        return [statement.target], [(loop, True)], [statement.body]
    if isinstance(statement, (ast.Break, ast.Continue)) and not in_loop:
        keyword = "break" if isinstance(statement, ast.Break) else "continue"
        raise EngineError(SYNTAX, f"{keyword} outside a loop", location)
    if isinstance(statement, ast.Return) and statement.value is None:
        raise EngineError(SYNTAX, "return needs a value: the function's one output array", location)
    if isinstance(statement, ast.Return):
        return [], [(statement.value, False)], []
    if isinstance(statement, (ast.Break, ast.Continue, ast.Pass)):
        return [], [], []
    if isinstance(statement, ast.Expr):
        if isinstance(statement.value, (ast.Yield, ast.YieldFrom, ast.Await)):
            raise refused(statement.value, source, "a program")
        raise EngineError(SYNTAX, "an expression on its own has no effect; assign it to a name or return it", location)
    raise refused(statement, source, "a program")


def _check_target(target: ast.expr, source: Source, *, unpacking: bool = True) -> None:
    names = target.elts if unpacking and isinstance(target, (ast.Tuple, ast.List)) else [target]
    if not all(isinstance(name, ast.Name) for name in names):
        raise EngineError(
            SYNTAX,
            "only names can be assigned to (arrays cannot be changed in place; build a new "
            "one with where, concatenate or stack)",
            source.of(target),
        )


# ---- running ----


class _Break:
    pass


class _Continue:
    pass


class _Return:
    def __init__(self, value: Any):
        self.value = value


class _Runner(Evaluator):
    def __init__(self, source: Source, limits: Limits, assigned: set[str]):
        super().__init__(source, Builder(max_equations=limits.max_nodes, on_bind=self._compute))
        self.limits = limits
        self.assigned = assigned
        self.variables: dict[str, Any] = {}
        # The concrete value of every Var recorded and still reachable, and their elements.
        self.values: dict[Var, Any] = {}
        self.live_elements = 0
        self.steps = 0
        self._statements = {
            ast.Assign: self._assign,
            ast.AugAssign: self._augmented_assign,
            ast.If: self._if,
            ast.While: self._while,
            ast.For: self._for,
            ast.Return: lambda node: _Return(self.output(node.value)),
            ast.Break: lambda node: _Break,
            ast.Continue: lambda node: _Continue,
            ast.Pass: lambda node: None,
            ast.Expr: lambda node: None,  # the docstring
        }

    def _compute(self, equation: Equation) -> None:
        size = equation.output.aval.size
        if size > self.limits.max_intermediate_elements:
            raise EngineError(
                TOO_LARGE,
                f"{equation.origin} would make an array of {size:,} elements; the "
                f"limit is {self.limits.max_intermediate_elements:,}",
                equation.location,
            )
        xp = backend.host()
        arguments = [self.values[a] if isinstance(a, Var) else literal_array(xp, a) for a in equation.inputs]
        self.values[equation.output] = evaluate_equation(
            equation.primitive, xp, arguments, equation.kwargs, equation.origin, equation.output.aval.dtype
        )
        self.live_elements += size
        if self.live_elements > self.limits.max_live_elements:
            raise EngineError(
                TOO_LARGE,
                f"the program holds {self.live_elements:,} array elements at once here; the limit is "
                f"{self.limits.max_live_elements:,} (keep fewer large arrays alive)",
                equation.location,
            )

    def _forget_unreachable(self) -> None:
        """Drop the values no name can reach any more. Called between statements, where no
        expression is half evaluated, so a value is needed only if a variable holds it."""
        reachable: dict[Var, Any] = {}
        pending = list(self.variables.values())
        while pending:
            held = pending.pop()
            if isinstance(held, Var) and held in self.values:
                reachable[held] = self.values[held]
            elif isinstance(held, (list, tuple)):
                pending.extend(held)
        self.values = reachable
        self.live_elements = sum(math.prod(np.shape(value)) for value in reachable.values())

    # ---- names and values ----

    def holds_value(self, name: str) -> bool:
        return name in self.variables

    def lookup(self, node: ast.Name) -> Any:
        if node.id in self.variables:
            return self.variables[node.id]
        if node.id in self.assigned:
            raise EngineError(
                UNKNOWN_NAME,
                f"{node.id!r} has no value here: on the path this run took, it was not assigned before this point",
                self.source.of(node),
            )
        raise unknown_name(node.id, list(self.variables), "variables", self.source.of(node))

    def concrete(self, value: Var, node: ast.AST, what: str) -> Any:
        array = np.asarray(self.values[value])
        if array.shape:
            raise EngineError(
                SHAPE,
                f"{what} must be a scalar, but this one has shape {list(array.shape)}; reduce "
                "it first, e.g. with sum(...), max(...) or norm(...)",
                self.source.of(node),
            )
        return array.item()

    def truth(self, value: Any, node: ast.AST) -> bool:
        if isinstance(value, Var):
            value = self.concrete(value, node, "a condition")
        elif isinstance(value, Literal):
            value = value.value
        if not isinstance(value, (int, float)):
            raise EngineError(BAD_PARAM, f"a condition must be a scalar, got {describe(value)}", self.source.of(node))
        return bool(value)

    # ---- statements ----

    def run(self, definition: ast.FunctionDef) -> Any:
        signal = self._block(definition.body)
        if not isinstance(signal, _Return):
            raise EngineError(
                SYNTAX, f"{definition.name} ended without returning a value", self.source.of(definition.body[-1])
            )
        return signal.value

    def _block(self, statements: list[ast.stmt]) -> Any:
        for statement in statements:
            self._step(statement)
            signal = self._statements[type(statement)](statement)
            if signal is not None:
                return signal
        return None

    def _step(self, node: ast.AST) -> None:
        if self.live_elements > self.limits.max_live_elements // 2:
            self._forget_unreachable()
        self.steps += 1
        if self.steps > self.limits.max_steps:
            raise EngineError(
                LIMIT,
                f"the step budget of {self.limits.max_steps:,} statements and loop iterations "
                "was exceeded; does a loop never end?",
                self.source.of(node),
            )

    def _assign(self, node: ast.Assign) -> None:
        value = self.value(node.value)
        for target in node.targets:
            if isinstance(target, ast.Name):
                self.variables[target.id] = value
                continue
            if not isinstance(value, (list, tuple)) or len(value) != len(target.elts):
                count = len(target.elts)
                raise EngineError(
                    BAD_PARAM,
                    f"cannot unpack {describe(value)} into {count} names; only a tuple "
                    f"or list of {count} values can be",
                    self.source.of(target),
                )
            for name, item in zip(target.elts, value):
                self.variables[name.id] = item

    def _augmented_assign(self, node: ast.AugAssign) -> None:
        current, change = self.array(node.target), self.array(node.value)
        location = self._operator_location(node, node.target, node.value, node.op)
        self.variables[node.target.id] = self.apply(BINARY_OPERATORS[type(node.op)], [current, change], {}, location)

    def _if(self, node: ast.If) -> Any:
        return self._block(node.body if self.truth(self.value(node.test), node.test) else node.orelse)

    def _while(self, node: ast.While) -> Any:
        while self.truth(self.value(node.test), node.test):
            signal = self._block(node.body)
            if signal is _Break or isinstance(signal, _Return):
                return None if signal is _Break else signal
            self._step(node)
        return None

    def _for(self, node: ast.For) -> Any:
        bounds = [self.integer(bound, "a range() bound", integral_floats=True) for bound in node.iter.args]
        if len(bounds) == 3 and bounds[2] == 0:
            raise EngineError(BAD_PARAM, "range() step cannot be zero", self.source.of(node.iter))
        for counter in range(*bounds):
            self.variables[node.target.id] = counter
            signal = self._block(node.body)
            if signal is _Break or isinstance(signal, _Return):
                return None if signal is _Break else signal
            self._step(node)
        return None
