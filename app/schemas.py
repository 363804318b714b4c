"""Request and response models. Requests are strict: a boolean or the string "1" is not a
number, unknown fields are refused, arrays must be rectangular. Responses are written by
`app.service` directly (orjson); their models here document them in the OpenAPI schema."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, model_validator
from typing_extensions import TypeAliasType

from app import arrays

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
Dtype = Literal["float64", "float32", "int64", "int32", "bool"]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class EncodedArray(StrictModel):
    """An array as raw bytes: exact for float64, and the fast way to send large arrays."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"dtype": "float64", "shape": [2], "data": "AAAAAAAA8D8AAAAAAAAAQA=="}]}
    )
    dtype: Dtype
    shape: list[Annotated[int, Field(ge=0)]]
    data: str = Field(description="base64 of the little-endian, C-order bytes")


class ArrayShape(StrictModel):
    """An array described, not sent: its dtype and shape (for /v1/validate)."""

    dtype: Dtype
    shape: list[Annotated[int, Field(ge=0)]]


def _decode(value: Any) -> Any:
    return arrays.decode(value)


def _decode_or_shape(value: Any) -> Any:
    return arrays.decode(value, allow_abstract=True)


ArrayIn = Annotated[Any, PlainValidator(_decode, json_schema_input_type=Union[NestedNumbers, EncodedArray])]  # noqa: UP007
ArrayOrShapeIn = Annotated[
    Any, PlainValidator(_decode_or_shape, json_schema_input_type=Union[NestedNumbers, EncodedArray, ArrayShape])  # noqa: UP007
]
ArrayOut = Union[NestedNumbers, EncodedArray]  # noqa: UP007


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


class FunctionSpec(StrictModel):
    """Exactly one of `expression`, `graph` or `program`."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 1, "maxProperties": 1})
    expression: str | None = Field(None, description="Python expression syntax over the inputs' names")
    graph: Graph | None = Field(None, description="the computational graph itself")
    program: str | None = Field(
        None, description="the source of one function `def f(a, b): ...`, run on the inputs (define-by-run)"
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> FunctionSpec:
        given = [name for name in ("expression", "graph", "program") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of expression, graph or program (got {len(given)})")
        return self


# ---- requests ----

Wrt = Annotated[
    list[str] | None, Field(description="inputs to differentiate with respect to (default: every floating input)")
]


class FunctionRequest(StrictModel):
    function: FunctionSpec
    inputs: dict[str, ArrayIn] = Field(default_factory=dict, description="name -> array")
    dtype: Literal["float64", "float32"] = Field("float64", description="precision of the computation")


class EvaluateRequest(FunctionRequest):
    encoding: Literal["json", "base64"] = Field("json", description="how the response writes arrays")


class DerivativeRequest(EvaluateRequest):
    wrt: Wrt = None


class GradRequest(DerivativeRequest):
    reduce: Literal["none", "sum"] = Field(
        "none", description='"none": the output must be a scalar; "sum": the gradient of the sum of the output'
    )


class VjpRequest(DerivativeRequest):
    cotangent: ArrayIn = Field(description="shaped like the output: the head gradient v of y.backward(v)")


class JvpRequest(DerivativeRequest):
    tangents: dict[str, ArrayIn] = Field(description="input name -> direction, one per differentiated input")


class JacobianRequest(DerivativeRequest):
    mode: Literal["auto", "forward", "reverse"] = Field(
        "auto", description="auto: forward when the inputs are fewer than the outputs, else reverse"
    )


class HessianRequest(DerivativeRequest):
    pass


class HvpRequest(DerivativeRequest):
    tangents: dict[str, ArrayIn] = Field(description="input name -> the vector v of H @ v")


Operation = Literal["evaluate", "grad", "vjp", "jvp", "jacobian", "hessian", "hvp"]


class ValidateRequest(FunctionRequest):
    inputs: dict[str, ArrayOrShapeIn] = Field(
        default_factory=dict, description='name -> array, or {"dtype", "shape"} alone: no data is needed'
    )
    operation: Operation = Field("evaluate", description="the endpoint whose cost to estimate")
    wrt: Wrt = None
    reduce: Literal["none", "sum"] = "none"
    mode: Literal["auto", "forward", "reverse"] = "auto"


# ---- responses ----


class Meta(BaseModel):
    device: str = Field(description='"cpu" or "gpu"')
    backend: str = Field(description="the array library the worker ran on")
    nodes: int | None = Field(None, description="operations of the function (as built)")
    mode: str | None = Field(None, description="the Jacobian mode used, where one was chosen")
    timings_ms: dict[str, float] = Field(
        description="prepare (parse, build, check), worker (round trip), compute (in the worker), encode, total"
    )


class EvaluateResponse(BaseModel):
    value: ArrayOut
    meta: Meta | None = None


class GradResponse(EvaluateResponse):
    gradient: dict[str, ArrayOut] = Field(description="input name -> array shaped like that input")


class VjpResponse(EvaluateResponse):
    vjp: dict[str, ArrayOut] = Field(description="input name -> cotangent shaped like that input")


class JvpResponse(EvaluateResponse):
    jvp: ArrayOut = Field(description="shaped like the output")


class JacobianResponse(EvaluateResponse):
    jacobian: dict[str, ArrayOut] = Field(description="input name -> array of shape output.shape + input.shape")
    mode: Literal["forward", "reverse"]


class HessianResponse(EvaluateResponse):
    hessian: dict[str, dict[str, ArrayOut]] = Field(description="name -> name -> array of shape in1.shape + in2.shape")


class HvpResponse(GradResponse):
    hvp: dict[str, ArrayOut] = Field(description="input name -> (H @ v) shaped like that input")


class OutputSpec(BaseModel):
    shape: list[int]
    dtype: str


class CostEstimate(BaseModel):
    results: dict[str, list[int]] = Field(description="shape of each derivative array the response would carry")
    result_elements: int = Field(description="elements of every array of the response, the value included")
    largest_intermediate: int = Field(description="elements of the largest array computed on the way")
    total_intermediate: int = Field(description="elements of all arrays computed (a bound on the work)")
    operations: int = Field(description="equations that would run")
    mode: str | None = None


class ValidateResponse(BaseModel):
    valid: bool = Field(description="the function parses, its shapes fit, and the operation applies")
    output: OutputSpec | None = Field(description="null for a program: its shapes are known only when it runs")
    cost: CostEstimate | None = None
    within_limits: bool | None = Field(None, description="whether the operation would be admitted")
    limit_detail: str | None = Field(None, description="the limit it would break, if any")
    parameters: list[str] | None = Field(None, description="a program's parameters")


class OpEntry(BaseModel):
    name: str
    arity: int = Field(description="positional arguments (a list argument counts as one)")
    parameters: list[str] = Field(description="keyword arguments, such as axis")
    differentiable: bool
    doc: str


class OpsResponse(BaseModel):
    ops: list[OpEntry]


class Health(BaseModel):
    status: str


class ProblemError(BaseModel):
    location: str
    detail: str


class Problem(BaseModel):
    """RFC 9457 problem details (media type application/problem+json)."""

    type: str = Field(description="a stable URI per kind of error", examples=["https://gradserve.dev/problems/syntax"])
    title: str
    status: int
    detail: str = Field(description="what is wrong and how to fix it")
    location: str | None = Field(
        None, description="a JSON pointer into the request (/inputs/x), a graph node id, or a source offset"
    )
    errors: list[ProblemError] | None = Field(None, description="every validation error, when there are several")
