"""Why the FRMDN lost on kanji and JapaneseVowels: flow kind, depth and conditioning, side by side.

Each setting below is the suite's data set spec (``pyro_frmdn.experiments.DATASETS``) with the
FRMDN's flow set as it says (the rest of the spec, 4 layers included, unchanged). Per setting the
runner trains the covariance FRMDN and the diagonal RMDN matched to its parameter count (the RMDN's
LSTM is widened by the flow's parameters), with the suite's budget and seeds, and writes a
``results.md`` whose sections are the settings. Choose a setting by the validation NLL; the test NLL
is reported beside it. The suite's defaults for kanji and vowels (conditional affine couplings) were
chosen from this run's validation NLL.

    python benchmarks/quality_ablation.py                 # 50 min on 2 shared CPU cores
    python benchmarks/quality_ablation.py --datasets kanji --seeds 2
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from pyro_frmdn.experiments import DATASETS, run_bench, write_report

SETTINGS = {  # suffix -> the FRMDN's flow
    "affine": {"flow": "affine", "conditional_flow": False},
    "affine_cond": {"flow": "affine", "conditional_flow": True},
    "spline": {"flow": "spline", "conditional_flow": False},
    "spline_cond": {"flow": "spline", "conditional_flow": True},
    "spline_2": {"flow": "spline", "conditional_flow": False, "flow_layers": 2},
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["kanji", "vowels"])
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--out", default="benchmarks/results/quality_ablation")
    p.add_argument("--quick", action="store_true", help="a few minutes, to check the script")
    args = p.parse_args()
    specs = [
        replace(DATASETS[d], name=f"{d}-{s}", **SETTINGS[s])
        for d in args.datasets
        for s in args.settings
    ]
    results = run_bench(specs, ("rmdn_diag", "frmdn_cov"), args.seeds, args.out, args.quick)
    print(f"{'setting':<22} {'model':<10} {'val NLL':>16} {'test NLL':>16}")
    for name, d in results["datasets"].items():
        for v, m in d["models"].items():
            val, test = m["val_nll"], m["test_nll"]
            print(f"{name:<22} {v:<10} {val['mean']:8.3f} ± {val['std']:.3f} "
                  f"{test['mean']:8.3f} ± {test['std']:.3f}")  # fmt: skip
    write_report(results, f"{args.out}/results.md")


if __name__ == "__main__":
    main()
