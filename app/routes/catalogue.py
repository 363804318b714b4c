"""GET /v1/ops: the names a function may use, from the engine's one table, by name."""

from fastapi import APIRouter

from app.schemas import OpsResponse
from engine.language import FUNCTIONS

router = APIRouter(prefix="/v1", tags=["catalogue"])


@router.get(
    "/ops",
    response_model=OpsResponse,
    summary="The operations a function may use",
    description="Every name an expression, program or graph node may call, with its positional arity, keyword "
    "parameters, whether it is differentiable, and one line of documentation. Operators (`+ - * / ** @`, "
    "comparisons), indexing and the method forms `x.sum()`, `x.mean()`, `x.norm()`, `x.T` map onto these names.",
    operation_id="ops",
)
def ops() -> dict:
    return {
        "ops": [
            {"name": f.name, "arity": f.arity, "parameters": f.parameters, "differentiable": f.differentiable,
             "doc": f.doc}
            for f in sorted(FUNCTIONS.values(), key=lambda f: f.name)
        ]
    }  # fmt: skip
