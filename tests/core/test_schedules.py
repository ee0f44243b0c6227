import math

import pytest
import torch

from moldiff.core import (
    TIME_GRIDS,
    DiscreteVPSchedule,
    EDMSchedule,
    FlowSchedule,
    VESchedule,
    VPSchedule,
    make_schedule,
    sampling_sigmas,
)

SCHEDULES = {
    "vp_linear": VPSchedule("linear"),
    "vp_cosine": VPSchedule("cosine"),
    "ddpm_linear": DiscreteVPSchedule.linear_beta(1000),
    "ddpm_cosine": DiscreteVPSchedule.cosine(1000),
    "edm_polynomial": DiscreteVPSchedule.polynomial(1000, power=2, precision=1e-5),
    "ve": VESchedule(),
    "edm": EDMSchedule(),
    "flow": FlowSchedule(),
}


@pytest.mark.parametrize("name", SCHEDULES)
def test_log_snr_is_strictly_decreasing_and_inverts(name):
    s = SCHEDULES[name]
    t = torch.linspace(s.t_min, s.t_max, 2001, dtype=torch.float64)
    lam = s.log_snr(t)
    assert bool((torch.diff(lam) < 0).all())
    assert torch.allclose(s.t_from_log_snr(lam), t, atol=1e-9, rtol=1e-7)
    ve = s.ve_sigma(t)
    assert bool((torch.diff(ve) > 0).all())
    assert torch.allclose(s.t_from_ve_sigma(ve), t, atol=1e-9, rtol=1e-7)


@pytest.mark.parametrize("name", SCHEDULES)
def test_alpha_sigma_agree_with_log_snr(name):
    s = SCHEDULES[name]
    t = torch.linspace(s.t_min, s.t_max, 101, dtype=torch.float64)
    a, sig = s.alpha(t), s.sigma(t)
    assert torch.allclose(2 * torch.log(a / sig), s.log_snr(t), atol=1e-8, rtol=1e-8)
    assert torch.allclose(sig / a, s.ve_sigma(t), rtol=1e-10)
    if s.variance_preserving:
        assert torch.allclose(a**2 + sig**2, torch.ones_like(a), atol=1e-12)


def test_discrete_schedules_match_their_definitions():
    ddpm = DiscreteVPSchedule.linear_beta(1000)
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    assert torch.allclose(ddpm.alpha_bar(), torch.cumprod(1 - betas, 0), rtol=1e-12)
    # table points are hit exactly by the interpolating log-SNR
    k = torch.tensor([1, 10, 500, 1000])
    assert torch.allclose(ddpm.alpha(k.double() / 1000) ** 2, torch.cumprod(1 - betas, 0)[k - 1], rtol=1e-10)


def test_edm_polynomial_schedule_end_points():
    s = DiscreteVPSchedule.polynomial(1000, power=2, precision=1e-5)
    a2 = s.alpha_bar()
    assert a2.numel() == 1001
    # precision keeps both ends strictly inside (0, 1): alpha^2(0) = 1 - 1e-5, alpha^2(T) ~ 1e-5
    assert math.isclose(float(a2[0]), 1 - 1e-5, rel_tol=0, abs_tol=1e-9)
    assert float(a2[-1]) < 2e-5
    # the shape is (1 - (t)^2)^2 away from the clipped end
    x = 500 * 1001 / 1000 / 1001  # EDM grid: x_k = k (T+1)/T over T+1
    assert math.isclose(float(a2[500]), (1 - 2e-5) * (1 - x**2) ** 2 + 1e-5, rel_tol=1e-6)


@pytest.mark.parametrize("grid", sorted(TIME_GRIDS))
@pytest.mark.parametrize("name", ["edm_polynomial", "vp_linear", "edm", "flow"])
def test_sampling_grids_are_decreasing_and_span_the_schedule(grid, name):
    s = SCHEDULES[name]
    sig = sampling_sigmas(s, 17, grid)
    assert sig.shape == (18,) and float(sig[-1]) == 0.0
    assert bool((torch.diff(sig) < 0).all())
    assert math.isclose(float(sig[0]), s.sigma_max, rel_tol=1e-6)
    assert math.isclose(float(sig[-2]), s.sigma_min, rel_tol=1e-6)


def test_any_number_of_steps_for_a_discrete_schedule():
    s = DiscreteVPSchedule.polynomial(1000)
    for n in (1, 7, 50, 1000, 2500):
        sig = sampling_sigmas(s, n, "uniform")
        assert sig.numel() == n + 1


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="unknown noise schedule 'cosinus'"):
        make_schedule("cosinus")
    with pytest.raises(ValueError, match="unknown time grid"):
        sampling_sigmas(EDMSchedule(), 10, "exponential-ish")
