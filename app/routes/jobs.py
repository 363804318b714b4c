"""POST /v1/jobs, GET /v1/jobs/{id} and DELETE /v1/jobs/{id}: any compute operation, run by
the service and polled (app.jobs)."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path
from fastapi.responses import Response
from pydantic import TypeAdapter, ValidationError
from starlette.exceptions import HTTPException

from app import jobs, schemas
from app.deps import DispatcherDep
from app.examples import EXAMPLES
from app.problems import COMPUTE_RESPONSES, problem_response_doc
from app.routing import OrjsonRoute
from engine.operations import OPERATIONS


class JobBody:
    """Validates a job's body by the request model of its `operation` alone, so that a bad
    body is answered with the problem its endpoint would give (the same locations: /inputs/x,
    not the union's /jacobian/inputs/x). Quacks like FastAPI's ModelField for app.bodies."""

    _adapters = {name: TypeAdapter(model) for name, model in schemas.JOB_REQUESTS.items()}

    def validate(self, document: Any, values: Any = None, *, loc: tuple = ()) -> tuple[Any, list | None]:
        operation = document.get("operation") if isinstance(document, dict) else None
        if not isinstance(operation, str) or operation not in self._adapters:
            if isinstance(document, dict) and "operation" not in document:
                error = {"type": "missing", "loc": (*loc, "operation"), "msg": "Field required", "input": document}
            elif isinstance(document, dict):
                names = ", ".join(OPERATIONS)
                message = f"the operation must be one of {names}"
                error = {"type": "literal_error", "loc": (*loc, "operation"), "msg": message, "input": operation}
            else:
                error = {"type": "model_attributes_type", "loc": loc, "msg": "not an object", "input": document}
            return None, [error]
        try:
            return self._adapters[operation].validate_python(document), None
        except ValidationError as error:
            return None, [{**e, "loc": (*loc, *e["loc"])} for e in error.errors(include_url=False)]


class JobsRoute(OrjsonRoute):
    def body_model(self) -> Any:
        return None if self.body_field is None else JobBody()

    async def handle(self, scope, receive, send) -> None:
        # GET and DELETE /v1/jobs/{id} are two routes: a 405 lists the methods of both, not
        # only those of the first one matched (Starlette's own Allow).
        if self.methods and scope["method"] not in self.methods:
            allowed = {m for route in router.routes if route.path == self.path for m in route.methods}
            raise HTTPException(status_code=405, headers={"Allow": ", ".join(sorted(allowed))})
        await super().handle(scope, receive, send)


router = APIRouter(prefix="/v1/jobs", tags=["jobs"], route_class=JobsRoute)

JobId = Annotated[str, Path(description="the id POST /v1/jobs answered", max_length=64)]
NOT_FOUND = {404: problem_response_doc("job-not-found: unknown, expired or evicted")}
BAD_ID = {422: problem_response_doc("invalid-request: the id is not one a job can have")}
EXAMPLES_OF_JOBS = {
    f"{operation}_{name}": {**example, "value": {"operation": operation, **example["value"]}}
    for operation, names in (("jacobian", ("forward",)), ("hessian", ("quadratic_form",)), ("grad", ("control_flow",)))
    for name, example in EXAMPLES[operation].items()
    if name in names
}


@router.post(
    "",
    status_code=202,
    response_model=schemas.JobResponse,
    summary="Start a job",
    description="Any compute operation's request, with its name as `operation` (`jacobian`, `hessian`, ...), "
    "computed by the service while the client polls `GET /v1/jobs/{id}` (the `Location` header): for work "
    "longer than a request should wait. The request is validated, prepared and admitted as its endpoint's "
    "would be, so the same problems come back at once (422, 413, 503 with Retry-After); 503 too when the "
    "jobs kept are all unfinished. A job may run for `job_deadline_seconds` (not the synchronous deadline), "
    "and goes on when its client disconnects.",
    responses={**COMPUTE_RESPONSES, 202: {"headers": {"Location": {
        "description": "the job's URL", "schema": {"type": "string"}}}}},
    operation_id="start_job",
)  # fmt: skip
async def start_job(
    body: Annotated[schemas.JobRequest, Body(openapi_examples=EXAMPLES_OF_JOBS)], dispatcher: DispatcherDep
) -> Response:
    entry = await dispatcher.start_job(body.operation, body)
    headers = {"Location": jobs.location(entry.id)}
    return Response(jobs.body(entry), status_code=202, media_type="application/json", headers=headers)


@router.get(
    "/{job_id}",
    response_model=schemas.JobResponse,
    summary="A job's state",
    description="`state` (queued, running, done, failed, cancelled), `progress` and, when done, `result`: the "
    "body the operation's endpoint would have answered (in the encoding the job asked for); when failed, "
    "`problem`: the problem it would have answered. A finished job is kept until `expires_at`; then 404.",
    responses={**NOT_FOUND, **BAD_ID},
    operation_id="get_job",
)
async def get_job(job_id: JobId, dispatcher: DispatcherDep) -> Response:
    return Response(jobs.body(dispatcher.jobs.get(job_id)), media_type="application/json")


@router.delete(
    "/{job_id}",
    response_model=schemas.JobResponse,
    summary="Cancel a job",
    description="Cancels a queued or running job: the worker computing it is stopped (and replaced), and the "
    "job is `cancelled`. A finished job is left as it is. Answers the job's state after, as GET does; it is "
    "kept until `expires_at`.",
    responses={**NOT_FOUND, **BAD_ID},
    operation_id="cancel_job",
)
async def cancel_job(job_id: JobId, dispatcher: DispatcherDep) -> Response:
    entry = dispatcher.jobs.get(job_id)
    await dispatcher.jobs.cancel(entry)
    return Response(jobs.body(entry), media_type="application/json")
