"""Checkpoints written atomically and read back safely (``weights_only=True``)."""

from __future__ import annotations

import os
from pathlib import Path

from ..files import read_torch_file, save_verified
from ..models.base import CHECKPOINT_FORMAT

__all__ = ["FORMAT", "load_checkpoint", "load_model_checkpoint", "save_checkpoint"]

FORMAT = CHECKPOINT_FORMAT  # one tag, defined beside the model files that pf.load also reads


def save_checkpoint(path: str | os.PathLike, payload: dict) -> Path:
    """Write ``payload`` to ``path`` through a temporary file and an atomic rename, with a
    checksum that :func:`load_checkpoint` verifies (:func:`~pyro_frmdn.files.save_verified`).

    A crash (or a full disk) while writing leaves the previous file at ``path`` intact.
    """
    return save_verified({"format": FORMAT, **payload}, path)


def load_checkpoint(path: str | os.PathLike, map_location=None) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`, with ``weights_only=True``.

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: the file is corrupt, truncated, or not a pyro-frmdn checkpoint.
    """
    payload = read_torch_file(path, "checkpoint", map_location)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path} is not a pyro-frmdn checkpoint (expected format {FORMAT})")
    return payload


def load_model_checkpoint(path: str | os.PathLike, model, map_location="cpu") -> dict:
    """:func:`load_checkpoint`, refusing a checkpoint written by another model class or config.

    ``model`` must have a ``config`` dict; the checkpoint's ``model_class`` and ``config`` must
    match it exactly, or a ValueError says what the checkpoint holds.
    """
    state = load_checkpoint(path, map_location=map_location)
    saved = state.get("config")
    upgrade = getattr(model, "upgrade_config", None)
    if isinstance(saved, dict) and upgrade is not None:
        saved = upgrade(saved)  # keys renamed since the checkpoint was written
    if state.get("model_class") != type(model).__name__ or saved != model.config:
        raise ValueError(
            f"checkpoint {path} was written by {state.get('model_class')} with config "
            f"{state.get('config')}, not by this {type(model).__name__} with config {model.config}"
        )
    return state
