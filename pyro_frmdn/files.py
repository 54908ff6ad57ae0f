"""Files written atomically: a crash mid-write never leaves a half-written file in place."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import torch

__all__ = ["atomic_write", "read_torch_file"]


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; it replaces ``path`` only if the block succeeds.

    The data are flushed to disk before the rename, the file is made readable by everyone
    (mode 0644, as an ordinary file; ``mkstemp`` makes it private), and an exception inside
    the block leaves the previous file at ``path`` untouched and no temporary file behind.

    Arguments:
        path: the file to (re)write; its folder is created if needed.
        mode: ``"wb"`` (bytes) or ``"w"`` (text, UTF-8).

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "note.txt"
        >>> with atomic_write(p, "w") as f:
        ...     _ = f.write("hello")
        >>> p.read_text()
        'hello'
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode, **({"encoding": "utf-8"} if mode == "w" else {})) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def read_torch_file(path: str | os.PathLike, what: str, map_location=None):
    """Read a file written by ``torch.save`` with ``weights_only=True`` (it cannot run code).

    Raises:
        FileNotFoundError: no file at ``path`` (the message names ``what`` it should hold).
        ValueError: the file is corrupt, truncated or not a torch file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{what} {path} is corrupt or unreadable ({reason})") from e
