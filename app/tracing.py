"""The answer of /v1/trace as the wire writes it: each node's arrays in the request's
encoding, and summaries of large arrays always as JSON numbers (non-finite ones as the
strings "NaN", "Infinity", "-Infinity", as everywhere)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np

from app import arrays
from engine.trace import Node, Summary


def encode(answer: dict[str, Any], encoding: str) -> dict[str, Any]:
    return {
        "value": arrays.encode(answer["value"], encoding),
        "output": answer["output"],
        "nodes": [_node(node, encoding) for node in answer["nodes"]],
        "dot": answer["dot"],
    }


def _node(node: Node, encoding: str) -> dict[str, Any]:
    record = {field.name: getattr(node, field.name) for field in fields(node)}
    record.update(
        inputs=[_json(np.asarray(source)) if not isinstance(source, str) else source for source in node.inputs],
        shape=list(node.shape),
        value=_array(node.value, encoding),
        adjoint=None if node.adjoint is None else _array(node.adjoint, encoding),
    )
    return record


def _array(value: np.ndarray | Summary, encoding: str) -> Any:
    if not isinstance(value, Summary):
        return arrays.encode(value, encoding)
    return {
        "shape": list(value.shape),
        "dtype": value.dtype,
        **{stat: _json(np.float64(getattr(value, stat))) for stat in ("min", "max", "mean")},
        "entries": _json(value.entries),
    }


def _json(array: np.ndarray) -> Any:
    encoded = arrays.encode(array, "json")
    return encoded.tolist() if isinstance(encoded, np.ndarray) else encoded
