"""Gradient boosting of flow mixtures: :func:`fit_boosted`, the searches for ρ, checkpoints."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from pathlib import Path

import pyro
import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..models.boosted import RHO_MAX, BoostedMixture, log_weights_from_rho, rho_from_log_weights
from .checkpoint import load_checkpoint, load_model_checkpoint, save_checkpoint
from .training import History, resolve_device

__all__ = [
    "RHO_DATA",
    "RHO_SEARCHES",
    "SAMPLE_WEIGHTINGS",
    "boosting_sample_weights",
    "fit_boosted",
    "gradient_search_rho",
    "line_search_rho",
    "load_boosted",
    "mixture_nll",
    "rho_gradient",
    "save_boosted",
]

RHO_SEARCHES = ("line", "gradient", "fixed")
RHO_DATA = ("train", "val")
SAMPLE_WEIGHTINGS = ("weighted", "resample", "uniform")
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


# -- the 1-D problem for ρ, on cached log-densities ----------------------------------------------


def _log_mixture(rho: float, log_prev: Tensor, log_new: Tensor) -> Tensor:
    if rho <= 0.0:
        return log_prev
    if rho >= 1.0:
        return log_new
    return torch.logaddexp(log_prev + math.log1p(-rho), log_new + math.log(rho))


def mixture_nll(rho: float, log_prev: Tensor, log_new: Tensor) -> float:
    r"""The mixture's mean NLL as a function of the new step :math:`\rho`:

    .. math::
        L(\rho) = -\frac1N \sum_i \log\left[(1 - \rho)\, G_{c-1}(x_i) + \rho\, g_c(x_i)\right]

    from ``log_prev`` :math:`= \log G_{c-1}(x_i)` and ``log_new`` :math:`= \log g_c(x_i)`, (N,).
    :math:`L` is convex in :math:`\rho` (minus the log of an affine function, averaged), so a
    line search on [0, 1] finds its global minimum (Giaquinto & Banerjee 2020, §3.3).
    """
    return -float(_log_mixture(rho, log_prev, log_new).mean())


def rho_gradient(rho: float, log_prev: Tensor, log_new: Tensor) -> float:
    r""":math:`dL/d\rho = -\frac1N \sum_i \big(g_c(x_i) - G_{c-1}(x_i)\big) / G_c(x_i)`, computed
    as differences of density ratios in log space (Giaquinto & Banerjee 2020, §3.3)."""
    log_g = _log_mixture(rho, log_prev, log_new)
    return -float((torch.exp(log_new - log_g) - torch.exp(log_prev - log_g)).mean())


def line_search_rho(
    log_prev: Tensor,
    log_new: Tensor,
    lo: float = 0.0,
    hi: float = RHO_MAX,
    grid: int = 17,
    tol: float = 1e-5,
) -> float:
    """The ρ in ``[lo, hi]`` that minimises :func:`mixture_nll`: a grid brackets the minimum, a
    golden-section search refines it; ``lo`` is always a candidate, so with ``lo = 0`` the
    result never has a larger NLL than leaving the mixture as it was."""
    if not 0.0 <= lo < hi <= 1.0:
        raise ValueError(f"need 0 <= lo < hi <= 1, got lo={lo}, hi={hi}")

    def f(r: float) -> float:
        return mixture_nll(r, log_prev, log_new)

    points = [lo + (hi - lo) * i / (grid - 1) for i in range(grid)]
    values = [f(r) for r in points]
    i = min(range(grid), key=values.__getitem__)
    a, b = points[max(i - 1, 0)], points[min(i + 1, grid - 1)]
    c, d = b - _GOLDEN * (b - a), a + _GOLDEN * (b - a)
    fc, fd = f(c), f(d)
    while b - a > tol:
        if fc <= fd:
            b, d, fd = d, c, fc
            c = b - _GOLDEN * (b - a)
            fc = f(c)
        else:
            a, c, fc = c, d, fd
            d = a + _GOLDEN * (b - a)
            fd = f(d)
    candidates = [(values[0], lo), (values[i], points[i]), (f(0.5 * (a + b)), 0.5 * (a + b))]
    return min(candidates)[1]


def gradient_search_rho(
    log_prev: Tensor,
    log_new: Tensor,
    lo: float = 0.0,
    hi: float = RHO_MAX,
    init: float | None = None,
    max_iter: int = 200,
    tol: float = 1e-7,
) -> float:
    """Projected gradient descent on :func:`mixture_nll` over ``[lo, hi]`` with the exact
    gradient (:func:`rho_gradient`) and a backtracking step (halved until the NLL does not rise,
    doubled after each accepted step). ``lo`` is compared at the end, as in the line search."""
    if not 0.0 <= lo < hi <= 1.0:
        raise ValueError(f"need 0 <= lo < hi <= 1, got lo={lo}, hi={hi}")
    rho = min(max(0.5 * (lo + hi) if init is None else init, lo), hi)
    f, step = mixture_nll(rho, log_prev, log_new), 0.05
    for _ in range(max_iter):
        g = rho_gradient(rho, log_prev, log_new)
        if math.isnan(g):
            break
        g = min(max(g, -1e6), 1e6)  # the gradient at ρ = 0 can overflow
        while True:
            new = min(max(rho - step * g, lo), hi)
            f_new = mixture_nll(new, log_prev, log_new)
            if f_new <= f or step < 1e-12:
                break
            step *= 0.5
        if f_new > f:
            break
        moved, rho, f, step = abs(new - rho), new, f_new, 2.0 * step
        if moved < tol:
            break
    return rho if f <= mixture_nll(lo, log_prev, log_new) else lo


def boosting_sample_weights(neg_log_prev: Tensor, clip: tuple[float, float] | None = (0.01, 0.1)):
    r"""Minibatch weights :math:`w_i \propto 1 / G_{c-1}(x_i)`: a softmax of
    :math:`-\log G_{c-1}` over the batch; when the largest exceeds ``clip[1]`` they are clamped to
    ``clip`` and renormalised, as in the reference implementation of Giaquinto & Banerjee (2020).

    The clip is in units of the normalised weights, so it depends on the batch size: with a
    batch of B, uniform weights are 1/B and the clamp bounds the ratio of two weights by
    ``clip[1] / clip[0]``.
    """
    w = torch.softmax(neg_log_prev, dim=0)
    if clip is not None and float(w.max()) > clip[1]:
        w = w.clamp(*clip)
        w = w / w.sum()
    return w


# -- checkpoints ------------------------------------------------------------------------------


def save_boosted(model: BoostedMixture, path, **extra) -> Path:
    """Write a boosted mixture atomically (``extra`` entries are stored beside it)."""
    return save_checkpoint(path, {**model.checkpoint_payload(), **extra})


def load_boosted(path, map_location=None) -> BoostedMixture:
    """Rebuild the mixture saved by :func:`save_boosted` or :func:`fit_boosted` (any of its
    per-component files), with ``weights_only=True``; all components frozen."""
    return BoostedMixture.from_payload(load_checkpoint(path, map_location=map_location))


# -- the boosting loop -----------------------------------------------------------------------


def _as_data(model: BoostedMixture, data, what: str) -> dict[str, Tensor]:
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


def _to(data: dict[str, Tensor], device, dtype) -> dict[str, Tensor]:
    """Move to ``device``; floating tensors to ``dtype`` (masks stay bool)."""
    return {
        k: v.to(device, dtype) if v.is_floating_point() else v.to(device) for k, v in data.items()
    }


def _scored_steps(data: dict[str, Tensor]) -> int:
    """Scored steps of a data set: unmasked (sequence, step) pairs, or examples."""
    if "mask" in data:
        return int(data["mask"].sum())
    y = data["y"]
    return y.shape[0] * math.prod(y.shape[1:-1])


def _rows(data: dict[str, Tensor], index) -> dict[str, Tensor]:
    return {k: v[index] for k, v in data.items()}


def _component_log_prob(component, batch: dict[str, Tensor]) -> Tensor:
    inputs = {k: v for k, v in batch.items() if k != "y"}
    return component.log_prob(batch["y"], **inputs)


@torch.no_grad()
def _log_probs(component, data: dict[str, Tensor], chunk: int) -> Tensor:
    """log g(y_i) for all examples of ``data`` in eval mode, float64, (N,)."""
    was_training = component.training
    component.eval()
    n = len(data["y"])
    try:
        parts = [
            _component_log_prob(component, _rows(data, slice(i, i + chunk)))
            for i in range(0, n, chunk)
        ]
    finally:
        component.train(was_training)
    return torch.cat(parts).double()


def _mixture(lp: Tensor, log_w: Tensor) -> Tensor:
    """log G(x_i) from cached component log-densities (N, C) and log-weights (C,)."""
    return torch.logsumexp(lp + log_w.to(lp), dim=-1)


def _rest(lp: Tensor, log_w: Tensor, c: int) -> Tensor | None:
    """log of the mixture without component c, renormalised; None if c holds all the weight."""
    log_w = log_w.to(lp)
    log_rest_mass = torch.log1p(-log_w[c].exp())
    if not bool(torch.isfinite(log_rest_mass)):
        return None
    others = [j for j in range(lp.shape[-1]) if j != c]
    return _mixture(lp[:, others], log_w[others]) - log_rest_mass


def _check_arguments(model, num_components, epochs, batch_size, lr, weight_clip, options) -> None:
    if not isinstance(model, BoostedMixture):
        raise TypeError(f"model must be a BoostedMixture (BoostedFlow, ...), got {type(model)}")
    if num_components < 1 or epochs < 1 or batch_size < 1 or lr <= 0:
        raise ValueError(
            "need num_components >= 1, epochs_per_component >= 1, batch_size >= 1, lr > 0; got "
            f"{num_components}, {epochs}, {batch_size}, {lr}"
        )
    if model.num_components > num_components:
        raise ValueError(
            f"the model already has {model.num_components} components, more than "
            f"num_components={num_components}"
        )
    if weight_clip is not None:
        lo, hi = weight_clip
        if not 0.0 <= lo < hi <= 1.0:
            raise ValueError(
                f"weight_clip must be (lo, hi) with 0 <= lo < hi <= 1, got {weight_clip}"
            )
    if options["rho_search"] not in RHO_SEARCHES:
        raise ValueError(f"rho_search must be one of {RHO_SEARCHES}, got {options['rho_search']!r}")
    if options["rho_data"] not in RHO_DATA:
        raise ValueError(f"rho_data must be one of {RHO_DATA}, got {options['rho_data']!r}")
    if options["rho_data"] == "val" and options["val"] is None:
        raise ValueError("rho_data='val' fits rho on validation data: pass val=")
    if options["sample_weighting"] not in SAMPLE_WEIGHTINGS:
        raise ValueError(
            f"sample_weighting must be one of {SAMPLE_WEIGHTINGS}, "
            f"got {options['sample_weighting']!r}"
        )
    fixed = options["fixed_rho"]
    if fixed != "uniform" and not (isinstance(fixed, (int, float)) and 0.0 < fixed <= RHO_MAX):
        raise ValueError(
            f"fixed_rho must be 'uniform' or a number in (0, {RHO_MAX}], got {fixed!r}"
        )
    patience = options["patience"]
    if patience is not None and patience < 1:
        raise ValueError(f"patience must be >= 1 or None, got {patience}")
    if patience is not None and options["val"] is None:
        raise ValueError("early stopping (patience) needs validation data: pass val=")
    if options["resume"] and options["checkpoint"] is None:
        raise ValueError("resume=True needs the checkpoint folder to resume from")


def fit_boosted(
    model: BoostedMixture,
    train: Tensor | tuple | dict,
    val: Tensor | tuple | dict | None = None,
    *,
    num_components: int = 4,
    epochs_per_component: int = 20,
    batch_size: int = 128,
    lr: float = 1e-3,
    clip_norm: float | None = 10.0,
    weight_clip: tuple[float, float] | None = (0.01, 0.1),
    sample_weighting: str = "weighted",
    rho_search: str = "line",
    fixed_rho: float | str = "uniform",
    rho_data: str = "train",
    second_pass: bool = False,
    patience: int | None = None,
    device=None,
    checkpoint: str | Path | None = None,
    resume: bool = False,
    seed: int = 0,
    progress: bool = True,
) -> History:
    r"""Grow a :class:`~pyro_frmdn.models.BoostedMixture` by gradient boosting (Giaquinto &
    Banerjee, "Gradient Boosted Normalizing Flows", NeurIPS 2020, arXiv 2002.11896).

    Components are added until the model has ``num_components`` (a model that already has some
    is continued). For each new component :math:`c`, with all earlier ones frozen:

    1. **Fit** :math:`g_c`. Component 0 by maximum likelihood. Later ones on the sample-weighted
       likelihood :math:`\sum_i w_i \log g_c(x_i)` with :math:`w_i \propto 1 / G_{c-1}(x_i)`,
       normalised over the minibatch and clipped as the paper's code does
       (:func:`boosting_sample_weights`). With ``sample_weighting="weighted"`` (default) the
       weighted NLL is minimised directly; with ``"resample"`` the minibatch is resampled by the
       weights and an ordinary NLL step taken, as the reference code does. Both have the same
       expected gradient; the weighted form uses every point of the batch, has no resampling
       noise and never duplicates points, so its variance is lower. ``"uniform"`` drops the
       weights (every component by maximum likelihood from its own initialisation: an
       ensemble, the ablation that shows what the reweighting adds). :math:`\log G_{c-1}(x_i)`
       is computed once per component for the whole training set (the frozen components do not
       change), so a step costs one flow, whatever :math:`c`.
    2. **Fit** :math:`\rho_c` on the training NLL of
       :math:`G_c = (1 - \rho_c) G_{c-1} + \rho_c g_c`, a convex function of :math:`\rho_c`:
       ``rho_search="line"`` (grid + golden section, :func:`line_search_rho`), ``"gradient"``
       (projected gradient with the exact gradient
       :math:`-\mathrm{mean}[(g_c - G_{c-1}) / G_c]`, :func:`gradient_search_rho`) or
       ``"fixed"`` (``fixed_rho``; ``"uniform"`` is :math:`1/(c+1)`, equal weights, what the
       reference code ends up with as it never updates ρ). Both searches include
       :math:`\rho_c = 0`, so a new component never makes the training NLL worse.
       ``rho_data="val"`` fits :math:`\rho_c` on the validation NLL instead (one number per
       component, chosen on held-out data like the early-stopping epoch; then it is the
       validation NLL that never rises).

    With ``second_pass=True`` each component is then refitted once more against the mixture of
    the others (weights :math:`\propto 1/G_{-c}`), its weight re-searched (the others keep their
    proportions; the steps ρ are recomputed from the weights and clipped to ``RHO_MAX``), and
    the refit is kept only if the NLL that ρ is fitted on (training, or validation with
    ``rho_data="val"``) did not rise.

    Early stopping: with ``val``, each component keeps the parameters of its best epoch by the
    validation NLL of the mixture it would make (:math:`\rho_c` searched on the validation
    set for this monitor only); ``patience`` stops a component after that many epochs
    without improvement.

    Arguments:
        model: a :class:`~pyro_frmdn.models.BoostedFlow`, :class:`~pyro_frmdn.models.BoostedFRMDN`
            or other :class:`~pyro_frmdn.models.BoostedMixture`.
        train, val: the examples: a tensor ``(N, D)`` for flows, ``(N, T, D)`` for sequences;
            or, for mixtures whose components take inputs (:class:`~pyro_frmdn.BoostedFRMDN`:
            ``x`` (N, T, X), ``mask`` (N, T)), a dict ``{"y": ..., "x": ..., "mask": ...}`` or a
            tuple ``(y, x, mask)``, passed to every component. With a mask the NLLs are per
            unmasked step.
        num_components: the final number of components C.
        epochs_per_component, batch_size, lr, clip_norm: Adam on each component's parameters,
            gradient norm clipped to ``clip_norm`` (None: no clipping).
        weight_clip: the clamp of the normalised sample weights, or None.
        sample_weighting: ``"weighted"``, ``"resample"`` or ``"uniform"`` (no boosting weights).
        rho_search, fixed_rho: how ρ is chosen.
        rho_data: ``"train"`` (default) or ``"val"``: the data ρ is fitted on.
        second_pass: refit each component once more with the others fixed.
        patience: early stopping per component (needs ``val``).
        device: default CUDA when available.
        checkpoint: a folder: ``component_{c}.pt`` after each component, ``refit_{c}.pt`` after
            each refit and ``last.pt`` (all atomic; read back with :func:`load_boosted`).
        resume: continue from ``checkpoint/last.pt`` (at the component it had reached).
        seed: seeds Pyro/torch (initialisation) and the minibatch order.
        progress: a tqdm bar with the loss.

    Returns:
        A :class:`~pyro_frmdn.infer.History` with one record per fitted component: ``component``,
        ``pass`` (1 or 2), ``rho``, ``weights``, ``train_nll`` and ``val_nll`` (the mixture's, in
        nats per scored step as :func:`~pyro_frmdn.evaluate`), ``component_nll`` (the component
        alone, train), ``epochs``, ``best_epoch``, ``loss`` (per epoch), ``accepted``, ``time``.

    Example:
        >>> from pyro_frmdn.models.boosted import BoostedFlow
        >>> m = BoostedFlow(2, num_layers=1, hidden_dims=[8])
        >>> h = fit_boosted(m, torch.randn(64, 2), num_components=2, epochs_per_component=1,
        ...                 batch_size=32, progress=False)
        >>> m.num_components, len(h), h["train_nll"][1] <= h["train_nll"][0]
        (2, 2, True)
    """
    options = dict(
        rho_search=rho_search,
        rho_data=rho_data,
        sample_weighting=sample_weighting,
        fixed_rho=fixed_rho,
        patience=patience,
        val=val,
        resume=resume,
        checkpoint=checkpoint,
    )
    _check_arguments(
        model, num_components, epochs_per_component, batch_size, lr, weight_clip, options
    )
    train = _as_data(model, train, "train")
    val = None if val is None else _as_data(model, val, "val")
    device = resolve_device(device)
    model.to(device)
    dtype = model.rho.dtype
    train = _to(train, device, dtype)
    val = None if val is None else _to(val, device, dtype)
    counts = {"train": _scored_steps(train), "val": None if val is None else _scored_steps(val)}
    chunk = max(batch_size, 1024)
    pyro.set_rng_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    history = History()
    ckpt_dir = None if checkpoint is None else Path(checkpoint)
    if resume and (ckpt_dir / "last.pt").exists():
        state = load_model_checkpoint(ckpt_dir / "last.pt", model)
        if state["num_components"] < model.num_components:
            raise ValueError("the model has more components than the checkpoint to resume")
        while model.num_components < state["num_components"]:
            model.add_component()
        model.load_state_dict(state["model"])
        history = History(state["history"])
        torch.set_rng_state(state["rng"]["torch"])
        generator.set_state(state["rng"]["generator"])
    model.set_trainable(None)

    def choose(log_prev, log_new, c, lo=0.0, hi=RHO_MAX, init=None) -> float:
        if rho_search == "line":
            return line_search_rho(log_prev, log_new, lo, hi)
        if rho_search == "gradient":
            return gradient_search_rho(log_prev, log_new, lo, hi, init=init)
        return init if init is not None else 1.0 / (c + 1) if fixed_rho == "uniform" else fixed_rho

    def nll(lp: Tensor, log_w: Tensor, split: str = "train") -> float:
        return -float(_mixture(lp, log_w).sum()) / counts[split]

    def payload() -> dict:
        return {
            **model.checkpoint_payload(),
            "history": history.records,
            "rng": {"torch": torch.get_rng_state(), "generator": generator.get_state()},
        }

    def cache(data: dict) -> Tensor:  # log g_c(y_i) of the components already there, (N, C)
        columns = [_log_probs(m, data, chunk) for m in model.components]
        if not columns:
            return torch.zeros(len(data["y"]), 0, dtype=torch.float64, device=device)
        return torch.stack(columns, -1)

    lp = {"train": cache(train), "val": None if val is None else cache(val)}
    start = model.num_components
    refits_done = sum(r["pass"] == 2 for r in history.records)
    per_component = epochs_per_component * math.ceil(len(train["y"]) / batch_size)
    todo = num_components - start + (num_components - refits_done if second_pass else 0)
    bar = tqdm(total=todo * per_component, disable=not progress, desc="fit_boosted")
    train_component = _ComponentTrainer(
        model,
        train,
        val,
        epochs=epochs_per_component,
        batch_size=batch_size,
        lr=lr,
        clip_norm=clip_norm,
        weight_clip=weight_clip,
        sample_weighting=sample_weighting,
        patience=patience,
        generator=generator,
        chunk=chunk,
        steps=counts["train"] / len(train["y"]),
        bar=bar,
    )
    splits = {"train": train, "val": val}

    for c in range(start, num_components):
        t0 = time.perf_counter()
        model.add_component()
        log_w_prev = model.log_weights()[:c] if c else None  # G_{c-1}: ρ_c is still 0
        rest = {k: _mixture(lp[k], log_w_prev) if c and lp[k] is not None else None for k in lp}
        info = train_component(c, rest["train"], rest["val"], lambda a, b, c=c: choose(a, b, c))
        for k, data in splits.items():
            if data is not None:
                column = _log_probs(model.components[c], data, chunk)
                lp[k] = torch.cat([lp[k], column[:, None]], -1)
        if c:
            rho = model.rho.clone()
            rho[c] = choose(rest[rho_data], lp[rho_data][:, c], c)
            model.set_rho(rho)
        record = _record(model, c, 1, info, lp, nll, t0)
        history.records.append(record)
        bar.set_postfix(component=c, nll=f"{record['train_nll']:.4f}", rho=f"{record['rho']:.3f}")
        if ckpt_dir is not None:
            save_checkpoint(ckpt_dir / f"component_{c}.pt", payload())
            save_checkpoint(ckpt_dir / "last.pt", payload())

    if second_pass and num_components > 1:
        for c in range(refits_done, num_components):
            t0 = time.perf_counter()
            log_w = model.log_weights().double()
            old = (copy.deepcopy(model.components[c].state_dict()), model.rho.clone())
            old_nll = nll(lp[rho_data], log_w, rho_data)
            old_cols = {k: None if v is None else v[:, c].clone() for k, v in lp.items()}
            rest = {k: None if v is None else _rest(v, log_w, c) for k, v in lp.items()}
            if rest["train"] is None:
                rest["val"] = None
            w_c = float(log_w[c].exp())
            lo, hi = (1.0 - RHO_MAX, 1.0) if c == 0 else (0.0, RHO_MAX)

            def refit_choose(a, b, c=c, lo=lo, hi=hi, w_c=w_c):
                return choose(a, b, c, lo, hi, init=w_c)

            info = train_component(c, rest["train"], rest["val"], refit_choose)
            for k, data in splits.items():
                if data is not None:
                    lp[k][:, c] = _log_probs(model.components[c], data, chunk)
            if rest[rho_data] is not None:
                omega = refit_choose(rest[rho_data], lp[rho_data][:, c])
                log_w_new = log_w + math.log1p(-omega) - math.log1p(-w_c) if omega < 1 else None
                if log_w_new is None:
                    log_w_new = torch.full_like(log_w, -math.inf)
                log_w_new[c] = math.log(omega) if omega > 0 else -math.inf
                rho = rho_from_log_weights(log_w_new).clamp(0.0, RHO_MAX)
                rho[0] = 1.0
                model.set_rho(rho)
            new_log_w = log_weights_from_rho(model.rho.double())
            accepted = nll(lp[rho_data], new_log_w, rho_data) <= old_nll
            if not accepted:
                model.components[c].load_state_dict(old[0])
                model.set_rho(old[1])
                for k, col in old_cols.items():
                    if col is not None:
                        lp[k][:, c] = col
            record = _record(model, c, 2, info, lp, nll, t0, accepted)
            history.records.append(record)
            bar.set_postfix(refit=c, nll=f"{record['train_nll']:.4f}", accepted=accepted)
            if ckpt_dir is not None:
                save_checkpoint(ckpt_dir / f"refit_{c}.pt", payload())
                save_checkpoint(ckpt_dir / "last.pt", payload())
    bar.close()
    model.set_trainable(None)
    return history


def _record(model, c, pass_, info, lp, nll, t0, accepted=True) -> dict:
    log_w = model.log_weights().double()
    record = {
        "component": c,
        "pass": pass_,
        "rho": float(model.rho[c]),
        "weights": model.weights().tolist(),
        "train_nll": nll(lp["train"], log_w),
        "val_nll": None if lp["val"] is None else nll(lp["val"], log_w, "val"),
        "component_nll": nll(lp["train"][:, c : c + 1], log_w.new_zeros(1)),
        "accepted": accepted,
        **info,
        "time": time.perf_counter() - t0,
    }
    return record


class _ComponentTrainer:
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
    ) -> dict:
        """Train component ``c``; ``log_rest_*`` is log G of the other components (None: MLE).

        Returns ``epochs``, ``best_epoch``, ``loss`` (the weighted NLL per step, per epoch) and
        ``skipped_steps`` (steps whose gradient was not finite, not taken).
        """
        model, train, val = self.model, self.train, self.val
        component = model.components[c]
        model.set_trainable(c)
        params = [p for p in component.parameters() if p.requires_grad]
        optimizer = torch.optim.Adam(params, lr=self.lr)
        best, best_epoch, best_state, bad, losses, skipped = math.inf, None, None, 0, [], 0
        n = len(train["y"])
        epoch = 0
        for epoch in range(1, self.epochs + 1):
            component.train()
            order = torch.randperm(n, generator=self.generator).to(train["y"].device)
            total = 0.0
            for i in range(0, n, self.batch_size):
                idx = order[i : i + self.batch_size]
                loss = self.loss(
                    component,
                    _rows(train, idx),
                    None if log_rest_train is None else log_rest_train[idx],
                )
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
                norm = torch.nn.utils.clip_grad_norm_(params, self.clip_norm or math.inf)
                if bool(torch.isfinite(norm)):
                    optimizer.step()
                else:  # an overflowing gradient would turn the parameters to NaN
                    skipped += 1
            losses.append(total / n / self.steps)
            if val is None:
                continue
            lg = _log_probs(component, val, self.chunk)
            if log_rest_val is None:
                score = -float(lg.mean())
            else:
                score = mixture_nll(choose(log_rest_val, lg), log_rest_val, lg)
            if score < best:
                best, best_epoch, bad = score, epoch, 0
                best_state = copy.deepcopy(component.state_dict())
            else:
                bad += 1
                if self.patience is not None and bad >= self.patience:
                    break
        if best_state is not None:
            component.load_state_dict(best_state)
        model.set_trainable(None)
        return {
            "epochs": epoch,
            "best_epoch": best_epoch or epoch,
            "loss": losses,
            "skipped_steps": skipped,
        }

    def loss(self, component, batch: dict[str, Tensor], log_rest: Tensor | None) -> Tensor:
        """The (sample-weighted) mean NLL per example of a minibatch."""
        if log_rest is None or self.sample_weighting == "uniform":
            return -_component_log_prob(component, batch).mean()
        y = batch["y"]
        w = boosting_sample_weights(-log_rest, self.weight_clip).to(y.dtype)
        if self.sample_weighting == "resample":
            pick = torch.multinomial(w.cpu(), len(y), replacement=True, generator=self.generator)
            return -_component_log_prob(component, _rows(batch, pick.to(y.device))).mean()
        return -(w * _component_log_prob(component, batch)).sum()
