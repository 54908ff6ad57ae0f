"""One component of a boosted mixture fitted with the others frozen, and the data it reads."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..models import BoostedMixture
from .engine import EpochLoop, clip_gradients
from .rho import boosting_sample_weights, mixture_nll

__all__ = [
    "EPOCH_RANGE",
    "MIN_STEPS",
    "ComponentTrainer",
    "as_data",
    "component_epochs",
    "component_log_prob",
    "log_probs",
    "mixture_log_prob",
    "others_log_prob",
    "rows",
    "scored_steps",
    "to_dtype",
]


MIN_STEPS = 5000  # optimizer steps a component gets by default (within EPOCH_RANGE epochs)
EPOCH_RANGE = (20, 200)  # the default epochs per component stay within these


def component_epochs(num_examples: int, batch_size: int, min_steps: int = MIN_STEPS) -> int:
    """The default epochs per component: enough for ``min_steps`` optimizer steps, within
    ``EPOCH_RANGE`` (20 to 200 epochs).

    A component makes ``ceil(num_examples / batch_size)`` steps an epoch, so counting epochs
    gives small data sets few steps (20 epochs of 2,000 points in batches of 128: 320). This
    rule gives a component ``min_steps`` steps (rounded up to whole epochs), but never fewer
    than 20 epochs (the default of earlier releases, kept for large data) nor more than 200: on
    tiny data sets (a few hundred sequences) the cost stays at most 10 times that of 20 epochs,
    and the component gets fewer than ``min_steps`` steps.

    Example:
        >>> component_epochs(4000, 128), component_epochs(100_000, 128), component_epochs(270, 128)
        (157, 20, 200)
    """
    for name, value in (("num_examples", num_examples), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if isinstance(min_steps, bool) or not isinstance(min_steps, int) or min_steps < 1:
        raise ValueError(f"min_steps must be an integer >= 1, got {min_steps!r}")
    per_epoch = math.ceil(num_examples / batch_size)
    low, high = EPOCH_RANGE
    return min(max(math.ceil(min_steps / per_epoch), low), high)


def as_data(model: BoostedMixture, data, what: str) -> dict[str, Tensor]:
    """``data`` (a tensor of examples, a tuple ``(y, *inputs)`` or a dict) as a validated dict
    ``{"y": ..., **inputs}`` with the inputs the mixture's components take (``input_names``)."""
    names = ("y", *model.input_names)
    kind = type(model).__name__
    if isinstance(data, Tensor):
        data = {"y": data}
    elif isinstance(data, (tuple, list)):
        if not 1 <= len(data) <= len(names):
            raise ValueError(
                f"{what} is a tuple of {len(data)}; a {kind} takes {names}, in that order"
            )
        data = dict(zip(names, data, strict=False))
    elif isinstance(data, dict):
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValueError(f"{what} has unknown keys {unknown}; a {kind} takes {list(names)}")
        if data.get("y") is None:
            raise ValueError(f"{what} must hold the examples under 'y'; got keys {sorted(data)}")
    else:
        raise TypeError(
            f"fit_boosted takes {what} as a tensor, a tuple or a dict of tensors (all examples "
            f"are scored to cache densities), got {type(data).__name__}"
        )
    for key, value in data.items():
        if value is not None and not isinstance(value, Tensor):
            raise TypeError(f"{what}[{key!r}] must be a tensor, got {type(value).__name__}")
    y, inputs = model.check_data(data["y"], **{k: v for k, v in data.items() if k != "y"})
    return {"y": y, **inputs}


def to_dtype(data: dict[str, Tensor], device, dtype) -> dict[str, Tensor]:
    """Move to ``device``; floating tensors to ``dtype`` (masks stay bool)."""
    return {
        k: v.to(device, dtype) if v.is_floating_point() else v.to(device) for k, v in data.items()
    }


def scored_steps(data: dict[str, Tensor]) -> int:
    """Scored steps of a data set: unmasked (sequence, step) pairs, or examples."""
    if "mask" in data:
        return int(data["mask"].sum())
    y = data["y"]
    return y.shape[0] * math.prod(y.shape[1:-1])


def rows(data: dict[str, Tensor], index) -> dict[str, Tensor]:
    return {k: v[index] for k, v in data.items()}


def component_log_prob(component, batch: dict[str, Tensor]) -> Tensor:
    inputs = {k: v for k, v in batch.items() if k != "y"}
    return component.log_prob(batch["y"], **inputs)


@torch.no_grad()
def log_probs(component, data: dict[str, Tensor], chunk: int) -> Tensor:
    """log g(y_i) for all examples of ``data`` in eval mode, float64, (N,)."""
    was_training = component.training
    component.eval()
    n = len(data["y"])
    try:
        parts = [
            component_log_prob(component, rows(data, slice(i, i + chunk)))
            for i in range(0, n, chunk)
        ]
    finally:
        component.train(was_training)
    return torch.cat(parts).double()


def mixture_log_prob(lp: Tensor, log_w: Tensor) -> Tensor:
    """log G(x_i) from cached component log-densities (N, C) and log-weights (C,)."""
    return torch.logsumexp(lp + log_w.to(lp), dim=-1)


def others_log_prob(lp: Tensor, log_w: Tensor, c: int) -> Tensor | None:
    """log of the mixture without component c, renormalised; None if c holds all the weight."""
    log_w = log_w.to(lp)
    log_rest_mass = torch.log1p(-log_w[c].exp())
    if not bool(torch.isfinite(log_rest_mass)):
        return None
    others = [j for j in range(lp.shape[-1]) if j != c]
    return mixture_log_prob(lp[:, others], log_w[others]) - log_rest_mass


class ComponentTrainer:
    """Fits one component (the others frozen) on the sample-weighted likelihood."""

    def __init__(self, model, train, val, *, bar, **options):
        self.model, self.train, self.val, self.bar = model, train, val, bar
        self.__dict__.update(options)

    def __call__(
        self,
        c: int,
        log_rest_train: Tensor | None,
        log_rest_val: Tensor | None,
        choose: Callable[[Tensor, Tensor], float],
        rho: float | None = None,
    ) -> dict:
        """Train component ``c``; ``log_rest_*`` is log G of the other components (None: MLE);
        ``rho`` the component's weight in the objective of ``sample_weighting="mixture"``
        (default 1 / (c + 1)).

        Returns ``epochs``, ``best_epoch``, ``loss`` (the weighted NLL per step, per epoch) and
        ``skipped_steps`` (steps whose gradient was not finite, not taken).
        """
        model, train, val = self.model, self.train, self.val
        self.rho = 1.0 / (c + 1) if rho is None else rho
        component = model.components[c]
        model.set_trainable(c)
        params = [p for p in component.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=self.lr)
        n, skipped = len(train["y"]), 0

        def train_epoch(epoch: int) -> float:
            nonlocal skipped
            component.train()
            for group in optimizer.param_groups:
                group["lr"] = self.epoch_lr(epoch)
            order = torch.randperm(n, generator=self.generator).to(train["y"].device)
            total = 0.0
            for i in range(0, n, self.batch_size):
                idx = order[i : i + self.batch_size]
                rest = None if log_rest_train is None else log_rest_train[idx]
                loss = self.loss(component, rows(train, idx), rest)
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise FloatingPointError(
                        f"component {c}: the loss became {value} at epoch {epoch}"
                    )
                total += value * len(idx)
                self.bar.update()
                self.bar.set_postfix(component=c, epoch=epoch, loss=f"{value / self.steps:.4f}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                norm = clip_gradients(params, self.clip_norm or math.inf)
                if bool(torch.isfinite(norm)):
                    optimizer.step()
                else:  # an overflowing gradient would turn the parameters to NaN
                    skipped += 1
            return total / n / self.steps

        def validate() -> float:  # the NLL of the mixture the component would make
            lg = log_probs(component, val, self.chunk)
            if log_rest_val is None:
                return -float(lg.mean())
            return mixture_nll(choose(log_rest_val, lg), log_rest_val, lg)

        loop = EpochLoop(component, self.epochs, self.patience, keep_best="val")
        loop.run(train_epoch, None if val is None else validate)
        loop.restore()
        model.freeze()
        return {
            "epochs": loop.epoch,
            "best_epoch": loop.best["epoch"] if val is not None else loop.epoch,
            "loss": loop.history["train_nll"],
            "skipped_steps": skipped,
        }

    def epoch_lr(self, epoch: int) -> float:
        """The learning rate of epoch ``epoch`` (1-based): ``lr`` throughout (``"constant"``),
        or cosine-annealed from ``lr`` to ``lr / 100`` over the component's epochs
        (``"cosine"``, Loshchilov & Hutter 2017, SGDR, without restarts)."""
        if self.lr_schedule == "constant" or self.epochs <= 1:
            return self.lr
        low = self.lr / 100
        return low + 0.5 * (self.lr - low) * (
            1 + math.cos(math.pi * (epoch - 1) / (self.epochs - 1))
        )

    def loss(self, component, batch: dict[str, Tensor], log_rest: Tensor | None) -> Tensor:
        """The (sample-weighted) mean NLL per example of a minibatch; with ``"mixture"`` the
        mean NLL of the mixture (1 - ρ) G + ρ g the component would make."""
        if log_rest is None or self.sample_weighting == "uniform":
            return -component_log_prob(component, batch).mean()
        y = batch["y"]
        if self.sample_weighting == "mixture":
            if not 0.0 < self.rho < 1.0:
                raise ValueError(f"the mixture objective needs 0 < rho < 1, got {self.rho}")
            log_g = component_log_prob(component, batch)
            keep, add = math.log1p(-self.rho), math.log(self.rho)
            return -torch.logaddexp(keep + log_rest.to(log_g), add + log_g).mean()
        w = boosting_sample_weights(-log_rest, self.weight_clip, self.weight_cap).to(y.dtype)
        if self.sample_weighting == "resample":
            pick = torch.multinomial(w.cpu(), len(y), replacement=True, generator=self.generator)
            return -component_log_prob(component, rows(batch, pick.to(y.device))).mean()
        return -(w * component_log_prob(component, batch)).sum()
