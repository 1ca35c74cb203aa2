"""One writer per run or experiment folder: an exclusive lock held while a process writes it.

:func:`locked` opens ``<folder>/.jaxlab.lock``, takes an exclusive, non-blocking
``flock`` on it and writes the holder's PID there. The kernel drops a ``flock`` when its
holder exits in any way (return, exception, SIGKILL, a crash), so a killed run leaves
no stale lock: the next process simply takes it. A second process that finds the lock
held gets :class:`FolderLocked` (the CLI prints it as one line and exits 2). The file
itself stays (removing it would let a third process lock a different file).

Within one process the lock is re-entrant: a folder locked by this process is not
locked again (the Python API may resume a run it trained a moment ago).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

LOCK_NAME = ".jaxlab.lock"
_HELD: dict[Path, int] = {}  # folder -> open descriptor, while this process holds it
_FAILED: list[Path] = []  # the folder whose writing an exception escaped (its error.txt)


class FolderLocked(RuntimeError):
    """Another process is writing the folder."""


def acquire(folder: str | Path) -> bool:
    """Take ``folder``'s lock; False if this process holds it already. Raises
    :class:`FolderLocked` naming the holder's PID if another process does."""
    folder = Path(folder).resolve()
    if folder in _HELD:
        return False
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise FolderLocked(
            f"{folder} is being written by another jaxlab process (PID {holder}); "
            "wait for it to finish or stop it"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    _HELD[folder] = fd
    return True


def failed_folder() -> Path | None:
    """The folder that was being written when an exception escaped :func:`locked` (the
    first of them), once: the error boundary saves the traceback there."""
    folder = _FAILED[0] if _FAILED else None
    _FAILED.clear()
    return folder


def release(folder: str | Path) -> None:
    """Drop ``folder``'s lock if this process holds it."""
    fd = _HELD.pop(Path(folder).resolve(), None)
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@contextlib.contextmanager
def locked(*folders: str | Path) -> Iterator[None]:
    """Hold every folder's lock for the ``with`` block (all or none: a folder another
    process holds releases those taken so far and raises :class:`FolderLocked`)."""
    taken: list[Path] = []
    try:
        for folder in folders:
            if acquire(folder):
                taken.append(Path(folder))
        yield
    except Exception:
        if taken and not _FAILED:
            _FAILED.append(taken[0])
        raise
    finally:
        for folder in taken:
            release(folder)


__all__ = ["LOCK_NAME", "FolderLocked", "acquire", "failed_folder", "locked", "release"]
