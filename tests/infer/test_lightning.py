"""SVI under PyTorch Lightning: the loss, a single-process fit, and DDP on two CPU processes."""

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

import pyro
import pytest
import torch

pytest.importorskip("lightning", reason="the Lightning integration needs `pip install lightning`")

import pyro_frmdn as pf
from pyro_frmdn.data import make_task
from pyro_frmdn.infer import evaluate
from pyro_frmdn.infer.lightning import SVILightningModule, fit_lightning

SINGLE = {"accelerator": "cpu", "devices": 1, "enable_progress_bar": False}


def tiny_frmdn(**kwargs) -> pf.FRMDN:
    return pf.FRMDN(obs_dim=2, hidden_dim=8, num_components=2, flow_layers=1, **kwargs)


def _batch(case):
    if case == "mdn":
        x, y = torch.randn(7, 3, dtype=torch.float64), torch.randn(7, 2, dtype=torch.float64)
        return pf.MDN(input_dim=3, obs_dim=2, num_components=2).double(), (x, y), (x, y), 7
    y = make_task("banana", n=5, steps=6, seed=1).double()
    mask = torch.ones(5, 6, dtype=torch.bool)
    mask[1, 4:] = mask[3, 2:] = False  # padded sequences
    batch = {"y": y, "mask": mask} if case == "frmdn-dict" else (y, None, mask)
    return tiny_frmdn().double(), batch, (y, None, mask), int(mask.sum())


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
@pytest.mark.parametrize("case", ["frmdn-dict", "frmdn-tuple", "mdn"])
def test_training_step_is_nll_per_step(case):
    model, batch, args, steps = _batch(case)
    module = SVILightningModule(model)
    module.initialize(batch)
    loss = module.training_step(batch, 0)
    torch.testing.assert_close(loss, -model.log_prob(*args).sum() / steps)
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_initialize_rejects_params_outside_the_module():
    class WithStoreParam(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = tiny_frmdn()

        def model(self, y):
            self.inner.model(y)

        def guide(self, y):
            pyro.param("stray", torch.ones(2))

    with pytest.raises(ValueError, match="stray"):
        SVILightningModule(WithStoreParam()).initialize(torch.randn(3, 4, 2))


def test_fit_lightning_single_process():
    y = make_task("banana", n=32, steps=6, seed=0)
    model = tiny_frmdn()
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    nll_before = evaluate(model, y)
    history = fit_lightning(
        model, y, val=y[:8], epochs=2, batch_size=8, lr=1e-2, trainer_kwargs=SINGLE
    )
    assert evaluate(model, y) < nll_before
    changed = {k: not torch.equal(v, before[k]) for k, v in model.named_parameters()}
    assert all(changed.values()), [k for k, c in changed.items() if not c]  # every parameter
    assert history["epoch"] == [1, 2]
    assert history["train_nll"][1] < history["train_nll"][0]
    assert all(v is not None for v in history["val_nll"])


def test_fit_lightning_in_bf16_mixed_precision():
    # Lightning's autocast around the steps: the networks in bfloat16, the density in float32
    # (without pyro_frmdn.distributions.float32 the step failed, in the flow or in the backward)
    y = make_task("banana", n=32, steps=6, seed=0)
    torch.manual_seed(0)
    model = tiny_frmdn()
    nll_before = evaluate(model, y)
    kwargs = {**SINGLE, "precision": "bf16-mixed"}
    history = fit_lightning(
        model, y, val=y[:8], epochs=2, batch_size=8, lr=1e-2, trainer_kwargs=kwargs
    )
    assert evaluate(model, y) < nll_before - 0.2
    assert history["train_nll"][1] < history["train_nll"][0]
    assert all(p.dtype == torch.float32 for p in model.parameters())


DDP_SCRIPT = """
import os, sys, json
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from lightning.pytorch.strategies import DDPStrategy

import pyro_frmdn as pf
from pyro_frmdn.data import make_task
from pyro_frmdn.infer.lightning import fit_lightning

out = Path(sys.argv[1])
rank = int(os.environ.get("LOCAL_RANK", 0))  # set by Lightning for the workers it starts
torch.manual_seed(100 + rank)  # replicas start apart: DDP must broadcast rank 0's parameters
model = pf.FRMDN(obs_dim=2, hidden_dim=8, num_components=2, flow_layers=1)
torch.save(model.state_dict(), out / f"init{rank}.pt")
y = make_task("banana", n=32, steps=6, seed=0)
strategy = DDPStrategy(process_group_backend="gloo", timeout=timedelta(seconds=60))
history = fit_lightning(
    model, y, epochs=2, batch_size=8, lr=1e-2, seed=0,
    trainer_kwargs=dict(accelerator="cpu", devices=2, strategy=strategy, enable_progress_bar=False),
)
assert dist.get_rank() == rank and dist.get_world_size() == 2
torch.save(model.state_dict(), out / f"rank{rank}.pt")
(out / f"history{rank}.json").write_text(json.dumps(history.records))
dist.barrier()  # both files are written before the launching process exits
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_ddp_two_cpu_processes_stay_in_sync(tmp_path):
    script = tmp_path / "ddp_fit.py"
    script.write_text(textwrap.dedent(DDP_SCRIPT))
    launcher = ("SLURM_", "TORCHELASTIC_", "PL_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(launcher)}
    for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "NODE_RANK", "GROUP_RANK"):
        env.pop(k, None)
    env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port()), OMP_NUM_THREADS="1")
    # a session of its own, so that on a timeout the workers Lightning started die with it
    proc = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"DDP run timed out:\n{output[-4000:]}")
    assert proc.returncode == 0, output[-4000:]
    final = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    init, init1 = (torch.load(tmp_path / f"init{r}.pt", weights_only=True) for r in range(2))
    assert not all(torch.equal(init[k], init1[k]) for k in init)  # the replicas started apart
    fixed = ("y_loc", "y_scale")  # buffers of set_standardization, identity here: not trained
    for k in final[0]:
        assert torch.equal(final[0][k], final[1][k]), f"{k} differs between the workers"
        assert k in fixed or not torch.equal(final[0][k], init[k]), f"{k} did not change"
    histories = [json.loads((tmp_path / f"history{r}.json").read_text()) for r in range(2)]
    assert [h["epoch"] for h in histories[0]] == [1, 2]
    assert [h["train_nll"] for h in histories[0]] == [h["train_nll"] for h in histories[1]]


def test_fit_lightning_takes_a_user_model_checkpoint_and_a_scheduler(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    y = make_task("banana", n=32, steps=6, seed=0)
    saver = ModelCheckpoint(dirpath=tmp_path, monitor="val_nll", save_top_k=1)
    rates = []

    def scheduler(optimizer):
        rates.append(optimizer)
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)

    fit_lightning(
        tiny_frmdn(), y, val=y[:8], epochs=2, batch_size=8, lr=1e-2, scheduler=scheduler,
        trainer_kwargs={**SINGLE, "callbacks": [saver]},
    )  # fmt: skip
    assert len(list(tmp_path.glob("*.ckpt"))) == 1 and saver.best_model_score is not None
    assert [g["lr"] for g in rates[0].param_groups] == [pytest.approx(1e-2 * 0.5**2)]
