"""Graphs: the computational graph itself, as JSON.

    {"inputs": ["a", "b"],
     "nodes": [{"id": "c", "op": "add", "args": ["a", "b"]},
               {"id": "d", "op": "sum", "args": ["c"], "params": {"axis": 0}}],
     "output": "d"}

The whole graph is validated before anything is built: field types, unique ids, known
ops, references, cycles. Nodes are then built in topological order (an explicit-stack
depth-first search, so a long chain cannot exhaust Python's stack), each through
`language.call` as an expression's calls are. Structural errors are located by a JSON
pointer into the request ("/function/graph/nodes/2/args/1"), errors of one node's operation by its id ("node 'c'").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine import language
from engine.errors import BAD_INPUT, BAD_PARAM, GRAPH, LIMIT, UNKNOWN_OP, EngineError, pointer_token
from engine.frontends.inputs import input_pointer
from engine.ir import INT64_RANGE, Function, Origin, ShapedArray, Var
from engine.limits import DEFAULT_LIMITS, Limits
from engine.tracing import Builder, building

_GRAPH_FIELDS = ("inputs", "nodes", "output")
_NODE_FIELDS = ("id", "op", "args", "params")


@dataclass
class _Node:
    id: str
    op: str
    args: list  # each a reference (str), a number, or a list of those
    params: dict[str, Any]
    pointer: str

    @property
    def location(self) -> str:
        return f"node {self.id!r}"

    @property
    def references(self) -> list[tuple[str, str]]:
        """(name, pointer) of every name among the args, in order."""
        return [(item, pointer) for item, pointer in _arg_items(self.args, self.pointer) if isinstance(item, str)]


def _arg_items(args: list, pointer: str):
    """Each argument, or each member of a list argument, with its JSON pointer."""
    for i, arg in enumerate(args):
        if isinstance(arg, list):
            yield from ((item, f"{pointer}/args/{i}/{j}") for j, item in enumerate(arg))
        else:
            yield arg, f"{pointer}/args/{i}"


def from_graph(graph: Mapping[str, Any], avals: Mapping[str, ShapedArray], limits: Limits = DEFAULT_LIMITS) -> Function:
    nodes, output = _validate(graph, avals, limits)
    inputs = {name: Var(aval) for name, aval in avals.items()}
    with building(Builder(max_equations=limits.max_nodes)) as builder:
        values: dict[str, Any] = dict(inputs)
        for node in _topological_order(nodes):
            args = [_resolve(arg, values) for arg in node.args]
            builder.origin = Origin(node.op, node.location)
            values[node.id] = language.call(node.op, args, node.params, node.location)
        return builder.function(list(inputs.values()), list(inputs), [values[output]])


def _resolve(arg: Any, values: dict[str, Any]) -> Any:
    if isinstance(arg, list):
        return [_resolve(item, values) for item in arg]
    return values[arg] if isinstance(arg, str) else arg


def _expect(value: Any, expected: type, what: str, pointer: str) -> Any:
    if not isinstance(value, expected):
        raise EngineError(GRAPH, f"{what}, got {type(value).__name__}", pointer)
    return value


def _validate(graph: Any, avals: Mapping[str, ShapedArray], limits: Limits) -> tuple[dict[str, _Node], str]:
    _expect(graph, Mapping, 'a graph is an object: {"inputs": [...], "nodes": [...], "output": id}', "/function/graph")
    for field in graph:
        if field not in _GRAPH_FIELDS:
            raise EngineError(
                GRAPH,
                f"unknown field {field!r}; a graph has {', '.join(_GRAPH_FIELDS)}",
                f"/function/graph/{pointer_token(field)}",
            )
    if "inputs" in graph:
        _check_inputs(graph["inputs"], avals)
    if "nodes" not in graph or "output" not in graph:
        missing = "nodes" if "nodes" not in graph else "output"
        raise EngineError(GRAPH, f"the graph has no {missing!r}", "/function/graph")
    listed = _expect(graph["nodes"], list, "nodes is a list of objects", "/function/graph/nodes")
    if len(listed) > limits.max_nodes:
        raise EngineError(
            LIMIT, f"the graph has {len(listed):,} nodes; the limit is {limits.max_nodes:,}", "/function/graph/nodes"
        )
    nodes: dict[str, _Node] = {}
    for index, entry in enumerate(listed):
        node = _node(entry, f"/function/graph/nodes/{index}")
        if node.id in avals:
            raise EngineError(
                GRAPH,
                f"node id {node.id!r} is also an input's name; ids must differ from input names",
                f"{node.pointer}/id",
            )
        if node.id in nodes:
            raise EngineError(
                GRAPH, f"node id {node.id!r} is used twice (first at {nodes[node.id].pointer})", f"{node.pointer}/id"
            )
        nodes[node.id] = node
    defined = [*avals, *nodes]
    for node in nodes.values():
        for name, pointer in node.references:
            if name not in avals and name not in nodes:
                raise EngineError(
                    GRAPH,
                    f"node {node.id!r} uses {name!r}, which is neither an input nor a node id"
                    f"{language.suggestion(name, defined)}",
                    pointer,
                )
    output = _expect(
        graph["output"], str, "output is the id of a node or the name of an input", "/function/graph/output"
    )
    if output not in avals and output not in nodes:
        raise EngineError(
            GRAPH,
            f"the output {output!r} is neither a node id nor an input{language.suggestion(output, defined)}",
            "/function/graph/output",
        )
    return nodes, output


def _check_inputs(listed: Any, avals: Mapping[str, ShapedArray]) -> None:
    _expect(listed, list, "inputs is a list of names", "/function/graph/inputs")
    for index, name in enumerate(listed):
        _expect(name, str, "an input name is a string", f"/function/graph/inputs/{index}")
        if name not in avals:
            raise EngineError(
                BAD_INPUT, f"the graph's input {name!r} is not given in inputs", f"/function/graph/inputs/{index}"
            )
        if name in listed[:index]:
            raise EngineError(GRAPH, f"the graph lists the input {name!r} twice", f"/function/graph/inputs/{index}")
    for name in avals:
        if name not in listed:
            raise EngineError(
                BAD_INPUT,
                f"the input {name!r} is not among the graph's inputs ({', '.join(listed) or 'none'})",
                input_pointer(name),
            )


def _node(entry: Any, pointer: str) -> _Node:
    _expect(entry, Mapping, 'a node is an object: {"id": ..., "op": ..., "args": [...]}', pointer)
    for field in entry:
        if field not in _NODE_FIELDS:
            raise EngineError(
                GRAPH,
                f"unknown field {field!r}; a node has {', '.join(_NODE_FIELDS)}",
                f"{pointer}/{pointer_token(field)}",
            )
    for field in ("id", "op"):
        if field not in entry:
            raise EngineError(GRAPH, f"the node has no {field!r}", pointer)
        _expect(entry[field], str, f"{field} is a string", f"{pointer}/{field}")
    identifier, op = entry["id"], entry["op"]
    if not identifier:
        raise EngineError(GRAPH, "a node id is a non-empty string", f"{pointer}/id")
    if op not in language.FUNCTIONS:
        raise EngineError(
            UNKNOWN_OP, f"unknown op {op!r}{language.suggestion(op, language.FUNCTIONS)}", f"node {identifier!r}"
        )
    args = _expect(entry.get("args", []), list, "args is a list", f"{pointer}/args")
    for item, item_pointer in _arg_items(args, pointer):
        if not isinstance(item, str):
            _number(item, GRAPH, "an argument is a node id, an input name, a number, or a list of those", item_pointer)
    params = _expect(entry.get("params", {}), Mapping, "params is an object of keyword arguments", f"{pointer}/params")
    return _Node(
        identifier,
        op,
        list(args),
        {key: _param(value, f"{pointer}/params/{pointer_token(key)}") for key, value in params.items()},
        pointer,
    )


def _number(value: Any, kind: str, what: str, pointer: str) -> Any:
    if not isinstance(value, (int, float)):
        raise EngineError(kind, f"{what}, got {type(value).__name__}", pointer)
    if isinstance(value, int) and not isinstance(value, bool) and value not in INT64_RANGE:
        raise EngineError(BAD_PARAM, "this integer does not fit in 64 bits; write it as a float", pointer)
    return value


def _param(value: Any, pointer: str) -> Any:
    what = "a parameter is a number, true, false, null or a list of numbers"
    if value is None:
        return None
    if isinstance(value, list):
        return tuple(_number(item, BAD_PARAM, what, f"{pointer}/{i}") for i, item in enumerate(value))
    return _number(value, BAD_PARAM, what, pointer)


def _topological_order(nodes: dict[str, _Node]) -> list[_Node]:
    """Every node after the nodes it uses, in the listed order where that allows; a cycle
    is reported with its ids."""
    done: set[str] = set()
    order: list[_Node] = []
    for root in nodes.values():
        if root.id in done:
            continue
        path = [root]  # the nodes being visited, each using the next
        on_path = {root.id}
        pending = [iter([name for name, _ in root.references if name in nodes])]
        while path:
            for name in pending[-1]:
                if name in done:
                    continue
                if name in on_path:
                    ids = [node.id for node in path]
                    cycle = [*ids[ids.index(name) :], name]
                    raise EngineError(
                        GRAPH, f"the graph has a cycle: {' -> '.join(cycle)} (each uses the next)", f"node {name!r}"
                    )
                path.append(nodes[name])
                on_path.add(name)
                pending.append(iter([n for n, _ in nodes[name].references if n in nodes]))
                break
            else:
                node = path.pop()
                on_path.discard(node.id)
                pending.pop()
                done.add(node.id)
                order.append(node)
    return order
