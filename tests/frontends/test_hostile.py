"""Hostile and malformed functions: each is refused with a located EngineError of the
right kind, quickly, and nothing else ever escapes (no RecursionError, MemoryError,
ValueError or TypeError), whatever text or JSON arrives."""

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine import language
from engine.errors import ARITY, GRAPH, LIMIT, SYNTAX, TOO_LARGE, UNKNOWN_NAME, UNKNOWN_OP, EngineError
from engine.frontends import Limits, build

X = {"x": np.arange(4.0)}
GENEROUS = Limits(max_source_chars=10**7, max_depth=10**6)


def program(body: str) -> dict:
    return {"program": "def f(x):\n" + "".join(f"    {line}\n" for line in body.splitlines())}


HOSTILE = [
    ({"expression": "__import__('os')"}, UNKNOWN_NAME),
    ({"expression": "__import__('os').system('true')"}, UNKNOWN_NAME),
    ({"expression": "x.__class__"}, UNKNOWN_NAME),
    ({"expression": "x.__class__.__mro__[1].__subclasses__()"}, UNKNOWN_NAME),
    ({"expression": "sum(x).__class__"}, UNKNOWN_NAME),
    ({"expression": "getattr(x, '__class__')"}, UNKNOWN_NAME),
    ({"expression": "exec('import os')"}, UNKNOWN_NAME),
    ({"expression": "globals()"}, UNKNOWN_NAME),
    ({"expression": "__builtins__"}, UNKNOWN_NAME),
    ({"expression": "(lambda: 1)()"}, SYNTAX),
    ({"expression": "[c for c in ().__class__.__base__.__subclasses__()]"}, SYNTAX),
    ({"expression": "open('f')"}, UNKNOWN_NAME),
    ({"expression": "f'{x}'"}, SYNTAX),
    ({"expression": "{'a': x}"}, SYNTAX),
    ({"expression": "x; import os"}, SYNTAX),
    ({"expression": "x.sum(*[0])"}, SYNTAX),
    ({"expression": "sum(x, **{'axis': 0})"}, SYNTAX),
    ({"expression": "(y := x)"}, SYNTAX),
    ({"expression": "sine(x)"}, UNKNOWN_NAME),
    ({"expression": "x + z"}, UNKNOWN_NAME),
    ({"expression": "x +* 2"}, SYNTAX),
    ({"expression": ""}, SYNTAX),
    ({"expression": "sin(x, x)"}, ARITY),
    ({"expression": "x // 2"}, UNKNOWN_OP),
    ({"expression": "x in x"}, UNKNOWN_OP),
    ({"expression": "1" * 5000}, SYNTAX),
    ({"expression": "2 ** " + "9" * 30}, SYNTAX),
    ({"expression": "(" * 1000 + "x" + ")" * 1000}, LIMIT),
    ({"expression": "-" * 100_000 + "x"}, TOO_LARGE),
    ({"expression": "+".join(["x"] * 5000)}, LIMIT),
    ({"expression": "x" + "[0]" * 5000}, LIMIT),
    ({"expression": "x" + ".T" * 5000}, LIMIT),
    ({"expression": "**".join(["x"] * 5000)}, LIMIT),
    ({"expression": "sin(" * 1000 + "x" + ")" * 1000}, LIMIT),
    ({"expression": "(---" * 199 + "x" + ")" * 199}, LIMIT),
    ({"expression": "[" * 1000 + "]" * 1000}, LIMIT),
    ({"expression": "x" * 30_000}, TOO_LARGE),
    (program("import os\nreturn x"), SYNTAX),
    (program("from os import system\nreturn x"), SYNTAX),
    (program("return __import__('os')"), UNKNOWN_NAME),
    (program("return x.__globals__"), UNKNOWN_NAME),
    (program("global y\nreturn x"), SYNTAX),
    (program("y = open('f')\nreturn x"), UNKNOWN_NAME),
    (program("while True:\n    pass"), LIMIT),
    (program("while x.sum() > 0:\n    x = x + 1"), LIMIT),
    (program("for i in range(10**9):\n    pass\nreturn x"), LIMIT),
    (program("y = x\nfor i in range(10**6):\n    y = y * 2\nreturn y"), LIMIT),
    (program("return " + "-" * 100_000 + "x"), TOO_LARGE),
    (program("return " + "+".join(["x"] * 5000)), LIMIT),
    (
        program(
            "if x.sum() > 0:\n"
            + "".join("    " * (i + 1) + "if x.sum() > 0:\n" for i in range(70))
            + "    " * 71
            + "return x"
        ),
        LIMIT,
    ),  # noqa: E501
    ({"program": "def f(x):\n\treturn x\n        return 2\n"}, SYNTAX),
    ({"program": "lambda x: x"}, SYNTAX),
    ({"graph": {"nodes": [{"id": "c", "op": "sin", "args": ["c"]}], "output": "c"}}, GRAPH),
    ({"graph": {"nodes": [{"id": "c", "op": "sin", "args": ["d"]}], "output": "c"}}, GRAPH),
    ({"graph": {"nodes": [{"id": "c", "op": "__import__", "args": ["os"]}], "output": "c"}}, UNKNOWN_OP),
    ({"graph": {"nodes": [{"id": "c", "op": "sin", "args": ["x", "x"]}], "output": "c"}}, ARITY),
    (
        {"graph": {"nodes": [{"id": "c", "op": "sin", "args": [json.loads("[" * 500 + "]" * 500)]}], "output": "c"}},
        GRAPH,
    ),
    ({"graph": {"nodes": [{"id": f"n{i}", "op": "sin", "args": ["x"]} for i in range(20_001)], "output": "x"}}, LIMIT),
    ({"expression": "x", "graph": {}}, "bad_input"),
    ({"python": "x"}, "bad_input"),
    ({"expression": 3}, "bad_input"),
]


@pytest.mark.parametrize(("function", "kind"), HOSTILE, ids=[f"{i}-{k}" for i, (_, k) in enumerate(HOSTILE)])
def test_hostile_functions_are_refused_with_a_located_error(function, kind):
    with pytest.raises(EngineError) as error:
        build(function, X)
    assert error.value.kind == kind, error.value
    assert error.value.location


@pytest.mark.parametrize(
    "source",
    [
        "(" * 1000 + "x" + ")" * 1000,
        "-" * 100_000 + "x",
        "+".join(["x"] * 100_000),
        "**".join(["x"] * 5000),
        "x" + "[0]" * 5000,
        "(---" * 199 + "x" + ")" * 199,
        "not " * 5000 + "x",
        "x if " * 2000 + "x" + " else x" * 2000,
    ],
)
def test_depth_is_limited_before_the_parser_even_when_limits_are_generous(source):
    """Python's parser fails on these with MemoryError or RecursionError; the lexical
    scan must stop them first, whatever max_depth is configured."""
    with pytest.raises(EngineError) as error:
        build({"expression": source}, X, GENEROUS)
    assert error.value.kind == LIMIT and error.value.location.startswith("offset ")


# ---- fuzzing: only EngineError ever comes out ----

EXPRESSION_TOKENS = [
    "x", "y", "X", " ", "(", ")", "[", "]", ",", ":", ".", "+", "-", "*", "**", "/", "@", "<", ">=", "==", "!=",
    "0", "1", "2.5", "-1", "1e308", "None", "...", "axis=", "keepdims=", ".T", ".sum()", ".reshape(", "sin(",
    "sum(", "where(", "concatenate([", "stack([", "reshape(", "dot(", "logdet(", "max(", "'s'", "lambda", "__class__",
    "not ", " and ", " if ", " else ", "\n", "\\", "#", "ß", "\t",
]  # fmt: skip
PROGRAM_TOKENS = [
    *EXPRESSION_TOKENS, "def f(x):", "\n    ", "\n        ", "return ", "while ", "for i in range(", "if ", "elif ",
    "else:", "break", "continue", "pass", " = ", " += ", "i", "y = x", "import os", "global x",
]  # fmt: skip
VALID_PROGRAM = "def f(x):\n    y = x * 2\n    while y.sum() < 10:\n        y = y * 2\n    return y\n"


def only_engine_errors(function: dict, inputs: dict) -> None:
    try:
        build(function, inputs, Limits(max_steps=2000, max_nodes=500))
    except EngineError as error:
        assert error.location, error


FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INPUTS = {"x": np.array([0.5, -1.0, 2.0]), "y": np.array(1.5), "X": np.eye(3)}


@FUZZ
@given(st.one_of(st.lists(st.sampled_from(EXPRESSION_TOKENS), max_size=25).map("".join), st.text(max_size=40)))
def test_fuzzed_expressions_only_raise_engine_errors(source):
    only_engine_errors({"expression": source}, INPUTS)


@FUZZ
@given(
    st.one_of(
        st.lists(st.sampled_from(PROGRAM_TOKENS), max_size=30).map(lambda tokens: "def f(x):\n    " + "".join(tokens)),
        st.tuples(st.integers(0, len(VALID_PROGRAM)), st.text(max_size=12)).map(
            lambda cut: VALID_PROGRAM[: cut[0]] + cut[1] + VALID_PROGRAM[cut[0] :]
        ),
    )
)
def test_fuzzed_programs_only_raise_engine_errors(source):
    only_engine_errors({"program": source}, {"x": INPUTS["x"]})


# Well-formed sources, so that fuzzing reaches the evaluator and the ops, not only the parser.
ATOMS = st.sampled_from(["x", "y", "X", "i", "0", "1", "2.5", "-1", "True", "None", "1e308", "(1 < 2)", "[]", "(2, 3)"])
CALLS = st.sampled_from([*language.FUNCTIONS, "range", "len"])
KEYWORDS = st.sampled_from(["", ", axis=0", ", axis=-1", ", axis=(0, 1)", ", keepdims=True", ", axes=(1, 0)"])
SUFFIXES = st.sampled_from([".T", ".sum()", ".mean(axis=0)", ".reshape(-1)", ".reshape(3, 1)", ".detach()", ".norm()"])
INDICES = st.sampled_from(["0", "-1", "1:", "::2", "None, ...", ":, 0", "i", "x", "0, 0, 0", "5"])


def compose(children):
    binary = st.sampled_from(["+", "-", "*", "/", "**", "@", "<", ">=", "==", "!=", "and", "or"])
    return st.one_of(
        st.tuples(children, binary, children).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(st.sampled_from(["-", "+", "not "]), children).map("".join),
        st.tuples(CALLS, st.lists(children, min_size=1, max_size=3), KEYWORDS).map(
            lambda t: f"{t[0]}({', '.join(t[1])}{t[2]})"
        ),
        st.tuples(children, SUFFIXES).map("".join),
        st.tuples(children, INDICES).map(lambda t: f"{t[0]}[{t[1]}]"),
        st.lists(children, min_size=1, max_size=3).map(lambda items: f"[{', '.join(items)}]"),
        st.tuples(children, children, children).map(lambda t: f"({t[0]} if {t[1]} else {t[2]})"),
    )


EXPRESSIONS = st.recursive(ATOMS, compose, max_leaves=8)
TARGETS = st.sampled_from(["y", "z", "x", "sum", "i"])
BLOCKS = st.deferred(
    lambda: st.lists(
        st.one_of(
            st.tuples(TARGETS, st.sampled_from([" = ", " += ", " *= "]), EXPRESSIONS).map(lambda t: ["".join(t)]),
            st.sampled_from([["break"], ["continue"], ["pass"]]),
            EXPRESSIONS.map(lambda e: [f"return {e}"]),
            st.tuples(EXPRESSIONS, BLOCKS, BLOCKS).map(
                lambda t: [f"if {t[0]}:", *indent(t[1]), "else:", *indent(t[2])]
            ),
            st.tuples(EXPRESSIONS, BLOCKS).map(lambda t: [f"while {t[0]}:", *indent(t[1])]),
            st.tuples(st.sampled_from(["3", "y", "x.sum()", "0, 5, 2", "-1"]), BLOCKS).map(
                lambda t: [f"for i in range({t[0]}):", *indent(t[1])]
            ),
        ),
        min_size=1,
        max_size=3,
    ).map(lambda statements: [line for statement in statements for line in statement])
)


def indent(lines):
    return ["    " + line for line in lines]


@FUZZ
@given(EXPRESSIONS)
def test_fuzzed_well_formed_expressions_only_raise_engine_errors(source):
    only_engine_errors({"expression": source}, INPUTS)


@FUZZ
@given(BLOCKS)
def test_fuzzed_well_formed_programs_only_raise_engine_errors(body):
    only_engine_errors({"program": "\n".join(["def f(x, y):", *indent(body)])}, {"x": INPUTS["x"], "y": INPUTS["y"]})


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=4),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)
NAMES = st.sampled_from(["x", "y", "X", "a", "b", "c", ""])
ARGUMENT = NAMES | st.integers(-3, 3) | st.floats(allow_nan=True) | st.lists(NAMES | st.integers(-3, 3), max_size=3)
NODE = st.fixed_dictionaries(
    {
        "id": st.sampled_from(["a", "b", "c", "x"]) | JSON,
        "op": st.sampled_from([*language.FUNCTIONS, "sine", "__import__"]) | JSON,
        "args": st.lists(ARGUMENT | JSON, max_size=3) | JSON,
    },
    optional={"params": st.dictionaries(st.sampled_from(["axis", "keepdims", "shape", "axes", "x"]), JSON, max_size=2)},
)
GRAPH_VALUE = st.fixed_dictionaries(
    {"nodes": st.lists(NODE | JSON, max_size=5) | JSON, "output": NAMES | JSON},
    optional={"inputs": st.lists(NAMES, max_size=3) | JSON},
)


@FUZZ
@given(GRAPH_VALUE | JSON)
def test_fuzzed_graphs_only_raise_engine_errors(graph):
    only_engine_errors({"graph": graph}, INPUTS)
