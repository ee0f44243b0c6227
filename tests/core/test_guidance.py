import torch

from moldiff.core import (
    EDMSchedule,
    classifier_free_guidance,
    get_sampler,
    gradient_guidance,
    initial_noise,
    inpainting,
    sampling_sigmas,
)
from moldiff.testing.gaussian import DenseGaussianOracle

from .helpers import com, dense_problem, graph_problem

SCHEDULE = EDMSchedule()


def _cond_oracle(mean_shift):
    cov = torch.eye(2, dtype=torch.float64) * 0.5
    return DenseGaussianOracle(torch.tensor([mean_shift, 0.0], dtype=torch.float64), cov)


def test_classifier_free_guidance_interpolates_and_extrapolates():
    """Two Gaussian 'classes' with the same covariance: D_u + w (D_c - D_u) moves the sampled mean
    linearly in w (exactly, for shared covariance); w = 1 reproduces the conditional model."""
    cond, uncond = _cond_oracle(2.0), _cond_oracle(0.0)

    def denoiser(x, sigma, label=None):
        return (cond if label == 1 else uncond)(x, sigma)

    space = cond.space(4000)
    sigmas = sampling_sigmas(SCHEDULE, 25)
    means = {}
    for w in (0.0, 1.0, 2.0):
        g = torch.Generator().manual_seed(0)
        guided = classifier_free_guidance(denoiser, space, w, {"label": 1}, {"label": 0})
        x = initial_noise(space, float(sigmas[0]), generator=g)
        means[w] = float(get_sampler("heun")(guided, x, sigmas, space, generator=g)[:, 0].mean())
    assert abs(means[0.0] - 0.0) < 0.05 and abs(means[1.0] - 2.0) < 0.05 and abs(means[2.0] - 4.0) < 0.1


def test_cfg_rescale_restores_the_conditional_spread():
    cond, uncond = _cond_oracle(2.0), _cond_oracle(0.0)
    space = cond.space(8)
    x = torch.randn(8, 2, dtype=torch.float64)
    sigma = torch.full((8,), 0.3, dtype=torch.float64)

    def denoiser(x, s, label=None):
        return (cond if label == 1 else uncond)(x, s)

    d_c = denoiser(x, sigma, 1)
    plain = classifier_free_guidance(denoiser, space, 5.0, {"label": 1}, {"label": 0})(x, sigma)
    full = classifier_free_guidance(denoiser, space, 5.0, {"label": 1}, {"label": 0}, rescale=1.0)(x, sigma)

    def std(v):
        return (v - v.mean(1, keepdim=True)).pow(2).mean(1).sqrt()

    assert torch.allclose(std(full), std(d_c), rtol=1e-6)
    assert not torch.allclose(std(plain), std(d_c), rtol=1e-2)


def test_gradient_guidance_with_the_exact_predictive_likelihood_samples_the_posterior():
    """Prior N(m, C), observation y = x[0] + noise of variance r. For Gaussian data
    p(y | x_t) = N(y; E[x0 | x_t]_0, r + Var[x0 | x_t]_00) with Var[x0 | x_t] = s^2 C (C + s^2)^-1, so
    guiding by the gradient of that log-likelihood of the predicted clean sample is exact: the samples
    must follow the Kalman posterior N(m + C e0 (y - m0) / (C00 + r), C - C e0 e0^T C / (C00 + r))."""
    prior = dense_problem(1, dim=2)
    y, r = 3.0, 0.2
    space = prior.space(4000)
    lam, vecs = prior.eigvals, prior.eigvecs

    def log_lik(x0_hat, sigma):
        s2 = sigma.double()[:, None] ** 2
        post_var_00 = ((vecs[0] ** 2) * lam * s2 / (lam + s2)).sum(-1)
        return -0.5 * (x0_hat[:, 0] - y) ** 2 / (r + post_var_00)

    guided = gradient_guidance(prior, space, log_lik, scale=1.0)
    g = torch.Generator().manual_seed(2)
    sigmas = sampling_sigmas(SCHEDULE, 40)
    out = get_sampler("heun")(guided, initial_noise(space, float(sigmas[0]), generator=g), sigmas, space, generator=g)
    c = prior.cov
    gain = c[:, 0] / (c[0, 0] + r)
    post_mean = prior.mean + gain * (y - prior.mean[0])
    post_cov = c - torch.outer(gain, c[0])
    assert float((out.mean(0) - post_mean).abs().max()) < 0.05
    assert float((torch.cov(out.T) - post_cov).abs().max()) < 0.08 * float(post_cov.abs().max())
    # the guidance really moved the samples: the prior mean is far from the posterior mean
    assert float((prior.mean - post_mean).abs().max()) > 0.5


def test_inpainting_keeps_a_motif_fixed_on_graphs_with_zero_com():
    space, oracle = graph_problem([6, 9, 12], seed=3)
    g = torch.Generator().manual_seed(4)
    known = torch.randn(space.shape, generator=g, dtype=torch.float64) * 2
    mask = torch.zeros(space.shape[0], 1, dtype=torch.bool)
    mask[[0, 1, 2, 6, 7, 8, 9, 15, 16]] = True  # motif nodes in each graph
    guided = inpainting(oracle, space, known, mask, generator=g)
    sigmas = sampling_sigmas(SCHEDULE, 30)
    for name in ("heun", "ddpm", "dpmpp_2m"):
        x = initial_noise(space, float(sigmas[0]), generator=g, dtype=torch.float64)
        out = get_sampler(name)(guided, x, sigmas, space, generator=g)
        assert float(com(out, space).abs().max()) < 1e-8
        # motif positions equal the known ones up to one translation per graph; features exactly
        diff = (out - known)[mask.squeeze(1)]
        pos_diff = diff[:, :3]
        graph_of = space.batch[mask.squeeze(1)]
        for b in range(3):
            d = pos_diff[graph_of == b]
            assert float((d - d.mean(0)).abs().max()) < 1e-8, name
        assert float(diff[:, 3:].abs().max()) < 1e-8


def test_gradient_guidance_trust_region_bounds_only_large_steps():
    """With ``max_step`` each item's step RMS is at most ``max_step * sigma``: a steep likelihood is
    cut to exactly the bound (direction kept), a gentle one passes unchanged, and the step stays in
    the space (zero centre of mass of the positions)."""
    space, problem = graph_problem([3, 5, 4])
    x = space.project(torch.randn(12, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    sigma = torch.tensor([0.5, 0.2, 1.0], dtype=torch.float64)
    target = torch.ones_like(x)

    def steep(x0_hat, s):
        return -1e3 * space.sum_per_item((x0_hat - target) ** 2)

    def gentle(x0_hat, s):
        return -1e-6 * space.sum_per_item((x0_hat - target) ** 2)

    base = problem(x, sigma)
    for log_lik, clipped in ((steep, True), (gentle, False)):
        free = gradient_guidance(problem, space, log_lik, through_denoiser=False)(x, sigma) - base
        bounded = gradient_guidance(problem, space, log_lik, through_denoiser=False, max_step=0.1)(x, sigma) - base
        rms, free_rms = (space.mean_per_item(v**2).sqrt() for v in (bounded, free))
        if clipped:
            assert torch.allclose(rms, 0.1 * sigma)
            assert torch.allclose(bounded / space.per_item(rms), free / space.per_item(free_rms))
        else:
            assert torch.allclose(bounded, free) and bool((free_rms < 0.1 * sigma).all())
        assert float(com(bounded, space).abs().max()) < 1e-10


def test_below_noise_level_guides_only_up_to_sigma_max():
    from moldiff.core import below_noise_level

    def plain(x, sigma):
        return x

    def guided(x, sigma):
        return x + 1

    windowed = below_noise_level(guided, plain, 0.5)
    x = torch.zeros(3)
    assert torch.equal(windowed(x, torch.full((3,), 0.5)), x + 1)  # at the bound: guided
    assert torch.equal(windowed(x, torch.full((3,), 0.6)), x)
    assert below_noise_level(guided, plain, None) is guided
