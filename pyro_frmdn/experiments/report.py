"""The suite's report: ``results.md`` from ``results.json``, keeping a hand-written commentary."""

from __future__ import annotations

from pathlib import Path

from .specs import VARIANTS

__all__ = ["COMMENTARY", "verdict_line", "write_report"]


def _pm(s: dict, digits: int = 3) -> str:
    """``mean ± std`` of :func:`~pyro_frmdn.experiments.stats.mean_std`'s numbers."""
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


COMMENTARY = "## Commentary"


def write_report(results: dict, path: str | Path) -> Path:
    """``results.md`` from the contents of ``results.json``; a ``## Commentary`` section already
    in the file (edited by hand) is kept."""
    path = Path(path)
    kept = ""
    if path.exists() and COMMENTARY in path.read_text():
        kept = path.read_text().split(COMMENTARY, 1)[1].strip()
    m, s = results["machine"], results["settings"]
    lines = [
        "# Real-data quality benchmark",
        "",
        "Written by `pyro-frmdn bench` (`benchmarks/quality.py`); see `docs/bench.md`.",
        "",
        f"- Machine: {m['cpu']}, {m['cores']} cores"
        + (f", GPU {m['gpu']}" if "gpu" in m else "")
        + f"; device {m['device']}; Python {m['python']}, torch {m['torch']}, pyro {m['pyro']}",
        f"- Date: {m['date']}; total wall time {s['total_time'] / 60:.1f} min with "
        f"{s['workers']} worker process(es){' (--quick)' if s['quick'] else ''}"
        + (f", scale {s['scale']}" if s["scale"] != 1 else ""),
        f"- Seeds: {s['seeds']} per model (model initialisation and minibatch order); the data "
        "and its dequantisation noise are fixed.",
        "- Test NLL: mean ± std over seeds, nats per step in the model's space (for images: the "
        "dequantised, logit-transformed pixels); bits/dim in the 0-255 (0-16) pixel space with "
        "the dequantisation and the logit's Jacobian counted (`pyro_frmdn.data.bits_per_dim`). "
        "Lower is better. Each run keeps the parameters of its best validation epoch.",
        "- Parameters: the RNN's hidden size of each model is chosen so that its count is "
        "within 3% of the FRMDN's (the target). Time per epoch: the median over a run's "
        "epochs (the first one warms up), the validation pass included; jobs run side by side "
        "in single-threaded worker processes.",
        "",
    ]
    for name, d in results["datasets"].items():
        spec = d["spec"]
        image = any("test_bpd" in v for v in d["models"].values())
        lines += [
            f"## {name}",
            "",
            f"{spec['description']}. Train / validation / test: {d['sizes']['train']} / "
            f"{d['sizes']['val']} / {d['sizes']['test']} sequences of up to {d['steps']} steps "
            f"of D={d['obs_dim']} ({d['note']}). Budget: {spec['epochs']} epochs, batch "
            f"{spec['batch_size']}, ClippedAdam lr {spec['lr']} decayed to 0.3x over the run; "
            f"K={spec['num_components']}, rank {spec['rank']}, flow: {spec['flow_layers']} "
            f"{spec.get('flow', 'affine')} couplings of hidden size {spec['flow_hidden']}"
            f"{', conditioned on the RNN state' if spec.get('conditional_flow') else ''}; "
            f"samples drawn at temperature {spec.get('sample_temperature', 1.0)}; target "
            f"{d['target_params']:,} parameters.",
            "",
            "| model | hidden | params | test NLL (nats/step) |"
            + (" bits/dim |" if image else "")
            + " best epoch per seed | train time (s) | time/epoch (s) |",
            "|---|---:|---:|---:|" + ("---:|" if image else "") + "---:|---:|---:|",
        ]
        for key, v in d["models"].items():
            best = [_best_epoch(r) for r in d["runs"] if r["variant"] == key]
            lines.append(
                f"| {v['label']} | {v['hidden_dim']} | {v['params']:,} | {_pm(v['test_nll'])} |"
                + (f" {_pm(v['test_bpd'])} |" if image else "")
                + f" {', '.join(map(str, best))} of {spec['epochs']} |"
                + f" {v['train_time']['mean']:.1f} | {v['time_per_epoch']['mean']:.2f} |"
            )
        lines += ["", verdict_line(d)]
        diverged = [
            f"{v['label']} (seeds {v['diverged']})" for v in d["models"].values() if v["diverged"]
        ]
        if diverged:
            lines += [
                "",
                f"Diverged (the loss became NaN; the run keeps its best validation epoch before "
                f"it): {', '.join(diverged)}.",
            ]
        lines += ["", f"![learning curves](curves_{name}.png)", ""]
    lines += [
        COMMENTARY,
        "",
        kept
        or "(Free text, kept when the runner rewrites this file: why FRMDN wins or not, "
        "and what would change it.)",
        "",
    ]
    path.write_text("\n".join(lines))
    return path


def _best_epoch(run: dict) -> int:
    """The epoch whose parameters a run kept: the best validation NLL."""
    return min(run["history"], key=lambda h: h["val_nll"])["epoch"]


def verdict_line(d: dict) -> str:
    """The verdict of one data set's results (:func:`~pyro_frmdn.experiments.stats.verdict`)."""
    v = d["verdict"]
    if v is None:
        return "**Verdict:** needs an FRMDN and an RMDN variant in the run."
    unit = "bits/dim" if v["metric"] == "test_bpd" else "nats/step"
    f, r = VARIANTS[v["frmdn"]][0], VARIANTS[v["rmdn"]][0]
    cost = f"The flow costs {v['time_ratio']:.2f}x the time per epoch ({f} / {r}, same run)."
    diff = (
        f"difference of means {v['improvement']:+.3f} {unit} ({v['relative']:+.1%}), "
        f"combined seed std {v['spread']:.3f}"
    )
    if v["wins"]:
        return f"**Verdict:** the best FRMDN ({f}) beats the best RMDN ({r}): {diff}. {cost}"
    if v["improvement"] > 0:
        why = "better on average, but not by more than the seed spread"
    else:
        why = "worse on average"
    return f"**Verdict:** FRMDN does **not** beat RMDN here ({f} vs {r}: {why}; {diff}). {cost}"
