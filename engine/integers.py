"""Integer results that do not fit are refused, not wrapped around.

numpy's and cupy's integers wrap past their range: in int64, 2**62 * 4 is 0 and the sum of
[2**62, 2**62] is -2**63. So a step whose result is an integer array is computed a second time
with its integer operands widened to float64, and where the two differ by far more than
float64's rounding could explain, the integer result has wrapped: the step raises
OverflowError, which the evaluators report as a numeric failure at the step's location.
Results that fit are exact, wrapped intermediates included (modular arithmetic: 2**62 + 2**62
- 2**62 - 2**62 is 0 either way).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

_BITS = {"int32": 32, "int64": 64}


def checked(impl: Callable, dtype: str) -> Callable:
    """`impl` itself for a result of another dtype; for an integer one, `impl` and the check."""
    if dtype not in _BITS:
        return impl
    # A wrap-around moves a result by a multiple of 2**bits; float64 rounds a sum or product
    # that fits by about 2**(bits - 53) an operation. A quarter of the range sits between.
    tolerance = 2.0 ** (_BITS[dtype] - 2)

    def impl_checked(xp: Any, *arrays: Any, **params: Any) -> Any:
        result = impl(xp, *arrays, **params)
        widened = [xp.astype(a, xp.float64) if xp.isdtype(a.dtype, "integral") else a for a in arrays]
        reference = xp.astype(impl(xp, *widened, **params), xp.float64)
        if bool(xp.any(xp.abs(reference - xp.astype(result, xp.float64)) > tolerance)):
            raise OverflowError(
                f"the integer result does not fit in {dtype}, whose integers wrap around past "
                f"{2 ** (_BITS[dtype] - 1) - 1:,}; compute in floating point instead (1.0 * n is n as a float)"
            )
        return result

    return impl_checked
