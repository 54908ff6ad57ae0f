r"""CMA-ES training of a controller: generations, worker processes or Ray, resumable checkpoints.

The search is pycma's (``pip install cma``, in the ``world`` extra): the maintained CMA-ES of
its author, Nikolaus Hansen, and the library the World Models authors trained their controller
with (Ha & Schmidhuber 2018, population 64, 16 rollouts per candidate). Nothing of the
algorithm is rewritten here: this module feeds it fitness, spreads rollouts over processes,
re-evaluates the best candidate, shows progress and checkpoints the optimiser.
"""

from __future__ import annotations

import contextlib
import os
import pickle
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..files import read_torch_file, save_verified
from ..models import Controller
from ..models.validation import check_count, check_positive
from .engine import progress_bar

__all__ = ["BACKENDS", "EVOLUTION_FORMAT", "Evolution", "train_controller"]

BACKENDS = ("processes", "ray")
"""Where rollouts run when ``workers > 0``: ``"processes"``, a pool of worker processes on this
machine (:mod:`concurrent.futures`); ``"ray"``, Ray tasks (``pip install ray``; on a cluster
when ``ray.init(address=...)`` was called first, else a local Ray instance)."""

EVOLUTION_FORMAT = "pyro-frmdn-evolution/1"
INSTALL = "pip install 'pyro-frmdn[world]'  (or: pip install cma)"
Fitness = Callable[[Tensor, int], Tensor]  # (params (P, n), seed) -> returns (P, R)


@dataclass
class Evolution:
    """What :func:`train_controller` returns; the controller is left at :attr:`best_params`."""

    best_params: Tensor  # (n,) the best re-evaluated candidate
    best_score: float  # its mean return on re-evaluation
    history: list[dict] = field(default_factory=list)  # per generation: best, mean, reevaluated
    # (n,) CMA-ES's search mean at the end: with noisy returns (few rollouts a candidate) the
    # best re-evaluated candidate is the luckiest of many noisy scores, and pycma recommends
    # the mean (its ``xfavorite``) instead; judge both on fresh episodes
    mean_params: Tensor | None = None


@contextlib.contextmanager
def _numpy_random(state: dict) -> Iterator[None]:
    """Run pycma (which draws from numpy's global generator) on ``state["np"]``, saved back
    after; the caller's global numpy state is restored."""
    outer = np.random.get_state()
    np.random.set_state(state["np"])
    try:
        yield
    finally:
        state["np"] = np.random.get_state()
        np.random.set_state(outer)


def _seed(seed: int, generation: int, purpose: int) -> int:
    return int(np.random.SeedSequence([seed, generation, purpose]).generate_state(1)[0])


class _Runner:
    """Evaluates a population: in this process, over worker processes, or as Ray tasks."""

    def __init__(self, fitness: Fitness, workers: int, backend: str):
        self.fitness, self.workers, self.backend, self.pool = fitness, workers, backend, None
        if workers and backend == "processes":
            self.pool = ProcessPoolExecutor(workers)
        elif workers:
            try:
                import ray
            except ImportError as err:
                raise ImportError("backend='ray' needs Ray: pip install ray") from err
            if not ray.is_initialized():
                ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
            self.ray, self.task = ray, ray.remote(_evaluate)

    def __call__(self, params: Tensor, seed: int) -> Tensor:
        if not self.workers:
            return _evaluate(self.fitness, params, seed)
        chunks = [c for c in torch.tensor_split(params, self.workers) if len(c)]
        if self.pool is not None:
            parts = [self.pool.submit(_evaluate, self.fitness, c, seed) for c in chunks]
            return torch.cat([p.result() for p in parts])
        ref = self.ray.put(self.fitness)
        return torch.cat(self.ray.get([self.task.remote(ref, c, seed) for c in chunks]))

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()


def _evaluate(fitness: Fitness, params: Tensor, seed: int) -> Tensor:
    torch.set_num_threads(1)
    returns = torch.as_tensor(fitness(params, seed), dtype=torch.float64)
    if returns.dim() != 2 or returns.shape[0] != len(params):
        raise ValueError(f"fitness must return ({len(params)}, R) returns, got {returns.shape}")
    if not bool(torch.isfinite(returns).all()):
        raise ValueError("fitness returned NaN or infinite returns")
    return returns


def _plain(np_state: tuple) -> list:
    """numpy's random state as values a ``weights_only`` torch file holds."""
    name, keys, pos, has_gauss, cached = np_state
    return [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)]


def _load(path: Path, settings: dict) -> dict:
    state = read_torch_file(path, "evolution checkpoint")
    if not isinstance(state, dict) or state.get("format") != EVOLUTION_FORMAT:
        raise ValueError(f"{path} is not an evolution checkpoint (format {EVOLUTION_FORMAT})")
    if state["settings"] != settings:
        raise ValueError(
            f"{path} was written with {state['settings']}; this run has {settings}: "
            "use another checkpoint file"
        )
    try:
        state["es"] = pickle.loads(state["es"])
    except Exception as err:
        raise ValueError(f"evolution checkpoint {path}: the CMA-ES state is unreadable") from err
    name, keys, pos, has_gauss, cached = state["np"]
    state["np"] = (name, keys.numpy().astype(np.uint32), pos, has_gauss, cached)
    return state


def train_controller(
    controller: Controller,
    fitness: Fitness,
    generations: int,
    *,
    popsize: int = 16,
    sigma: float = 0.1,
    seed: int = 0,
    reevaluate: Fitness | None = None,
    checkpoint: str | os.PathLike | None = None,
    workers: int = 0,
    backend: str = "processes",
    progress: bool = True,
) -> Evolution:
    r"""Search the controller's flat parameters with CMA-ES (Hansen 2016; pycma) to maximise the
    mean return, as World Models did (Ha & Schmidhuber 2018, §3.3).

    Each generation draws ``popsize`` candidates, scores each by the mean of its rollouts'
    returns (``fitness(params (P, n), seed) -> (P, R)``, e.g.
    :class:`~pyro_frmdn.infer.rollouts.DreamFitness` or
    :class:`~pyro_frmdn.infer.rollouts.EnvFitness`), tells CMA-ES, and re-evaluates the
    generation's best candidate with ``reevaluate`` (default: ``fitness`` on fresh seeds; pass a
    real-environment fitness to judge dream-trained candidates in the world). The best
    re-evaluated candidate is kept and set into ``controller`` at the end. Seeds derive from
    ``(seed, generation)``, so a run is reproducible.

    Arguments:
        controller: C; its current parameters are CMA-ES's starting mean.
        fitness: returns ``(P, R)`` per candidate and rollout.
        generations: how many generations the run should reach (a resumed run continues to it).
        popsize: candidates per generation (>= 2). sigma: the initial step size (> 0).
        seed: the seed of the run (pycma's sampling and the rollouts).
        reevaluate: the fitness of the re-evaluation (default ``fitness``).
        checkpoint: a file rewritten atomically after every generation (CMA-ES state, numpy
            random state, history, best); when it exists the run resumes from it exactly: a run
            of 2 generations resumed to 4 gives the numbers of a run of 4.
        workers: 0 evaluates in this process; k > 0 splits each population over k workers.
        backend: one of :data:`BACKENDS`.
        progress: show the package's progress bar with the best and mean return.
    """
    try:
        import cma
    except ImportError as err:
        raise ImportError(f"CMA-ES training needs pycma: {INSTALL}") from err
    if not isinstance(controller, Controller):
        raise TypeError(f"controller must be a Controller, got {type(controller).__name__}")
    if not callable(fitness) or (reevaluate is not None and not callable(reevaluate)):
        raise TypeError("fitness and reevaluate must be callables (params, seed) -> (P, R)")
    generations, popsize = check_count("generations", generations), check_count("popsize", popsize)
    if popsize < 2:
        raise ValueError(f"popsize must be >= 2, got {popsize}")
    check_positive("sigma", sigma)
    if not bool(torch.isfinite(controller.get_flat()).all()):
        raise ValueError(
            "controller's parameters hold NaN or Inf: CMA-ES starts from them (set_flat finite "
            "values first)"
        )
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(f"workers must be an integer >= 0, got {workers!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    settings = dict(popsize=popsize, sigma=float(sigma), seed=int(seed),
                    num_parameters=controller.num_parameters)  # fmt: skip
    path = None if checkpoint is None else Path(checkpoint)
    if path is not None and path.exists():
        state = _load(path, settings)
    else:
        state = {"np": np.random.RandomState(seed + 1).get_state(), "generation": 0, "history": []}
        x0 = controller.get_flat().double().cpu().numpy()
        # pycma's Gaussian draws from a generator of its own, pickled with it; its other uses of
        # numpy's global generator run on a saved state (_numpy_random)
        randn = np.random.RandomState(seed).randn
        with _numpy_random(state):
            opts = {"popsize": popsize, "seed": np.nan, "verbose": -9, "randn": randn}
            state["es"] = cma.CMAEvolutionStrategy(x0, float(sigma), opts)
        state.update(best=None, best_score=-float("inf"))
    es, dtype = state["es"], controller.weight.dtype
    run, again = _Runner(fitness, workers, backend), reevaluate or fitness
    bar = progress_bar(generations, "cma-es", progress)
    bar.update(state["generation"])
    try:
        for g in range(state["generation"], generations):
            with _numpy_random(state):
                candidates = np.asarray(es.ask())
            params = torch.as_tensor(candidates, dtype=dtype)
            scores = run(params, _seed(seed, g, 0)).mean(1)  # (P,)
            with _numpy_random(state):
                es.tell(list(candidates), (-scores).tolist())  # pycma minimises
            top = int(scores.argmax())
            score = float(_evaluate(again, params[top : top + 1], _seed(seed, g, 1)).mean())
            if score > state["best_score"]:
                state["best"], state["best_score"] = params[top].clone(), score
            row = dict(generation=g + 1, best=float(scores.max()), mean=float(scores.mean()),
                       reevaluated=score, sigma=float(es.sigma))  # fmt: skip
            state["history"].append(row)
            state["generation"] = g + 1
            if path is not None:
                saved = {k: v for k, v in state.items() if k not in ("es", "np")}
                saved.update(format=EVOLUTION_FORMAT, settings=settings, es=pickle.dumps(es))
                save_verified({**saved, "np": _plain(state["np"])}, path)
            bar.update()
            bar.set_postfix(best=f"{row['best']:.1f}", mean=f"{row['mean']:.1f}",
                            reevaluated=f"{score:.1f}")  # fmt: skip
    finally:
        bar.close()
        run.close()
    controller.set_flat(state["best"])
    mean = torch.as_tensor(np.asarray(es.mean), dtype=dtype)
    return Evolution(state["best"], state["best_score"], state["history"], mean)
