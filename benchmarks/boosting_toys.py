"""Boosted flows on the 2-D toys against their entropy, a deeper flow and a jointly trained mixture.

Per toy (:data:`pyro_frmdn.data.TOY2D`) and seed: 4,000 training, 1,000 validation and 2,000
test points; the held-out NLL minus the toy's differential entropy
(:func:`pyro_frmdn.data.toy2d_entropy`: 0 is a perfect model), for

- ``C=1 … C=8``: one ``pf.BoostedFlow(dim=2)`` grown by ``pf.fit_boosted(model, train, val,
  num_components=C)`` with the package's defaults (its test NLL after 1, 2, 4 and 8 components);
- ``deeper``: one flow of 4× the couplings of a component (``flow_layers=8``) trained by the same
  ``fit_boosted`` defaults with ``--budget`` × the epochs of a component;
- ``joint``: ``pf.MixtureOfFlows(2, num_components=4)`` (components as boosting's, bases started
  at k-means centres of the training set) trained by ``pf.fit`` on the mixture NLL, ``--budget`` ×
  the epochs, same batch and learning rate.

With ``--budget 1`` (default) the deeper flow and the joint mixture cost what C = 4 costs (as
many coupling passes: 8 couplings or 4 × 2 for 20 epochs, against 4 × 2 couplings for 20 epochs
each) in a quarter of its optimizer steps; ``--budget 4`` gives them its steps (4× the time).

The report estimates that excess, KL(p ‖ q), as the held-out mean of log p(x) − log q(x) with
the toy's exact log-density p (:func:`pyro_frmdn.data.toy2d_log_prob`) rather than as the mean
of −log q(x) minus the entropy: the same expectation, but the test set's own draw (how likely
its 2,000 points happen to be under p, a noise of about 0.02 nats on the toys whose density is
not flat) cancels, and the Monte Carlo error of the tabled entropies does not enter. The runs
store the NLL minus the entropy; :func:`test_offset` (H + the test set's mean log p, 0 on the
flat toys) turns one into the other.

Each (toy, seed) is written to ``toys/<toy>_seed<k>.json`` under ``--out`` (default
``benchmarks/results/boosting/``) after every model, so runs can be split across processes and
a run cut short keeps what it finished; ``toys.md`` is rebuilt from all of them.

``--stages`` limits the boosted stages run (1, 2, 4, 8 by default; 3 on request: each stage is
one call of ``fit_boosted``, seeded, so ``--stages 1 2 3 4`` and ``--stages 1 2 4`` give the same
C = 2 but not the same C = 4); with ``--checkpoints DIR`` the boosted mixtures are
checkpointed there (``fit_boosted(checkpoint=..., resume=True)``), so a later run of larger
stages continues them instead of starting over (each stage then continues the random stream
its checkpoint saved: C = 2 differs from a run without checkpoints); ``--hidden`` sets the
components' widths, ``--bins`` their splines' bins, ``--init`` their start (``random``: as
before the fourteenth session) and ``--epochs`` the epochs per component (default: what
``fit_boosted`` chooses, 5,000 steps; the second round's tables were measured with 20 epochs:
add ``--epochs 20`` to rerun them); ``--rho-data val`` fits each ρ on the validation points
(``fit_boosted(rho_data="val")``; columns «C=k, rho on val»).

    python benchmarks/boosting_toys.py                      # 6 toys × seeds 0 1 2
    python benchmarks/boosting_toys.py --toys bars moons --seeds 1
    python benchmarks/boosting_toys.py --models boosted --stages 1 2 4 --checkpoints ck
    python benchmarks/boosting_toys.py --models boosted --stages 8 --checkpoints ck --folder c8
    python benchmarks/boosting_toys.py --report             # toys.md from the runs there
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

import pyro
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

import pyro_frmdn as pf
from pyro_frmdn.data import TOY2D, toy2d, toy2d_entropy, toy2d_log_prob
from pyro_frmdn.experiments import cpu_name
from pyro_frmdn.flows import INITS
from pyro_frmdn.infer import component_epochs
from pyro_frmdn.infer.boosting_options import COMPONENT_STARTS, SAMPLE_WEIGHTINGS

STAGES = (1, 2, 3, 4, 8)
COLUMNS = [f"C={c}" for c in STAGES] + ["deeper", "joint"]
MODELS = ("boosted", "deeper", "joint")


def defaults(n: int, epochs: int | None = None) -> dict:
    """fit_boosted's defaults, read from its signature (what a user gets), with the epochs per
    component it chooses for ``n`` training points (or ``epochs``, given)."""
    params = inspect.signature(pf.fit_boosted).parameters
    keys = ("epochs_per_component", "min_steps", "batch_size", "lr")
    d = {k: params[k].default for k in keys}
    if epochs is not None:
        d["epochs_per_component"], d["min_steps"] = epochs, None
    if d["epochs_per_component"] is None:
        d["epochs_per_component"] = component_epochs(n, d["batch_size"], d["min_steps"])
    return d


def nll(model, data) -> float:
    with torch.no_grad():
        return -float(model.log_prob(data).mean())


def component_options(args) -> dict:
    """The components' options the command line changes (``--hidden``, ``--bins``, ``--init``)."""
    options = {} if args.hidden is None else {"hidden_dims": args.hidden}
    options = options if args.init is None else {**options, "init": args.init}
    return options if args.bins is None else {**options, "count_bins": args.bins}


def run_pair(name: str, seed: int, args, save) -> dict:
    """One toy and seed; ``save(row)`` is called after each model, so a cut run keeps them."""
    train = toy2d(name, args.n, seed=seed)
    val, test = toy2d(name, 1000, seed=500 + seed), toy2d(name, 2000, seed=1000 + seed)
    entropy, d = toy2d_entropy(name), defaults(args.n, args.epochs)
    epochs = args.budget * d["epochs_per_component"]
    row = {"density": name, "seed": seed, "entropy": entropy}
    torch.manual_seed(seed)
    comp = component_options(args)
    boosted = pf.BoostedFlow(2, **comp)
    layers = boosted.config["flow_layers"]

    # another sample weighting than the default names its columns "C=2, mixture" and so on
    # (C = 1 is the same maximum-likelihood fit whatever the weighting)
    # («C=2, weighted, copy» with --start copy)
    # («C=2, rho on val» with --rho-data val)
    rho = None if args.rho_data is None else f"rho on {args.rho_data}"
    chosen = [x for x in (args.weighting, args.start, rho) if x is not None]
    tag = "".join(f", {x}" for x in chosen)
    weighting = {} if args.weighting is None else {"sample_weighting": args.weighting}
    weighting |= {} if args.start is None else {"component_start": args.start}
    weighting |= {} if args.rho_data is None else {"rho_data": args.rho_data}

    def grow(stages) -> None:
        for c in stages:
            start = time.perf_counter()
            pf.fit_boosted(
                boosted, train, val, num_components=c, seed=seed, progress=False,
                epochs_per_component=d["epochs_per_component"], **resume, **weighting,
            )  # fmt: skip
            row[f"C={c}" + (tag if c > 1 else "")] = nll(boosted, test) - entropy
            row["rho" + tag] = [float(r) for r in boosted.rho]
            row["component_nll" + tag] = [  # each component alone, held out
                nll(component, test) - entropy for component in boosted.components
            ]
            key = "time_boosted" + tag
            row[key] = row.get(key, 0.0) + time.perf_counter() - start
            save(row)

    # with --checkpoints, a later run of larger stages continues the mixture where this one ended
    resume = {}
    if args.checkpoints is not None:
        resume = dict(checkpoint=Path(args.checkpoints) / f"{name}_seed{seed}", resume=True)
    stages = [c for c in STAGES if c in args.stages]
    if "boosted" in args.models:
        grow([c for c in stages if c <= 4])

    if "deeper" in args.models:
        t0 = time.perf_counter()
        torch.manual_seed(seed)
        deeper = pf.BoostedFlow(2, flow_layers=4 * layers, **comp)
        pf.fit_boosted(
            deeper, train, val, num_components=1, epochs_per_component=epochs, seed=seed,
            progress=False,
        )  # fmt: skip
        key = "deeper" if args.budget == 1 else f"deeper, {args.budget}× epochs"
        row[key], row[f"time_{key}"] = nll(deeper, test) - entropy, time.perf_counter() - t0
        save(row)
    if "joint" in args.models:  # its components start as the boosted ones do
        joint_comp = {**comp, "init": boosted.config["init"]}
        joint_mixture(row, train, val, test, seed, args.budget, save, joint_comp, args.epochs)
    if "boosted" in args.models:
        grow([c for c in stages if c > 4])
    return row


def joint_mixture(row, train, val, test, seed, budget, save, comp, epochs=None) -> None:
    d, entropy = defaults(len(train), epochs), row["entropy"]
    epochs, key = (
        budget * d["epochs_per_component"],
        "joint" if budget == 1 else f"joint, {budget}× epochs",
    )
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    centres = pf.MixtureOfFlows.centres(train, 4, seed=seed)
    joint = pf.MixtureOfFlows(2, num_components=4, init_loc=centres, **comp)
    pf.fit(
        joint, train, val, epochs=epochs, batch_size=d["batch_size"], lr=d["lr"], seed=seed,
        progress=False,
    )  # fmt: skip
    row[key], row[f"time_{key}"] = nll(joint, test) - entropy, time.perf_counter() - t0
    row[f"weights_{key}"] = joint.weights().tolist()
    save(row)


@functools.cache
def test_offset(name: str, seed: int) -> float:
    """H + mean log p over the test set of ``seed`` (what ``run_pair`` draws): added to a run's
    NLL minus the entropy H, it gives the mean of log p − log q over the same points."""
    test = toy2d(name, 2000, seed=1000 + seed)
    return toy2d_entropy(name) + float(toy2d_log_prob(name, test).mean())


def variant(key: str) -> bool:
    """A column of a variant run: «C=4, mixture», «deeper, 4× epochs», «joint, 4× epochs»."""
    return key.startswith(("deeper, ", "joint, ")) or (key.startswith("C=") and ", " in key)


def excess(row: dict) -> dict:
    """``row`` with every model's NLL minus the entropy replaced by its mean log p − log q."""
    offset = test_offset(row["density"], row["seed"])
    models = [k for k in row if k in COLUMNS or variant(k)]
    return {**row, **{k: row[k] + offset for k in models}}


def mean_std(values: list[float]) -> str:
    if not values:
        return ""
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.3f} ± {sd:.3f}"


def cell(values: list[float], seeds: int) -> str:
    """mean ± std, or the value and the seeds it has where fewer seeds than the row's ran."""
    if len(values) == 1 and seeds > 1:
        return f"{values[0]:.3f} (1 seed)"
    if 1 < len(values) < seeds:
        return f"{mean_std(values)} ({len(values)} seeds)"
    return mean_std(values)


def markdown(rows: list[dict], meta: dict) -> str:
    d = meta["defaults"]
    steps = f", chosen for {d['min_steps']:,} steps" if d.get("min_steps") else ""
    extra = sorted({k for r in rows for k in r if variant(k)})
    columns = [c for c in COLUMNS if any(c in r for r in rows)] + extra  # C=3 when run
    lines = [
        "# Boosted flows on the 2-D toys: held-out NLL minus the entropy",
        "",
        f"`{meta['command']}` and the other runs of `README.md` (the rows of a toy and seed are "
        f"merged from the folders `toys*/`): {meta['machine']}; {meta['minutes']:.1f} min in all.",
        "",
        f"Nats above the toy's differential entropy (0 is the data's own density), estimated "
        f"as the mean of log p − log q over 2,000 held-out points with the toy's exact density "
        f"p (the test draw's noise cancels), mean ± std over the seeds run (n); "
        f"{meta.get('n', 4000):,} training and 1,000 validation points. Boosted: "
        f"`pf.BoostedFlow(2)` (components: "
        f"{meta.get('component', 'spline couplings')}) and "
        f"`pf.fit_boosted(model, train, val, num_components=C)` with the defaults "
        f"({d['epochs_per_component']} epochs per component{steps}, batch {d['batch_size']}, lr "
        f"{d['lr']}); deeper: one flow of 4× the couplings, {meta['budget']}× the epochs; joint: "
        f"`pf.MixtureOfFlows(2, 4)` from k-means centres by `pf.fit`, {meta['budget']}× the "
        f"epochs (a column «…, k× epochs»: k× those; «C=k, w»: `sample_weighting=w`; "
        f'«C=k, w, s»: and `component_start=s`; «…, rho on val»: `rho_data="val"`). C=4 − '
        f"C=1: paired by seed (negative: boosting helps; in how many seeds).",
        "",
        "| density | entropy | n | " + " | ".join(columns) + " | C=4 − C=1 |",
        "|---|---|---|" + "---|" * (len(columns) + 1),
    ]
    rows = [excess(r) for r in rows]
    for name in TOY2D:
        mine = [r for r in rows if r["density"] == name]
        if not mine:
            continue
        cells = [cell([r[k] for r in mine if k in r], len(mine)) for k in columns]
        gain = [r["C=4"] - r["C=1"] for r in mine if "C=4" in r and "C=1" in r]
        wins = sum(g < 0 for g in gain)
        lines.append(
            f"| {name} | {mine[0]['entropy']:.3f} | {len(mine)} | " + " | ".join(cells)
            + f" | {mean_std(gain)} ({wins}/{len(gain)}) |"
        )  # fmt: skip
    variants = sorted({k for r in rows for k in r if k.startswith("C=4, ")})
    tables = [line for key in ["C=4", *variants] for line in paired(rows, key)]
    return "\n".join(lines + tables) + "\n"


def paired(rows: list[dict], key: str = "C=4") -> list[str]:
    """C = 4 against C = 1 per toy, paired by seed, against the seed spread of C = 1 (the sd
    over seeds of its excess, :func:`excess`'s rows): the gain is "beyond the spread" when its
    mean exceeds that sd. The paired t (the mean gain over its standard error, n - 1 degrees of
    freedom) says how sure the gain is whatever the spread of C = 1 alone (about 2.8 and more:
    p < 0.05 two-sided at five seeds, 4.3 at three)."""
    lines = [
        "",
        f"{key} against C=1, paired by seed (negative: {key} is better), against the seed "
        "spread of C = 1 (sd over seeds of its held-out mean log p − log q):",
        "",
        f"| density | seeds | {key} − C=1 per seed | mean ± sd | sd of C=1 | beyond the spread "
        "| paired t |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in TOY2D:
        mine = sorted(
            (r for r in rows if r["density"] == name and key in r and "C=1" in r),
            key=lambda r: r["seed"],
        )
        if len(mine) < 2:
            continue
        gain = [r[key] - r["C=1"] for r in mine]
        spread = statistics.stdev(r["C=1"] for r in mine)
        beyond = "yes" if -statistics.fmean(gain) > spread else "no"
        error = statistics.stdev(gain) / math.sqrt(len(gain))
        t = -statistics.fmean(gain) / error if error > 0 else math.inf
        lines.append(
            f"| {name} | {', '.join(str(r['seed']) for r in mine)} | "
            f"{', '.join(f'{g:+.3f}' for g in gain)} | {mean_std(gain)} | {spread:.3f} | "
            f"{beyond} | {t:.1f} |"
        )
    return lines


def report(out: Path) -> None:
    """``toys.md`` from every ``toys*/<density>_seed<k>.json`` under ``out`` (the rows of one
    toy and seed from several folders, written by runs of different ``--models``, merged)."""
    runs = [json.loads(f.read_text()) for f in sorted(out.glob("toys*/*.json"))]
    rows: dict[tuple, dict] = {}
    for run in runs:
        key = (run["row"]["density"], run["row"]["seed"])
        rows[key] = {**rows.get(key, {}), **run["row"]}
    if runs:
        meta = {**runs[0]["meta"], "minutes": sum(r["meta"]["minutes"] for r in runs)}
        (out / "toys.md").write_text(markdown(list(rows.values()), meta))


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--toys", nargs="+", choices=list(TOY2D), default=list(TOY2D))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--n", type=int, default=4000, help="training points")
    p.add_argument("--budget", type=int, default=1, help="epochs of deeper/joint, × a component's")
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "boosting"))
    p.add_argument("--report", action="store_true", help="only rebuild toys.md from the runs")
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--folder", default="toys", help="the folder of the runs under --out")
    p.add_argument("--stages", type=int, nargs="+", choices=STAGES, default=[1, 2, 4, 8])
    p.add_argument("--checkpoints", help="a folder for the boosted mixtures, to grow them later")
    p.add_argument("--hidden", type=int, nargs="+", help="components' hidden widths (default's)")
    p.add_argument("--bins", type=int, help="components' spline bins (default's)")
    p.add_argument("--epochs", type=int, help="epochs per component (default: fit_boosted's)")
    p.add_argument("--weighting", choices=SAMPLE_WEIGHTINGS, help="fit_boosted's sample_weighting")
    p.add_argument("--start", choices=COMPONENT_STARTS, help="fit_boosted's component_start")
    p.add_argument("--init", choices=INITS, help="how components start (default's)")
    p.add_argument("--rho-data", choices=("train", "val"), help="fit_boosted's rho_data")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    pyro.enable_validation(False)  # argument checks off: ~10% faster, the same numbers
    out = Path(args.out)
    (out / args.folder).mkdir(parents=True, exist_ok=True)
    if args.report:
        return report(out)
    hidden = "" if args.hidden is None else " --hidden " + " ".join(map(str, args.hidden))
    hidden += "" if args.epochs is None else f" --epochs {args.epochs}"
    hidden += "" if args.weighting is None else f" --weighting {args.weighting}"
    hidden += "" if args.start is None else f" --start {args.start}"
    hidden += "" if args.rho_data is None else f" --rho-data {args.rho_data}"
    hidden += "" if args.bins is None else f" --bins {args.bins}"
    hidden += "" if args.init is None else f" --init {args.init}"
    hidden += "" if args.checkpoints is None else " --checkpoints CK"  # a fresh folder
    cfg = pf.BoostedFlow(2, **component_options(args)).config
    component = (
        f"{cfg['flow_layers']} {cfg['flow']} couplings of {cfg['count_bins']} bins, hidden "
        f"{cfg['hidden_dims']}, {cfg['init']} start"
    )
    machine = f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}, 1 thread"
    for seed in args.seeds:
        for name in args.toys:
            start = time.perf_counter()

            def save(row, name=name, seed=seed, start=start) -> None:
                meta = dict(
                    command=(
                        f"python benchmarks/boosting_toys.py --toys {name} --seeds {seed} "
                        f"--n {args.n} --models {' '.join(args.models)} --folder {args.folder} "
                        f"--stages {' '.join(map(str, args.stages))}"
                        + hidden
                    ),
                    n=args.n, component=component,
                    machine=machine, budget=args.budget, defaults=defaults(args.n, args.epochs),
                    minutes=(time.perf_counter() - start) / 60,
                )  # fmt: skip
                path = out / args.folder / f"{name}_seed{seed}.json"
                path.write_text(json.dumps({"meta": meta, "row": row}, indent=1))
                report(out)

            row = run_pair(name, seed, args, save)
            print(f"{name} {seed}: " + ", ".join(f"{k} {row[k]:.3f}" for k in COLUMNS if k in row))


if __name__ == "__main__":
    main()
