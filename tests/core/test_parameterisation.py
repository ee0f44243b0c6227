import pytest
import torch

from moldiff.core import (
    DiffusionDenoiser,
    DiscreteVPSchedule,
    EDMSchedule,
    EuclideanSpace,
    FlowSchedule,
    VPSchedule,
    convert_prediction,
    denoising_loss,
    edm_preconditioning,
    loss_weight,
    prediction_from_x0,
    sample_times,
    x0_from_prediction,
)

from .helpers import dense_problem

KINDS = ["eps", "x0", "v", "score"]


@pytest.mark.parametrize("source", KINDS)
@pytest.mark.parametrize("target", KINDS)
def test_conversions_round_trip(source, target):
    g = torch.Generator().manual_seed(0)
    x_t = torch.randn(5, 4, generator=g, dtype=torch.float64)
    alpha = torch.rand(5, 1, generator=g, dtype=torch.float64) + 0.1
    sigma = torch.rand(5, 1, generator=g, dtype=torch.float64) + 0.1
    pred = torch.randn(5, 4, generator=g, dtype=torch.float64)
    there = convert_prediction(pred, source, target, x_t, alpha, sigma)
    back = convert_prediction(there, target, source, x_t, alpha, sigma)
    assert torch.allclose(back, pred, atol=1e-10)


def test_conversions_agree_with_the_forward_process():
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(6, 3, generator=g, dtype=torch.float64)
    eps = torch.randn(6, 3, generator=g, dtype=torch.float64)
    alpha, sigma = torch.tensor(0.6, dtype=torch.float64), torch.tensor(0.8, dtype=torch.float64)
    x_t = alpha * x0 + sigma * eps
    assert torch.allclose(prediction_from_x0(x0, "eps", x_t, alpha, sigma), eps)
    assert torch.allclose(prediction_from_x0(x0, "v", x_t, alpha, sigma), alpha * eps - sigma * x0)
    assert torch.allclose(prediction_from_x0(x0, "score", x_t, alpha, sigma), -eps / sigma)
    for kind in KINDS:
        pred = prediction_from_x0(x0, kind, x_t, alpha, sigma)
        assert torch.allclose(x0_from_prediction(pred, kind, x_t, alpha, sigma), x0)


class OracleNetwork(torch.nn.Module):
    """A 'network' that returns the oracle's optimum in a given parameterisation."""

    def __init__(self, oracle, schedule, kind, sigma_data=0.5):
        super().__init__()
        self.oracle, self.schedule, self.kind, self.sigma_data = oracle, schedule, kind, sigma_data

    def forward(self, x_in, t_in):
        if self.kind == "edm":
            sigma = torch.exp(4 * t_in.double())
            c_skip, c_out, c_in, _ = edm_preconditioning(sigma, self.sigma_data)
            x = x_in / c_in[:, None]
            return (self.oracle(x, sigma) - c_skip[:, None] * x) / c_out[:, None]
        t = t_in.double()
        alpha, sigma = self.schedule.alpha(t)[:, None], self.schedule.sigma(t)[:, None]
        x0 = self.oracle(x_in / alpha, sigma / alpha)
        return prediction_from_x0(x0, self.kind, x_in, alpha, sigma)


@pytest.mark.parametrize("kind", KINDS + ["edm"])
@pytest.mark.parametrize(
    "schedule",
    [VPSchedule("linear"), DiscreteVPSchedule.polynomial(1000), FlowSchedule(), EDMSchedule()],
    ids=["vp", "polynomial", "flow", "edm"],
)
def test_denoiser_wrapper_recovers_the_optimal_denoiser(kind, schedule):
    oracle = dense_problem(0, dim=4)
    denoiser = DiffusionDenoiser(OracleNetwork(oracle, schedule, kind), schedule, kind)
    x = oracle.sample(8, torch.Generator().manual_seed(2)) + 3.0 * torch.randn(8, 4, dtype=torch.float64)
    sigma = torch.full((8,), 3.0, dtype=torch.float64)
    assert torch.allclose(denoiser(x, sigma), oracle(x, sigma), atol=1e-8)


@pytest.mark.parametrize("weighting", ["eps", "x0", "min_snr"])
def test_loss_of_the_optimal_denoiser_has_its_closed_form(weighting):
    """For N(m, C) data the optimal eps-predictor leaves E|eps - eps_hat|^2 / D =
    mean_i a^2 l_i / (a^2 l_i + s^2) (posterior variance of eps), times the weight."""
    oracle = dense_problem(3, dim=4)
    schedule = VPSchedule("linear")
    denoiser = DiffusionDenoiser(OracleNetwork(oracle, schedule, "eps"), schedule, "eps")
    n = 40000
    g = torch.Generator().manual_seed(4)
    x0 = oracle.sample(n, g)
    space = EuclideanSpace((n, 4), dtype=torch.float64)
    t = torch.full((n,), 0.3, dtype=torch.float64)
    loss = denoising_loss(denoiser, x0, space, generator=g, t=t, weighting=weighting).mean()
    a2, s2 = schedule.alpha(t[:1]) ** 2, schedule.sigma(t[:1]) ** 2
    expected = (a2 * oracle.eigvals / (a2 * oracle.eigvals + s2)).mean() * loss_weight(
        schedule.log_snr(t[:1]), weighting
    )
    assert abs(float(loss) - float(expected)) < 0.02 * float(expected)


def test_noise_samplers_stay_in_range_and_follow_their_law():
    g = torch.Generator().manual_seed(0)
    s = DiscreteVPSchedule.polynomial(1000)
    for kind in ("uniform", "discrete", "lognormal", "log_snr_uniform"):
        t = sample_times(s, 5000, kind, generator=g)
        assert float(t.min()) >= s.t_min and float(t.max()) <= s.t_max
    t = sample_times(s, 5000, "discrete", generator=g)
    assert torch.allclose(t * 1000, (t * 1000).round(), atol=1e-9)
    edm = EDMSchedule()
    sig = edm.ve_sigma(sample_times(edm, 20000, "lognormal", generator=g))
    assert abs(float(sig.log().mean()) + 1.2) < 0.05 and abs(float(sig.log().std()) - 1.2) < 0.05
