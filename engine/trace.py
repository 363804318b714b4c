"""A function's computational graph as evaluated: every node with its value and its adjoint
(d output / d node), the picture that CSC321's lecture and D2L 2.5 draw by hand.

The nodes are the function's inputs and equations as built; for a program, the path its run
took, each with the line it came from. Values come from one run that keeps every
intermediate; adjoints from one reverse sweep (`vjp_call`) whose outputs are the cotangent of
every node the output's cotangent reaches. A node it does not reach (a constant input, an
integer or boolean value, what feeds only a condition or a `stop_gradient`) has no adjoint,
as PyTorch leaves such a tensor's `.grad` None. The request is /v1/grad's, checked by the
same `bind`: a scalar output, or `reduce: "sum"` for the adjoints of the output's sum.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine import backend, boundary, frontends
from engine.errors import TOO_LARGE, EngineError
from engine.interpreter import Plan
from engine.ir import Function, Literal, Var
from engine.limits import DEFAULT_LIMITS, Limits
from engine.operations import DEFAULT_OPTIONS, Options
from engine.primitives.broadcasting import broadcast_to
from engine.tasks import Answer, ProgramTask, Progress, Task, bind
from engine.tracing import building
from engine.transforms import vjp_call

SUMMARIZE_ABOVE = 64  # arrays with more elements are sent as a Summary
SUMMARY_ENTRIES = 8


@dataclass(frozen=True)
class Summary:
    """An array too large to send whole: its shape, dtype, range, mean and first entries."""

    shape: tuple[int, ...]
    dtype: str
    min: float
    max: float
    mean: float
    entries: np.ndarray  # the first SUMMARY_ENTRIES elements, in C order


@dataclass(frozen=True)
class Node:
    id: str  # "%k", as `print(fn)` names it: the inputs first, then each equation's output
    primitive: str  # "input" for an input
    inputs: tuple[str | bool | int | float, ...]  # node ids, and constants where the equation has them
    params: str  # the primitive's keyword arguments, as text ("axis=(0,), keepdims=False")
    shape: tuple[int, ...]
    dtype: str
    value: np.ndarray | Summary
    adjoint: np.ndarray | Summary | None  # None: no gradient reaches it
    name: str | None = None  # an input's name
    operation: str | None = None  # what the user wrote that the equation computes ("dot", "softmax")
    location: str | None = None  # where they wrote it: "offset 4", "node 'c'", "line 3, column 9"
    line: int | None = None  # a program's source line


@dataclass(frozen=True)
class Trace:
    value: np.ndarray  # the function's output
    output: str | None  # its node's id; None when the output is a constant
    nodes: list[Node]

    @property
    def dot(self) -> str:
        return dot_text(self)


def trace(
    fn: Function,
    arguments: Sequence[np.ndarray],
    wrt: Sequence[int],
    reduce_sum: bool = False,
    summarize_above: int = SUMMARIZE_ABOVE,
    backend_name: str = "numpy",
) -> Trace:
    """Every node of `fn` on `arguments` (host arrays, in input order), with the adjoints of
    the output (or, with `reduce_sum`, of its sum) with respect to the `wrt` inputs' paths."""
    xp = backend.namespace(backend_name)
    args = [backend.to_backend(xp, a) for a in arguments]
    variables = [*fn.inputs, *(eqn.output for eqn in fn.equations)]
    keeping_every_value = Function(fn.inputs, fn.input_names, fn.equations, tuple(variables))
    values = [backend.to_host(v) for v in Plan(keeping_every_value, xp).run(args)]
    sweep, reached = _adjoint_sweep(fn, tuple(wrt), reduce_sum)
    adjoints = dict(zip(reached, (backend.to_host(a) for a in Plan(sweep, xp).run(args))))
    ids = {var: f"%{k}" for k, var in enumerate(variables)}
    names = dict(zip(fn.inputs, fn.input_names))
    origins = {eqn.output: eqn for eqn in fn.equations}
    nodes = []
    for var, value in zip(variables, values):
        eqn = origins.get(var)
        adjoint = adjoints.get(var)
        nodes.append(
            Node(
                id=ids[var],
                primitive=eqn.primitive.name if eqn else "input",
                inputs=tuple(ids[a] if isinstance(a, Var) else a.value for a in eqn.inputs) if eqn else (),
                params=", ".join(f"{k}={v!r}" for k, v in eqn.params) if eqn else "",
                shape=var.aval.shape,
                dtype=var.aval.dtype,
                value=summarize(value, summarize_above),
                adjoint=None if adjoint is None else summarize(adjoint, summarize_above),
                name=names.get(var),
                operation=eqn.origin.operation if eqn else None,
                location=eqn.location if eqn else None,
                line=_line_of(eqn.location) if eqn else None,
            )
        )
    output = fn.output
    value = values[variables.index(output)] if isinstance(output, Var) else np.asarray(output.value, output.dtype)
    return Trace(value, ids.get(output) if isinstance(output, Var) else None, nodes)


def _adjoint_sweep(fn: Function, wrt: tuple[int, ...], reduce_sum: bool) -> tuple[Function, list[Var]]:
    """A function of fn's inputs whose outputs are the adjoints of the nodes the output's
    cotangent reaches, and those nodes, in order."""
    with building() as builder:
        primals = [Var(v.aval) for v in fn.inputs]
        output = fn.output.aval
        one = Literal(1.0, output.dtype)
        # For a scalar output this is y.backward(); with reduce_sum, y.sum().backward().
        cotangent = broadcast_to(one, shape=output.shape) if output.shape else one
        cotangents: dict[Var, Any] = {}
        vjp_call(fn, primals, cotangent, wrt, reached=cotangents)
        reached = [v for v in (*fn.inputs, *(eqn.output for eqn in fn.equations)) if v in cotangents]
        return builder.function(primals, fn.input_names, [cotangents[v] for v in reached]), reached


def summarize(array: np.ndarray, above: int) -> np.ndarray | Summary:
    array = np.asarray(array)
    if array.size <= above:
        return array
    numbers = array.astype(np.float64) if array.dtype.kind == "b" else array
    with backend.quiet():
        return Summary(
            array.shape, array.dtype.name, float(numbers.min()), float(numbers.max()), float(numbers.mean()),
            array.reshape(-1)[:SUMMARY_ENTRIES].copy(),
        )  # fmt: skip


def _line_of(location: str | None) -> int | None:
    match = re.match(r"line (\d+)", location or "")
    return int(match.group(1)) if match else None


# ---- the graph as Graphviz DOT text ----


def dot_text(traced: Trace) -> str:
    lines = [
        "digraph trace {",
        "  rankdir=LR;",
        '  node [shape=box, style=rounded, fontname="Helvetica", fontsize=10];',
    ]
    edges = []
    constants = 0
    for node in traced.nodes:
        attributes = ["shape=ellipse"] if node.primitive == "input" else []
        if node.id == traced.output:
            attributes.append("peripheries=2")
        lines.append(f'  "{node.id}" [label="{_escape(_label(node))}"{"".join(", " + a for a in attributes)}];')
        for source in node.inputs:
            if isinstance(source, str):
                edges.append(f'  "{source}" -> "{node.id}";')
            else:
                constants += 1
                lines.append(f'  "c{constants}" [label="{_escape(_short(np.asarray(source)))}", shape=plaintext];')
                edges.append(f'  "c{constants}" -> "{node.id}";')
    return "\n".join([*lines, *edges, "}"]) + "\n"


def _label(node: Node) -> str:
    head = f"{node.id} {node.name}" if node.name else f"{node.id} = {node.primitive}"
    parts = [head]
    if node.operation and node.operation != node.primitive:
        parts.append(f"({node.operation})")
    if node.location:
        parts.append(f"at {node.location}")
    parts.append(f"{node.dtype}[{','.join(map(str, node.shape))}]")
    parts.append(f"value {_short(node.value)}")
    if node.adjoint is not None:
        parts.append(f"adjoint {_short(node.adjoint)}")
    return "\n".join(parts)


def _short(value: np.ndarray | Summary) -> str:
    if isinstance(value, Summary):
        return f"{_number(value.min)} .. {_number(value.max)}, mean {_number(value.mean)}"
    if value.ndim == 0:
        return _number(value.item())
    if value.size <= 4:
        return "[" + ", ".join(_number(v) for v in value.reshape(-1).tolist()) + "]"
    return f"{_number(value.min())} .. {_number(value.max())}"


def _number(value: Any) -> str:
    return str(value) if isinstance(value, (bool, np.bool_)) else f"{value:.4g}"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# ---- as a task for the worker pool ----


@dataclass(frozen=True)
class TraceTask:
    """A checked trace request: /v1/grad's task (or a program's, built when it runs), and how
    much of each array the answer holds."""

    prepared: Task | ProgramTask
    summarize_above: int = SUMMARIZE_ABOVE
    limits: Limits = field(default=DEFAULT_LIMITS)

    @property
    def estimate(self):
        """The static cost, for admission; None for a program, whose shapes are known when it runs."""
        return self.prepared.estimate if isinstance(self.prepared, Task) else None

    def run(self, backend_name: str = "numpy", progress: Progress | None = None) -> Answer:
        started = time.perf_counter()
        task = self.prepared
        if isinstance(task, ProgramTask):
            fn = frontends.from_program(task.source, task.inputs, task.limits)
            task = bind(fn, "grad", task.inputs, None, task.options, task.limits)
            check_size(fn, self.summarize_above, self.limits)
        traced = trace(task.function, task.arguments, task.positions, task.reduce_sum, self.summarize_above,
                       backend_name)  # fmt: skip
        fields = {"value": traced.value, "output": traced.output, "nodes": traced.nodes, "dot": traced.dot}
        if progress is not None:
            progress(1, 1)
        return Answer(fields, len(task.function.equations), time.perf_counter() - started)


def prepare(
    function: Mapping[str, Any],
    inputs: Mapping[str, np.ndarray],
    options: Options = DEFAULT_OPTIONS,
    summarize_above: int = SUMMARIZE_ABOVE,
    limits: Limits = DEFAULT_LIMITS,
) -> TraceTask:
    """A trace request checked as /v1/grad's, and its size against the trace's own limits
    (a program's when it runs)."""
    prepared = boundary.prepare(function, inputs, "grad", None, options, limits)
    if isinstance(prepared, Task):
        check_size(prepared.function, summarize_above, limits)
    return TraceTask(prepared, summarize_above, limits)


def check_size(fn: Function, summarize_above: int, limits: Limits) -> None:
    """The nodes a trace lists, what it keeps alive (every value and adjoint at once) and
    what its answer holds, against the limits."""
    sizes = fn.array_sizes
    if len(sizes) > limits.max_trace_nodes:
        raise EngineError(
            TOO_LARGE,
            f"the trace would list {len(sizes):,} nodes; the limit is {limits.max_trace_nodes:,} (trace a smaller "
            "function, or fewer loop iterations; grad and vjp take functions of any size)",
        )
    if 2 * sum(sizes) > limits.max_live_elements:
        raise EngineError(
            TOO_LARGE,
            f"the trace keeps every value and adjoint, {2 * sum(sizes):,} array elements; the limit is "
            f"{limits.max_live_elements:,}",
        )
    sent = 2 * sum(min(size, summarize_above + SUMMARY_ENTRIES) for size in sizes)
    if sent > limits.max_result_elements:
        raise EngineError(
            TOO_LARGE,
            f"the trace would send {sent:,} array elements; the limit is {limits.max_result_elements:,} "
            "(lower summarize_above)",
        )


__all__ = ["Node", "Summary", "Trace", "TraceTask", "check_size", "dot_text", "prepare", "summarize", "trace"]
