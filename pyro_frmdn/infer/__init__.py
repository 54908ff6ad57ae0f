"""Training (SVI), checkpoints and evaluation."""

from .checkpoint import load_checkpoint, save_checkpoint
from .training import History, evaluate, fit, resolve_device

__all__ = ["History", "evaluate", "fit", "load_checkpoint", "resolve_device", "save_checkpoint"]
