"""Files written atomically and torch files verified: a crash mid-write never leaves a half-written
file in place, and a damaged file is refused, never loaded."""

from __future__ import annotations

import contextlib
import glob
import hashlib
import io
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import torch

__all__ = ["MAGIC", "atomic_write", "read_torch_file", "save_verified"]


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file beside ``path``; it replaces ``path`` only if the block succeeds.

    The data are flushed to disk before the rename, the file is made readable by everyone
    (mode 0644, as an ordinary file; ``mkstemp`` makes it private), and an exception inside
    the block leaves the previous file at ``path`` untouched and no temporary file behind.
    Temporary files that a killed process left beside ``path`` are removed first.

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
    for orphan in path.parent.glob(f"{glob.escape(path.name)}.*.tmp"):  # left by a killed write
        orphan.unlink(missing_ok=True)
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


MAGIC = b"pyro-frmdn verified torch file\n"
"""The first line of a verified torch file; then the SHA-256 of the rest (hex) and a newline."""


def save_verified(obj: dict, path: str | os.PathLike) -> Path:
    """``torch.save`` ``obj`` to ``path`` atomically, behind a header holding its SHA-256 digest.

    :func:`read_torch_file` checks the digest, so a changed byte anywhere in the file (header
    included) is refused instead of loading as a wrong weight. The file is :data:`MAGIC`, 64
    hex digits and a newline, then the bytes ``torch.save`` writes; read it with
    :func:`read_torch_file` (``torch.load`` alone does not know the header).
    """
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    body = buffer.getvalue()
    with atomic_write(path) as f:
        f.write(MAGIC + hashlib.sha256(body).hexdigest().encode() + b"\n")
        f.write(body)
    return Path(path)


def read_torch_file(path: str | os.PathLike, what: str, map_location=None):
    """Read a torch file with ``weights_only=True`` (it cannot run code): one written by
    :func:`save_verified` after checking its digest, or a plain ``torch.save`` file as it is.

    Raises:
        FileNotFoundError: no file at ``path`` (the message names ``what`` it should hold).
        ValueError: the file is corrupt, truncated, altered or not a torch file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no {what} at {path}")
    raw = path.read_bytes()
    if not raw.startswith(MAGIC):
        return _load(io.BytesIO(raw), what, path, map_location)
    start = len(MAGIC)
    digest, body = raw[start : start + 64], raw[start + 65 :]
    if raw[start + 64 : start + 65] != b"\n" or hashlib.sha256(body).hexdigest().encode() != digest:
        raise ValueError(
            f"{what} {path} is corrupt: its contents do not match the checksum written with it "
            "(a changed, lost or damaged byte); it was not loaded"
        )
    return _load(io.BytesIO(body), what, path, map_location)


def _load(source, what: str, path: Path, map_location):
    try:
        return torch.load(source, map_location=map_location, weights_only=True)
    except Exception as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{what} {path} is corrupt or unreadable ({reason})") from e
