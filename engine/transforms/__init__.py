"""Transformations: interpreters over the IR that call the primitives' rules.

Each comes in two forms: `*_call`, which replays a function into the current builder
(so transformations nest inside one another), and a Function-to-Function form.
"""

from engine.transforms.cse import eliminate_common_subexpressions
from engine.transforms.dce import eliminate_dead_code
from engine.transforms.jvp import jvp, jvp_call
from engine.transforms.simplify import simplify
from engine.transforms.vjp import vjp, vjp_call
from engine.transforms.vmap import vmap, vmap_call

__all__ = [
    "eliminate_common_subexpressions",
    "eliminate_dead_code",
    "jvp",
    "jvp_call",
    "simplify",
    "vjp",
    "vjp_call",
    "vmap",
    "vmap_call",
]
