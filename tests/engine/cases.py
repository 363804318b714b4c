"""The primitive case table: each engine op beside the same function in PyTorch, with
input shapes (broadcasting and size-1 axes included) and the domain they are drawn from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from engine import ops
from engine.primitives.linalg import adjugate_derivative


@dataclass(frozen=True)
class Case:
    name: str
    engine: Callable
    reference: Callable
    shapes: tuple[tuple[int, ...], ...]
    domains: tuple[str, ...] = field(default=())
    differentiable: bool = True

    @property
    def id(self) -> str:
        return f"{self.name}-{'x'.join(map(str, self.shapes[0])) or 'scalar'}" + (
            f"-{'x'.join(map(str, self.shapes[1])) or 'scalar'}" if len(self.shapes) > 1 else ""
        )

    def inputs(self, seed: int = 0) -> list[np.ndarray]:
        rng = np.random.default_rng(seed)
        domains = self.domains or ("any",) * len(self.shapes)
        return [_draw(rng, shape, domain) for shape, domain in zip(self.shapes, domains)]


def _draw(rng: np.random.Generator, shape: tuple[int, ...], domain: str) -> np.ndarray:
    if domain == "positive":
        return rng.uniform(0.5, 2.0, shape)
    if domain == "unit":
        return rng.uniform(-0.8, 0.8, shape)
    if domain == "away_from_zero":
        return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.5, 2.0, shape)
    if domain == "well_conditioned":
        n = shape[-1]
        return rng.normal(0, 0.3, shape) + 2.0 * np.eye(n)
    if domain == "distinct":
        # distinct within an array, and shifted by a random offset so that two arrays drawn
        # this way do not tie either (ties are where max and min have a kink)
        values = np.arange(np.prod(shape, dtype=int)) * 0.37 - 1.1 + rng.uniform(0.05, 0.3)
        return rng.permutation(values).reshape(shape)
    return rng.normal(0.0, 1.0, shape)


def _unary(name, torch_fn, domain="any", shapes=((3,), (2, 3), ())):
    engine_fn = getattr(ops, name)
    return [Case(name, lambda x: engine_fn(x), torch_fn, (s,), (domain,)) for s in shapes]


def _binary(name, torch_fn, domains=("any", "any")):
    engine_fn = getattr(ops, name)
    shapes = [((3,), (3,)), ((2, 3), (3,)), ((2, 1), (1, 3)), ((), (2, 2))]
    return [Case(name, lambda a, b: engine_fn(a, b), torch_fn, s, domains) for s in shapes]


def _reductions(name, torch_fn, domain="any"):
    engine_fn = getattr(ops, name)
    cases = [Case(name, lambda x: engine_fn(x), lambda x: torch_fn(x, None, False), ((2, 3),), (domain,))]
    for axis, keepdims in ((0, False), (1, True), ((0, 2), False), (-1, True)):
        cases.append(
            Case(
                f"{name}(axis={axis},keepdims={keepdims})",
                lambda x, a=axis, k=keepdims: engine_fn(x, axis=a, keepdims=k),
                lambda x, a=axis, k=keepdims: torch_fn(x, a, k),
                ((2, 3, 2),),
                (domain,),
            )
        )
    return cases


def _torch_reduce(fn):
    def reduce(x, axis, keepdims):
        if axis is None:
            return fn(x.reshape(-1), 0, False)
        return fn(x, axis if isinstance(axis, int) else list(axis), keepdims)

    return reduce


def _torch_prod(x, axis, keepdims):
    axes = range(x.ndim) if axis is None else [axis] if isinstance(axis, int) else axis
    for a in sorted((a % x.ndim for a in axes), reverse=True):
        x = torch.prod(x, a, keepdim=keepdims)
    return x


def _torch_adjugate(a):
    """det(a) a^-1: the adjugate where a is invertible, as every case's matrices are."""
    return torch.linalg.det(a)[..., None, None] * torch.linalg.inv(a)


def _torch_adjugate_derivative(a, t):
    a, t = torch.broadcast_tensors(a, t)
    return torch.autograd.functional.jvp(_torch_adjugate, a, t, create_graph=True)[1]


def _spd(a):
    return a @ a.transpose(-1, -2) if isinstance(a, torch.Tensor) else ops.matmul(a, ops.transpose(a))


CASES: list[Case] = [
    *_unary("exp", torch.exp),
    *_unary("log", torch.log, "positive"),
    *_unary("log1p", torch.log1p, "positive"),
    *_unary("expm1", torch.expm1),
    *_unary("sqrt", torch.sqrt, "positive"),
    *_unary("sin", torch.sin),
    *_unary("cos", torch.cos),
    *_unary("tan", torch.tan, "unit"),
    *_unary("arcsin", torch.arcsin, "unit"),
    *_unary("arccos", torch.arccos, "unit"),
    *_unary("arctan", torch.arctan),
    *_unary("sinh", torch.sinh),
    *_unary("cosh", torch.cosh),
    *_unary("tanh", torch.tanh),
    *_unary("sigmoid", torch.sigmoid),
    *_unary("softplus", torch.nn.functional.softplus),
    *_unary("relu", torch.relu, "away_from_zero"),
    *_unary("abs", torch.abs, "away_from_zero"),
    *_unary("square", torch.square),
    *_unary("negative", torch.negative),
    *_binary("add", torch.add),
    *_binary("subtract", torch.subtract),
    *_binary("multiply", torch.multiply),
    *_binary("divide", torch.divide, ("any", "away_from_zero")),
    *_binary("power", torch.pow, ("positive", "any")),
    *_binary("maximum", torch.maximum, ("distinct", "distinct")),
    *_binary("minimum", torch.minimum, ("distinct", "distinct")),
    Case("power(x,3)", lambda x: x**3.0, lambda x: x**3.0, ((4,),)),
    Case("power(x,2)", lambda x: x**2, lambda x: x**2, ((2, 2),)),
    Case("power(x,-1.5)", lambda x: x**-1.5, lambda x: x**-1.5, ((3,),), ("positive",)),
    Case(
        "where",
        lambda x, y: ops.where(x > y, x * y, ops.sin(y)),
        lambda x, y: torch.where(x > y, x * y, torch.sin(y)),
        ((2, 3), (3,)),
    ),
    *_reductions("sum", _torch_reduce(torch.sum)),
    *_reductions("mean", _torch_reduce(torch.mean)),
    *_reductions("prod", _torch_prod),
    *_reductions("max", _torch_reduce(torch.amax), "distinct"),
    *_reductions("min", _torch_reduce(torch.amin), "distinct"),
    *_reductions("logsumexp", _torch_reduce(torch.logsumexp)),
    *_reductions("norm", _torch_reduce(lambda x, a, k: torch.linalg.vector_norm(x, dim=a, keepdim=k))),
    Case("softmax", lambda x: ops.softmax(x), lambda x: torch.softmax(x, -1), ((2, 3),)),
    Case("softmax(axis=0)", lambda x: ops.softmax(x, axis=0), lambda x: torch.softmax(x, 0), ((3, 2),)),
    Case("dot", ops.dot, torch.dot, ((4,), (4,))),
    Case("dot(matrix,vector)", ops.dot, torch.mv, ((2, 3), (3,))),
    Case("matmul", ops.matmul, torch.matmul, ((2, 3), (3, 4))),
    Case("matmul(vector,matrix)", ops.matmul, torch.matmul, ((3,), (3, 2))),
    Case("matmul(stack,matrix)", ops.matmul, torch.matmul, ((2, 2, 3), (3, 2))),
    Case("matmul(stack,vector)", ops.matmul, torch.matmul, ((2, 2, 3), (3,))),
    Case("matmul(vector,stack)", ops.matmul, torch.matmul, ((3,), (2, 3, 2))),
    Case("outer", ops.outer, torch.outer, ((3,), (2,))),
    Case("transpose", lambda x: ops.transpose(x), lambda x: x.permute(*reversed(range(x.ndim))), ((2, 3, 2),)),
    Case("transpose(axes)", lambda x: ops.transpose(x, axes=(1, 2, 0)), lambda x: x.permute(1, 2, 0), ((2, 3, 2),)),
    Case("trace", ops.trace, torch.trace, ((3, 3),)),
    Case("inv", ops.inv, torch.linalg.inv, ((3, 3),), ("well_conditioned",)),
    Case("inv(stack)", ops.inv, torch.linalg.inv, ((2, 3, 3),), ("well_conditioned",)),
    Case("det", ops.det, torch.linalg.det, ((3, 3),), ("well_conditioned",)),
    Case("det(stack)", ops.det, torch.linalg.det, ((2, 3, 3),), ("well_conditioned",)),
    Case("adjugate", ops.adjugate, _torch_adjugate, ((3, 3),), ("well_conditioned",)),
    Case("adjugate(stack)", ops.adjugate, _torch_adjugate, ((2, 3, 3),), ("well_conditioned",)),
    Case("logdet", lambda a: ops.logdet(_spd(a)), lambda a: torch.logdet(_spd(a)), ((3, 3),), ("well_conditioned",)),
    Case("solve", ops.solve, torch.linalg.solve, ((3, 3), (3,)), ("well_conditioned", "any")),
    Case("solve(matrix)", ops.solve, torch.linalg.solve, ((3, 3), (3, 2)), ("well_conditioned", "any")),
    Case("solve(stack,vector)", ops.solve, torch.linalg.solve, ((2, 3, 3), (3,)), ("well_conditioned", "any")),
    Case("reshape", lambda x: ops.reshape(x, shape=(3, -1)), lambda x: x.reshape(3, -1), ((2, 3),)),
    Case(
        "concatenate",
        lambda a, b: ops.concatenate([a, b], axis=1),
        lambda a, b: torch.cat([a, b], 1),
        ((2, 3), (2, 1)),
    ),
    Case("stack", lambda a, b: ops.stack([a, b], axis=1), lambda a, b: torch.stack([a, b], 1), ((2, 3), (2, 3))),
    Case("getitem(slice)", lambda x: x[1:3], lambda x: x[1:3], ((4,),)),
    Case("getitem(int,column)", lambda x: x[:, 0] * x[1], lambda x: x[:, 0] * x[1], ((2, 2),)),
    Case("getitem(step,None)", lambda x: x[::-2, None], lambda x: x.flip(0)[::2, None], ((5,),)),
    Case("getitem(ellipsis)", lambda x: x[..., 1], lambda x: x[..., 1], ((2, 2, 3),)),
    Case(
        "broadcast_to",
        lambda x: ops.broadcast_to(x, shape=(2, 3, 2)),
        lambda x: x.broadcast_to(2, 3, 2),
        ((3, 1),),
    ),
    Case(
        "log(x**2)*sin(x)+1/x",
        lambda x: ops.log(x**2) * ops.sin(x) + 1 / x,
        lambda x: torch.log(x**2) * torch.sin(x) + 1 / x,
        ((4,),),
        ("away_from_zero",),
    ),
]

# Primitives that only derivative rules call. Checked as the others are, but outside the
# static cost estimate, which bounds what a request can reach: adjugate_derivative's own
# derivatives are det's third, whose rule forms n arrays the size of each matrix.
RULE_CASES: list[Case] = [
    Case(
        "adjugate_derivative",
        adjugate_derivative,
        _torch_adjugate_derivative,
        ((3, 3), (2, 3, 3)),
        ("well_conditioned", "any"),
    ),
]

# Zero-derivative functions: checked for values and for a zero (not missing) derivative.
PIECEWISE_CONSTANT = [
    *_unary("stop_gradient", torch.Tensor.detach),
    *_unary("sign", torch.sign, "away_from_zero"),
    *_unary("floor", torch.floor),
    *_unary("ceil", torch.ceil),
    *_unary("round", torch.round),
]
