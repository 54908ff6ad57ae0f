"""The real-data experiments: five sequence models at matched size and budget, several seeds.

Per data set it trains (1) one diagonal Gaussian per step, (2) a diagonal RMDN, (3) a low-rank RMDN,
(4) an FRMDN with low-rank covariances and (5) an FRMDN with low-rank precisions (the form of
Razavi, Hosseini & Behzad 2020, arXiv 2008.02144), each with the RNN's hidden size chosen so that
every model has about the same number of parameters, for the same epochs, batch size and learning
rate schedule. It writes ``results.json``, ``results.md`` and plots (learning curves, samples,
calibration) into one folder. ``pyro-frmdn bench`` and ``benchmarks/quality.py`` call :func:`main`.
"""

from .command import add_arguments, main
from .datasets import Prepared, load_dataset
from .job import run_job, train_and_test
from .machine import cpu_name, machine
from .report import write_report
from .runner import run_bench
from .sizes import TOLERANCE, build_variant, count_parameters, match_hidden, matched_sizes
from .specs import DATASETS, FRMDNS, PIT_PER_DIM, RMDNS, VARIANTS, DatasetSpec

__all__ = [
    "DATASETS",
    "FRMDNS",
    "PIT_PER_DIM",
    "RMDNS",
    "TOLERANCE",
    "VARIANTS",
    "DatasetSpec",
    "Prepared",
    "add_arguments",
    "build_variant",
    "count_parameters",
    "cpu_name",
    "load_dataset",
    "machine",
    "main",
    "match_hidden",
    "matched_sizes",
    "run_bench",
    "run_job",
    "train_and_test",
    "write_report",
]
