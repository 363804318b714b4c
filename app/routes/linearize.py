"""POST /v1/linearize, then the products of its handle: /v1/linearize/{id}/jvp, /vjp and
/hvp, and DELETE /v1/linearize/{id}. One forward pass, many products."""

from typing import Annotated

from fastapi import APIRouter, Body, Path, Response

from app import schemas
from app.deps import DispatcherDep
from app.examples import EXAMPLES, LINEARIZED_PRODUCTS
from app.problems import COMPUTE_RESPONSES, problem_response_doc
from app.routing import OrjsonRoute
from engine import operations
from engine.linearize import PRODUCTS

router = APIRouter(prefix="/v1/linearize", tags=["linearize"], route_class=OrjsonRoute)

HandleId = Annotated[str, Path(description="the id /v1/linearize answered", max_length=64)]
NOT_FOUND = {404: problem_response_doc("handle-not-found: unknown, expired, deleted or evicted")}


@router.post(
    "",
    response_model=schemas.LinearizeResponse,
    summary="Linearize a function at its inputs",
    description="Evaluates the function once and keeps, under a handle, what its products need: the "
    "residuals of the JVP, the VJP and (for a scalar output) the HVP. Products through the handle then send "
    "only a tangent or a cotangent and recompute no primal. Handles expire (`expires_at`), and the least "
    "recently used are evicted when the store is full; then 404.",
    responses=COMPUTE_RESPONSES,
    operation_id="linearize",
)
async def linearize(
    body: Annotated[schemas.LinearizeRequest, Body(openapi_examples=EXAMPLES["linearize"])], dispatcher: DispatcherDep
) -> Response:
    return await dispatcher.linearize(body)


def _product_handler(product: str):
    request_model = schemas.PRODUCT_REQUESTS[product]

    examples = LINEARIZED_PRODUCTS[product]

    async def handle(
        handle_id: HandleId, body: Annotated[request_model, Body(openapi_examples=examples)], dispatcher: DispatcherDep
    ) -> Response:
        return await dispatcher.product(handle_id, product, body)

    handle.__name__ = f"linearized_{product}"
    return handle


for _product in PRODUCTS:
    _operation = operations.lookup(_product)
    router.add_api_route(
        f"/{{handle_id}}/{_product}",
        _product_handler(_product),
        methods=["POST"],
        response_model=schemas.RESPONSES[_product],
        summary=f"{_operation.summary}, through a handle",
        description=f"{_operation.description} At the point the handle was linearized; only "
        f"`{_operation.extra.name}` is sent.",
        responses={**COMPUTE_RESPONSES, **NOT_FOUND},
        operation_id=f"linearized_{_product}",
    )


@router.delete(
    "/{handle_id}",
    status_code=204,
    summary="Free a handle",
    description="Frees the handle's residuals now, before it expires.",
    responses={**NOT_FOUND, 422: problem_response_doc("invalid-request: the id is not one a handle can have")},
    operation_id="delete_linearization",
)
def delete(handle_id: HandleId, dispatcher: DispatcherDep) -> Response:
    dispatcher.handles.delete(handle_id)
    return Response(status_code=204)
