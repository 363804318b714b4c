"""The `gradserve` command: one-off calls to a running service, and `serve` to run one.

    gradserve grad "2*dot(x,x)" x=0,1,2,3 --url http://127.0.0.1:8000
    gradserve hvp "sin(x)" x=0,1,2 --tangent x=1,1,1 --reduce sum
    gradserve trace @program.py a=0.3 --dot | dot -Tsvg > graph.svg
    gradserve serve --port 8000

An input is NAME=VALUES: one number (a scalar), numbers separated by commas (a vector), or
JSON ([[1, 2], [3, 4]]). The function is an expression, a program (`def f(...): ...`), a
graph as JSON, or @FILE to read any of them from a file. The answer is printed as JSON; a
problem is printed on stderr, with exit status 1. The client verbs import nothing of the
service: `serve` alone loads it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from gradserve import wire
from gradserve.client import DEFAULT_URL, Client, Summary, Trace
from gradserve.errors import GradserveError

OPERATIONS = ("evaluate", "grad", "vjp", "jvp", "jacobian", "hessian", "hvp")
VERBS = (*OPERATIONS, "validate", "trace")


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["serve"]:
        from app.cli import main as serve  # the service's dependencies, for this verb only

        serve(argv)
        return
    args = _parser().parse_args(argv)
    try:
        answer = _call(args)
    except GradserveError as error:
        title = f"{error.title}: " if error.title else ""
        print(
            f"gradserve: {title}{error.detail}{f' (at {error.location})' if error.location else ''} [{error.type}]",
            file=sys.stderr,
        )
        raise SystemExit(1) from None
    except (ValueError, TypeError, OSError) as error:
        print(f"gradserve: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    if isinstance(answer, Trace) and args.dot:
        print(answer.dot, end="")
    else:
        print(json.dumps(wire.to_json(_printable(answer)), indent=2))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gradserve", description="Derivatives over HTTP.")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    verbs.add_parser("serve", help="run the HTTP service (see gradserve serve --help)")
    for verb in VERBS:
        command = verbs.add_parser(verb, help=f"call /v1/{verb} on a running service")
        command.add_argument("function", help="an expression, a program, a graph as JSON, or @FILE")
        command.add_argument("inputs", nargs="*", metavar="NAME=VALUES", help="an input: 2.5, or 0,1,2, or JSON")
        command.add_argument(
            "--url",
            default=os.environ.get("GRADSERVE_URL", DEFAULT_URL),
            help=f"the service (default: $GRADSERVE_URL or {DEFAULT_URL})",
        )
        command.add_argument(
            "--api-key",
            default=os.environ.get("GRADSERVE_API_KEY"),
            help="sent as X-API-Key (default: $GRADSERVE_API_KEY)",
        )
        command.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
        command.add_argument("--dtype", default="float64", choices=["float64", "float32"])
        if verb != "evaluate":
            command.add_argument("--wrt", help="inputs to differentiate, comma-separated (default: every floating one)")
        if verb in ("grad", "hvp", "trace"):
            command.add_argument("--reduce", default="none", choices=["none", "sum"])
        if verb == "jacobian":
            command.add_argument("--mode", default="auto", choices=["auto", "forward", "reverse"])
        if verb == "vjp":
            command.add_argument("--cotangent", required=True, metavar="VALUES", help="the head gradient")
        if verb in ("jvp", "hvp"):
            command.add_argument(
                "--tangent",
                action="append",
                required=True,
                metavar="NAME=VALUES",
                help="a direction for one input (repeat for each)",
            )
        if verb == "validate":
            command.add_argument("--operation", default="evaluate", choices=OPERATIONS)
        if verb == "trace":
            command.add_argument("--dot", action="store_true", help="print the graph as Graphviz DOT text only")
            command.add_argument("--summarize-above", type=int, help="summarise arrays with more elements")
    return parser


def _call(args: argparse.Namespace) -> Any:
    function = _function(args.function)
    inputs = dict(_assignment(text) for text in args.inputs)
    options: dict[str, Any] = {"dtype": args.dtype}
    if getattr(args, "wrt", None):
        options["wrt"] = [name.strip() for name in args.wrt.split(",")]
    for name in ("reduce", "mode", "operation", "summarize_above"):
        if getattr(args, name, None) is not None:
            options[name] = getattr(args, name)
    with Client(args.url, api_key=args.api_key, timeout=args.timeout) as client:
        if args.verb == "vjp":
            return client.vjp(function, inputs, _values(args.cotangent), **options)
        if args.verb in ("jvp", "hvp"):
            tangents = dict(_assignment(text) for text in args.tangent)
            return getattr(client, args.verb)(function, inputs, tangents, **options)
        return getattr(client, args.verb)(function, inputs, **options)


def _function(text: str) -> Any:
    if text.startswith("@"):
        text = Path(text[1:]).read_text()
    if text.lstrip().startswith("{"):
        return json.loads(text)
    return text


def _assignment(text: str) -> tuple[str, Any]:
    name, equals, values = text.partition("=")
    if not equals or not name:
        raise ValueError(f"an input is NAME=VALUES, like x=0,1,2; got {text!r}")
    return name.strip(), _values(values)


def _values(text: str) -> Any:
    text = text.strip()
    if text.startswith("["):
        return json.loads(text)
    numbers = [float(part) for part in text.split(",") if part.strip()]
    return numbers[0] if len(numbers) == 1 and "," not in text else numbers


def _printable(answer: Any) -> Any:
    """An answer as JSON-ready data: a Result's fields that are set, a Trace's nodes."""
    if isinstance(answer, dict):
        return answer
    fields = {name: value for name, value in vars(answer).items() if value is not None}
    if isinstance(answer, Trace):
        fields["nodes"] = [
            {key: vars(value) if isinstance(value, Summary) else value for key, value in vars(node).items()}
            for node in answer.nodes
        ]
    return fields


if __name__ == "__main__":
    main()
