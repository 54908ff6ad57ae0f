"""The options of :func:`~pyro_frmdn.infer.fit_boosted`: their allowed values and the check
that refuses a bad one by name."""

from __future__ import annotations

import math

from ..distributions import RHO_MAX
from ..models import BoostedMixture
from .engine import check_options

__all__ = [
    "BEST_OF",
    "COMPONENT_STARTS",
    "LR_SCHEDULES",
    "RHO_DATA",
    "RHO_SEARCHES",
    "SAMPLE_WEIGHTINGS",
    "check_arguments",
]

RHO_SEARCHES = ("line", "gradient", "fixed")
RHO_DATA = ("train", "val")
SAMPLE_WEIGHTINGS = ("weighted", "resample", "uniform", "mixture", "best")
COMPONENT_STARTS = ("fresh", "copy")
BEST_OF = (("weighted", "copy"), ("mixture", "fresh"))
"""The fits ``sample_weighting="best"`` tries for each new component, as (``sample_weighting``,
``component_start``) pairs; the one whose mixture scores better is kept."""
LR_SCHEDULES = ("cosine", "constant")


def check_arguments(model, num_components, epochs, batch_size, lr, weight_clip, options) -> None:
    if not isinstance(model, BoostedMixture):
        raise TypeError(f"model must be a BoostedMixture (BoostedFlow, ...), got {type(model)}")
    check_options(
        "fit_boosted", num_components=num_components, batch_size=batch_size, lr=lr,
        clip_norm=options["clip_norm"], patience=options["patience"],
        **({} if epochs is None else {"epochs_per_component": epochs}),
    )  # fmt: skip
    steps = options["min_steps"]
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"fit_boosted: min_steps must be an integer >= 1, got {steps!r}")
    if model.num_components > num_components:
        raise ValueError(
            f"the model already has {model.num_components} components, more than "
            f"num_components={num_components}"
        )
    cap = options["weight_cap"]
    if cap is not None and not (isinstance(cap, (int, float)) and math.isfinite(cap) and cap > 1):
        raise ValueError(f"weight_cap must be a finite number > 1 or None, got {cap!r}")
    if weight_clip is not None:
        lo, hi = weight_clip
        if not 0.0 <= lo < hi <= 1.0:
            raise ValueError(
                f"weight_clip must be (lo, hi) with 0 <= lo < hi <= 1, got {weight_clip}"
            )
    if options["rho_search"] not in RHO_SEARCHES:
        raise ValueError(f"rho_search must be one of {RHO_SEARCHES}, got {options['rho_search']!r}")
    if options["rho_data"] is not None and options["rho_data"] not in RHO_DATA:
        raise ValueError(f"rho_data must be one of {RHO_DATA}, got {options['rho_data']!r}")
    if options["rho_data"] == "val" and options["val"] is None:
        raise ValueError("rho_data='val' fits rho on validation data: pass val=")
    if options["lr_schedule"] not in LR_SCHEDULES:
        raise ValueError(
            f"lr_schedule must be one of {LR_SCHEDULES}, got {options['lr_schedule']!r}"
        )
    if options["sample_weighting"] not in SAMPLE_WEIGHTINGS:
        raise ValueError(
            f"sample_weighting must be one of {SAMPLE_WEIGHTINGS}, "
            f"got {options['sample_weighting']!r}"
        )
    if options["component_start"] not in COMPONENT_STARTS:
        raise ValueError(
            f"component_start must be one of {COMPONENT_STARTS}, got {options['component_start']!r}"
        )
    fixed = options["fixed_rho"]
    if fixed != "uniform" and not (isinstance(fixed, (int, float)) and 0.0 < fixed <= RHO_MAX):
        raise ValueError(
            f"fixed_rho must be 'uniform' or a number in (0, {RHO_MAX}], got {fixed!r}"
        )
    if options["patience"] is not None and options["val"] is None:
        raise ValueError("early stopping (patience) needs validation data: pass val=")
    if options["resume"] and options["checkpoint"] is None:
        raise ValueError("resume=True needs the checkpoint folder to resume from")
