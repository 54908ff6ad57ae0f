"""Training (SVI), checkpoints and evaluation."""

from .arviz import pit, plot_pit, to_inference_data
from .boosting import fit_boosted, load_boosted, save_boosted
from .bounds import evaluate_bounds
from .checkpoint import load_checkpoint, load_model_checkpoint, save_checkpoint
from .rho import (
    boosting_sample_weights,
    gradient_search_rho,
    line_search_rho,
    mixture_nll,
    rho_gradient,
)
from .training import History, evaluate, fit, resolve_device

__all__ = [
    "History",
    "boosting_sample_weights",
    "evaluate",
    "evaluate_bounds",
    "fit",
    "fit_boosted",
    "gradient_search_rho",
    "line_search_rho",
    "load_boosted",
    "load_checkpoint",
    "load_model_checkpoint",
    "mixture_nll",
    "pit",
    "plot_pit",
    "resolve_device",
    "rho_gradient",
    "save_boosted",
    "save_checkpoint",
    "to_inference_data",
]
