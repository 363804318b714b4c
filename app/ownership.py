"""Ids of state kept in one API process, and which process owns one.

With `--processes N` several API processes serve one port, and state made by a request (a
linearize handle, a job) stays in the process that made it. Its id names that process:
`new_owned_id()` gives "p<index>.<random>", and `owner_of(id)` reads the index back, so that
a request for the id that lands on another process is forwarded to the owner
(`app.forwarding`) over the owner's private Unix socket (`peer_socket`). One process alone
(index 0, no peers) owns every id it makes.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path

_OWNED = re.compile(r"p(\d{1,4})\.")


@dataclass(frozen=True)
class Place:
    index: int = 0  # this process among the API processes
    processes: int = 1
    peer_directory: str | None = None  # where each process's private Unix socket is, None: alone


_place = Place()


def configure(index: int, processes: int, peer_directory: str | None) -> None:
    """Set once, at the start of an API process, by the process that runs it (`app.processes`)."""
    global _place
    _place = Place(index, processes, peer_directory)


def here() -> Place:
    return _place


def new_owned_id() -> str:
    """A new unguessable id, owned by this process."""
    return f"p{_place.index}.{secrets.token_urlsafe(16)}"


def owner_of(owned_id: str) -> int | None:
    """The index of the process that made `owned_id`, None when it is no id of a known process."""
    match = _OWNED.match(owned_id)
    if match is None:
        return None
    index = int(match.group(1))
    return index if index < _place.processes else None


def elsewhere(owned_id: str) -> int | None:
    """The owner of `owned_id` when it is another live API process, else None (answer here)."""
    owner = owner_of(owned_id)
    return None if owner is None or owner == _place.index or _place.peer_directory is None else owner


def peer_socket(index: int, directory: str | None = None) -> str:
    """The path of process `index`'s private Unix socket."""
    directory = directory or _place.peer_directory
    assert directory is not None, "no peers: this API process runs alone"
    return str(Path(directory) / f"{index}.sock")
