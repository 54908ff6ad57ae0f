"""SVI under PyTorch Lightning: one GPU, several, or several nodes through Lightning's strategies.

The model's ELBO becomes an ``nn.Module`` (Pyro's :class:`~pyro.infer.elbo.ELBOModule`) trained by a
torch optimizer inside a :class:`lightning.LightningModule`, as in Pyro's ``svi_lightning.py``
example; data parallelism (DDP), devices and nodes are Lightning's business. Needs the
``lightning`` extra: ``pip install pyro-frmdn[lightning]``.
"""

from __future__ import annotations

import atexit
import time
import warnings
from collections.abc import Callable, Iterable

import pyro
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from .engine import (
    Batches,
    History,
    arg_names,
    as_kwargs,
    check_options,
    clip_gradients,
    count_steps,
    forget_params,
    to_device,
)

try:
    import lightning
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "pyro_frmdn.infer.lightning needs PyTorch Lightning: pip install pyro-frmdn[lightning]"
    ) from e

__all__ = ["SVILightningModule", "fit_lightning"]

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
SchedulerFactory = Callable[[torch.optim.Optimizer], torch.optim.lr_scheduler.LRScheduler]


class SVILightningModule(lightning.LightningModule):
    r"""A model's ``Trace_ELBO`` as a :class:`lightning.LightningModule`.

    The loss of a batch is the ELBO loss divided by the number of scored steps (unmasked
    (sequence, step) pairs), so for MDN, RMDN and FRMDN it is the NLL in nats per step:

    .. math:: \mathcal L = -\frac{1}{\#\text{steps}} \sum_{b,t} m_{bt} \log p(y_{bt} \mid y_{b,<t})

    Batches are dicts of tensors named as the arguments of ``model.model`` (``{"y": y,
    "mask": mask}``), or tuples in that order, or a single tensor ``y``.

    Pyro's param store: the model's ``pyro.module`` call registers the module's own parameter
    tensors, which are also this LightningModule's parameters, so DDP, the optimizer and Pyro see
    the same tensors. Call :meth:`initialize` on one batch before fitting (:func:`fit_lightning`
    does): it creates any lazily made parameters and checks that no parameter lives only in the
    param store, where DDP would never synchronise it.

    Arguments:
        model: an ``nn.Module`` with ``model``, ``guide`` and ``log_prob`` (MDN, RMDN, FRMDN...).
        lr: the learning rate of the default optimizer, ``torch.optim.Adam``.
        clip_norm, clip_value: clip the global gradient norm to ``clip_norm`` and clamp each
            gradient element to ``[-clip_value, clip_value]`` (``None``: not), as ``fit`` does
            (:func:`~pyro_frmdn.infer.engine.clip_gradients`), unless the Trainer sets
            ``gradient_clip_val`` itself.
        optimizer: a factory ``params -> torch.optim.Optimizer`` instead of Adam.
        scheduler: a factory ``optimizer -> torch.optim.lr_scheduler.LRScheduler``, stepped
            after every epoch (``ReduceLROnPlateau`` with the epoch's ``val_nll``, or
            ``train_nll`` without validation data).

    Example:
        >>> import lightning, pyro_frmdn as pf
        >>> m = pf.FRMDN(obs_dim=2, hidden_dim=8, num_components=2, flow_layers=1)
        >>> module = SVILightningModule(m, lr=1e-2)
        >>> y = torch.randn(4, 6, 2)
        >>> module.initialize({"y": y})
        >>> float(module.training_step({"y": y}, 0)) > 0
        True
    """

    def __init__(
        self,
        model: nn.Module,
        lr: float = 1e-3,
        clip_norm: float | None = 10.0,
        optimizer: OptimizerFactory | None = None,
        clip_value: float | None = None,
        scheduler: SchedulerFactory | None = None,
    ):
        super().__init__()
        self.model = model
        self.elbo = Trace_ELBO()(model.model, model.guide)  # ELBOModule: forward -> loss
        self.lr, self.clip_norm, self.optimizer_factory = lr, clip_norm, optimizer
        self.clip_value, self.scheduler_factory = clip_value, scheduler
        self.names = arg_names(model)
        self.history = History()

    def _kwargs(self, batch) -> dict:
        return {k: v for k, v in as_kwargs(batch, self.names).items() if v is not None}

    @torch.no_grad()
    def initialize(self, batch) -> None:
        """Run the ELBO once on ``batch``, so that all parameters exist before DDP wraps the module.

        Stale param-store entries under the model's name are dropped first (``pyro.module`` would
        return them instead of the module's tensors). Raises a ``ValueError`` if a parameter of the
        model or guide is not a parameter of this module: the optimizer would not train it and DDP
        would not synchronise it.
        """
        prefix = getattr(self.model, "name", None)
        if prefix is not None:
            forget_params(prefix)
        kwargs = self._kwargs(batch)
        trace = poutine.trace(self.elbo, param_only=True).get_trace(**kwargs)
        own = {id(p) for p in self.parameters()}
        unconstrained = dict(pyro.get_param_store().named_parameters())
        foreign = sorted(
            name
            for name, site in trace.nodes.items()
            if site["type"] == "param" and id(unconstrained.get(name, site["value"])) not in own
        )
        if foreign:
            raise ValueError(
                f"Pyro params {foreign} are not parameters of the model module: DDP and the "
                "optimizer only see module parameters. Make them nn.Parameters of the model (or "
                "PyroModule parameters with pyro.settings.set(module_local_params=True))."
            )

    def training_step(self, batch, batch_idx: int) -> Tensor:
        kwargs = self._kwargs(batch)
        count = count_steps(kwargs)
        loss = self.elbo(**kwargs) / count
        # the epoch mean, weighted by steps and reduced over processes, is the NLL per step
        self.log(
            "train_nll",
            loss.detach(),
            on_step=False,
            on_epoch=True,
            batch_size=count,
            sync_dist=True,
        )
        return loss

    def validation_step(self, batch, batch_idx: int) -> Tensor:
        kwargs = self._kwargs(batch)
        count = count_steps(kwargs)
        nll = -self.model.log_prob(**kwargs).sum() / count
        self.log("val_nll", nll, on_epoch=True, batch_size=count, sync_dist=True, prog_bar=True)
        return nll

    def on_train_epoch_start(self) -> None:
        self._epoch_start = time.perf_counter()

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self._validated_epoch = self.current_epoch

    def on_train_epoch_end(self) -> None:
        # Lightning has reduced the epoch means (over batches and ranks) by this hook
        metrics = self.trainer.callback_metrics
        record = {"epoch": self.current_epoch + 1, "train_nll": float(metrics["train_nll"])}
        if getattr(self, "_validated_epoch", None) == self.current_epoch:
            record["val_nll"] = float(metrics["val_nll"])
        record["time"] = time.perf_counter() - self._epoch_start
        self.history.records.append(record)

    def configure_optimizers(self):
        if self.optimizer_factory is not None:
            optimizer = self.optimizer_factory(self.parameters())
        else:
            optimizer = torch.optim.Adam(self.parameters(), lr=self.lr)
        if self.scheduler_factory is None:
            return optimizer
        validated = self.trainer.val_dataloaders is not None  # lightning sets them before
        schedule = {
            "scheduler": self.scheduler_factory(optimizer),
            "interval": "epoch",
            "monitor": "val_nll" if validated else "train_nll",
        }
        return {"optimizer": optimizer, "lr_scheduler": schedule}

    def configure_gradient_clipping(
        self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None
    ) -> None:
        # after backward: under DDP the gradients are already averaged, so every rank clips alike
        if gradient_clip_val is not None:
            self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)
        else:
            clip_gradients(self.parameters(), self.clip_norm, self.clip_value)

    def get_extra_state(self) -> dict:
        # travels with the state_dict, which spawn-based strategies send back to the main process
        return {"history": self.history.records}

    def set_extra_state(self, state: dict) -> None:
        self.history = History(list(state["history"]))


class _RowsDataset(Dataset):
    """Rows of named tensors: item ``i`` is ``{name: tensor[i]}``; batches collate into dicts."""

    def __init__(self, data: dict[str, Tensor]):
        self.data = data
        self.n = len(next(iter(data.values())))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, Tensor]:
        return {k: v[i] for k, v in self.data.items()}


def _loader(data, names: list[str], batch_size: int, shuffle: bool) -> DataLoader:
    if isinstance(data, DataLoader):
        return data
    rows = Batches(data, names, batch_size, shuffle, None).data  # checked: same lengths, not empty
    return DataLoader(_RowsDataset(rows), batch_size=batch_size, shuffle=shuffle)


def fit_lightning(
    model: nn.Module,
    train,
    val=None,
    *,
    epochs: int = 10,
    batch_size: int = 32,
    lr: float = 1e-3,
    clip_norm: float | None = 10.0,
    optimizer: OptimizerFactory | None = None,
    trainer_kwargs: dict | None = None,
    clip_value: float | None = None,
    scheduler: SchedulerFactory | None = None,
    seed: int = 0,
) -> History:
    """Fit a model's ``model``/``guide`` pair with SVI (``Trace_ELBO``) under a Lightning Trainer.

    The Lightning counterpart of :func:`~pyro_frmdn.infer.fit`: the same data forms and the same
    loss (nats per scored step), but devices, nodes and the distribution strategy are Lightning's.
    With several devices Lightning picks DDP: every process holds a replica, sees its own share of
    each epoch (a ``DistributedSampler`` it adds to the loaders) and gradients are averaged before
    every step, so replicas stay identical. See ``docs/distributed.md``.

    Arguments:
        model: an ``nn.Module`` with ``model``, ``guide``, ``log_prob`` (MDN, RMDN, FRMDN...).
            Trained in place; with spawn-based strategies the final weights are copied back.
        train, val: a tensor (the first argument of ``model.model``), a tuple of tensors in the
            order of its arguments, a dict of them by name (``{"y": y, "mask": mask}``), or a
            ``DataLoader`` yielding any of these.
        epochs, batch_size: passes over ``train`` and the minibatch size per process.
        lr, clip_norm, clip_value, optimizer, scheduler: see :class:`SVILightningModule`.
        trainer_kwargs: overrides of the :class:`lightning.Trainer` arguments, e.g.
            ``{"accelerator": "gpu", "devices": 4, "num_nodes": 2, "strategy": "ddp"}``. Defaults:
            ``accelerator="auto"``, ``devices="auto"``, ``strategy="auto"``, no logger, no
            checkpointing, no model summary, no sanity validation. User ``callbacks`` are
            kept; a ``ModelCheckpoint`` among them turns Lightning's checkpointing on.
        seed: seeds Python, NumPy and torch (so Pyro), and Lightning's distributed samplers.

    Returns:
        The :class:`~pyro_frmdn.infer.History` of the epochs: ``train_nll``, ``val_nll``
        (averaged over all processes) and ``time``.
    """
    check_options(
        "fit_lightning", epochs=epochs, batch_size=batch_size, lr=lr, clip_norm=clip_norm,
        clip_value=clip_value,
    )  # fmt: skip
    lightning.seed_everything(seed, verbose=False)
    names = arg_names(model)
    train_loader = _loader(train, names, batch_size, shuffle=True)
    val_loader = None if val is None else _loader(val, names, max(batch_size, 256), shuffle=False)
    module = SVILightningModule(
        model, lr=lr, clip_norm=clip_norm, optimizer=optimizer, clip_value=clip_value,
        scheduler=scheduler,
    )  # fmt: skip
    first = as_kwargs(next(iter(train_loader)), names)
    module.initialize(to_device(first, next(model.parameters()).device))
    kwargs = dict(
        max_epochs=epochs,
        accelerator="auto",
        devices="auto",
        strategy="auto",
        enable_checkpointing=False,
        logger=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    user = dict(trainer_kwargs or {})
    if "enable_checkpointing" not in user and any(
        isinstance(c, lightning.pytorch.callbacks.ModelCheckpoint)
        for c in user.get("callbacks", ())
    ):
        user["enable_checkpointing"] = True  # Lightning refuses the callback otherwise
    kwargs.update(user)
    trainer = lightning.Trainer(**kwargs)
    had_group = _group_is_up()
    with warnings.catch_warnings():
        if val_loader is None:
            warnings.filterwarnings("ignore", "You defined a `validation_step` but have no")
        trainer.fit(module, train_loader, val_loader)
    if not had_group and _group_is_up():
        atexit.register(_close_group)
    return module.history


def _group_is_up() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _close_group() -> None:
    """Close the process group Lightning opened, while the interpreter is still whole.

    Lightning leaves it open after ``fit`` (the caller may still use it), but a gloo group left to
    the interpreter's shutdown can abort the process (SIGABRT, "terminate called without an active
    exception") after all its work is done: its worker threads outlive Python.
    """
    if _group_is_up():
        torch.distributed.destroy_process_group()
