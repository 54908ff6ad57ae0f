"""Training with SVI: minibatches, validation, early stopping, checkpoints, exact resume."""

from __future__ import annotations

import copy
import csv
import inspect
import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyro
import pyro.optim
import torch
from pyro.infer import SVI, Trace_ELBO
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from .checkpoint import load_model_checkpoint, save_checkpoint

__all__ = ["History", "evaluate", "fit", "resolve_device"]


@dataclass
class History:
    """Per-epoch records: ``epoch``, ``train_nll`` and ``val_nll`` (nats per step), ``time``."""

    records: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: str) -> list:
        return [r.get(key) for r in self.records]

    def to_json(self, path) -> None:
        Path(path).write_text(json.dumps(self.records, indent=1))

    def to_csv(self, path) -> None:
        keys = list(self.records[0]) if self.records else ["epoch"]
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(self.records)


def resolve_device(device=None) -> torch.device:
    """``None`` -> CUDA when available, else CPU; a CUDA request without CUDA is an error."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for but CUDA is not available here")
    return device


def _arg_names(model: nn.Module) -> list[str]:
    return [
        n
        for n, p in inspect.signature(model.model).parameters.items()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]


def _as_kwargs(batch, names: list[str]) -> dict:
    if isinstance(batch, Tensor):
        batch = (batch,)
    if isinstance(batch, dict):
        unknown = set(batch) - set(names)
        if unknown:
            raise ValueError(f"unknown data keys {sorted(unknown)}; the model takes {names}")
        return dict(batch)
    if isinstance(batch, (tuple, list)):
        if len(batch) > len(names):
            raise ValueError(f"got {len(batch)} data tensors; the model takes {names}")
        return dict(zip(names, batch, strict=False))
    raise TypeError(
        f"data must be a tensor, a tuple or dict of tensors, or a DataLoader; got {type(batch)}"
    )


class _Batches:
    """Minibatches of tensors (shuffled by a checkpointed generator), or a DataLoader's."""

    def __init__(self, data, names: list[str], batch_size: int, shuffle: bool, generator):
        self.loader = data if isinstance(data, DataLoader) else None
        self.generator, self.shuffle, self.batch_size = generator, shuffle, batch_size
        if self.loader is None:
            self.data = {k: v for k, v in _as_kwargs(data, names).items() if v is not None}
            sizes = {k: len(v) for k, v in self.data.items()}
            if len(set(sizes.values())) != 1:
                raise ValueError(f"data tensors have different lengths along dim 0: {sizes}")
            self.n = next(iter(sizes.values()))
            if self.n == 0:
                raise ValueError("the data set is empty")
        self.names = names

    def __len__(self) -> int:
        return len(self.loader) if self.loader is not None else math.ceil(self.n / self.batch_size)

    def __iter__(self) -> Iterator[dict]:
        if self.loader is not None:
            for batch in self.loader:
                yield _as_kwargs(batch, self.names)
            return
        order = (
            torch.randperm(self.n, generator=self.generator)
            if self.shuffle
            else torch.arange(self.n)
        )
        for i in range(0, self.n, self.batch_size):
            idx = order[i : i + self.batch_size]
            yield {k: v[idx] for k, v in self.data.items()}


def _to(batch: dict, device) -> dict:
    return {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.items()}


def _count(batch: dict) -> int:
    """Number of scored steps in a batch: unmasked (sequence, step) pairs, or rows.

    The observations are ``y``, or else the batch's first tensor (``frames`` of a world model):
    a tensor of 3 or more dims is (sequences, steps, ...), a smaller one is rows.
    """
    if batch.get("mask") is not None:
        return int(batch["mask"].sum())
    y = batch.get("y")
    if y is None:
        y = next((v for v in batch.values() if isinstance(v, Tensor)), None)
    if y is None:
        raise ValueError(f"the data must hold the observations; got keys {sorted(batch)}")
    return y.shape[0] * y.shape[1] if y.dim() >= 3 else len(y)


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
        for batch in _Batches(data, _arg_names(model), batch_size, False, None):
            batch = _to(batch, device)
            total -= float(model.log_prob(**batch).sum())
            count += _count(batch)
    finally:
        model.train(was_training)
    nll = total / count
    return nll / (model.obs_dim * math.log(2)) if bits_per_dim else nll


def _forget_params(name: str) -> None:
    """Drop a model's entries from Pyro's param store so that stale ones never shadow it."""
    store = pyro.get_param_store()
    for key in [k for k in store.keys() if k.startswith(name + "$$$")]:
        del store[key]


def fit(
    model: nn.Module,
    train,
    val=None,
    *,
    epochs: int = 10,
    batch_size: int = 32,
    lr: float = 1e-3,
    clip_norm: float | None = 10.0,
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
        lr, clip_norm, lr_decay: Pyro's ``ClippedAdam``: learning rate, the bound each gradient
            element is clamped to (``None``: no clamping; use it for losses summed over many
            values, such as the pixels of a world model, whose gradient elements are large), and
            the learning rate's decay factor per epoch (1: constant).
        optimizer: any ``pyro.optim`` optimizer instead.
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
    device = resolve_device(device)
    model.to(device)
    names = _arg_names(model)
    generator = torch.Generator()
    pyro.set_rng_seed(seed)
    generator.manual_seed(seed)
    batches = _Batches(train, names, batch_size, True, generator)
    val_batches = None if val is None else val
    if optimizer is None:
        decay = lr_decay ** (1.0 / max(len(batches), 1))
        clip = math.inf if clip_norm is None else clip_norm
        optimizer = pyro.optim.ClippedAdam({"lr": lr, "clip_norm": clip, "lrd": decay})
    _forget_params(model.name)
    history, start, best, bad_epochs = History(), 0, None, 0
    ckpt_dir = None if checkpoint is None else Path(checkpoint)
    if resume and (ckpt_dir / "last.pt").exists():
        state = load_model_checkpoint(ckpt_dir / "last.pt", model)
        model.load_state_dict(state["model"])
        optimizer.set_state(state["optimizer"])
        torch.set_rng_state(state["rng"]["torch"])
        generator.set_state(state["rng"]["generator"])
        history = History(state["history"])
        start, bad_epochs = state["epoch"], state["bad_epochs"]
        best = state["best"]
    svi = SVI(model.model, model.guide, optimizer, Trace_ELBO())

    def payload(epoch):
        return {
            "model_class": type(model).__name__,
            "config": model.config,
            "model": model.state_dict(),
            "optimizer": optimizer.get_state(),
            "epoch": epoch,
            "history": history.records,
            "best": best,
            "bad_epochs": bad_epochs,
            "rng": {"torch": torch.get_rng_state(), "generator": generator.get_state()},
        }

    if patience is not None and bad_epochs >= patience:
        start = epochs  # the run this resumes had already stopped early
    bar = tqdm(total=max(epochs - start, 0) * len(batches), disable=not progress, desc="fit")
    for epoch in range(start, epochs):
        model.train()
        t0, total, count = time.perf_counter(), 0.0, 0
        for batch in batches:
            batch = _to(batch, device)
            n = _count(batch)
            loss = svi.step(**batch)
            if not math.isfinite(loss):
                raise FloatingPointError(f"the loss became {loss} at epoch {epoch + 1}")
            total, count = total + loss, count + n
            bar.update()
            bar.set_postfix(epoch=epoch + 1, nll=f"{loss / n:.4f}")
        record = {"epoch": epoch + 1, "train_nll": total / count}
        if val_batches is not None:
            record["val_nll"] = evaluate(model, val_batches, max(batch_size, 256))
        record["time"] = time.perf_counter() - t0
        history.records.append(record)
        score = record.get("val_nll", record["train_nll"])
        if best is None or score < best["nll"]:
            best = {"nll": score, "epoch": epoch + 1, "model": copy.deepcopy(model.state_dict())}
            bad_epochs = 0
            if ckpt_dir is not None:
                save_checkpoint(ckpt_dir / "best.pt", payload(epoch + 1))
        else:
            bad_epochs += 1
        last = epoch + 1 == epochs or (patience is not None and bad_epochs >= patience)
        if ckpt_dir is not None and ((epoch + 1) % checkpoint_every == 0 or last):
            save_checkpoint(ckpt_dir / "last.pt", payload(epoch + 1))
        if last:
            break
    bar.close()
    if restore_best and val is not None and best is not None:
        model.load_state_dict(best["model"])
    return history
