"""POST /v1/evaluate, grad, vjp, jvp, jacobian, hessian, hvp and validate.

The operations share one handler shape: validate the body (pydantic), let the dispatcher
prepare, compute and encode. Their routes are made from the engine's registry of operations,
so that each gets its own request model, response model, summary, description and examples
in the OpenAPI document.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Body
from fastapi.responses import Response

from app import schemas
from app.deps import DispatcherDep
from app.examples import EXAMPLES
from app.problems import COMPUTE_RESPONSES
from app.routing import OrjsonRoute
from engine.operations import OPERATIONS, Operation

router = APIRouter(prefix="/v1", tags=["compute"], route_class=OrjsonRoute)

_COMMON = (
    "\n\nThe function is one of `expression`, `graph` or `program` (see GET /v1/ops for the names). "
    "Inputs are JSON numbers, nested lists, or base64 `{dtype, shape, data}`; `encoding` picks how the "
    'response writes arrays. Non-finite numbers are the strings "NaN", "Infinity", "-Infinity" both ways. '
    "`value` is always the function's output."
)


def _handler(operation: Operation):
    request_model = schemas.REQUESTS[operation.name]
    examples = EXAMPLES.get(operation.name)

    async def handle(
        body: Annotated[request_model, Body(openapi_examples=examples)], dispatcher: DispatcherDep
    ) -> Response:
        return await dispatcher.compute(operation.name, body)

    handle.__name__ = operation.name
    return handle


for _operation in OPERATIONS.values():
    router.add_api_route(
        f"/{_operation.name}",
        _handler(_operation),
        methods=["POST"],
        response_model=schemas.RESPONSES[_operation.name],
        summary=_operation.summary,
        description=_operation.description + _COMMON,
        responses=COMPUTE_RESPONSES,
        operation_id=_operation.name,
    )


@router.post(
    "/validate",
    response_model=schemas.ValidateResponse,
    summary="Shapes and cost, without computing",
    description="Parses and builds the function, infers the output's shape and dtype, and estimates what "
    "`operation` would return and allocate, with no worker and no array work. Inputs may be given as "
    '`{"dtype", "shape"}` alone. An invalid function is answered with the same problem as the operation would '
    "give; a valid one over the size limits is answered 200 with `within_limits: false`. A program is only "
    "syntax-checked: its shapes are known when it runs.",
    responses=COMPUTE_RESPONSES,
    operation_id="validate",
)
async def validate(
    body: Annotated[schemas.ValidateRequest, Body(openapi_examples=EXAMPLES["validate"])], dispatcher: DispatcherDep
) -> dict[str, Any]:
    return await dispatcher.validate(body)
