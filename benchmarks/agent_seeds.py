"""Paired differences of two controllers pooled over seeds of the whole procedure.

Reads ``agent_paired.py``'s ``paired.json`` files, one per seed of ``agent.py``'s run (each
seed trains its own controllers, which all meet the same evaluation tracks), and for each
difference ``A - B`` asked for prints every seed's mean ± standard error over its tracks, then
two summaries: the mean over all tracks of all seeds (its standard error treats tracks as
independent, which they are within a seed only), and the mean of the seeds' means with the
standard error across seeds (what another seed of the procedure would be expected to give).

    python benchmarks/agent_seeds.py one_sided/seed0_paired.json one_sided/seed1_paired.json \
        one_sided/seed2_paired.json --pair "C on [z, h] (real)" "C on z (real)"
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np


def difference(returns: dict, a: str, b: str, path: str) -> np.ndarray:
    missing = [name for name in (a, b) if name not in returns]
    if missing:
        raise SystemExit(f"{path} has no controller {missing[0]!r}; it has {sorted(returns)}")
    return np.array(returns[a]) - np.array(returns[b])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("paired", nargs="+", help="paired.json files, one per seed")
    p.add_argument("--pair", nargs=2, action="append", metavar=("A", "B"), required=True,
                   help="the difference A - B (repeat for more)")  # fmt: skip
    p.add_argument("--out", help="write the summary as JSON here")
    args = p.parse_args()
    runs = {path: json.loads(Path(path).read_text())["returns"] for path in args.paired}
    summary = {}
    for a, b in args.pair:
        per_seed = [difference(r, a, b, path) for path, r in runs.items()]
        print(f"\n{a} - {b}")
        for path, d in zip(runs, per_seed, strict=True):
            se = d.std(ddof=1) / math.sqrt(len(d))
            print(f"  {path}: {d.mean():+.1f} ± {se:.1f} ({int((d > 0).sum())} of {len(d)} won)")
        tracks = np.concatenate(per_seed)
        means = np.array([d.mean() for d in per_seed])
        row = {
            "seeds": [round(float(m), 1) for m in means],
            "tracks_mean": round(float(tracks.mean()), 1),
            "tracks_se": round(float(tracks.std(ddof=1) / math.sqrt(len(tracks))), 1),
            "tracks_won": int((tracks > 0).sum()),
            "tracks": len(tracks),
            "seeds_mean": round(float(means.mean()), 1),
            "seeds_se": round(float(means.std(ddof=1) / math.sqrt(len(means))), 1)
            if len(means) > 1
            else None,
        }
        summary[f"{a} - {b}"] = row
        print(
            f"  all {row['tracks']} tracks: {row['tracks_mean']:+.1f} ± {row['tracks_se']} "
            f"({row['tracks_won']} won); mean of {len(means)} seeds: {row['seeds_mean']:+.1f}"
            + (f" ± {row['seeds_se']} (across seeds)" if row["seeds_se"] is not None else "")
        )
    if args.out:
        Path(args.out).write_text(json.dumps({"files": args.paired, "pairs": summary}, indent=1))


if __name__ == "__main__":
    main()
