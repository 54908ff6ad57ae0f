import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine

from pyro_frmdn.models.annealing import kl_weight, weighted_sites


def test_kl_weight_rises_linearly_then_stays():
    assert [kl_weight(s, 4, 0.2, 1.0) for s in (0, 1, 2, 4, 9)] == pytest.approx(
        [0.2, 0.4, 0.6, 1.0, 1.0]
    )
    assert kl_weight(0, 0, 0.2, 0.5) == 0.5  # no warm-up: the end weight throughout


@pytest.mark.parametrize(
    "beta, active, scale, kept",
    [(0.3, True, 0.3, True), (0.0, True, 1.0, False), (0.3, False, 1.0, False)],
)
def test_weighted_sites_scale_or_leave_out(beta, active, scale, kept):
    def model():
        with weighted_sites(beta, active):
            pyro.sample("z", dist.Normal(0.0, 1.0), obs=torch.tensor(0.5))

    trace = poutine.trace(model).get_trace()
    trace.compute_log_prob()
    node = trace.nodes["z"]
    assert node["scale"] == pytest.approx(scale)
    expected = scale * dist.Normal(0.0, 1.0).log_prob(torch.tensor(0.5)) if kept else 0.0
    assert float(node["log_prob_sum"]) == pytest.approx(float(expected))
