"""Where a failure's traceback goes: ``error.txt`` in the folder being written, or a
temporary file, so the console gets one line (the CLI's error boundary and the search
workers use it)."""

from __future__ import annotations

import tempfile
import traceback
from datetime import datetime
from pathlib import Path

ERROR_FILE = "error.txt"


def error_text(err: BaseException) -> str:
    """``Type: message``, a blank line, then the full traceback."""
    text = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    return f"{type(err).__name__}: {err}\n\n{text}"


def write_error(folder: Path, err: BaseException) -> Path:
    """Write ``err`` to ``folder/error.txt`` (the folder is made if missing)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ERROR_FILE
    path.write_text(error_text(err))
    return path


def save_traceback(err: BaseException, folder: Path | None) -> Path:
    """Save ``err`` in ``folder`` if it can be written there, else in a temporary file."""
    if folder is not None:
        try:
            return write_error(folder, err)
        except OSError:
            pass
    stamp = f"{datetime.now():%Y%m%d_%H%M%S}"
    fd, name = tempfile.mkstemp(prefix=f"jaxlab_error_{stamp}_", suffix=".txt")
    with open(fd, "w") as f:
        f.write(error_text(err))
    return Path(name)


def error_line(folder: Path) -> str | None:
    """The first line of a folder's ``error.txt`` (None when it has none)."""
    path = folder / ERROR_FILE
    return path.read_text().splitlines()[0] if path.is_file() else None


def first_line(err: BaseException, limit: int = 300) -> str:
    """``Type: message`` on one line, cut to ``limit`` characters."""
    text = " ".join(f"{type(err).__name__}: {err}".split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def os_error_line(err: OSError) -> str:
    """An OS error as the user can act on it: what failed, on which path."""
    why = err.strerror or str(err)
    paths = [str(p) for p in (err.filename, err.filename2) if p is not None]
    return f"{why}: {' -> '.join(paths)}" if paths else why
