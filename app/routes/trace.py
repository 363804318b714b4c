"""POST /v1/trace: the computational graph as evaluated, every node with its value and its
adjoint. The engine traces (`engine.trace`) in a worker; `app.tracing` writes the answer."""

from typing import Annotated

from fastapi import APIRouter, Body
from fastapi.responses import Response

from app import schemas
from app.deps import DispatcherDep
from app.examples import EXAMPLES
from app.problems import COMPUTE_RESPONSES
from app.routing import OrjsonRoute

router = APIRouter(prefix="/v1", tags=["trace"], route_class=OrjsonRoute)


@router.post(
    "/trace",
    response_model=schemas.TraceResponse,
    summary="The computational graph, with values and adjoints",
    description="The same request as /v1/grad. The answer lists every node of the function as evaluated (for a "
    "program, the path its run took, each node with its source line): its id, primitive, input ids, shape, dtype, "
    "value, and adjoint d output / d node, as `retain_grad()` gives in PyTorch (of the output's sum with "
    '`reduce: "sum"`), with arrays above `summarize_above` elements summarised; and the graph as Graphviz DOT '
    "text. Past the node limit (`max_trace_nodes`) it is refused with 413 before anything is computed.",
    responses=COMPUTE_RESPONSES,
    operation_id="trace",
)
async def trace(
    body: Annotated[schemas.TraceRequest, Body(openapi_examples=EXAMPLES["trace"])], dispatcher: DispatcherDep
) -> Response:
    return await dispatcher.trace(body)
