"""Training (SVI), checkpoints and evaluation."""

from .arviz import pit, plot_pit, to_inference_data
from .checkpoint import load_checkpoint, save_checkpoint
from .training import History, evaluate, fit, resolve_device

__all__ = [
    "History",
    "evaluate",
    "fit",
    "load_checkpoint",
    "pit",
    "plot_pit",
    "resolve_device",
    "save_checkpoint",
    "to_inference_data",
]
