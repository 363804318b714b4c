"""Traces: every node's value and adjoint against PyTorch, where each node of the same
computation, written in torch, keeps its gradient with `retain_grad()`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from app import examples
from engine import trace
from engine.errors import TOO_LARGE, EngineError
from engine.limits import Limits
from engine.operations import Options

X = [0.0, 1.0, 2.0, 3.0]


class Recorder:
    """The torch side: each tensor made, in the order the engine's nodes are, with its grad kept."""

    def __init__(self):
        self.tensors: list[torch.Tensor] = []

    def leaf(self, value, requires_grad: bool = True) -> torch.Tensor:
        tensor = torch.tensor(value, dtype=torch.float64, requires_grad=requires_grad)
        self.tensors.append(tensor)
        return tensor

    def __call__(self, tensor: torch.Tensor) -> torch.Tensor:
        if tensor.requires_grad:
            tensor.retain_grad()
        self.tensors.append(tensor)
        return tensor


def traced(function: dict, inputs: dict, backend_name: str = "numpy", **options) -> dict:
    arrays = {name: np.asarray(value, dtype=np.float64) for name, value in inputs.items()}
    return trace.prepare(function, arrays, Options(**options)).run(backend_name).fields


def assert_nodes_match(fields: dict, recorder: Recorder) -> None:
    nodes = fields["nodes"]
    assert [node.id for node in nodes] == [f"%{k}" for k in range(len(recorder.tensors))]
    for node, tensor in zip(nodes, recorder.tensors, strict=True):
        expected = tensor.detach().numpy()
        assert node.shape == expected.shape, node.id
        np.testing.assert_allclose(np.asarray(node.value, float), expected.astype(float), rtol=1e-13, err_msg=node.id)
        if tensor.grad is None:
            assert node.adjoint is None, f"{node.id} ({node.primitive}) has an adjoint where torch has no grad"
        else:
            assert node.adjoint is not None, f"{node.id} ({node.primitive}) has no adjoint; torch's grad exists"
            np.testing.assert_allclose(node.adjoint, tensor.grad.numpy(), rtol=1e-12, atol=1e-14, err_msg=node.id)


def test_two_dot_x_x_adjoints_are_one_two_and_four_x(backend_name):
    fields = traced({"expression": "2*dot(x, x)"}, {"x": X}, backend_name)
    record = Recorder()
    x = record.leaf(X)
    record(2 * record(torch.dot(x, x))).backward()
    assert_nodes_match(fields, record)
    assert [n.primitive for n in fields["nodes"]] == ["input", "matmul", "multiply"]
    assert fields["nodes"][1].operation == "dot" and fields["nodes"][1].location == "offset 2"
    assert fields["output"] == "%2" and fields["nodes"][2].inputs == (2.0, "%1")


def test_csc321_graph_adjoints_are_a_and_two_a_plus_b(backend_name):
    fields = traced({"graph": examples.CSC321_GRAPH}, {"a": 2.0, "b": 3.0}, backend_name)
    record = Recorder()
    a, b = record.leaf(2.0), record.leaf(3.0)
    c = record(a + b)
    record(a * c).backward()
    assert_nodes_match(fields, record)
    a_node, b_node, c_node, d_node = fields["nodes"]
    assert (a_node.name, b_node.name) == ("a", "b")
    assert (c_node.location, d_node.location) == ("node 'c'", "node 'd'")
    assert (float(a_node.adjoint), float(c_node.adjoint)) == (2 * 2.0 + 3.0, 2.0)


def test_detach_stops_the_adjoint_before_y():
    fields = traced({"program": examples.DETACH_PROGRAM}, {"x": X})
    record = Recorder()
    x = record.leaf(X)
    y = record(x * x)
    # torch's detach gives a leaf outside the graph; asking it for a grad says what reaches u.
    u = record(y.detach().requires_grad_())
    record(record(u * x).sum()).backward()
    assert_nodes_match(fields, record)
    assert [n.line for n in fields["nodes"]] == [None, 2, 3, 4, 5]


def d2l_control_flow(record: Recorder, a_value: float) -> None:
    """D2L 2.5.4's f, node by node as the program records it (conditions included)."""
    a = record.leaf(a_value)
    b = record(a * 2)
    while record(record(torch.linalg.vector_norm(b)) < 1000):
        b = record(b * 2)
    c = b if record(record(b.sum()) > 0) else record(100 * b)
    c.backward()


@pytest.mark.parametrize("a", [0.3, -1.7, 1500.0])
def test_program_with_a_loop_matches_torch_node_by_node(a):
    fields = traced({"program": examples.CONTROL_FLOW_PROGRAM}, {"a": a})
    record = Recorder()
    d2l_control_flow(record, a)
    assert_nodes_match(fields, record)
    nodes = fields["nodes"]
    assert {n.line for n in nodes if n.primitive in ("norm", "less")} == {3}
    assert {n.line for n in nodes if n.primitive in ("sum", "greater")} == {5}
    assert all(n.adjoint is None for n in nodes if n.primitive in ("norm", "less", "sum", "greater"))
    np.testing.assert_allclose(nodes[0].adjoint, fields["value"] / a)


def test_reduce_sum_gives_the_adjoints_of_the_output_sum(backend_name):
    values = [0.5, 1.5, -2.0, 3.0]
    fields = traced({"expression": "log(x**2) * sin(x) + 1/x"}, {"x": values}, backend_name, reduce="sum")
    record = Recorder()
    x = record.leaf(values)
    y = record(record(torch.log(record(x * x))) * record(torch.sin(x))) + record(1.0 / x)
    record(y).sum().backward()
    assert_nodes_match(fields, record)


def test_mean_of_three_times_x_plus_two_squared():
    fields = traced({"expression": "mean(3*(x+2)**2)"}, {"x": np.ones((2, 2))})
    record = Recorder()
    x = record.leaf(np.ones((2, 2)))
    shifted = record(x + 2)
    record(record(record(3 * record(shifted * shifted)).sum()) / 4).backward()
    assert_nodes_match(fields, record)
    np.testing.assert_allclose(fields["nodes"][0].adjoint, np.full((2, 2), 4.5))


def test_inputs_not_in_wrt_and_what_only_they_feed_have_no_adjoint():
    rng = np.random.default_rng(0)
    x, A = rng.normal(size=3), rng.normal(size=(3, 3))
    fields = traced({"expression": "x @ A @ A @ x"}, {"x": x, "A": A}, wrt=("x",))
    record = Recorder()
    xt, At = record.leaf(x), record.leaf(A, requires_grad=False)
    record(record(record(xt @ At) @ At) @ xt).backward()
    assert_nodes_match(fields, record)
    assert fields["nodes"][1].name == "A" and fields["nodes"][1].adjoint is None


def test_ties_of_maximum_split_the_adjoint_as_torch_does():
    values = [0.5, 1.0, -1.0, 2.0]
    fields = traced({"expression": "sum(maximum(x, 0.5) * exp(-x))"}, {"x": values})
    record = Recorder()
    x = record.leaf(values)
    product = record(torch.maximum(x, torch.tensor(0.5, dtype=torch.float64))) * record(torch.exp(record(-x)))
    record(record(product).sum()).backward()
    assert_nodes_match(fields, record)


def test_arrays_above_the_size_are_summarised():
    values = np.linspace(-1.0, 2.0, 20)
    task = trace.prepare({"expression": "sum(x * x)"}, {"x": values}, summarize_above=10)
    x_node, square, total = task.run().fields["nodes"]
    assert isinstance(x_node.value, trace.Summary) and isinstance(x_node.adjoint, trace.Summary)
    assert (x_node.value.shape, x_node.value.dtype) == ((20,), "float64")
    assert (x_node.value.min, x_node.value.max, x_node.value.mean) == (-1.0, 2.0, pytest.approx(0.5))
    np.testing.assert_array_equal(x_node.value.entries, values[: trace.SUMMARY_ENTRIES])
    np.testing.assert_allclose(x_node.adjoint.entries, 2 * values[: trace.SUMMARY_ENTRIES])
    assert x_node.adjoint.max == pytest.approx(4.0)
    assert isinstance(square.value, trace.Summary)
    assert isinstance(total.value, np.ndarray) and total.value.shape == ()


def test_the_node_limit_refuses_a_function_before_it_runs():
    limits = Limits(max_trace_nodes=3)
    with pytest.raises(EngineError) as refused:
        trace.prepare({"expression": "2*dot(x, x) + 1"}, {"x": np.arange(4.0)}, limits=limits)
    assert refused.value.kind == TOO_LARGE and "4 nodes" in refused.value.message


def test_the_node_limit_holds_a_program_as_it_runs():
    program = {"program": examples.CONTROL_FLOW_PROGRAM}
    task = trace.prepare(program, {"a": np.array(0.3)}, limits=Limits(max_trace_nodes=20))
    with pytest.raises(EngineError) as refused:
        task.run()
    assert refused.value.kind == TOO_LARGE and "limit is 20" in refused.value.message


def test_the_dot_text_draws_every_node_and_edge():
    fields = traced({"graph": examples.CSC321_GRAPH}, {"a": 2.0, "b": 3.0})
    dot = fields["dot"]
    assert dot.startswith("digraph trace {") and dot.rstrip().endswith("}")
    for edge in ('"%0" -> "%2"', '"%1" -> "%2"', '"%0" -> "%3"', '"%2" -> "%3"'):
        assert edge in dot
    assert '"%3" [label="%3 = multiply\\nat node \'d\'\\nfloat64[]\\nvalue 10\\nadjoint 1", peripheries=2];' in dot
    assert '"%0" [label="%0 a\\nfloat64[]\\nvalue 2\\nadjoint 7", shape=ellipse];' in dot


def test_a_constant_becomes_a_node_of_the_dot_text():
    dot = traced({"expression": "2*dot(x, x)"}, {"x": X})["dot"]
    assert '"c1" [label="2", shape=plaintext];' in dot and '"c1" -> "%2";' in dot
