"""Every sampler against closed-form Gaussian answers, on dense and packed-graph batches."""

import pytest
import torch

from moldiff.core import (
    SAMPLERS,
    EDMSchedule,
    EuclideanSpace,
    count_denoiser_calls,
    get_sampler,
    initial_noise,
    karras_sigmas,
    sampling_sigmas,
)
from moldiff.testing.gaussian import assert_convergence_order, observed_orders, sampler_errors

from .helpers import com, dense_problem, graph_problem

SCHEDULE = EDMSchedule(sigma_min=0.002, sigma_max=80.0)

# (sampler name, options, steps): first-order and stochastic samplers need more steps to reach
# the tolerance (their error falls like 1/steps), second-order ones far fewer
CASES = [
    ("ddpm", {}, 400),
    ("ddim", {"eta": 0.0}, 150),
    ("ddim", {"eta": 0.5}, 150),
    ("euler", {}, 200),
    ("heun", {}, 30),
    ("heun", {"s_churn": 10.0, "s_tmin": 0.05, "s_tmax": 10.0}, 60),
    ("heun_steered", {}, 60),  # no potential: Heun with churn 10 at every step
    ("dpmpp_2m", {}, 30),
    ("euler_maruyama", {}, 500),
    ("pc", {"snr": 0.16, "corrector_steps": 1}, 150),
    ("pf_ode", {}, 15),
]
IDS = [f"{n}-{'-'.join(f'{k}{v}' for k, v in o.items())}" for n, o, _ in CASES]


def test_every_registered_sampler_is_covered():
    assert {c[0] for c in CASES} | {"ancestral"} == set(SAMPLERS)


@pytest.mark.parametrize("name,options,steps", CASES, ids=IDS)
def test_dense_samples_match_the_target_gaussian(name, options, steps):
    oracle = dense_problem(0, dim=3)
    n = 4000
    g = torch.Generator().manual_seed(11)
    space = oracle.space(n)
    sigmas = sampling_sigmas(SCHEDULE, steps, "karras")
    x = initial_noise(space, float(sigmas[0]), generator=g)
    out = get_sampler(name)(oracle, x, sigmas, space, generator=g, **options)
    mean_err = (out.mean(0) - oracle.mean).norm() / oracle.cov.diagonal().sum().sqrt()
    cov_err = (torch.cov(out.T) - oracle.cov).norm() / oracle.cov.norm()
    assert float(mean_err) < 0.05, f"{name}: mean off by {float(mean_err):.3f}"
    assert float(cov_err) < 0.08, f"{name}: covariance off by {float(cov_err):.3f}"


@pytest.mark.parametrize("name,options,steps", CASES, ids=IDS)
def test_graph_samples_match_the_target_and_keep_zero_com_every_step(name, options, steps):
    g = torch.Generator().manual_seed(5)
    sizes = torch.randint(3, 9, (1000,), generator=g).tolist()
    space, oracle = graph_problem(sizes, seed=1)
    sigmas = sampling_sigmas(SCHEDULE, steps, "karras")
    worst = []

    def check(info):
        worst.append(float(com(info["x"], space).abs().max()))

    x = initial_noise(space, float(sigmas[0]), generator=g, dtype=torch.float64)
    out = get_sampler(name)(oracle, x, sigmas, space, generator=g, callback=check, **options)
    assert len(worst) == steps and max(worst) < 1e-5, f"centre of mass drifted to {max(worst):.2e}"

    resid = out - oracle.mean
    pos_space, feat_space = space.blocks
    pos, feat = resid[:, :3], resid[:, 3:]
    # variance per degree of freedom: 0.5 for positions ((N-1)*3 dof), 2.0 for features
    pos_var = float(pos_space.sum_per_item(pos**2).sum() / pos_space.dof.sum())
    feat_var = float(feat_space.sum_per_item(feat**2).sum() / feat_space.dof.sum())
    assert abs(pos_var - 0.5) < 0.06 * 0.5, pos_var
    assert abs(feat_var - 2.0) < 0.06 * 2.0, feat_var
    assert float(feat.mean(0).abs().max()) < 0.05
    # per-node variance v (n - 1) / n for graphs of n nodes: the zero-CoM constraint at work
    n = pos_space.num_nodes.to(torch.float64)[pos_space.batch]
    node_var = (pos**2).sum(-1) / 3 / (0.5 * (n - 1) / n)
    for size in (3, 8):
        assert abs(float(node_var[n == size].mean()) - 1.0) < 0.1


def _grid(n):
    return karras_sigmas(n + 1, 0.05, 20.0, rho=7.0)


@pytest.mark.parametrize("name,order", [("euler", 1), ("ddim", 1), ("heun", 2), ("dpmpp_2m", 2), ("pf_ode", 4)])
def test_ode_samplers_converge_at_their_order(name, order):
    oracle = dense_problem(2, dim=3)
    space = oracle.space(16)
    g = torch.Generator().manual_seed(0)
    x_init = torch.randn(16, 3, generator=g, dtype=torch.float64) * 20.0
    steps = (8, 16, 32, 64) if order < 4 else (4, 8, 16, 32)
    orders = assert_convergence_order(
        get_sampler(name), oracle, x_init, space, _grid, order, steps=steps, tolerance=0.3
    )
    # error divides by about 2 (Euler) or 4 (Heun, DPM-Solver++(2M)) per doubling
    assert abs(2 ** orders[-1] - 2**order) < 0.25 * 2**order


def test_convergence_on_graphs_too():
    space, oracle = graph_problem([3, 5, 9], seed=4)
    g = torch.Generator().manual_seed(1)
    x_init = space.randn(generator=g, dtype=torch.float64) * 20.0
    errs = sampler_errors(get_sampler("heun"), oracle, x_init, space, _grid, (16, 32, 64))
    assert abs(observed_orders(errs)[-1] - 2) < 0.3


def test_samplers_are_pure_functions_of_their_generator():
    oracle = dense_problem(0, dim=3)
    space = oracle.space(32)
    sigmas = sampling_sigmas(SCHEDULE, 10)
    outs = []
    for _ in range(2):
        g = torch.Generator().manual_seed(7)
        x = initial_noise(space, float(sigmas[0]), generator=g)
        outs.append(get_sampler("ddpm")(oracle, x, sigmas, space, generator=g))
    assert torch.equal(outs[0], outs[1])


def test_a_sampler_works_on_images_unchanged():
    """The same function serves a [B, C, H, W] batch: the space does the broadcasting."""
    mean = torch.linspace(-1, 1, 2 * 4 * 4, dtype=torch.float64).reshape(2, 4, 4)
    oracle_flat = dense_problem(1, dim=2 * 4 * 4)
    oracle_flat.mean = mean.reshape(-1)
    space = EuclideanSpace((500, 2, 4, 4), dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    sigmas = sampling_sigmas(SCHEDULE, 25)
    x = initial_noise(space, float(sigmas[0]), generator=g)
    out = get_sampler("dpmpp_2m")(oracle_flat, x, sigmas, space, generator=g)
    assert out.shape == (500, 2, 4, 4)
    assert float((out.mean(0) - mean).abs().max()) < 0.25


def test_denoiser_call_counts():
    sigmas = sampling_sigmas(SCHEDULE, 10)
    for name, expected in [("euler", 10), ("heun", 19), ("dpmpp_2m", 10), ("pf_ode", 37), ("pc", 20)]:
        calls = []
        oracle = dense_problem(0, dim=3)

        def counting(x, s, calls=calls, oracle=oracle, **kw):
            calls.append(1)
            return oracle(x, s)

        space = oracle.space(4)
        get_sampler(name)(counting, space.randn() * 80, sigmas, space, generator=torch.Generator().manual_seed(0))
        assert len(calls) == expected == count_denoiser_calls(name, sigmas), name


def test_bad_grids_and_names_are_refused():
    oracle = dense_problem(0, dim=3)
    space = oracle.space(2)
    with pytest.raises(ValueError, match="non-increasing"):
        get_sampler("euler")(oracle, space.randn(), torch.tensor([1.0, 2.0, 0.0]), space)
    with pytest.raises(ValueError, match="unknown sampler 'eular'"):
        get_sampler("eular")
