"""POST /v1/evaluate, grad, vjp, jvp, jacobian, hessian, hvp and validate.

The seven operations share one handler shape: validate the body (pydantic), let the
service prepare, compute and encode. They are declared from one table so that each gets its
own request model, response model, summary, description and examples in the OpenAPI document.
"""

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import Response
from pydantic import BaseModel

from app import examples, schemas
from app.problems import COMPUTE_RESPONSES
from app.routes import OrjsonRoute

router = APIRouter(prefix="/v1", tags=["compute"], route_class=OrjsonRoute)

_COMMON = (
    "\n\nThe function is one of `expression`, `graph` or `program` (see GET /v1/ops for the names). "
    "Inputs are JSON numbers, nested lists, or base64 `{dtype, shape, data}`; `encoding` picks how the "
    'response writes arrays. Non-finite numbers are the strings "NaN", "Infinity", "-Infinity" both ways. '
    "`value` is always the function's output."
)


@dataclass(frozen=True)
class Operation:
    name: str
    request: type[BaseModel]
    response: type[BaseModel]
    summary: str
    description: str
    examples: dict[str, Any]


OPERATIONS = [
    Operation("evaluate", schemas.EvaluateRequest, schemas.EvaluateResponse, "Evaluate a function",
              "The function's output on the inputs.", examples.EVALUATE),
    Operation("grad", schemas.GradRequest, schemas.GradResponse, "Value and gradient",
              'The gradient of a scalar output with respect to each `wrt` input (`y.backward()`). With `reduce: "sum"` '
              "a non-scalar output is summed first, as MXNet and TensorFlow do; `value` stays the unreduced output.",
              examples.GRAD),
    Operation("vjp", schemas.VjpRequest, schemas.VjpResponse, "Vector-Jacobian product (reverse mode)",
              "`cotangent` @ J for each `wrt` input: `y.backward(cotangent)` for a non-scalar `y`.", examples.VJP),
    Operation("jvp", schemas.JvpRequest, schemas.JvpResponse, "Jacobian-vector product (forward mode)",
              "The directional derivative of the output along `tangents` (one per `wrt` input).", examples.JVP),
    Operation("jacobian", schemas.JacobianRequest, schemas.JacobianResponse, "Full Jacobian",
              "d output / d input, shaped output.shape + input.shape, in one batched sweep. `mode` auto picks forward "
              "when the inputs are fewer than the outputs, else reverse; the response says which ran. Sizes are "
              "checked from shapes before anything is computed.", examples.JACOBIAN),
    Operation("hessian", schemas.HessianRequest, schemas.HessianResponse, "Hessian of a scalar function",
              "Second derivatives (forward over reverse) for every pair of `wrt` inputs, each block shaped "
              "in1.shape + in2.shape.", examples.HESSIAN),
    Operation("hvp", schemas.HvpRequest, schemas.HvpResponse, "Hessian-vector product",
              "H @ v for a scalar function without forming H, with the value and the gradient.", examples.HVP),
]  # fmt: skip


def _handler(operation: Operation):
    async def handle(
        request: Request, body: Annotated[operation.request, Body(openapi_examples=operation.examples)]
    ) -> Response:
        return await request.app.state.service.compute(operation.name, body)

    handle.__name__ = operation.name
    return handle


for _operation in OPERATIONS:
    router.add_api_route(
        f"/{_operation.name}",
        _handler(_operation),
        methods=["POST"],
        response_model=_operation.response,
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
def validate(
    request: Request, body: Annotated[schemas.ValidateRequest, Body(openapi_examples=examples.VALIDATE)]
) -> dict[str, Any]:
    return request.app.state.service.validate(body)
