"""POST /v1/derivative: the derivative as a formula in the expression language."""

from typing import Annotated

from fastapi import APIRouter, Body
from fastapi.responses import Response

from app import schemas
from app.deps import DispatcherDep
from app.examples import EXAMPLES
from app.problems import COMPUTE_RESPONSES
from app.routing import OrjsonRoute

router = APIRouter(prefix="/v1", tags=["compute"], route_class=OrjsonRoute)


@router.post(
    "/derivative",
    response_model=schemas.DerivativeResponse,
    summary="The derivative as a formula",
    description="For each `wrt` input, the gradient (`order: 1`), or the Hessian-vector product (`order: 2`, a "
    "formula of the inputs and a vector per input, named in `vectors`), or, for a scalar function of one scalar "
    "input, the second derivative, written in the expression language and simplified: constants folded, `x*1`, "
    "`0*x` and `x+0` gone, and what repeats named once in a program when that is shorter. Post a formula as "
    "`function` to /v1/evaluate with the same inputs and it gives /v1/grad's numbers (to 1e-12). For expressions "
    "and graphs; a program's derivative holds only on its inputs' path. Inputs may be given as "
    '`{"dtype", "shape"}` alone. A derivative the language cannot write (strided indexing, the second derivative '
    "of det) is refused with a `no_formula` problem naming the operation.",
    responses=COMPUTE_RESPONSES,
    operation_id="derivative",
)
async def derivative(
    body: Annotated[schemas.DerivativeFormulaRequest, Body(openapi_examples=EXAMPLES["derivative"])],
    dispatcher: DispatcherDep,
) -> Response:
    return await dispatcher.derivative_formulas(body)
