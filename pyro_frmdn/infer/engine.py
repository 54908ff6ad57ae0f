"""The training engine behind fit, fit_boosted and the Lightning module: batches, gradient
clipping, the epoch loop with early stopping, best-epoch restore and progress."""

from __future__ import annotations

import copy
import csv
import inspect
import json
import math
import numbers
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyro
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..files import atomic_write

__all__ = [
    "Batches",
    "EpochLoop",
    "History",
    "arg_names",
    "as_kwargs",
    "check_options",
    "clip_gradients",
    "count_steps",
    "forget_params",
    "progress_bar",
    "resolve_device",
    "to_device",
]


@dataclass
class History:
    """Per-epoch records: ``epoch``, ``train_nll`` and ``val_nll`` (nats per step), ``time``."""

    records: list[dict] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, key: str) -> list:
        return [r.get(key) for r in self.records]

    def to_json(self, path) -> None:
        """Write the records as JSON, atomically."""
        with atomic_write(path, "w") as f:
            f.write(json.dumps(self.records, indent=1))

    def to_csv(self, path) -> None:
        """Write the records as CSV (a column per key of the first record), atomically."""
        keys = list(self.records[0]) if self.records else ["epoch"]
        with atomic_write(path, "w") as f:
            w = csv.DictWriter(f, fieldnames=keys)  # rows end in \r\n, as the csv module writes
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


# -- data -------------------------------------------------------------------------------------


def arg_names(model: nn.Module) -> list[str]:
    """The names of the data arguments of ``model.model``, in order."""
    return [
        n
        for n, p in inspect.signature(model.model).parameters.items()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]


def as_kwargs(batch, names: list[str]) -> dict:
    """A batch (a tensor, a tuple in the order of ``names``, or a dict) as keyword arguments."""
    if isinstance(batch, (Tensor, np.ndarray)):
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


class Batches:
    """Minibatches of tensors (shuffled by a checkpointed generator), or a DataLoader's.

    Arguments:
        data: a tensor, a tuple or dict of tensors with the same length, or a ``DataLoader``;
            numpy arrays and lists are taken as tensors.
        names: the model's data arguments (:func:`arg_names`).
        batch_size: rows per batch (tensor data).
        shuffle: a new order every pass, drawn from ``generator``.
        dtype: the model's floating dtype: floating data of another dtype (float64), and
            integer observations or inputs ``y``, ``x``, are converted to it once, here, and
            listed in ``converted`` (boolean masks and uint8 frames stay: the models read them).
    """

    def __init__(
        self, data, names: list[str], batch_size: int, shuffle: bool, generator=None, dtype=None
    ):
        self.loader = data if isinstance(data, DataLoader) else None
        self.generator, self.shuffle, self.batch_size = generator, shuffle, batch_size
        self.converted: list[str] = []
        if self.loader is None:
            data = {k: v for k, v in as_kwargs(data, names).items() if v is not None}
            self.data = {k: self._tensor(k, v, dtype) for k, v in data.items()}
            sizes = {k: len(v) for k, v in self.data.items()}
            if len(set(sizes.values())) != 1:
                raise ValueError(f"data tensors have different lengths along dim 0: {sizes}")
            self.n = next(iter(sizes.values()))
            if self.n == 0:
                raise ValueError("the data set is empty")
        self.names = names

    def _tensor(self, name: str, value, dtype) -> Tensor:
        if not isinstance(value, Tensor):
            try:
                value = torch.as_tensor(np.asarray(value))
            except (TypeError, ValueError) as e:
                raise TypeError(
                    f"{name} must be a tensor or an array of numbers, got {type(value).__name__}"
                ) from e
        if value.dtype.is_complex:
            raise TypeError(f"{name} holds complex numbers; expected real ones")
        floating = value.is_floating_point() and name != "mask"
        counts = name in ("y", "x") and value.dtype not in (torch.bool, torch.uint8)  # not pixels
        if dtype is not None and value.dtype != dtype and (floating or counts):
            self.converted.append(f"{name} from {value.dtype} to {dtype}")
            value = value.to(dtype)
        return value

    def __len__(self) -> int:
        return len(self.loader) if self.loader is not None else math.ceil(self.n / self.batch_size)

    def __iter__(self) -> Iterator[dict]:
        if self.loader is not None:
            for batch in self.loader:
                yield as_kwargs(batch, self.names)
            return
        order = (
            torch.randperm(self.n, generator=self.generator)
            if self.shuffle
            else torch.arange(self.n)
        )
        for i in range(0, self.n, self.batch_size):
            idx = order[i : i + self.batch_size]
            yield {k: v[idx] for k, v in self.data.items()}


def to_device(batch: dict, device) -> dict:
    """The batch's tensors on ``device`` (other values as they are)."""
    return {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.items()}


def count_steps(batch: dict) -> int:
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


def forget_params(name: str) -> None:
    """Drop a model's entries from Pyro's param store so that stale ones never shadow it.

    A parameter can be there under two names, when a module was fitted alone and inside a
    larger model (a world model's dynamics, :func:`~pyro_frmdn.infer.refit_dynamics`); the store
    maps it back to one of them only, which is left alone unless it is one of these (Pyro's own
    ``del`` would fail on the second name).
    """
    store = pyro.get_param_store()
    for key in [k for k in store.keys() if k.startswith(name + "$$$")]:
        param = store._params.pop(key)
        if store._param_to_name.get(param) == key:
            del store._param_to_name[param]
        store._constraints.pop(key, None)


# -- options ----------------------------------------------------------------------------------


def _integer(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _positive(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) and v > 0


_RULES = {  # name -> (test, the rule in words)
    "epochs": (lambda v: _integer(v) and v >= 0, "an integer >= 0"),
    "batch_size": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    "checkpoint_every": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    "epochs_per_component": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    "num_components": (lambda v: _integer(v) and v >= 1, "an integer >= 1"),
    "patience": (
        lambda v: v is None or (_integer(v) and v >= 1),
        "None or an integer >= 1 (epochs without a better validation NLL before stopping)",
    ),
    "lr": (_positive, "a finite number > 0"),
    "lr_decay": (_positive, "a finite number > 0 (the learning rate's factor per epoch)"),
    "clip_value": (lambda v: v is None or _positive(v), "None or a finite number > 0"),
    "clip_norm": (lambda v: v is None or _positive(v), "None or a finite number > 0"),
}


def check_options(where: str, **options) -> None:
    """Refuse training options that would silently do nothing or harm, naming the rule.

    Example:
        >>> check_options("fit", lr=-1.0)
        Traceback (most recent call last):
        ...
        ValueError: fit: lr must be a finite number > 0, got -1.0
    """
    for name, value in options.items():
        test, rule = _RULES[name]
        if not test(value):
            raise ValueError(f"{where}: {name} must be {rule}, got {value!r}")


# -- optimisation -----------------------------------------------------------------------------


def clip_gradients(
    params: Iterable[Tensor], clip_norm: float | None = None, clip_value: float | None = None
) -> Tensor | None:
    r"""Clip gradients in place, the one meaning of each clip argument across the package.

    ``clip_value`` clamps every gradient element to :math:`[-c, c]` (what Pyro's
    ``ClippedAdam`` calls ``clip_norm``); then ``clip_norm`` rescales all gradients together
    so that their global L2 norm is at most :math:`c` (``torch.nn.utils.clip_grad_norm_``).
    ``None`` skips either.

    Returns:
        With ``clip_norm``: the global gradient norm after the elementwise clamp, before the
        rescaling (``inf`` or ``nan`` when a gradient is not finite; ``clip_norm=math.inf``
        measures it without rescaling). Without: None (no norm is computed).
    """
    params = [p for p in params if p.grad is not None]
    if clip_value is not None:
        for p in params:
            p.grad.clamp_(-clip_value, clip_value)
    if clip_norm is None:
        return None
    return torch.nn.utils.clip_grad_norm_(params, clip_norm)


# -- the epoch loop ---------------------------------------------------------------------------


class EpochLoop:
    """Epochs with validation, early stopping and the best epoch's parameters kept.

    The caller gives one function that trains an epoch and returns its loss, and optionally
    one that scores the model on validation data (lower is better); the loop keeps the
    records, the best epoch's ``state_dict`` and the count of epochs without improvement, and
    calls ``on_epoch_end(loop, improved, last)`` after each epoch (checkpoints). Its state
    (``history``, ``best``, ``bad_epochs``) is plain data, so it can be checkpointed and
    restored for an exact resume.

    Arguments:
        module: whose ``state_dict`` is kept for the best epoch.
        epochs: the last epoch to run (epochs already in ``history`` count).
        patience: stop after this many epochs without a better score (None: never).
        keep_best: keep the best epoch's parameters (``restore`` puts them back); with
            ``keep_best="val"`` only when there is a validation score.
    """

    def __init__(
        self,
        module: nn.Module,
        epochs: int,
        patience: int | None = None,
        keep_best: bool | str = True,
        history: History | None = None,
        best: dict | None = None,
        bad_epochs: int = 0,
    ):
        self.module, self.epochs, self.patience, self.keep_best = (
            module,
            epochs,
            patience,
            keep_best,
        )
        self.history = History() if history is None else history
        self.best, self.bad_epochs = best, bad_epochs

    @property
    def epoch(self) -> int:
        """Epochs done."""
        return len(self.history)

    @property
    def stopped(self) -> bool:
        """Whether early stopping has ended the run."""
        return self.patience is not None and self.bad_epochs >= self.patience

    def run(
        self,
        train_epoch: Callable[[int], float],
        validate: Callable[[], float] | None = None,
        on_epoch_end: Callable[[EpochLoop, bool, bool], None] | None = None,
    ) -> History:
        """Run epochs ``self.epoch + 1 ...`` up to ``epochs`` or until early stopping."""
        start = self.epochs if self.stopped else self.epoch  # a resumed run that had stopped
        for epoch in range(start, self.epochs):
            t0 = time.perf_counter()
            record = {"epoch": epoch + 1, "train_nll": train_epoch(epoch + 1)}
            if validate is not None:
                record["val_nll"] = validate()
            record["time"] = time.perf_counter() - t0
            self.history.records.append(record)
            improved = self._score(record, validate is not None)
            last = epoch + 1 == self.epochs or self.stopped
            if on_epoch_end is not None:
                on_epoch_end(self, improved, last)
            if last:
                break
        return self.history

    def _score(self, record: dict, validated: bool) -> bool:
        score = record.get("val_nll", record["train_nll"])
        if not score < (math.inf if self.best is None else self.best["nll"]):  # NaN never best
            self.bad_epochs += 1
            return False
        keep = self.keep_best is True or (self.keep_best == "val" and validated)
        state = copy.deepcopy(self.module.state_dict()) if keep else None
        self.best = {"nll": score, "epoch": record["epoch"], "model": state}
        self.bad_epochs = 0
        return True

    def restore(self) -> bool:
        """Load the best epoch's parameters back into the module; whether there were any."""
        if self.best is None or self.best.get("model") is None:
            return False
        self.module.load_state_dict(self.best["model"])
        return True


def progress_bar(total: int, desc: str, enabled: bool = True) -> tqdm:
    """The package's progress bar (tqdm), with the loss shown by ``set_postfix``."""
    return tqdm(total=total, disable=not enabled, desc=desc)
