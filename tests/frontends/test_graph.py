"""The graph front-end: JSON computational graphs, validated whole, built in topological
order."""

import numpy as np
import pytest
import torch

from engine import api
from engine.errors import ARITY, BAD_INPUT, BAD_PARAM, GRAPH, LIMIT, SHAPE, UNKNOWN_OP, EngineError
from engine.frontends import Limits, build, from_graph
from engine.ir import ShapedArray

A_VALUE, B_VALUE = np.array([1.0, 2.0, -3.0]), np.array([0.5, 4.0, 2.0])
API_EXAMPLE = {
    "inputs": ["a", "b"],
    "nodes": [{"id": "c", "op": "add", "args": ["a", "b"]}, {"id": "d", "op": "multiply", "args": ["a", "c"]}],
    "output": "d",
}
VECTOR = ShapedArray((3,), "float64")


def graph(nodes, output, **arrays):
    return build({"graph": {"nodes": nodes, "output": output}}, arrays)


def test_api_example_gives_product_rule_gradients(gradients, torch_gradients):
    fn = build({"graph": API_EXAMPLE}, {"a": A_VALUE, "b": B_VALUE})
    value, grad = gradients(fn, a=A_VALUE, b=B_VALUE)
    expected_value, expected = torch_gradients(lambda a, b: a * (a + b), a=A_VALUE, b=B_VALUE)
    np.testing.assert_allclose(value, expected_value)
    np.testing.assert_allclose(grad["a"], expected["a"])
    np.testing.assert_allclose(grad["b"], expected["b"])
    np.testing.assert_allclose(grad["a"], 2 * A_VALUE + B_VALUE)


def test_params_numbers_and_list_arguments(gradients, torch_gradients):
    x = np.arange(6.0).reshape(2, 3) / 7
    nodes = [
        {"id": "square", "op": "power", "args": ["x", 2]},
        {"id": "rows", "op": "sum", "args": ["square"], "params": {"axis": 1, "keepdims": True}},
        {"id": "joined", "op": "concatenate", "args": [["rows", "x"]], "params": {"axis": 1}},
        {"id": "flat", "op": "reshape", "args": ["joined", [8]]},
        {"id": "scaled", "op": "multiply", "args": [0.5, "flat"]},
        {"id": "out", "op": "logsumexp", "args": ["scaled"]},
    ]
    value, grad = gradients(graph(nodes, "out", x=x), x=x)
    reference = lambda x: torch.logsumexp(0.5 * torch.cat([(x**2).sum(1, keepdim=True), x], 1).reshape(8), 0)  # noqa: E731
    expected_value, expected = torch_gradients(reference, x=x)
    np.testing.assert_allclose(value, expected_value)
    np.testing.assert_allclose(grad["x"], expected["x"])


def test_nodes_listed_out_of_order_are_built_after_what_they_use():
    nodes = [{"id": "d", "op": "multiply", "args": ["a", "c"]}, {"id": "c", "op": "add", "args": ["a", "b"]}]
    fn = graph(nodes, "d", a=A_VALUE, b=B_VALUE)
    assert [e.primitive.name for e in fn.equations] == ["add", "multiply"]
    np.testing.assert_allclose(api.evaluate(fn, {"a": A_VALUE, "b": B_VALUE}), A_VALUE * (A_VALUE + B_VALUE))


def test_a_long_chain_builds_without_recursion():
    count = 5000
    nodes = [{"id": f"n{i}", "op": "add", "args": [f"n{i - 1}" if i else "x", 1.0]} for i in range(count)]
    fn = graph(list(reversed(nodes)), f"n{count - 1}", x=np.zeros(2))
    assert len(fn.equations) == count
    np.testing.assert_allclose(api.evaluate(fn, {"x": np.zeros(2)}), [count, count])


def test_the_output_may_be_an_input():
    fn = graph([], "x", x=A_VALUE)
    assert fn.output is fn.inputs[0]


def test_ir_inputs_follow_the_given_inputs_order():
    avals = {"b": VECTOR, "a": VECTOR}
    assert from_graph(API_EXAMPLE, avals).input_names == ("b", "a")


@pytest.mark.parametrize(
    ("change", "kind", "location", "words"),
    [
        ({"nodes": [{"id": "c", "op": "ad", "args": ["a", "b"]}]}, UNKNOWN_OP, "node 'c'", "did you mean 'add'?"),
        ({"nodes": [{"id": "c", "op": "add", "args": ["a"]}]}, ARITY, "node 'c'", "missing a required argument"),
        ({"nodes": [{"id": "c", "op": "add", "args": ["a", "q"]}]}, GRAPH, "/function/graph/nodes/0/args/1", "'q'"),
        (
            {"nodes": [{"id": "c", "op": "concatenate", "args": [["a", "bb"]]}]},
            GRAPH,
            "/function/graph/nodes/0/args/0/1",
            "did you mean 'b'?",
        ),
        ({"nodes": [{"id": "c", "op": "add", "args": ["a", "c"]}]}, GRAPH, "node 'c'", "cycle: c -> c"),
        (
            {
                "nodes": [
                    {"id": "c", "op": "add", "args": ["a", "e"]},
                    {"id": "d", "op": "sin", "args": ["c"]},
                    {"id": "e", "op": "cos", "args": ["d"]},
                ],
                "output": "e",
            },
            GRAPH,
            "node 'c'",
            "cycle: c -> e -> d -> c",
        ),
        ({"nodes": [{"id": "c", "op": "sin", "args": ["a"]}] * 2}, GRAPH, "/function/graph/nodes/1/id", "used twice"),
        ({"nodes": [{"id": "a", "op": "sin", "args": ["b"]}]}, GRAPH, "/function/graph/nodes/0/id", "input's name"),
        ({"nodes": [{"id": "", "op": "sin", "args": ["b"]}]}, GRAPH, "/function/graph/nodes/0/id", "non-empty"),
        ({"nodes": [{"id": 3, "op": "sin", "args": ["b"]}]}, GRAPH, "/function/graph/nodes/0/id", "id is a string"),
        ({"nodes": [{"op": "sin", "args": ["b"]}]}, GRAPH, "/function/graph/nodes/0", "no 'id'"),
        ({"nodes": [{"id": "c", "op": "sin", "args": "b"}]}, GRAPH, "/function/graph/nodes/0/args", "args is a list"),
        (
            {"nodes": [{"id": "c", "op": "sin", "args": [{"x": 1}]}]},
            GRAPH,
            "/function/graph/nodes/0/args/0",
            "a number",
        ),
        (
            {"nodes": [{"id": "c", "op": "sin", "args": [[["a"]]]}]},
            GRAPH,
            "/function/graph/nodes/0/args/0/0",
            "a number",
        ),
        (
            {"nodes": [{"id": "c", "op": "sin", "args": ["a"], "kind": 1}]},
            GRAPH,
            "/function/graph/nodes/0/kind",
            "unknown",
        ),
        (
            {"nodes": [{"id": "c", "op": "sum", "args": ["a"], "params": {"axis": "0"}}]},
            BAD_PARAM,
            "/function/graph/nodes/0/params/axis",
            "a number",
        ),  # fmt: skip
        ({"nodes": [{"id": "c", "op": "sum", "args": ["a"], "params": {"axes": 0}}]}, ARITY, "node 'c'", "axes"),
        ({"nodes": [{"id": "c", "op": "sum", "args": ["a"], "params": {"axis": 4}}]}, BAD_PARAM, "node 'c'", "axis 4"),
        (
            {"nodes": [{"id": "c", "op": "add", "args": ["a", 2**70]}]},
            BAD_PARAM,
            "/function/graph/nodes/0/args/1",
            "64 bits",
        ),
        ({"nodes": [{"id": "c", "op": "matmul", "args": ["a", 2.0]}]}, SHAPE, "node 'c'", "matmul"),
        ({"output": "z"}, GRAPH, "/function/graph/output", "neither a node id nor an input"),
        ({"output": ["d"]}, GRAPH, "/function/graph/output", "output is the id"),
        ({"inputs": ["a"]}, BAD_INPUT, "/inputs/b", "not among the graph's inputs"),
        ({"inputs": ["a", "b", "c"]}, BAD_INPUT, "/function/graph/inputs/2", "not given"),
        ({"inputs": ["a", "b", "a"]}, GRAPH, "/function/graph/inputs/2", "twice"),
        ({"nodes": {"c": 1}}, GRAPH, "/function/graph/nodes", "a list"),
        ({"edges": []}, GRAPH, "/function/graph/edges", "unknown field"),
    ],
)
def test_errors_name_kind_and_location(change, kind, location, words):
    with pytest.raises(EngineError) as error:
        from_graph({**API_EXAMPLE, "output": "c", **change}, {"a": VECTOR, "b": VECTOR})
    assert (error.value.kind, error.value.location) == (kind, location), error.value
    assert words in error.value.message


def test_a_graph_is_an_object_with_nodes_and_output():
    for value, location in [([], "/function/graph"), ({"nodes": []}, "/function/graph"), ("a + b", "/function/graph")]:
        with pytest.raises(EngineError) as error:
            from_graph(value, {"a": VECTOR})
        assert (error.value.kind, error.value.location) == (GRAPH, location)


def test_node_count_is_limited():
    nodes = [{"id": f"n{i}", "op": "sin", "args": ["a"]} for i in range(11)]
    with pytest.raises(EngineError) as error:
        from_graph({"nodes": nodes, "output": "n0"}, {"a": VECTOR}, Limits(max_nodes=10))
    assert (error.value.kind, error.value.location) == (LIMIT, "/function/graph/nodes")


def test_every_node_is_validated_even_when_the_output_does_not_use_it():
    nodes = [{"id": "used", "op": "sin", "args": ["a"]}, {"id": "unused", "op": "sine", "args": ["a"]}]
    with pytest.raises(EngineError) as error:
        from_graph({"nodes": nodes, "output": "used"}, {"a": VECTOR})
    assert (error.value.kind, error.value.location) == (UNKNOWN_OP, "node 'unused'")
