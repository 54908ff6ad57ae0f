"""Training (SVI), checkpoints and evaluation."""

from .arviz import pit, plot_pit, to_inference_data
from .boosting import fit_boosted, load_boosted, save_boosted
from .bounds import evaluate_bounds
from .checkpoint import load_checkpoint, load_model_checkpoint, save_checkpoint
from .components import component_epochs
from .done_head import refit_done_head
from .dynamics import refit_dynamics
from .evolution import Evolution, train_controller
from .exploration import Exploration
from .memory import keep_freed_memory
from .rho import (
    boosting_sample_weights,
    gradient_search_rho,
    line_search_rho,
    mixture_nll,
    rho_gradient,
)
from .rollouts import DreamFitness, EnvFitness, dream_rollout, real_rollout
from .training import TRAINING_PRECISIONS, History, evaluate, fit, mixed_precision, resolve_device

__all__ = [
    "TRAINING_PRECISIONS",
    "DreamFitness",
    "EnvFitness",
    "Evolution",
    "Exploration",
    "History",
    "boosting_sample_weights",
    "component_epochs",
    "dream_rollout",
    "evaluate",
    "evaluate_bounds",
    "fit",
    "fit_boosted",
    "gradient_search_rho",
    "keep_freed_memory",
    "line_search_rho",
    "load_boosted",
    "load_checkpoint",
    "load_model_checkpoint",
    "mixed_precision",
    "mixture_nll",
    "pit",
    "plot_pit",
    "real_rollout",
    "refit_done_head",
    "refit_dynamics",
    "resolve_device",
    "rho_gradient",
    "save_boosted",
    "save_checkpoint",
    "to_inference_data",
    "train_controller",
]
