"""Training with SVI: minibatches, validation, early stopping, checkpoints, exact resume."""

from __future__ import annotations

import contextlib
import copy
import math
import warnings
from pathlib import Path

import pyro
import pyro.optim
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO
from pyro.infer.util import zero_grads
from pyro.optim.lr_scheduler import PyroLRScheduler
from torch import nn
from torch.optim.lr_scheduler import ReduceLROnPlateau

from ..models.base import check_contract
from .checkpoint import load_model_checkpoint, save_checkpoint
from .engine import (
    Batches,
    EpochLoop,
    History,
    arg_names,
    check_options,
    clip_gradients,
    count_steps,
    forget_params,
    progress_bar,
    resolve_device,
    to_device,
)
from .memory import keep_freed_memory
from .optim import JointClippedAdam

__all__ = [
    "TRAINING_PRECISIONS",
    "History",
    "evaluate",
    "fit",
    "mixed_precision",
    "resolve_device",
    "svi_step",
]


class _Unset:
    """fit's ``clip_norm`` when not given (None then): an explicit None is the old spelling."""

    def __repr__(self) -> str:
        return "None"


_UNSET = _Unset()

TRAINING_PRECISIONS = ("32-true", "bf16-mixed")
"""What ``fit(precision=...)`` takes (Lightning's names): float32 throughout, or the networks'
products in bfloat16 under ``torch.autocast`` with the densities in float32."""


def mixed_precision(precision: str, device) -> contextlib.AbstractContextManager:
    """The context a training step runs in for ``precision``: nothing for ``"32-true"``;
    ``torch.autocast(device type, torch.bfloat16)`` for ``"bf16-mixed"``, under which matrix
    products (the RNN, the heads' and encoders' layers) run in bfloat16 while the package's
    densities, flows included, take their parameters in float32 and compute with autocast off
    (:mod:`pyro_frmdn.distributions.float32`). Gradients and parameters stay float32, so no
    loss scaling is needed (unlike float16).

    Example:
        >>> with mixed_precision("bf16-mixed", "cpu"):
        ...     torch.ones(2, 3) @ torch.ones(3, 2)
        tensor([[3., 3.],
                [3., 3.]], dtype=torch.bfloat16)
    """
    if precision not in TRAINING_PRECISIONS:
        raise ValueError(f"precision must be one of {TRAINING_PRECISIONS}, got {precision!r}")
    if precision == "32-true":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


@torch.no_grad()
def evaluate(
    model: nn.Module, data, batch_size: int = 256, bits_per_dim: bool = False, device=None
) -> float:
    """Held-out negative log-likelihood in nats per step (masked steps excluded).

    With ``bits_per_dim=True``: bits per dimension of the model's own space, the NLL per step
    divided by D ln 2. For images in 0-255 pixel space (dequantisation and logit Jacobians
    counted) use :func:`pyro_frmdn.data.bits_per_dim`.
    """
    check_options("evaluate", batch_size=batch_size)
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
    if count == 0:
        raise ValueError("evaluate: the data gave no scored steps (empty, or every step masked)")
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
    keep_memory: bool = True,
    precision: str = "32-true",
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
            constant). Stepped for all parameters at once
            (:class:`~pyro_frmdn.infer.optim.JointClippedAdam`: Pyro's numbers and state format,
            without its Python loop over parameters).
        clip_value, clip_norm: gradient clipping before each step (:func:`clip_gradients`):
            every gradient element clamped to ``[-clip_value, clip_value]`` (the default 10;
            ``None`` for losses summed over many values, such as the pixels of a world model,
            whose gradient elements are large), then the global gradient norm scaled down to
            at most ``clip_norm`` (default ``None``: not scaled). ``clip_norm`` means the global
            norm everywhere in the package (``fit_boosted``, the Lightning module); before
            version 0.2 it named the elementwise clamp here.
        optimizer: any ``pyro.optim`` optimizer instead of ``ClippedAdam`` (the clipping above
            still applies), or a Pyro learning-rate scheduler (``pyro.optim.ExponentialLR``,
            ``StepLR``, ``OneCycleLR``..., stepped after every epoch; ``ReduceLROnPlateau``
            with the epoch's validation NLL, or its training NLL without ``val``).
        patience: stop after this many epochs without a better validation NLL.
        restore_best: finish with the parameters of the best validation epoch.
        device: ``"cpu"``, ``"cuda"``...; default CUDA when available. Batches move as used.
        checkpoint: a folder for ``last.pt`` (every ``checkpoint_every`` epochs and at the end)
            and ``best.pt``, written atomically.
        resume: continue from ``checkpoint/last.pt`` exactly where it stopped (same data order,
            optimizer state and random numbers: the same losses as an uninterrupted run).
        seed: seeds Pyro, torch and the minibatch order.
        progress: show a progress bar with the loss.
        keep_memory: on CPU, keep freed memory in the process (:func:`keep_freed_memory`), so
            that the large gradients written at every step reuse mapped pages instead of
            faulting fresh ones from the OS (process-wide; the resident size stays at its peak).
        precision: ``"32-true"`` (float32 throughout) or ``"bf16-mixed"``: each training step
            under :func:`mixed_precision`, the networks' products in bfloat16 and the densities
            in float32; validation NLLs are computed in float32. It pays on hardware with
            bfloat16 units (GPUs with tensor cores; CPUs with AMX or AVX512-BF16), and is
            slower where bfloat16 is emulated (``docs/performance.md``).

    Returns:
        The :class:`History` (also saved in checkpoints).
    """
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
    clip_norm = None if clip_norm is _UNSET else clip_norm
    if precision not in TRAINING_PRECISIONS:
        raise ValueError(f"fit: precision must be one of {TRAINING_PRECISIONS}, got {precision!r}")
    check_options(
        "fit", epochs=epochs, batch_size=batch_size, lr=lr, lr_decay=lr_decay,
        clip_value=clip_value, clip_norm=clip_norm, patience=patience,
        checkpoint_every=checkpoint_every,
    )  # fmt: skip
    check_contract(
        model, ("model", "guide", "log_prob", "name", "config")[: 5 if checkpoint else 4]
    )
    device = resolve_device(device)
    autocast = mixed_precision(precision, device)
    if keep_memory and torch.device(device).type == "cpu":
        keep_freed_memory()
    model.to(device)
    names = arg_names(model)
    generator = torch.Generator()
    pyro.set_rng_seed(seed)
    generator.manual_seed(seed)
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), None)
    if precision == "bf16-mixed" and dtype != torch.float32:
        raise ValueError(
            f"fit: precision='bf16-mixed' runs a float32 model's products in bfloat16; this "
            f"model's parameters are {dtype} (autocast would leave them as they are): convert it "
            f"with model.float(), or train with precision='32-true'"
        )
    batches = Batches(train, names, batch_size, True, generator, dtype)
    if batches.converted:  # one note, not a dtype error from inside a network
        warnings.warn(
            f"fit: {', '.join(batches.converted)}, the model's dtype (converted once)",
            stacklevel=2,
        )
    if optimizer is None:
        decay = lr_decay ** (1.0 / max(len(batches), 1))
        optimizer = JointClippedAdam({"lr": lr, "clip_norm": math.inf, "lrd": decay})
    forget_params(model.name)
    loop = EpochLoop(model, epochs, patience)
    ckpt_dir = None if checkpoint is None else Path(checkpoint)
    optimizer_name = getattr(optimizer, "pt_optim_constructor", type(optimizer)).__name__
    options = {"lr": lr, "lr_decay": lr_decay, "optimizer": optimizer_name, "precision": precision}
    if resume:
        state = _resume_state(ckpt_dir, model, epochs, options)
        model.load_state_dict(state["model"])
        optimizer.set_state(state["optimizer"])
        torch.set_rng_state(state["rng"]["torch"])
        generator.set_state(state["rng"]["generator"])
        loop.history = History(state["history"])
        loop.best, loop.bad_epochs = state["best"], state["bad_epochs"]
    start = copy.deepcopy(model.state_dict())  # what a divergence in the first epoch returns to
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
            "options": options,
        }

    todo = 0 if loop.stopped else max(epochs - loop.epoch, 0)
    bar = progress_bar(todo * len(batches), "fit", progress)

    def train_epoch(epoch: int) -> float:
        model.train()
        total, count = 0.0, 0
        for step, batch in enumerate(batches, 1):
            batch = to_device(batch, device)
            n = count_steps(batch)
            try:
                with autocast:
                    loss = svi_step(elbo, model, optimizer, batch, clip_norm, clip_value)
            except ValueError as err:  # Pyro's validation of a distribution built from NaN or
                # overflowing weights, after steps that went well: the run has diverged
                after_good_steps = loop.epoch > 0 or step > 1
                if not (_diverged(model, err) and (after_good_steps or not _finite(model))):
                    raise
                loss = math.nan
            if not math.isfinite(loss):
                raise Diverged(epoch, step, loss)
            total, count = total + loss, count + n
            bar.update()
            bar.set_postfix(epoch=epoch, nll=f"{loss / n:.4f}")
        if count == 0:
            raise ValueError("the training data gave no batches (an empty DataLoader?)")
        return total / count

    if val is not None and not isinstance(val, torch.utils.data.DataLoader):
        val = Batches(val, names, 1, False, None, dtype).data  # converted once, as train

    def validate() -> float:
        return evaluate(model, val, max(batch_size, 256))

    def end_epoch(loop: EpochLoop, improved: bool, last: bool) -> None:
        if isinstance(optimizer, PyroLRScheduler):  # a learning-rate schedule steps per epoch
            if optimizer.pt_scheduler_constructor is ReduceLROnPlateau:
                record = loop.history.records[-1]
                optimizer.step(record.get("val_nll", record["train_nll"]))
            else:
                optimizer.step()
        if ckpt_dir is None:
            return
        if improved:
            save_checkpoint(ckpt_dir / "best.pt", payload())
        if loop.epoch % checkpoint_every == 0 or last:
            save_checkpoint(ckpt_dir / "last.pt", payload())

    try:
        loop.run(train_epoch, None if val is None else validate, end_epoch)
    except Diverged as e:
        if not loop.restore():
            model.load_state_dict(start)
        raise FloatingPointError(_divergence_message(e, loop, lr, ckpt_dir)) from None
    finally:
        bar.close()
    if restore_best and val is not None:
        loop.restore()
    return loop.history


class Diverged(FloatingPointError):
    """The loss became NaN or infinite (internal: ``fit`` turns it into its own message)."""

    def __init__(self, epoch: int, step: int, loss: float):
        super().__init__(f"the loss became {loss} at epoch {epoch}, step {step}")
        self.epoch, self.step, self.loss = epoch, step, loss


def _finite(model: nn.Module) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in model.parameters())


def _diverged(model: nn.Module, err: ValueError) -> bool:
    """Whether a step's ValueError comes from ruined weights rather than from the data: the
    weights are not finite, or a distribution's validation found invalid parameter values."""
    return not _finite(model) or "invalid values" in str(err) or "log_prob at site" in str(err)


def _divergence_message(e: Diverged, loop: EpochLoop, lr: float, ckpt_dir: Path | None) -> str:
    if loop.best is not None:
        kept = (
            f"the parameters of epoch {loop.best['epoch']} (the best so far, NLL "
            f"{loop.best['nll']:.4f} per step) are restored"
        )
    else:
        kept = "the parameters it started from are restored"
    saved = "" if ckpt_dir is None else f", or resume from {ckpt_dir / 'best.pt'}"
    return (
        f"{e}: training diverged; {kept}. To go on: a smaller lr (it was {lr:g}), clip_norm= "
        f"(the global gradient norm) or a lower clip_value{saved}"
    )


def _resume_state(ckpt_dir: Path, model: nn.Module, epochs: int, options: dict) -> dict:
    """The checkpoint to resume from, refusing what would silently change the run."""
    path = ckpt_dir / "last.pt"
    if not path.is_file():
        where = "holds no last.pt" if ckpt_dir.is_dir() else "does not exist"
        raise FileNotFoundError(
            f"resume=True but the checkpoint folder {ckpt_dir} {where}: nothing to resume "
            "(leave resume out to start a new run)"
        )
    state = load_model_checkpoint(path, model)
    saved = state.get("options") or {}  # checkpoints of version 0.1 recorded none
    changed = sorted(k for k in saved if saved[k] != options[k])
    if changed:
        was = ", ".join(f"{k}={saved[k]!r}" for k in changed)
        now = ", ".join(f"{k}={options[k]!r}" for k in changed)
        raise ValueError(
            f"{path} was trained with {was}; resuming with {now} would be silently replaced by "
            f"the optimizer state it holds: resume with {was}, or start a new run in another folder"
        )
    if epochs < state["epoch"]:
        raise ValueError(
            f"{path} has already trained {state['epoch']} epochs; epochs={epochs} is the total "
            f"to reach, not a number of further epochs: pass epochs > {state['epoch']}"
        )
    return state
