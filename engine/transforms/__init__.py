"""Transformations: interpreters over the IR that call the primitives' rules.

`jvp_call`, `vjp_call` and `vmap_call` replay a function into the current builder, so
transformations nest inside one another; `engine.api` composes them into the cached
Function-to-Function forms (gradients, Jacobians, Hessians), and `vmap` is one on its own.
"""

from engine.transforms.cse import eliminate_common_subexpressions
from engine.transforms.dce import eliminate_dead_code
from engine.transforms.jvp import jvp_call
from engine.transforms.simplify import simplify
from engine.transforms.vjp import vjp_call
from engine.transforms.vmap import vmap, vmap_call

__all__ = [
    "eliminate_common_subexpressions",
    "eliminate_dead_code",
    "jvp_call",
    "simplify",
    "vjp_call",
    "vmap",
    "vmap_call",
]
