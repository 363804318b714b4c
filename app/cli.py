"""`gradserve serve [--host HOST] [--port PORT] [--workers N] [--processes P]`: the service
under uvicorn.

uvicorn processes serve HTTP behind one port: two by default (one with the ray executor), or as
many as `--processes` (GRADSERVE_PROCESSES) says (`app.processes`); `--workers` sizes the pool
of computing processes, split between them (it overrides GRADSERVE_WORKERS). Every other
setting comes from GRADSERVE_* variables: the timeouts and the connection cap, the security
options, `metrics_port`, `log_format`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

from app import logs, processes, server
from app.main import create_app
from app.settings import Settings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gradserve", description="Derivatives over HTTP.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    serve.add_argument(
        "--workers", type=int, help="worker processes computing requests (default: GRADSERVE_WORKERS or 2)"
    )
    serve.add_argument(
        "--processes",
        type=int,
        help="API processes serving the port (default: GRADSERVE_PROCESSES, or 2; 1 with the ray executor)",
    )
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    args = parser.parse_args(argv)

    for option in ("workers", "processes"):
        if getattr(args, option) is not None and getattr(args, option) < 1:
            parser.error(f"--{option} must be at least 1")
    overrides = {option: getattr(args, option) for option in ("workers", "processes") if getattr(args, option)}
    settings = Settings(**overrides)
    logs.configure(settings.log_format, args.log_level)
    if settings.api_processes() > 1:
        processes.serve(settings, overrides, args.host, args.port, args.log_level)
        return
    listeners = server.servers(create_app(settings), settings, args.host, args.port, args.log_level)
    # uvicorn stops gracefully on Ctrl-C, then raises it again for the default handler.
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(server.serve_together(listeners))


if __name__ == "__main__":
    main()
