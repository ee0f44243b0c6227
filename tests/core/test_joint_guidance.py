"""Guidance of joint (continuous + categorical) denoisers against closed forms: classifier-free
guidance of every block (scale 1 is the conditional sampler, scale 0 the unconditional one, exactly),
and gradient guidance of the continuous blocks."""

import math

import pytest
import torch

from moldiff.core import (
    CategoricalSpace,
    FlowSchedule,
    JointSpace,
    get_sampler,
    guided_logits,
    guided_prediction,
    joint_classifier_free_guidance,
    joint_gradient_guidance,
    joint_times,
    zero_com_space,
)
from moldiff.testing.categorical import CategoricalTableOracle

SAMPLERS = [("joint_euler", {}), ("joint_euler", {"eta": 1.0}), ("joint_heun", {}), ("joint_ancestral", {})]
IDS = ["euler", "euler-eta", "heun", "ancestral"]


def _problem(num_graphs, seed=0):
    """Graphs of 3 nodes: one node variable of 3 classes per node (masking prior) and zero-CoM 3D
    coordinates; a conditional and an unconditional law (different correlated tables, different
    Gaussian means of one variance) with their exact posterior denoisers."""
    g = torch.Generator().manual_seed(seed)
    batch = torch.arange(num_graphs).repeat_interleave(3)
    pos = zero_com_space(batch, num_graphs, dtype=torch.float64)
    space = JointSpace({"pos": pos, "node": CategoricalSpace.over_nodes(batch, 3, num_graphs, prior="masking")})
    tables = [torch.exp(2.0 * torch.randn(3, 3, 3, generator=g, dtype=torch.float64)) for _ in range(2)]
    base = torch.randn(3, 3, generator=g, dtype=torch.float64)
    means = [base.repeat(num_graphs, 1), (base + 1.5).repeat(num_graphs, 1)]
    uncond, cond = (CategoricalTableOracle(space, t, {"pos": (m, 0.4)}) for t, m in zip(tables, means))

    def denoiser(state, t, label=None, **_):
        return (cond if label == 1 else uncond)(state, t)

    return space, denoiser, cond, uncond


@pytest.mark.parametrize("name,options", SAMPLERS, ids=IDS)
def test_scale_one_is_the_conditional_sampler_and_scale_zero_the_unconditional(name, options):
    space, denoiser, _, _ = _problem(64)
    times = joint_times(12)

    def run(fn, **kw):
        g = torch.Generator().manual_seed(7)
        return get_sampler(name)(fn, space.prior(g, dtype=torch.float64), times, space, generator=g, **options, **kw)

    for self_condition in (False, True):
        kw = {"self_condition": self_condition}
        conditional = run(lambda s, t, **e: denoiser(s, t, label=1, **e), **kw)
        unconditional = run(lambda s, t, **e: denoiser(s, t, label=0, **e), **kw)
        for scale, expected in ((1.0, conditional), (0.0, unconditional)):
            guided = joint_classifier_free_guidance(denoiser, space, scale, {"label": 1}, {"label": 0})
            out = run(guided, **kw)
            assert torch.equal(out["node"], expected["node"]), (scale, self_condition)
            torch.testing.assert_close(out["pos"], expected["pos"], atol=1e-12, rtol=0)
        assert not torch.equal(conditional["node"], unconditional["node"])  # the two laws differ


def test_the_guided_prediction_has_its_closed_form():
    space, denoiser, _, _ = _problem(5)
    g = torch.Generator().manual_seed(1)
    state = space.noise(
        {"pos": space.blocks["pos"].randn(g, torch.float64), "node": torch.randint(0, 3, (15,), generator=g)},
        torch.full((5,), 0.6, dtype=torch.float64),
        g,
    )
    t = torch.full((5,), 0.6, dtype=torch.float64)
    assert 0 < int((state["node"] == 3).sum()) < 15
    c, u = denoiser(state, t, label=1), denoiser(state, t, label=0)
    for w in (0.0, 0.5, 1.0, 3.0):
        out = guided_prediction(c, u, w, space)
        masked = state["node"] == 3  # unmasked variables have a one-hot posterior (zeros: no power law)
        pc, pu = c["node"].softmax(-1)[masked], u["node"].softmax(-1)[masked]
        tilted = pc**w * pu ** (1 - w)
        torch.testing.assert_close(out["node"][masked].exp(), tilted / tilted.sum(-1, keepdim=True))
        torch.testing.assert_close(out["node"], guided_logits(c["node"], u["node"], w))
        torch.testing.assert_close(out["pos"], u["pos"] + w * (c["pos"] - u["pos"]))
        # guiding x0 guides the flow's velocity (x - D) / t the same way
        v = {k: space.velocity(state, p, 0.6)["pos"] for k, p in (("c", c), ("u", u), ("w", out))}
        torch.testing.assert_close(v["w"], v["u"] + w * (v["c"] - v["u"]))
    torch.testing.assert_close(guided_prediction(c, u, 1.0, space)["node"], torch.log_softmax(c["node"], -1))
    torch.testing.assert_close(guided_prediction(c, u, 0.0, space)["node"], torch.log_softmax(u["node"], -1))


def test_guidance_moves_the_gaussian_block_to_the_extrapolated_mean():
    """One shared variance: ``D_u + w (D_c - D_u)`` is the exact denoiser of ``N(m_u + w (m_c - m_u), v)``,
    so the guided sampler's coordinates have that mean (the categorical block rides along)."""
    space, denoiser, cond, uncond = _problem(3000)
    m_c, m_u = cond.gaussians["pos"][0], uncond.gaussians["pos"][0]
    for w in (0.0, 2.0):
        g = torch.Generator().manual_seed(3)
        guided = joint_classifier_free_guidance(denoiser, space, w, {"label": 1}, {"label": 0})
        out = get_sampler("joint_euler")(
            guided, space.prior(g, dtype=torch.float64), joint_times(40), space, generator=g
        )
        target = m_u + w * (m_c - m_u)
        assert float((out["pos"] - target).reshape(3000, 3, 3).mean(0).abs().max()) < 0.06
        assert int(out["node"].max()) < 3


def _gradient_setup():
    space, denoiser, _, _ = _problem(4, seed=2)
    g = torch.Generator().manual_seed(5)
    y = space.blocks["pos"].project(torch.randn(12, 3, generator=g, dtype=torch.float64))
    tau = 0.7

    def log_likelihood(pred, t):
        return -space.blocks["pos"].sum_per_item((pred["pos"] - y) ** 2) / (2 * tau**2)

    def state_at(t):
        clean = {"pos": space.blocks["pos"].randn(g, torch.float64), "node": torch.randint(0, 3, (12,), generator=g)}
        return space.noise(clean, torch.full((4,), t, dtype=torch.float64), g)

    return space, (lambda s, t, **e: denoiser(s, t, label=1, **e)), log_likelihood, y, tau, state_at


def test_gradient_guidance_shifts_the_clean_coordinates_by_tweedie():
    space, denoiser, log_likelihood, y, tau, state_at = _gradient_setup()
    pos = space.blocks["pos"]
    t = 0.3
    state, tt = state_at(t), torch.full((4,), t, dtype=torch.float64)
    plain = denoiser(state, tt)
    alpha, sigma = (f(torch.tensor(t, dtype=torch.float64)) for f in (FlowSchedule().alpha, FlowSchedule().sigma))
    sigma_ve = float(sigma / alpha)
    grad_x0 = -(plain["pos"] - y) / tau**2
    # gradient with respect to x0_hat only: D' = D + w sigma_VE^2 P grad_x0
    shallow = joint_gradient_guidance(denoiser, space, log_likelihood, 2.0, through_denoiser=False)(state, tt)
    torch.testing.assert_close(shallow["pos"], plain["pos"] + 2.0 * sigma_ve**2 * pos.project(grad_x0))
    assert torch.equal(shallow["node"], plain["node"])  # categorical blocks as predicted
    # through the (affine) exact denoiser: grad_x = k grad_x0 with k = alpha v / (alpha^2 v + sigma^2),
    # and D' = D + w (sigma^2 / alpha) grad_x
    k = float(alpha * 0.4 / (alpha**2 * 0.4 + sigma**2))
    deep = joint_gradient_guidance(denoiser, space, log_likelihood, 2.0)(state, tt)
    torch.testing.assert_close(deep["pos"], plain["pos"] + 2.0 * float(sigma**2 / alpha) * k * pos.project(grad_x0))
    assert float(pos.node_mean(deep["pos"]).abs().max()) < 1e-12  # zero centre of mass kept


def test_gradient_guidance_window_and_trust_region():
    space, denoiser, log_likelihood, _, _, state_at = _gradient_setup()
    pos = space.blocks["pos"]
    for t, sigma_max in ((1.0, None), (0.6, 1.0)):  # alpha = 0; sigma_VE = 1.5 > 1: no guidance
        state, tt = state_at(t), torch.full((4,), t, dtype=torch.float64)
        out = joint_gradient_guidance(denoiser, space, log_likelihood, 5.0, sigma_max=sigma_max)(state, tt)
        torch.testing.assert_close(out["pos"], denoiser(state, tt)["pos"])
    t = 0.4
    state, tt = state_at(t), torch.full((4,), t, dtype=torch.float64)
    sigma_ve = t / (1 - t)
    bounded = joint_gradient_guidance(denoiser, space, log_likelihood, 50.0, max_step=0.1, sigma_max=1.0)(state, tt)
    step = bounded["pos"] - denoiser(state, tt)["pos"]
    rms = pos.mean_per_item(step**2).sqrt()
    assert bool((rms <= 0.1 * sigma_ve * (1 + 1e-9)).all()) and float(rms.min()) > 0.99 * 0.1 * sigma_ve
    with pytest.raises(ValueError, match="continuous blocks"):
        joint_gradient_guidance(denoiser, space, log_likelihood, blocks=["node"])


def test_gradient_guided_sampling_pulls_the_coordinates_towards_the_target():
    space, denoiser, log_likelihood, y, _, _ = _gradient_setup()
    pos = space.blocks["pos"]
    g = torch.Generator().manual_seed(0)
    plain = get_sampler("joint_euler")(
        denoiser, space.prior(g, dtype=torch.float64), joint_times(30), space, generator=g
    )
    g = torch.Generator().manual_seed(0)
    guided_fn = joint_gradient_guidance(denoiser, space, log_likelihood, 1.0, max_step=1.0, sigma_max=1.0)
    guided = get_sampler("joint_euler")(
        guided_fn, space.prior(g, dtype=torch.float64), joint_times(30), space, generator=g
    )

    def distance(x):
        return float(pos.sum_per_item((x["pos"] - y) ** 2).sum())

    assert math.isfinite(distance(guided)) and distance(guided) < 0.8 * distance(plain)
    assert float(pos.node_mean(guided["pos"]).abs().max()) < 1e-10
