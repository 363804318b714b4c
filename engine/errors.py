"""The one exception type the engine raises for anything a user can cause."""

from __future__ import annotations


class EngineError(Exception):
    """A fault in the user's function, inputs or request.

    `kind` is a stable machine-readable word (the HTTP layer maps it to a problem type),
    `location` says where it went wrong: a node id, an equation index, or a source offset
    (``"offset 12"``, ``"line 3, column 5"``).
    """

    def __init__(self, kind: str, message: str, location: str | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.location = location

    def __str__(self) -> str:
        return f"{self.message} (at {self.location})" if self.location else self.message

    def __reduce__(self):
        return (type(self), (self.kind, self.message, self.location))

    def at(self, location: str | None) -> EngineError:
        """The same error, located, unless it already knows a more precise location."""
        if self.location is None and location is not None:
            self.location = location
        return self


def pointer_token(part: object) -> str:
    """One reference token of a JSON pointer (RFC 6901)."""
    return str(part).replace("~", "~0").replace("/", "~1")


def pointer(*parts: object) -> str:
    """A JSON pointer into the request: pointer("inputs", "x/y") is "/inputs/x~1y"."""
    return "".join("/" + pointer_token(part) for part in parts)


# Kinds of user error; the HTTP layer keys its problem types on these words.
SYNTAX = "syntax"  # the source does not parse
UNKNOWN_NAME = "unknown_name"  # a name that is neither an input nor a whitelisted function
UNKNOWN_OP = "unknown_op"
ARITY = "arity"  # wrong number of arguments
BAD_PARAM = "bad_param"  # a keyword argument that is unknown or of the wrong type
SHAPE = "shape"  # shapes that do not fit together
DTYPE = "dtype"
GRAPH = "graph"  # cycles, dangling references, duplicate ids
NOT_SCALAR = "not_scalar"  # grad of a non-scalar output without reduce
BAD_WRT = "bad_wrt"  # wrt naming an unknown or non-floating input
BAD_INPUT = "bad_input"  # missing or extra inputs, wrong tangent/cotangent shapes
LIMIT = "limit"  # a budget of work was exceeded: nesting depth, node count, program steps
TOO_LARGE = "too_large"  # a size was exceeded: source length, array elements
NUMERIC = "numeric"  # a failure while computing (singular matrix, ...)
NO_FORMULA = "no_formula"  # a derivative the expression language cannot write (engine.printing)
