"""Gradient boosting of mixtures: :func:`fit_boosted` and the checkpoints of boosted mixtures."""

from __future__ import annotations

import copy
import math
import time
from pathlib import Path

import pyro
import torch
from torch import Tensor

from ..distributions import RHO_MAX, log_weights_from_rho, rho_from_log_weights
from ..models import BoostedMixture
from .boosting_options import BEST_OF, check_arguments
from .checkpoint import load_checkpoint, load_model_checkpoint, save_checkpoint
from .components import (
    MIN_STEPS,
    ComponentTrainer,
    as_data,
    component_epochs,
    log_probs,
    mixture_log_prob,
    others_log_prob,
    scored_steps,
    to_dtype,
)
from .engine import History, progress_bar, resolve_device
from .rho import gradient_search_rho, line_search_rho, mixture_nll

__all__ = [
    "fit_boosted",
    "load_boosted",
    "save_boosted",
]

# -- checkpoints ------------------------------------------------------------------------------


def save_boosted(model: BoostedMixture, path, **extra) -> Path:
    """Write a boosted mixture atomically (``extra`` entries are stored beside it)."""
    return save_checkpoint(path, {**model.payload(), **extra})


def load_boosted(path, map_location=None) -> BoostedMixture:
    """Rebuild the mixture saved by :func:`save_boosted` or :func:`fit_boosted` (any of its
    per-component files), with ``weights_only=True``; all components frozen."""
    return BoostedMixture.from_payload(load_checkpoint(path, map_location=map_location))


# -- the boosting loop -----------------------------------------------------------------------


def fit_boosted(
    model: BoostedMixture,
    train: Tensor | tuple | dict,
    val: Tensor | tuple | dict | None = None,
    *,
    num_components: int = 4,
    epochs_per_component: int | None = None,
    min_steps: int = MIN_STEPS,
    batch_size: int = 128,
    lr: float = 5e-3,
    lr_schedule: str = "cosine",
    clip_norm: float | None = 10.0,
    weight_clip: tuple[float, float] | None = (0.01, 0.1),
    weight_cap: float | None = None,
    sample_weighting: str = "best",
    component_start: str = "fresh",
    rho_search: str = "line",
    fixed_rho: float | str = "uniform",
    rho_data: str | None = None,
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
       normalised over the minibatch and clipped as the paper's code does (``weight_clip``), or
       capped at ``weight_cap`` times their median
       (:func:`~pyro_frmdn.infer.boosting_sample_weights`). With ``sample_weighting="weighted"``
       the weighted NLL is minimised directly; with ``"resample"`` the minibatch is
       resampled by the weights and an ordinary NLL step taken, as the reference code does. Both
       have the same expected gradient; the weighted form uses every point of the batch, has no
       resampling noise and never duplicates points, so its variance is lower. ``"uniform"`` drops
       the weights (every component by maximum likelihood from its own initialisation: an ensemble,
       the ablation that shows what the reweighting adds). ``"mixture"`` fits :math:`g_c` on the
       objective the mixture is judged by, :math:`-\sum_i \log((1 - \rho) G_{c-1}(x_i) + \rho
       g_c(x_i))` with :math:`\rho = 1/(c+1)` while it trains (greedy mixture estimation, Li &
       Barron 1999, "Mixture Density Estimation", NIPS 12): its gradient is the score of
       :math:`g_c` weighted by its responsibility :math:`\rho g_c / G_c` at each point, which
       grows where the new component explains the data better than the mixture so far, where
       the weights :math:`1/G_{c-1}` are that objective's first-order term at :math:`\rho = 0`
       (they follow the data's own density wherever :math:`G_{c-1} \approx p`).
       ``"best"`` (default) fits the component once per pair of :data:`BEST_OF`, on the weighted
       likelihood from a copy of the component before it and on the mixture objective from
       the fresh start, and keeps the fit whose mixture has the lower NLL (on ``val`` with ρ
       searched there, as early stopping judges; else on ``train``): each objective has toys
       it wins on (docs/boosting.md), and the choice costs one more fit per component. The
       second pass refits on the weighted likelihood.
       :math:`\log G_{c-1}(x_i)` is computed once per component for the whole training set (the
       frozen components do not change), so a step costs one flow, whatever :math:`c`.
    2. **Fit** :math:`\rho_c` on the training NLL of
       :math:`G_c = (1 - \rho_c) G_{c-1} + \rho_c g_c`, a convex function of :math:`\rho_c`:
       ``rho_search="line"`` (grid + golden section, :func:`~pyro_frmdn.infer.line_search_rho`),
       ``"gradient"`` (projected gradient with the exact gradient
       :math:`-\mathrm{mean}[(g_c - G_{c-1}) / G_c]`,
       :func:`~pyro_frmdn.infer.gradient_search_rho`) or ``"fixed"`` (``fixed_rho``;
       ``"uniform"`` is :math:`1/(c+1)`, equal weights, what the reference code ends up with as
       it never updates ρ). Both searches include
       :math:`\rho_c = 0`, so a new component never makes the training NLL worse.
       With ``val`` given, :math:`\rho_c` is fitted on the validation NLL instead (the
       default since the sixteenth session, ``rho_data="val"``: one number per component,
       chosen on held-out data like the early-stopping epoch; then it is the validation NLL
       that never rises): a component that fits its training points better than held-out ones
       (a copy of the previous component trained on, ``component_start="copy"``) would take
       weight on the training NLL that does not hold out. ``rho_data="train"`` is the paper's
       objective, and what is used without ``val``.

    With ``second_pass=True`` each component is then refitted once more against the mixture of
    the others (weights :math:`\propto 1/G_{-c}`), its weight re-searched (the others keep their
    proportions; the steps ρ are recomputed from the weights and clipped to ``RHO_MAX``), and
    the refit is kept only if the NLL that ρ is fitted on (training, or validation with
    ``rho_data="val"``) did not rise.

    Early stopping: with ``val``, each component keeps the parameters of its best epoch by the
    validation NLL of the mixture it would make (:math:`\rho_c` searched on the validation
    set, as the final ρ is by default); ``patience`` stops a component after that many epochs
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
        epochs_per_component: passes over ``train`` per component. None (default): chosen
            from the size of ``train`` by :func:`~pyro_frmdn.infer.component_epochs`, enough
            epochs for ``min_steps`` optimizer steps, but no fewer than 20 and no more than
            200. A number given here is used as it is.
        min_steps: the optimizer steps a component gets when ``epochs_per_component`` is
            None (default ``MIN_STEPS``, 5,000: 157 epochs of 4,000 examples in batches of 128;
            2,000 examples get the ceiling, 200 epochs, 3,200 steps).
        batch_size, lr, clip_norm: Adam on each component's parameters, gradient norm clipped
            to ``clip_norm`` (None: no clipping).
        lr_schedule: ``"cosine"`` (default): each component's learning rate annealed from
            ``lr`` to ``lr / 100`` over its epochs; ``"constant"``: ``lr`` throughout.
        weight_clip: the reference code's clamp of the normalised sample weights (default
            ``(0.01, 0.1)``), or None.
        weight_cap: no sample weight above ``weight_cap`` times the minibatch's median weight
            (e.g. 10; None: no cap); for data with parts the mixture misses altogether, with
            ``weight_clip=None``. See :func:`~pyro_frmdn.infer.boosting_sample_weights`.
        sample_weighting: ``"weighted"``, ``"resample"``, ``"uniform"`` (no boosting weights),
            ``"mixture"`` (the mixture's own likelihood) or ``"best"`` (default: the better of
            two fits; the default was ``"weighted"`` before; pass it to fit as then).
        component_start: where a new component's fit begins: ``"fresh"`` (default; as the
            model builds it, e.g. the identity for :class:`~pyro_frmdn.models.BoostedFlow`) or
            ``"copy"`` (the component fitted before it, which then moves toward what the
            mixture explains badly; with ``"best"`` each fit has its own start).
        rho_search, fixed_rho: how ρ is chosen.
        rho_data: ``"train"`` or ``"val"``: the data ρ is fitted on; ``None`` (default):
            ``"val"`` when ``val`` is given, else ``"train"``.
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
        alone, train), ``epochs``, ``best_epoch``, ``loss`` (per epoch), ``accepted``, ``time``;
        with ``"best"`` also ``fit`` (the pair kept, e.g. ``"mixture, fresh"``) and
        ``val_nll_of`` (or ``train_nll_of``): each fit's score.

    Example:
        >>> from pyro_frmdn.models import BoostedFlow
        >>> m = BoostedFlow(2, flow_layers=1, hidden_dims=[8])
        >>> h = fit_boosted(m, torch.randn(64, 2), num_components=2, epochs_per_component=1,
        ...                 batch_size=32, progress=False)
        >>> m.num_components, len(h), h["train_nll"][1] <= h["train_nll"][0]
        (2, 2, True)
    """
    options = dict(
        rho_search=rho_search,
        rho_data=rho_data,
        sample_weighting=sample_weighting,
        component_start=component_start,
        fixed_rho=fixed_rho,
        patience=patience,
        val=val,
        resume=resume,
        checkpoint=checkpoint,
        clip_norm=clip_norm,
        lr_schedule=lr_schedule,
        weight_cap=weight_cap,
        min_steps=min_steps,
    )
    check_arguments(
        model, num_components, epochs_per_component, batch_size, lr, weight_clip, options
    )
    rho_data = rho_data or ("train" if val is None else "val")
    train = as_data(model, train, "train")
    if epochs_per_component is None:
        epochs_per_component = component_epochs(len(train["y"]), batch_size, min_steps)
    val = None if val is None else as_data(model, val, "val")
    device = resolve_device(device)
    model.to(device)
    dtype = model.rho.dtype
    train = to_dtype(train, device, dtype)
    val = None if val is None else to_dtype(val, device, dtype)
    counts = {"train": scored_steps(train), "val": None if val is None else scored_steps(val)}
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
    model.freeze()

    def choose(log_prev, log_new, c, lo=0.0, hi=RHO_MAX, init=None) -> float:
        if rho_search == "line":
            return line_search_rho(log_prev, log_new, lo, hi)
        if rho_search == "gradient":
            return gradient_search_rho(log_prev, log_new, lo, hi, init=init)
        return init if init is not None else 1.0 / (c + 1) if fixed_rho == "uniform" else fixed_rho

    def nll(lp: Tensor, log_w: Tensor, split: str = "train") -> float:
        return -float(mixture_log_prob(lp, log_w).sum()) / counts[split]

    def payload() -> dict:
        return {
            **model.payload(),
            "history": history.records,
            "rng": {"torch": torch.get_rng_state(), "generator": generator.get_state()},
        }

    def cache(data: dict) -> Tensor:  # log g_c(y_i) of the components already there, (N, C)
        columns = [log_probs(m, data, chunk) for m in model.components]
        if not columns:
            return torch.zeros(len(data["y"]), 0, dtype=torch.float64, device=device)
        return torch.stack(columns, -1)

    lp = {"train": cache(train), "val": None if val is None else cache(val)}
    start = model.num_components
    refits_done = sum(r["pass"] == 2 for r in history.records)
    per_component = epochs_per_component * math.ceil(len(train["y"]) / batch_size)
    fits = [
        len(BEST_OF) if c and sample_weighting == "best" else 1
        for c in range(start, num_components)
    ]
    todo = sum(fits) + (num_components - refits_done if second_pass else 0)
    bar = progress_bar(todo * per_component, "fit_boosted", progress)
    train_component = ComponentTrainer(
        model,
        train,
        val,
        epochs=epochs_per_component,
        batch_size=batch_size,
        lr=lr,
        lr_schedule=lr_schedule,
        clip_norm=clip_norm,
        weight_clip=weight_clip,
        weight_cap=weight_cap,
        sample_weighting=sample_weighting,
        patience=patience,
        generator=generator,
        chunk=chunk,
        steps=counts["train"] / len(train["y"]),
        bar=bar,
    )
    splits = {"train": train, "val": val}

    def fit_new(c: int, rest: dict) -> dict:
        """Fit the new component c from its start; with ``"best"``, once per pair of
        ``BEST_OF``, keeping the fit whose mixture has the lower NLL (validation, else train)."""
        component = model.components[c]
        starts = {"fresh": copy.deepcopy(component.state_dict())}
        if c:
            starts["copy"] = copy.deepcopy(model.components[c - 1].state_dict())

        def run(start: str) -> dict:
            component.load_state_dict(starts[start if c else "fresh"])
            return train_component(c, rest["train"], rest["val"], lambda a, b: choose(a, b, c))

        if sample_weighting != "best" or c == 0:
            return run(component_start)
        judge, tried = "train" if val is None else "val", []
        for weighting, start in BEST_OF:
            train_component.sample_weighting = weighting
            info = run(start)
            column = log_probs(component, splits[judge], chunk)
            score = mixture_nll(choose(rest[judge], column, c), rest[judge], column)
            tried.append(
                (score, f"{weighting}, {start}", copy.deepcopy(component.state_dict()), info)
            )
        score, chosen, state, info = min(tried, key=lambda t: t[0])
        component.load_state_dict(state)
        scores = {name: s for s, name, *_ in tried}
        return {**info, "fit": chosen, f"{judge}_nll_of": scores}

    for c in range(start, num_components):
        t0 = time.perf_counter()
        model.add_component()
        log_w_prev = model.log_weights()[:c] if c else None  # G_{c-1}: ρ_c is still 0
        rest = {
            k: mixture_log_prob(lp[k], log_w_prev) if c and lp[k] is not None else None for k in lp
        }
        info = fit_new(c, rest)
        for k, data in splits.items():
            if data is not None:
                column = log_probs(model.components[c], data, chunk)
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
        if sample_weighting == "best":  # refits on the boosting weights: one fit each
            train_component.sample_weighting = "weighted"
        for c in range(refits_done, num_components):
            t0 = time.perf_counter()
            log_w = model.log_weights().double()
            old = (copy.deepcopy(model.components[c].state_dict()), model.rho.clone())
            old_nll = nll(lp[rho_data], log_w, rho_data)
            old_cols = {k: None if v is None else v[:, c].clone() for k, v in lp.items()}
            rest = {k: None if v is None else others_log_prob(v, log_w, c) for k, v in lp.items()}
            if rest["train"] is None:
                rest["val"] = None
            w_c = float(log_w[c].exp())
            lo, hi = (1.0 - RHO_MAX, 1.0) if c == 0 else (0.0, RHO_MAX)

            def refit_choose(a, b, c=c, lo=lo, hi=hi, w_c=w_c):
                return choose(a, b, c, lo, hi, init=w_c)

            info = train_component(
                c,
                rest["train"],
                rest["val"],
                refit_choose,
                rho=w_c if 0.0 < w_c < 1.0 else 1.0 / num_components,
            )
            for k, data in splits.items():
                if data is not None:
                    lp[k][:, c] = log_probs(model.components[c], data, chunk)
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
    model.freeze()
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
