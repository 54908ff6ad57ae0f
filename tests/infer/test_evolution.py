"""CMA-ES training: it improves a known fitness, resumes exactly, and workers match one process."""

import pytest
import torch
from support.agents import Quadratic

from pyro_frmdn.infer.evolution import train_controller
from pyro_frmdn.models import Controller

pytest.importorskip("cma")


def controller():
    c = Controller(3, 0, low=[-1.0, -1.0], high=[1.0, 1.0], use_hidden=False).double()
    c.set_flat(torch.zeros(c.num_parameters))
    return c


TARGET = torch.linspace(-0.5, 0.5, 8, dtype=torch.float64)  # the optimum, return 0


def test_one_generation_improves_a_toy_fitness_and_sets_the_best():
    c = controller()
    start = float(Quadratic(TARGET, noise=0.0)(c.get_flat()[None], 0).mean())
    out = train_controller(c, Quadratic(TARGET, noise=0.0), 1, popsize=32, sigma=0.2, seed=3,
                           progress=False)  # fmt: skip
    assert len(out.history) == 1 and out.history[0]["generation"] == 1
    assert out.best_score > start  # the best of 32 draws around the start beats it
    assert torch.equal(c.get_flat(), out.best_params)
    # the re-evaluation of a noiseless fitness is the candidate's own return
    assert out.best_score == pytest.approx(-float(((out.best_params - TARGET) ** 2).sum()))
    more = train_controller(controller(), Quadratic(TARGET, noise=0.0), 30, popsize=16,
                            sigma=0.2, seed=3, progress=False)  # fmt: skip
    assert more.best_score > -0.01  # near the optimum, 0
    assert more.history[-1]["mean"] > more.history[0]["mean"]


def test_the_search_mean_is_returned_and_beats_the_luckiest_candidate_under_noise():
    # returns with noise of sd 0.5, one rollout, re-evaluated once: the kept candidate is the one
    # whose single noisy re-evaluation was highest, while CMA-ES's mean averages the population
    noisy = Quadratic(TARGET, rollouts=1, noise=0.5)
    distance = {"best": [], "mean": []}  # squared distance to the optimum, the true loss
    for seed in range(6):
        out = train_controller(controller(), noisy, 40, popsize=16, sigma=0.2, seed=seed,
                               progress=False)  # fmt: skip
        assert out.mean_params.shape == TARGET.shape and out.mean_params.dtype == torch.float64
        for k, v in (("best", out.best_params), ("mean", out.mean_params)):
            distance[k].append(float(((v - TARGET) ** 2).sum()))
        assert out.best_score > -distance["best"][-1]  # its re-evaluation flattered it
    assert sum(distance["mean"]) < sum(distance["best"])  # the mean is nearer, on average
    exact = train_controller(controller(), Quadratic(TARGET, noise=0.0), 30, popsize=16,
                             sigma=0.2, seed=3, progress=False)  # fmt: skip
    assert float(((exact.mean_params - TARGET) ** 2).sum()) < 0.01


def test_a_resumed_run_gives_the_numbers_of_an_uninterrupted_one(tmp_path):
    fitness = Quadratic(TARGET)
    whole = train_controller(controller(), fitness, 4, popsize=6, seed=1, progress=False,
                             checkpoint=tmp_path / "whole.pt")  # fmt: skip
    path = tmp_path / "parts.pt"
    train_controller(controller(), fitness, 2, popsize=6, seed=1, progress=False, checkpoint=path)
    c = controller()
    resumed = train_controller(c, fitness, 4, popsize=6, seed=1, progress=False, checkpoint=path)
    assert resumed.history == whole.history
    assert torch.equal(resumed.best_params, whole.best_params)
    assert torch.equal(c.get_flat(), whole.best_params)
    assert torch.equal(resumed.mean_params, whole.mean_params)
    with pytest.raises(ValueError, match="was written with"):
        train_controller(controller(), fitness, 5, popsize=8, seed=1, progress=False,
                         checkpoint=path)  # fmt: skip
    raw = bytearray(path.read_bytes())
    raw[-10] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="corrupt"):
        train_controller(controller(), fitness, 5, popsize=6, seed=1, progress=False,
                         checkpoint=path)  # fmt: skip


def test_worker_processes_give_the_serial_result():
    fitness = Quadratic(TARGET)
    serial = train_controller(controller(), fitness, 2, popsize=6, seed=2, progress=False)
    pooled = train_controller(controller(), fitness, 2, popsize=6, seed=2, progress=False,
                              workers=2)  # fmt: skip
    assert pooled.history == serial.history
    assert torch.equal(pooled.best_params, serial.best_params)


@pytest.mark.slow
def test_ray_tasks_give_the_serial_result():
    ray = pytest.importorskip("ray", reason="Ray is an optional backend (pip install ray)")
    import support

    fitness = Quadratic(TARGET)
    serial = train_controller(controller(), fitness, 2, popsize=6, seed=2, progress=False)
    tests = str(__import__("pathlib").Path(support.__file__).parents[1])
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": tests}})
    try:
        remote = train_controller(controller(), fitness, 2, popsize=6, seed=2, progress=False,
                                  workers=2, backend="ray")  # fmt: skip
    finally:
        ray.shutdown()
    assert remote.history == serial.history


def test_bad_settings_are_refused():
    c, f = controller(), Quadratic(TARGET)
    with pytest.raises(ValueError, match="popsize must be >= 2"):
        train_controller(c, f, 1, popsize=1)
    with pytest.raises(ValueError, match="backend must be one of"):
        train_controller(c, f, 1, backend="mpi")
    with pytest.raises(ValueError, match="sigma"):
        train_controller(c, f, 1, sigma=-1.0)
    with pytest.raises(ValueError, match="workers must be an integer >= 0"):
        train_controller(c, f, 1, workers=-1)
    with pytest.raises(ValueError, match=r"fitness must return \(4, R\)"):
        train_controller(c, lambda p, s: torch.zeros(3), 1, popsize=4, progress=False)
    with pytest.raises(ValueError, match="NaN"):
        train_controller(c, lambda p, s: torch.full((4, 1), float("nan")), 1, popsize=4,
                         progress=False)  # fmt: skip


def test_bad_controllers_and_counts_are_refused_with_the_argument_named():
    c, f = controller(), Quadratic(TARGET)
    with pytest.raises(ValueError, match="generations must be >= 1"):
        train_controller(c, f, 0)
    with pytest.raises(ValueError, match="popsize must be >= 1"):
        train_controller(c, f, 1, popsize=-3)
    with pytest.raises(TypeError, match="popsize must be an integer"):
        train_controller(c, f, 1, popsize=8.0)
    with pytest.raises(TypeError, match="controller must be a Controller"):
        train_controller(torch.nn.Linear(3, 2), f, 1)
    with pytest.raises(TypeError, match="fitness and reevaluate must be callables"):
        train_controller(c, "dream", 1)
    with pytest.raises(ValueError, match="controller's parameters hold NaN or Inf"):
        with torch.no_grad():
            c.bias.fill_(float("nan"))
        train_controller(c, f, 1, progress=False)
