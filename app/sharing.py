"""Large arrays between the API process and its workers through shared memory, not pickles.

An argument of a task at or above `shared_memory_bytes` is written once into a file of
/dev/shm that the API process creates, and the task carries its `Shared` name instead; the
worker maps it (copy on write: nothing is copied unless written). The worker writes each
large array of its answer into a file whose name the API process chose before sending the
task (its prefix), and the API process maps it and unlinks it at once (the mapping stays
valid, the memory is freed with the array).

The API process owns every name: it unlinks every file of the task's prefix when the task
ends, however it ends (an answer, an error, the deadline, the worker's death), and again a
moment later, in case a worker that was being stopped wrote one meanwhile; and every file of
its own pid when the pool closes. Files are opened with os.open and mmap, not
multiprocessing.shared_memory, whose resource tracker would unlink or warn about segments
from the wrong process.
"""

from __future__ import annotations

import contextlib
import itertools
import mmap
import os
from dataclasses import dataclass, replace
from math import prod
from pathlib import Path
from typing import Any

import numpy as np

from engine.tasks import ProgramTask, Task

SHM = Path("/dev/shm")
PREFIX = "gradserve-"


@dataclass(frozen=True)
class Shared:
    name: str
    dtype: str  # numpy's dtype.str: byte order included
    shape: tuple[int, ...]


def available() -> bool:
    return SHM.is_dir() and os.access(SHM, os.W_OK)


def write(name: str, array: np.ndarray) -> Shared:
    """`array`'s bytes in a new file /dev/shm/`name` (refused if it exists). OSError when
    /dev/shm has no room (a container's is 64 MB by default): its pages are reserved first, so
    that writing to the mapping cannot die of SIGBUS."""
    shape = array.shape  # np.ascontiguousarray makes a 0-d array 1-d
    array = np.ascontiguousarray(array)
    fd = os.open(SHM / name, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    try:
        if array.nbytes:
            try:
                os.posix_fallocate(fd, 0, array.nbytes)
            except OSError:
                os.unlink(SHM / name)
                raise
            with mmap.mmap(fd, array.nbytes) as mapped:
                view = np.frombuffer(mapped, dtype=array.dtype, count=array.size)
                view[...] = array.reshape(-1)
                del view  # before the mapping closes
    finally:
        os.close(fd)
    return Shared(name, array.dtype.str, shape)


def read(shared: Shared) -> np.ndarray:
    """The array of a file written by `write`, mapped copy-on-write: no copy of its bytes."""
    dtype = np.dtype(shared.dtype)
    count = prod(shared.shape)
    if count == 0:
        return np.empty(shared.shape, dtype)
    fd = os.open(SHM / shared.name, os.O_RDONLY)
    try:
        mapped = mmap.mmap(fd, count * dtype.itemsize, access=mmap.ACCESS_COPY)
    finally:
        os.close(fd)
    return np.frombuffer(mapped, dtype=dtype, count=count).reshape(shared.shape)


def unlink_all(prefix: str) -> None:
    """Every file of /dev/shm whose name starts with `prefix`. Twice a request: listed and
    compared by name (~5 µs), not globbed (~90 µs, a pattern compiled for each new prefix)."""
    for name in os.listdir(SHM):
        if name.startswith(prefix):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(SHM / name)


def own_prefix() -> str:
    """The prefix of every name this process allots."""
    return f"{PREFIX}{os.getpid()}-"


class Transport:
    """The API process's side: arguments out, answers in, and the files of each task unlinked."""

    def __init__(self, threshold: int):
        self.threshold = threshold if threshold and available() else 0
        self._tasks = itertools.count()

    def outbound(self, task: Any) -> tuple[Any, str | None]:
        """The task with its large arrays shared, and the prefix of its files (None: none)."""
        if not self.threshold:
            return task, None
        prefix = f"{own_prefix()}{next(self._tasks)}-"
        try:
            if isinstance(task, Task):
                arguments = tuple(self._share(f"{prefix}a{i}", a) for i, a in enumerate(task.arguments))
                return replace(task, arguments=arguments), prefix
            if isinstance(task, ProgramTask):
                inputs = {k: self._share(f"{prefix}a{i}", a) for i, (k, a) in enumerate(task.inputs.items())}
                return replace(task, inputs=inputs), prefix
        except BaseException:
            unlink_all(prefix)
            raise
        return task, None

    def _share(self, name: str, array: Any) -> Any:
        if isinstance(array, np.ndarray) and array.nbytes >= self.threshold:
            with contextlib.suppress(OSError):  # no room: pickled, as a small one
                return write(name, array)
        return array

    @staticmethod
    def inbound(fields: dict[str, Any]) -> dict[str, Any]:
        """The answer's fields with each shared array mapped here (its file unlinked at once)."""
        return _mapped(fields)


def _mapped(tree: Any) -> Any:
    if isinstance(tree, Shared):
        array = read(tree)
        (SHM / tree.name).unlink(missing_ok=True)
        return array
    if isinstance(tree, dict):
        return {key: _mapped(value) for key, value in tree.items()}
    if type(tree) in (list, tuple):
        return type(tree)(_mapped(value) for value in tree)
    return tree


# The worker's side.


def arguments_of(task: Any) -> Any:
    """The task with its shared arrays mapped."""
    if isinstance(task, Task) and any(isinstance(a, Shared) for a in task.arguments):
        return replace(task, arguments=tuple(read(a) if isinstance(a, Shared) else a for a in task.arguments))
    if isinstance(task, ProgramTask) and any(isinstance(a, Shared) for a in task.inputs.values()):
        return replace(task, inputs={k: read(a) if isinstance(a, Shared) else a for k, a in task.inputs.items()})
    return task


def shared_fields(fields: dict[str, Any], prefix: str, threshold: int) -> dict[str, Any]:
    """The answer's fields with each array of at least `threshold` bytes written to a file
    named by `prefix`."""
    counter = itertools.count()

    def share(tree: Any) -> Any:
        if isinstance(tree, np.ndarray) and tree.nbytes >= threshold:
            with contextlib.suppress(OSError):  # no room: pickled, as a small one
                return write(f"{prefix}r{next(counter)}", tree)
        if isinstance(tree, dict):
            return {key: share(value) for key, value in tree.items()}
        if type(tree) in (list, tuple):
            return type(tree)(share(value) for value in tree)
        return tree

    return share(fields)
