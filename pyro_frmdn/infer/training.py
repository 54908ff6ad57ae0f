"""Training with SVI: minibatches, validation, early stopping, checkpoints, exact resume."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import pyro
import pyro.optim
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO
from pyro.infer.util import zero_grads
from torch import nn

from ..models.base import check_contract
from .checkpoint import load_model_checkpoint, save_checkpoint
from .engine import (
    Batches,
    EpochLoop,
    History,
    arg_names,
    clip_gradients,
    count_steps,
    forget_params,
    progress_bar,
    resolve_device,
    to_device,
)

__all__ = ["History", "evaluate", "fit", "resolve_device", "svi_step"]

_UNSET = -1.0  # fit's clip_norm when not given (None then); see the check in fit


@torch.no_grad()
def evaluate(
    model: nn.Module, data, batch_size: int = 256, bits_per_dim: bool = False, device=None
) -> float:
    """Held-out negative log-likelihood in nats per step (masked steps excluded).

    With ``bits_per_dim=True``: bits per dimension of the model's own space, the NLL per step
    divided by D ln 2. For images in 0-255 pixel space (dequantisation and logit Jacobians
    counted) use :func:`pyro_frmdn.data.bits_per_dim`.
    """
    device = next(model.parameters()).device if device is None else resolve_device(device)
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    try:
        for batch in Batches(data, arg_names(model), batch_size, False):
            batch = to_device(batch, device)
            total -= float(model.log_prob(**batch).sum())
            count += count_steps(batch)
    finally:
        model.train(was_training)
    nll = total / count
    return nll / (model.obs_dim * math.log(2)) if bits_per_dim else nll


def svi_step(
    elbo: Trace_ELBO,
    model: nn.Module,
    optimizer: pyro.optim.PyroOptim,
    batch: dict,
    clip_norm: float | None = None,
    clip_value: float | None = None,
) -> float:
    """One SVI step, as ``pyro.infer.SVI.step``, with the package's gradient clipping.

    The ELBO's gradients are taken on every parameter the model and guide touch, clipped by
    :func:`~pyro_frmdn.infer.engine.clip_gradients`, and the optimizer stepped. Returns the loss.
    """
    with poutine.trace(param_only=True) as params_seen:
        loss = elbo.loss_and_grads(model.model, model.guide, **batch)
    params = {site["value"].unconstrained() for site in params_seen.trace.nodes.values()}
    clip_gradients(params, clip_norm, clip_value)
    optimizer(params)
    zero_grads(params)
    return float(loss)


def fit(
    model: nn.Module,
    train,
    val=None,
    *,
    epochs: int = 10,
    batch_size: int = 32,
    lr: float = 1e-3,
    clip_value: float | None = 10.0,
    clip_norm: float | None = _UNSET,
    lr_decay: float = 1.0,
    optimizer: pyro.optim.PyroOptim | None = None,
    patience: int | None = None,
    restore_best: bool = True,
    device=None,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 1,
    resume: bool = False,
    seed: int = 0,
    progress: bool = True,
) -> History:
    r"""Fit a model's ``model``/``guide`` pair by SVI with ``Trace_ELBO``.

    For MDN, RMDN and FRMDN the guide is empty, so the loss is exactly the negative
    log-likelihood; reported numbers are in nats per scored step.

    Arguments:
        model: an ``nn.Module`` with ``model``, ``guide``, ``log_prob`` and ``obs_dim``.
        train, val: a tensor (the first argument of ``model.model``), a tuple of tensors in the
            order of its arguments, a dict of them by name (e.g. ``{"y": y, "mask": mask}``), or a
            ``DataLoader`` yielding any of these.
        epochs, batch_size: passes over ``train`` and its minibatch size (tensor data).
        lr, lr_decay: Pyro's ``ClippedAdam``: learning rate and its decay factor per epoch (1:
            constant).
        clip_value, clip_norm: gradient clipping before each step (:func:`clip_gradients`):
            every gradient element clamped to ``[-clip_value, clip_value]`` (the default 10;
            ``None`` for losses summed over many values, such as the pixels of a world model,
            whose gradient elements are large), then the global gradient norm scaled down to
            at most ``clip_norm`` (default ``None``: not scaled). ``clip_norm`` means the global
            norm everywhere in the package (``fit_boosted``, the Lightning module); before
            version 0.2 it named the elementwise clamp here.
        optimizer: any ``pyro.optim`` optimizer instead of ``ClippedAdam`` (the clipping above
            still applies).
        patience: stop after this many epochs without a better validation NLL.
        restore_best: finish with the parameters of the best validation epoch.
        device: ``"cpu"``, ``"cuda"``...; default CUDA when available. Batches move as used.
        checkpoint: a folder for ``last.pt`` (every ``checkpoint_every`` epochs and at the end)
            and ``best.pt``, written atomically.
        resume: continue from ``checkpoint/last.pt`` exactly where it stopped (same data order,
            optimizer state and random numbers: the same losses as an uninterrupted run).
        seed: seeds Pyro, torch and the minibatch order.
        progress: show a progress bar with the loss.

    Returns:
        The :class:`History` (also saved in checkpoints).
    """
    if epochs < 0 or batch_size < 1 or checkpoint_every < 1:
        raise ValueError("need epochs >= 0, batch_size >= 1, checkpoint_every >= 1")
    if resume and checkpoint is None:
        raise ValueError("resume=True needs the checkpoint folder to resume from")
    if clip_norm is None:
        warnings.warn(
            "fit(clip_norm=None) no longer turns off the elementwise gradient clamp: clip_norm is "
            "now the global gradient norm (default: none), as in fit_boosted and the Lightning "
            "module; the clamp is clip_value= (default 10; pass clip_value=None to turn it off)",
            FutureWarning,
            stacklevel=2,
        )
    clip_norm = None if clip_norm == _UNSET else clip_norm
    for what, value in (("clip_value", clip_value), ("clip_norm", clip_norm), ("lr", lr)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise ValueError(f"{what} must be a finite number > 0, got {value}")
    check_contract(
        model, ("model", "guide", "log_prob", "name", "config")[: 5 if checkpoint else 4]
    )
    device = resolve_device(device)
    model.to(device)
    names = arg_names(model)
    generator = torch.Generator()
    pyro.set_rng_seed(seed)
    generator.manual_seed(seed)
    batches = Batches(train, names, batch_size, True, generator)
    if optimizer is None:
        decay = lr_decay ** (1.0 / max(len(batches), 1))
        optimizer = pyro.optim.ClippedAdam({"lr": lr, "clip_norm": math.inf, "lrd": decay})
    forget_params(model.name)
    loop = EpochLoop(model, epochs, patience)
    ckpt_dir = None if checkpoint is None else Path(checkpoint)
    if resume and (ckpt_dir / "last.pt").exists():
        state = load_model_checkpoint(ckpt_dir / "last.pt", model)
        model.load_state_dict(state["model"])
        optimizer.set_state(state["optimizer"])
        torch.set_rng_state(state["rng"]["torch"])
        generator.set_state(state["rng"]["generator"])
        loop.history = History(state["history"])
        loop.best, loop.bad_epochs = state["best"], state["bad_epochs"]
    elbo = Trace_ELBO()

    def payload() -> dict:
        return {
            "model_class": type(model).__name__,
            "config": model.config,
            "model": model.state_dict(),
            "optimizer": optimizer.get_state(),
            "epoch": loop.epoch,
            "history": loop.history.records,
            "best": loop.best,
            "bad_epochs": loop.bad_epochs,
            "rng": {"torch": torch.get_rng_state(), "generator": generator.get_state()},
        }

    todo = 0 if loop.stopped else max(epochs - loop.epoch, 0)
    bar = progress_bar(todo * len(batches), "fit", progress)

    def train_epoch(epoch: int) -> float:
        model.train()
        total, count = 0.0, 0
        for batch in batches:
            batch = to_device(batch, device)
            n = count_steps(batch)
            loss = svi_step(elbo, model, optimizer, batch, clip_norm, clip_value)
            if not math.isfinite(loss):
                raise FloatingPointError(f"the loss became {loss} at epoch {epoch}")
            total, count = total + loss, count + n
            bar.update()
            bar.set_postfix(epoch=epoch, nll=f"{loss / n:.4f}")
        return total / count

    def validate() -> float:
        return evaluate(model, val, max(batch_size, 256))

    def save(loop: EpochLoop, improved: bool, last: bool) -> None:
        if ckpt_dir is None:
            return
        if improved:
            save_checkpoint(ckpt_dir / "best.pt", payload())
        if loop.epoch % checkpoint_every == 0 or last:
            save_checkpoint(ckpt_dir / "last.pt", payload())

    loop.run(train_epoch, None if val is None else validate, save)
    bar.close()
    if restore_best and val is not None:
        loop.restore()
    return loop.history
