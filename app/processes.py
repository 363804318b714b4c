"""Several API processes behind one port: `gradserve serve --processes N`.

The parent binds the port (and `metrics_port`'s) and spawns N processes that each accept on
the shared socket, as uvicorn's own `workers=` does, under the same server protocol
(`app.server`'s header timeout and connection cap), the connections spread evenly between
them (`app.balancing`). Each runs the app with its own share of the worker pool (the workers
split between them, at least one each) and of the bounds on connections, queue and handles;
each also listens on a private Unix socket in a directory only this user can open, where the
others forward requests for the state it owns (`app.ownership`, `app.forwarding`). The parent
restarts a process that dies, and stops them all on SIGINT or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from multiprocessing.process import BaseProcess
from typing import Any

import uvicorn

from app import logs, ownership, server
from app.balancing import ABSENT, Balance, BalancedSocket
from app.main import create_app
from app.settings import Settings

log = logging.getLogger("gradserve")

PR_SET_PDEATHSIG = 1  # prctl(2)
# Bounds that hold for the whole service, split between the processes.
SPLIT = ("workers", "queue_size", "max_connections", "handles_max_count", "handles_max_bytes")


def shares(settings: Settings, processes: int) -> list[dict[str, int]]:
    """Each process's settings that differ from the service's: its share of every bound in SPLIT
    (the first ones take the remainder), at least 1 each."""
    return [
        {name: max(1, getattr(settings, name) // processes + (index < getattr(settings, name) % processes))
         for name in SPLIT}
        for index in range(processes)
    ]  # fmt: skip


def serve(settings: Settings, overrides: dict[str, Any], host: str, port: int, log_level: str) -> None:
    """Runs `settings.api_processes()` API processes on host:port until SIGINT or SIGTERM."""
    processes = settings.api_processes()
    listening = [_bind(host, port)]
    if settings.metrics_port is not None:
        listening.append(_bind(settings.metrics_host, settings.metrics_port))
    peers = tempfile.mkdtemp(prefix="gradserve-peers-")  # mode 0700: the peer sockets are this user's alone
    context = multiprocessing.get_context("spawn")
    shared = shares(settings, processes)
    connections = context.RawArray("i", [ABSENT] * processes)  # each process's open connections

    def spawn(index: int) -> BaseProcess:
        child = context.Process(
            target=_child,
            args=(
                index,
                processes,
                peers,
                listening,
                connections,
                {**overrides, **shared[index]},
                host,
                port,
                log_level,
                os.getpid(),
            ),  # fmt: skip
            name=f"gradserve-api-{index}",
        )
        child.start()
        return child

    stopping = False

    def stop(signum: int, frame: Any) -> None:
        nonlocal stopping
        stopping = True

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    children = [spawn(index) for index in range(processes)]
    log.info("serving on http://%s:%d with %d API processes", host, port, processes)
    try:
        while not stopping:
            for index, child in enumerate(children):
                if not child.is_alive() and not stopping:
                    log.warning("API process %d exited with code %s; starting another", index, child.exitcode)
                    connections[index] = ABSENT  # its connections died with it
                    children[index] = spawn(index)
            time.sleep(0.2)
    finally:
        for child in children:
            if child.is_alive():
                child.terminate()  # SIGTERM: uvicorn finishes the requests in flight, the pool stops
        for child in children:
            child.join(timeout=30)
            if child.is_alive():
                child.kill()
                child.join()
        for sock in listening:
            sock.close()
        shutil.rmtree(peers, ignore_errors=True)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _bind(host: str, port: int) -> socket.socket:
    return uvicorn.Config(app=None, host=host, port=port).bind_socket()


def _child(
    index: int, processes: int, peers: str, listening: list[socket.socket], connections: Any,
    overrides: dict[str, Any], host: str, port: int, log_level: str, parent: int,
) -> None:  # fmt: skip
    _stop_with(parent)
    ownership.configure(index, processes, peers)
    settings = Settings(**overrides)
    logs.configure(settings.log_format, log_level)
    balance = Balance(connections, index)
    # After `ownership.configure`: the app forwards requests for other processes' ids.
    listeners = server.servers(
        create_app(settings), settings, host, port, log_level, ownership.peer_socket(index), balance
    )
    api, *metrics = listening
    sockets: list[list[socket.socket] | None] = [[BalancedSocket.wrap(api, balance)], *([s] for s in metrics), None]
    # The parent stops the processes with SIGTERM; Ctrl-C at a terminal reaches them too.
    # uvicorn raises the SIGTERM it caught again once it has stopped: exit through `finally`.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(server.serve_together(listeners, sockets))
    finally:
        with contextlib.suppress(OSError):
            os.unlink(ownership.peer_socket(index))
        if os.getppid() != parent:  # the parent was killed: no one else will remove the directory
            shutil.rmtree(peers, ignore_errors=True)


def _stop_with(parent: int) -> None:
    """SIGTERM to this process when its parent dies (Linux), even by SIGKILL: else it would
    go on serving the port, orphaned, out of reach of a restart."""
    if sys.platform == "linux":
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before that
        os.kill(os.getpid(), signal.SIGTERM)
