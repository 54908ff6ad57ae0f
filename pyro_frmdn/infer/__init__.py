"""Training (SVI), checkpoints and evaluation."""

from .arviz import pit, plot_pit, to_inference_data
from .boosting import (
    boosting_sample_weights,
    fit_boosted,
    gradient_search_rho,
    line_search_rho,
    load_boosted,
    mixture_nll,
    rho_gradient,
    save_boosted,
)
from .checkpoint import load_checkpoint, load_model_checkpoint, save_checkpoint
from .training import History, evaluate, fit, resolve_device

__all__ = [
    "History",
    "boosting_sample_weights",
    "evaluate",
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
