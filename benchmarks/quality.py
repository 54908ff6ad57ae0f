"""The real-data experiments: five sequence models at matched size and budget, several seeds.

The same as ``pyro-frmdn bench`` (see docs/bench.md and ``pyro_frmdn/experiments/``):

    python benchmarks/quality.py                           # the full suite: ~40 min on 2 cores
    python benchmarks/quality.py --quick --out /tmp/q      # a few minutes
    python benchmarks/quality.py --datasets vowels kanji --seeds 5
    python benchmarks/quality.py --device cuda --scale 4   # bigger, on a GPU

Results go to benchmarks/results/quality/ (results.md, results.json, PNGs).
"""

import argparse
import sys
from pathlib import Path

# run from a checkout, installed or not
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyro_frmdn import experiments

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    experiments.add_arguments(parser)
    experiments.main(parser.parse_args())
