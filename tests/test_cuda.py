"""The CUDA path against the CPU one; skipped where there is no GPU."""

import math

import pytest
import torch

import pyro_frmdn as pf
from pyro_frmdn.distributions import flow_mixture, low_rank_mixture
from pyro_frmdn.flows import coupling_flow

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.parametrize("parameterization", ["covariance", "precision"])
def test_likelihood_and_gradients_match_the_cpu(parameterization):
    g = torch.Generator().manual_seed(0)
    args = [
        torch.randn(8, 6, 3, generator=g, dtype=torch.float64),
        torch.randn(8, 6, 3, 5, generator=g, dtype=torch.float64),
        0.3 * torch.randn(8, 6, 3, 5, 2, generator=g, dtype=torch.float64),
        torch.rand(8, 6, 3, 5, generator=g, dtype=torch.float64) + 0.5,
    ]
    y = torch.randn(8, 6, 5, generator=g, dtype=torch.float64)
    flow = coupling_flow(5, 2, hidden_dims=[8]).double()
    out = {}
    for device in ("cpu", "cuda"):
        leaves = [a.detach().to(device).requires_grad_() for a in args]
        flow.to(device)
        flow.zero_grad()
        mix = low_rank_mixture(*leaves, parameterization=parameterization)
        lp = flow_mixture(mix, flow).log_prob(y.to(device))
        lp.sum().backward()
        # copies: moving the flow to the next device moves its gradients in place
        grads = [a.grad.to("cpu", copy=True) for a in leaves]
        grads += [p.grad.to("cpu", copy=True) for p in flow.parameters()]
        out[device] = (lp.detach().cpu(), grads)
    torch.testing.assert_close(out["cuda"][0], out["cpu"][0])
    for a, b in zip(out["cuda"][1], out["cpu"][1], strict=True):
        torch.testing.assert_close(a, b)


def test_fit_and_sample_stay_on_the_gpu():
    torch.manual_seed(0)
    m = pf.FRMDN(2, hidden_dim=8, num_components=2, rank=1, flow_layers=2)
    y = pf.data.make_task("banana", n=32, steps=6)
    pf.fit(m, y, epochs=1, batch_size=16, device="cuda", progress=False)
    assert all(p.device.type == "cuda" for p in m.parameters())
    assert all(b.device.type == "cuda" for b in m.buffers())  # the permutations follow
    s = m.sample(4, 5, pi_temperature=0.5)
    assert s.device.type == "cuda" and s.shape == (4, 5, 2) and torch.isfinite(s).all()


def test_a_model_saved_on_the_gpu_loads_on_the_cpu_and_back(tmp_path):
    torch.manual_seed(0)
    m = pf.FRMDN(2, hidden_dim=8, num_components=2, rank=1, flow_layers=2).double().to("cuda")
    y = torch.randn(3, 5, 2, dtype=torch.float64)
    m.save(tmp_path / "m.pt")
    on_cpu = pf.load(tmp_path / "m.pt", map_location="cpu")
    assert all(p.device.type == "cpu" for p in on_cpu.parameters())
    torch.testing.assert_close(on_cpu.log_prob(y), m.log_prob(y.cuda()).cpu())
    on_gpu = pf.load(tmp_path / "m.pt", map_location="cuda")
    assert all(p.device.type == "cuda" for p in on_gpu.parameters())
    torch.testing.assert_close(on_gpu.log_prob(y.cuda()), m.log_prob(y.cuda()))


def test_bfloat16_couplings_on_the_gpu_invert_exactly_and_train():
    torch.manual_seed(0)
    t = coupling_flow(6, 1, hidden_dims=[16], precision="bfloat16")[0].cuda()
    x = torch.randn(50, 6, device="cuda")
    y = t(x)
    v = y.detach().clone().requires_grad_()
    back = t.inv(v)
    torch.testing.assert_close(back, x, rtol=1e-6, atol=1e-6)  # both directions alike
    (back.sum() + t.log_abs_det_jacobian(back, v).sum()).backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in t.parameters())
    m = pf.FRMDN(4, hidden_dim=8, num_components=2, rank=1, flow_layers=2,
                 flow_precision="bfloat16").cuda()  # fmt: skip
    pf.fit(m, torch.randn(16, 5, 4, device="cuda"), epochs=1, batch_size=8, progress=False)
    assert bool(torch.isfinite(m.log_prob(torch.randn(3, 5, 4, device="cuda"))).all())


def test_bf16_mixed_on_the_gpu_scores_in_float32_and_trains():
    torch.manual_seed(0)
    m = pf.FRMDN(6, hidden_dim=16, num_components=2, rank=2, flow_layers=2).cuda()
    y = torch.randn(16, 8, 6, device="cuda")
    full = m.log_prob(y)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        mixed = m.log_prob(y)
    # the LSTM and the head in bfloat16, the flow and the mixture in float32
    assert mixed.dtype == torch.float32 and not torch.equal(mixed, full)
    torch.testing.assert_close(mixed, full, rtol=2e-3, atol=0.0)
    history = pf.fit(m, y, epochs=2, batch_size=8, precision="bf16-mixed", progress=False)
    assert all(math.isfinite(v) for v in history["train_nll"])
    assert all(p.dtype == torch.float32 and p.is_cuda for p in m.parameters())


def test_auto_takes_the_written_out_kernel_on_the_gpu_and_it_matches_float64():
    from pyro_frmdn.distributions import _lowrank
    from pyro_frmdn.distributions._lowrank import lowrank_gaussian_log_prob

    g = torch.Generator().manual_seed(5)
    diff = torch.randn(64, 3, 16, generator=g)
    factor = 0.5 * torch.randn(64, 3, 16, 4, generator=g)
    diag = torch.rand(64, 3, 16, generator=g) + 0.3
    cuda = [t.cuda().requires_grad_() for t in (diff, factor, diag)]
    assert _lowrank._fused_applies(cuda[1])  # Triton ships with CUDA builds of torch
    for precision in (False, True):
        got = lowrank_gaussian_log_prob(*cuda, precision)
        m = factor.double() @ factor.double().mT + torch.diag_embed(diag.double())
        key = "precision_matrix" if precision else "covariance_matrix"
        zero = torch.zeros(16, dtype=torch.float64)
        want = torch.distributions.MultivariateNormal(zero, **{key: m}).log_prob(diff.double())
        torch.testing.assert_close(got.double().cpu(), want, rtol=1e-5, atol=1e-4)
        assert torch.isfinite(torch.autograd.grad(got.sum(), cuda)[1]).all()


def test_the_sketch_vae_scores_decodes_and_fits_on_the_gpu():
    from pyro_frmdn.models.sketch_inputs import random_stroke5

    torch.manual_seed(0)
    m = pf.SketchVAE(latent_dim=3, encoder_dim=6, hidden_dim=8, num_components=2, rank=1)
    m = m.double()
    y = random_stroke5(4, 7, 0).double()
    z = torch.randn(4, 3, dtype=torch.float64)
    on_cpu = (m.likelihood(y, z).log_prob(y), m.decode(z[:2], 6, greedy_decoding=True))
    m.cuda()
    lp = m.likelihood(y.cuda(), z.cuda()).log_prob(y.cuda())
    drawn = m.decode(z[:2].cuda(), 6, greedy_decoding=True)
    assert lp.device.type == "cuda" and drawn.device.type == "cuda"
    torch.testing.assert_close(lp.cpu(), on_cpu[0])
    torch.testing.assert_close(drawn.cpu(), on_cpu[1])
    pf.fit(m, y, epochs=1, batch_size=4, device="cuda", progress=False)
    assert m.sample(2, 5).device.type == "cuda" and m.encode(y.cuda()).device.type == "cuda"


def test_handwriting_synthesis_scores_and_writes_on_the_gpu():
    from pyro_frmdn.nn import encode_texts

    torch.manual_seed(0)
    m = pf.HandwritingSynthesis("abcd ", hidden_dim=8, num_components=2, window_components=2)
    m = m.double()
    g = torch.Generator().manual_seed(1)
    y = torch.randn(3, 6, 3, generator=g, dtype=torch.float64)
    y[..., 2] = (torch.rand(3, 6, generator=g) < 0.3).double()
    codes, text_mask = encode_texts(["abc", "d a", "bb"], "abcd ")
    on_cpu = m.log_prob(y, codes, None, text_mask)
    m.cuda()
    on_gpu = m.log_prob(y.cuda(), codes.cuda(), None, text_mask.cuda())
    torch.testing.assert_close(on_gpu.cpu(), on_cpu)
    strokes = m.sample(2, "ab", max_steps=5)
    assert all(s.device.type == "cuda" for s in strokes)
