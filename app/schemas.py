"""Request and response models. Requests are strict: a boolean or the string "1" is not a
number, unknown fields are refused, arrays must be rectangular. Each operation's request and
response models are made from its entry in the engine's registry (`engine.operations`).
Responses are written by `app.dispatch` directly (orjson); their models document them."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    create_model,
    field_validator,
    model_validator,
)
from typing_extensions import TypeAliasType

from app import arrays
from engine import formula, linearize, operations, sweeps, trace

NonFinite = Literal["NaN", "Infinity", "-Infinity"]
NestedNumbers = TypeAliasType(
    "NestedNumbers",
    Annotated[
        Union[float, NonFinite, list["NestedNumbers"]],  # noqa: UP007 - a recursive alias needs the Union form
        Field(
            description="A number, or a rectangular nested list of numbers. JSON has no NaN or infinity: they are "
            'written as the strings "NaN", "Infinity" and "-Infinity", in requests and responses alike.'
        ),
    ],
)
NestedBooleans = TypeAliasType(
    "NestedBooleans",
    Annotated[
        Union[bool, list["NestedBooleans"]],  # noqa: UP007 - a recursive alias needs the Union form
        Field(description="a boolean array (a comparison's value), as JSON booleans"),
    ],
)
Dtype = Literal["float64", "float32", "int64", "int32", "bool"]
Shape = Annotated[list[Annotated[int, Field(ge=0)]], Field(max_length=arrays.MAX_NDIM)]
# Padded standard base64, as the service decodes it (that the bytes fill the shape, no schema can say).
BASE64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class EncodedArray(StrictModel):
    """An array as raw bytes: exact for float64, and the fast way to send large arrays."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"dtype": "float64", "shape": [2], "data": "AAAAAAAA8D8AAAAAAAAAQA=="}]}
    )
    dtype: Dtype
    shape: Shape
    data: str = Field(pattern=BASE64, description="base64 of the little-endian, C-order bytes")


class ArrayShape(StrictModel):
    """An array described, not sent: its dtype and shape (for /v1/validate)."""

    dtype: Dtype
    shape: Shape


def _decode(value: Any) -> Any:
    return arrays.decode(value)


def _decode_or_shape(value: Any) -> Any:
    return arrays.decode(value, allow_abstract=True)


ArrayIn = Annotated[Any, PlainValidator(_decode, json_schema_input_type=Union[NestedNumbers, EncodedArray])]  # noqa: UP007
ArrayOrShapeIn = Annotated[
    Any, PlainValidator(_decode_or_shape, json_schema_input_type=Union[NestedNumbers, EncodedArray, ArrayShape])  # noqa: UP007
]
ArrayOut = Union[NestedNumbers, NestedBooleans, EncodedArray]  # noqa: UP007


# ---- the function ----


class GraphNode(StrictModel):
    id: str
    op: str = Field(description="an op name from GET /v1/ops")
    args: list[Any] = Field(default_factory=list, description="node ids, input names, or numbers")
    params: dict[str, Any] = Field(default_factory=dict, description='keyword arguments, such as {"axis": 0}')


class Graph(StrictModel):
    inputs: list[str]
    nodes: list[GraphNode]
    output: str


def _without_null(schema: dict[str, Any]) -> None:
    """None stands for a key left out, and a key sent as null is refused: the schema leaves null out."""
    (given,) = [branch for branch in schema.pop("anyOf") if branch != {"type": "null"}]
    schema.update(given)


class FunctionSpec(StrictModel):
    """Exactly one of `expression`, `graph` or `program`."""

    # One property of the three (no others are allowed): the JSON schema's way of saying "exactly one".
    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})
    expression: str | None = Field(
        None, description="Python expression syntax over the inputs' names", json_schema_extra=_without_null
    )
    graph: Graph | None = Field(None, description="the computational graph itself", json_schema_extra=_without_null)
    program: str | None = Field(
        None,
        description="the source of one function `def f(a, b): ...`, run on the inputs (define-by-run)",
        json_schema_extra=_without_null,
    )

    @field_validator("expression", "graph", "program")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("must not be null: send the one function key you mean, and leave the others out")
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> FunctionSpec:
        given = [name for name in ("expression", "graph", "program") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of expression, graph or program (got {len(given)})")
        return self

    def definition(self) -> dict[str, Any]:
        """The function as the engine takes it: {"expression": ...}, {"graph": {...}} or {"program": ...}."""
        if self.graph is not None:
            return {"graph": self.graph.model_dump()}
        return {"expression": self.expression} if self.expression is not None else {"program": self.program}


# ---- requests: one model per operation of the engine's registry ----

# ASCII only, so that every JSON Schema regex dialect reads the pattern alike.
InputName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="an input's name, an identifier")]
Wrt = Annotated[
    list[InputName] | None,
    Field(description="inputs to differentiate with respect to (default: every floating input)"),
]


class FunctionRequest(StrictModel):
    function: FunctionSpec
    inputs: dict[str, ArrayIn] = Field(default_factory=dict, description="name -> array")
    dtype: Literal["float64", "float32"] = Field("float64", description="precision of the computation")


class ComputeRequest(FunctionRequest):
    encoding: Literal["json", "base64"] = Field("json", description="how the response writes arrays")


class DerivativeRequest(ComputeRequest):
    wrt: Wrt = None


Reduction = Literal[operations.REDUCTIONS]
JacobianMode = Literal[operations.JACOBIAN_MODES]
_OPTION_FIELDS: dict[str, Any] = {
    "reduce": (Reduction, Field("none", description='"none": the output must be a scalar; "sum": the gradient of '
                                "the sum of the output")),
    "mode": (JacobianMode, Field("auto", description="auto: forward when the inputs are fewer than the outputs, "
                                 "else reverse")),
    "format": (Literal[sweeps.FORMATS], Field("dense", description='"dense": arrays shaped like the plain '
               'derivative; "coo" or "csr": each block flattened to a matrix (a Jacobian\'s to (output size, input '
               "size), a Hessian's to (size, size)) and sent as the arrays scipy.sparse builds it from, holding the "
               "entries of its sparsity pattern (some may be zero at these inputs)")),
    "verify": (bool, Field(False, description="check the derivative against central finite differences along a "
                           "few directions (two more evaluations of the function, or of its gradient, per "
                           "direction); the report is meta.verification")),
}  # fmt: skip


def _request_model(op: operations.Operation) -> type[ComputeRequest]:
    fields = {option: _OPTION_FIELDS[option] for option in op.options}
    if op.extra is not None:
        kind = dict[str, ArrayIn] if op.extra.per_input else ArrayIn
        fields[op.extra.name] = (kind, Field(description=op.extra.doc))
    base = DerivativeRequest if op.order else ComputeRequest
    return create_model(f"{op.name.capitalize()}Request", __base__=base, **fields)


REQUESTS: dict[str, type[ComputeRequest]] = {name: _request_model(op) for name, op in operations.OPERATIONS.items()}


def _integral(value: Any) -> Any:
    """JSON Schema's integers include 64.0; the strict int does not."""
    return int(value) if type(value) is float and value.is_integer() else value


TraceRequest = create_model(
    "TraceRequest",
    __base__=DerivativeRequest,
    reduce=_OPTION_FIELDS["reduce"],
    summarize_above=(
        Annotated[int, BeforeValidator(_integral)],
        Field(
            trace.SUMMARIZE_ABOVE,
            ge=1,
            le=100_000,
            description="arrays with more elements than this are sent as a summary (shape, min, max, mean, the "
            "first entries)",
        ),
    ),
)


class ValidateRequest(FunctionRequest):
    inputs: dict[str, ArrayOrShapeIn] = Field(
        default_factory=dict, description='name -> array, or {"dtype", "shape"} alone: no data is needed'
    )
    operation: Literal[tuple(operations.OPERATIONS)] = Field(
        "evaluate", description="the endpoint whose cost to estimate"
    )
    wrt: Wrt = None
    reduce: Reduction = "none"
    mode: JacobianMode = "auto"
    format: Literal[sweeps.FORMATS] = "dense"


class DerivativeFormulaRequest(FunctionRequest):
    inputs: dict[str, ArrayOrShapeIn] = Field(
        default_factory=dict, description='name -> array, or {"dtype", "shape"} alone: a formula needs only shapes'
    )
    wrt: Wrt = None
    order: Literal[formula.ORDERS] = Field(
        1,
        description="1: the gradient; 2: the Hessian-vector product H v (a formula of the inputs and a vector v "
        "per input), or f'' for a scalar function of one scalar input",
    )
    reduce: Reduction = Field("none", description='"sum": the gradient of the sum of a non-scalar output (order 1)')


# ---- responses: written by app.dispatch (orjson); these models document them ----


class ResponseModel(BaseModel):
    """What a response holds, exactly: the document says no other property is sent."""

    model_config = ConfigDict(extra="forbid")


class Verification(ResponseModel):
    """The derivative checked against central finite differences (`verify: true`)."""

    verdict: Literal["pass", "fail", "path-changed", "inconclusive"] = Field(
        description="pass: error <= tolerance; path-changed: a program took another path at a perturbed input; "
        "inconclusive: the derivative or the difference is not finite there"
    )
    error: float | None = Field(
        description="max |derivative - difference| over the derivative's size (plus the difference's rounding "
        "floor over the tolerance), along the directions; null unless pass or fail"
    )
    tolerance: float = Field(description="the largest error that passes: 1e-6 in float64, 1e-2 in float32")
    step: float = Field(description="h = cbrt(eps): each input moves by h * max(|x|, 1) * (uniform in [-1, 1))")
    directions: int = Field(description="directions checked: random ones, or the request's tangents")
    evaluations: int = Field(description="extra evaluations of the function (first order) or its gradient")
    compared: str = Field(description="what was compared with what")
    detail: str


class Sweep(ResponseModel):
    """A Jacobian or Hessian swept in chunks of seed vectors, or compressed by a colouring of
    its sparsity pattern (structurally orthogonal columns or rows share a seed vector)."""

    direction: Literal["forward", "reverse", "hessian"] = Field(
        description="forward: columns (J v); reverse: rows (v J); hessian: columns (H v)"
    )
    compressed: bool = Field(description="one seed vector per colour of the pattern, not per basis vector")
    seeds: int = Field(description="seed vectors in all: colours, or the basis's size")
    batch: int = Field(description="seed vectors per run (fewer than seeds: chunked to fit the intermediate limit)")
    runs: int = Field(description="runs of the batched derivative function")
    nonzeros: int | None = Field(description="structural nonzeros of the derivative, where its pattern was computed")
    colors: int | None = Field(
        description="colours of the pattern in this direction (the seeds a compressed sweep takes), where computed"
    )


class Meta(ResponseModel):
    device: str = Field(description='"cpu" or "gpu"')
    backend: str = Field(description="the array library the worker ran on")
    nodes: int | None = Field(None, description="operations of the function (as built)")
    mode: str | None = Field(None, description="the Jacobian mode used, where one was chosen")
    timings_ms: dict[str, float] = Field(
        description="prepare (parse, build, check), worker (round trip), compute (in the worker), encode, total"
    )
    verification: Verification | None = Field(None, description="with verify: true, the derivative's check")
    sweep: Sweep | None = Field(
        None, description="how a Jacobian or Hessian was swept, where not in one batch over the whole basis"
    )


class ComputeResponse(ResponseModel):
    value: ArrayOut
    meta: Meta | None = None


class CsrMatrix(ResponseModel):
    """`scipy.sparse.csr_array((data, indices, indptr), shape=shape)`."""

    format: Literal["csr"]
    shape: list[int] = Field(description="[rows, columns]")
    indptr: ArrayOut = Field(description="int64: row i's entries are indptr[i]:indptr[i+1] of indices and data")
    indices: ArrayOut = Field(description="int64: each entry's column")
    data: ArrayOut = Field(description="each entry's value")


class CooMatrix(ResponseModel):
    """`scipy.sparse.coo_array((data, (row, col)), shape=shape)`."""

    format: Literal["coo"]
    shape: list[int] = Field(description="[rows, columns]")
    row: ArrayOut = Field(description="int64: each entry's row")
    col: ArrayOut = Field(description="int64: each entry's column")
    data: ArrayOut = Field(description="each entry's value")


MatrixOut = Union[NestedNumbers, EncodedArray, CsrMatrix, CooMatrix]  # noqa: UP007

_LAYOUT_TYPES: dict[str, Any] = {
    operations.OUTPUT: ArrayOut,
    operations.PER_INPUT: dict[str, ArrayOut],
    operations.JACOBIAN: dict[str, MatrixOut],
    operations.PAIRS: dict[str, dict[str, MatrixOut]],
}


def _response_model(op: operations.Operation) -> type[ComputeResponse]:
    fields: dict[str, Any] = {r.name: (_LAYOUT_TYPES[r.layout], Field(description=r.doc)) for r in op.results}
    if "mode" in op.options:
        fields["mode"] = (Literal["forward", "reverse"], Field(description="the mode used"))
    return create_model(f"{op.name.capitalize()}Response", __base__=ComputeResponse, **fields)


RESPONSES: dict[str, type[ComputeResponse]] = {name: _response_model(op) for name, op in operations.OPERATIONS.items()}


# ---- linearize handles: the products of a linearization are the registry's jvp, vjp, hvp ----


class LinearizeRequest(DerivativeRequest):
    pass


class HandleInfo(ResponseModel):
    id: str = Field(description="the handle, for /v1/linearize/{id}/jvp, /vjp and /hvp")
    expires_at: str = Field(description="when the handle expires (ISO 8601, UTC); then 404")


class LinearizeResponse(ComputeResponse):
    handle: HandleInfo


class ProductRequest(StrictModel):
    encoding: Literal["json", "base64"] = Field("json", description="how the response writes arrays")


def _product_request_model(op: operations.Operation) -> type[ProductRequest]:
    kind = dict[str, ArrayIn] if op.extra.per_input else ArrayIn
    extra = (kind, Field(description=op.extra.doc))
    return create_model(f"Linearized{op.name.capitalize()}Request", __base__=ProductRequest, **{op.extra.name: extra})


PRODUCT_REQUESTS: dict[str, type[ProductRequest]] = {
    name: _product_request_model(operations.lookup(name)) for name in linearize.PRODUCTS
}


# ---- the derivative as a formula (/v1/derivative) ----


class FormulaSource(ResponseModel):
    """A function in the request's own terms: post it as `function`, with the same inputs, to
    /v1/evaluate."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})
    expression: str | None = Field(None, description="an expression", json_schema_extra=_without_null)
    program: str | None = Field(
        None,
        description="a program whose assignments name what repeats, when that is shorter or the expression "
        "would nest too deeply",
        json_schema_extra=_without_null,
    )


class FormulaMeta(ResponseModel):
    nodes: int = Field(description="operations of the simplified derivatives, all inputs together")
    timings_ms: dict[str, float] = Field(description="total: building, differentiating, simplifying, printing")


class DerivativeResponse(ResponseModel):
    of: Literal[formula.GRADIENT, formula.HESSIAN_VECTOR_PRODUCT, formula.SECOND_DERIVATIVE] = Field(
        description="what the formulas are"
    )
    derivative: dict[str, FormulaSource] = Field(
        description="input name -> the derivative with respect to it, as a function of all the inputs (and, for a "
        "Hessian-vector product, of the vectors)"
    )
    vectors: dict[str, str] | None = Field(
        None,
        description="for a Hessian-vector product: input name -> the name its vector v has in the formulas; "
        "give it as an input when evaluating them",
    )
    meta: FormulaMeta | None = None


# ---- /v1/trace ----


class ArraySummary(ResponseModel):
    """An array too large to send whole. Its numbers are JSON numbers whatever the encoding."""

    shape: list[int]
    dtype: str
    min: float | NonFinite
    max: float | NonFinite
    mean: float | NonFinite
    entries: list[float | NonFinite | bool] = Field(
        description=f"the first {trace.SUMMARY_ENTRIES} elements in C order"
    )


NodeArray = Union[ArraySummary, NestedNumbers, NestedBooleans, EncodedArray]  # noqa: UP007


class TraceNode(ResponseModel):
    id: str = Field(description='"%k": the inputs first, then each operation in the order it ran')
    primitive: str = Field(description='the engine primitive computed, or "input"')
    inputs: list[str | float | NonFinite | bool] = Field(
        description="the ids of the nodes it reads, in order; a number where it reads a constant"
    )
    params: str = Field(description="the primitive's keyword arguments, as text")
    shape: list[int]
    dtype: str
    value: NodeArray = Field(description="its value, or a summary above summarize_above elements")
    adjoint: NodeArray | None = Field(
        description="d output / d node (of the output's sum with reduce: sum), shaped like the node; null where "
        "no gradient reaches it (a constant or an input not in wrt, an integer or boolean, what feeds only a "
        "condition or detach), as PyTorch leaves such a tensor's .grad None"
    )
    name: str | None = Field(None, description="an input's name")
    operation: str | None = Field(None, description='the function the user wrote that it computes ("dot", "softmax")')
    location: str | None = Field(None, description="where the user wrote it: a source offset, a line and column, "
                                 "or a graph node id")  # fmt: skip
    line: int | None = Field(None, description="a program's source line")


class TraceResponse(ResponseModel):
    value: ArrayOut
    output: str | None = Field(description="the output node's id; null when the output is a constant")
    nodes: list[TraceNode] = Field(description="every node as evaluated; for a program, the path its run took")
    dot: str = Field(description="the graph as Graphviz DOT text, with values and adjoints in the labels")
    meta: Meta | None = None


class OutputSpec(ResponseModel):
    shape: list[int]
    dtype: str


class CostEstimate(ResponseModel):
    results: dict[str, list[int]] = Field(description="shape of each derivative array the response would carry")
    result_elements: int = Field(description="elements of every array of the response, the value included")
    largest_intermediate: int = Field(description="elements of the largest array computed on the way")
    total_intermediate: int = Field(description="elements of all arrays computed (a bound on the work)")
    operations: int = Field(description="equations that would run")
    mode: str | None = None
    sweep: Sweep | None = Field(None, description="how a Jacobian or Hessian would be swept, where not in one batch")


class ValidateResponse(ResponseModel):
    valid: bool = Field(description="the function parses, its shapes fit, and the operation applies")
    output: OutputSpec | None = Field(description="null for a program: its shapes are known only when it runs")
    cost: CostEstimate | None = None
    within_limits: bool | None = Field(None, description="whether the operation would be admitted")
    limit_detail: str | None = Field(None, description="the limit it would break, if any")
    parameters: list[str] | None = Field(None, description="a program's parameters")


class OpEntry(ResponseModel):
    name: str
    arity: int = Field(description="positional arguments (a list argument counts as one)")
    parameters: list[str] = Field(description="keyword arguments, such as axis")
    differentiable: bool
    doc: str


class OpsResponse(ResponseModel):
    ops: list[OpEntry]


class Health(ResponseModel):
    status: str


class ProblemError(ResponseModel):
    location: str
    detail: str


class Problem(ResponseModel):
    """RFC 9457 problem details (media type application/problem+json)."""

    type: str = Field(description="a stable URI per kind of error", examples=["https://gradserve.dev/problems/syntax"])
    title: str
    status: int
    detail: str = Field(description="what is wrong and how to fix it")
    location: str | None = Field(
        None, description="a JSON pointer into the request (/inputs/x), a graph node id, or a source offset"
    )
    errors: list[ProblemError] | None = Field(None, description="every validation error, when there are several")
    request_id: str | None = Field(None, description="the request's id, as in the X-Request-ID response header")


# ---- jobs (/v1/jobs): an operation's request, run by the service and polled ----


def _job_request_model(op: operations.Operation) -> type[ComputeRequest]:
    operation = (Literal[op.name], Field(description="the operation; the other fields are its endpoint's request"))
    return create_model(f"{op.name.capitalize()}JobRequest", __base__=REQUESTS[op.name], operation=operation)


JOB_REQUESTS: dict[str, type[ComputeRequest]] = {
    name: _job_request_model(op) for name, op in operations.OPERATIONS.items()
}
JobRequest = Annotated[Union[tuple(JOB_REQUESTS.values())], Field(discriminator="operation")]  # noqa: UP007
JOB_STATES = ("queued", "running", "done", "failed", "cancelled")


class JobProgress(ResponseModel):
    done: int = Field(description="chunks (or colours) of the work done")
    total: int = Field(description="chunks of the work in all (1 until the engine says more)")


class JobLinks(ResponseModel):
    self: str = Field(description="where to poll (GET) or cancel (DELETE) the job")


class JobResponse(ResponseModel):
    id: str
    operation: Literal[tuple(operations.OPERATIONS)]
    state: Literal[JOB_STATES] = Field(
        description="queued (waiting for admission or a worker), running, done, failed or cancelled"
    )
    progress: JobProgress = Field(description="non-decreasing; done == total when done")
    created_at: str = Field(description="when the job was made (ISO 8601, UTC)")
    finished_at: str | None = Field(None, description="when it finished (done, failed or cancelled)")
    expires_at: str | None = Field(None, description="when a finished job is forgotten; then 404")
    result: Union[tuple(RESPONSES.values())] | None = Field(  # noqa: UP007
        None, description="when done: the body the operation's own endpoint would have answered, in its encoding"
    )
    problem: Problem | None = Field(None, description="when failed: the problem the endpoint would have answered")
    links: JobLinks
