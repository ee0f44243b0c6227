"""Particle steering (Feynman-Kac resampling) and the spaces' item copies it rests on."""

import pytest
import torch

from moldiff.core import (
    EDMSchedule,
    EuclideanSpace,
    GraphSpace,
    ProductSpace,
    best_particles,
    get_sampler,
    initial_noise,
    resample_particles,
    sampling_sigmas,
)

from .helpers import dense_problem

SCHEDULE = EDMSchedule(sigma_min=0.002, sigma_max=80.0)


def test_take_items_copies_whole_items_in_every_space():
    x = torch.arange(12.0).reshape(4, 3)
    assert torch.equal(EuclideanSpace.like(x).take_items(x, torch.tensor([2, 2, 0, 1])), x[[2, 2, 0, 1]])
    batch = torch.tensor([0, 0, 1, 1, 1, 2, 2, 3, 3, 3])  # sizes 2, 3, 2, 3
    graph = GraphSpace(batch, 2, 4)
    y = torch.arange(20.0).reshape(10, 2)
    out = graph.take_items(y, torch.tensor([2, 3, 0, 1]))  # swap the two 2-node and the two 3-node graphs
    assert torch.equal(out, torch.cat([y[5:7], y[7:10], y[0:2], y[2:5]]))
    both = ProductSpace([graph, graph.with_width(1)])
    z = torch.arange(30.0).reshape(10, 3)
    assert torch.equal(both.take_items(z, torch.tensor([0, 3, 0, 1])), torch.cat([z[0:2], z[7:10], z[0:2], z[2:5]]))
    with pytest.raises(ValueError, match="same number of nodes"):
        graph.take_items(y, torch.tensor([1, 1, 2, 3]))  # a 3-node graph into a 2-node slot


def test_resampling_stays_in_each_group_and_follows_the_weights():
    g = torch.Generator().manual_seed(0)
    log_w = torch.tensor([0.0, float("-inf"), float("-inf"), float("-inf"), 0.0, 0.0, 0.0, 0.0])
    index = resample_particles(log_w, 4, [g, g])
    assert index[:4].tolist() == [0, 0, 0, 0]  # only particle 0 has weight in group 0
    assert set(index[4:].tolist()) <= {4, 5, 6, 7}
    weights = torch.log(torch.tensor([0.1, 0.2, 0.3, 0.4]))
    counts = torch.zeros(4)
    for _ in range(500):
        counts += torch.bincount(resample_particles(weights, 4, [g]), minlength=4)
    assert torch.allclose(counts / counts.sum(), torch.tensor([0.1, 0.2, 0.3, 0.4]), atol=0.02)
    assert best_particles(torch.tensor([0.0, 3.0, 1.0, 5.0, 4.0, 2.0]), 3).tolist() == [1, 3]


def _steered_mean_error(particles: int, tilt: torch.Tensor, oracle) -> tuple[float, float]:
    g = torch.Generator().manual_seed(3)
    space = oracle.space(400 * particles)
    sigmas = sampling_sigmas(SCHEDULE, 60, "karras")
    x = initial_noise(space, float(sigmas[0]), generator=g)
    out = get_sampler("heun_steered")(
        oracle, x, sigmas, space, generator=g, log_potential=lambda d: d @ tilt, particles=particles, resample_every=3
    )
    target = oracle.mean + oracle.cov @ tilt  # N(mu, S) times exp(b . x) is N(mu + S b, S)
    cov_error = (torch.cov(out.T) - oracle.cov).norm() / oracle.cov.norm()
    return float((out.mean(0) - target).norm()), float(cov_error)


def test_steering_converges_to_the_tilted_gaussian_as_particles_grow():
    """Feynman-Kac steering by G(x) = b . x targets p(x) exp(G(x)): for a Gaussian, the mean
    shifts by S b and the covariance stays; the error of the particle approximation falls with K."""
    oracle = dense_problem(0, dim=3)
    tilt = torch.tensor([1.0, -0.5, 0.5], dtype=torch.float64)
    shift = float((oracle.cov @ tilt).norm())
    errors = [_steered_mean_error(k, tilt, oracle) for k in (1, 4, 64)]
    assert errors[0][0] > 0.9 * shift  # one particle: no steering, the untilted mean
    assert errors[0][0] > errors[1][0] > errors[2][0]
    assert errors[2][0] < 0.05 * shift and errors[2][1] < 0.05, errors


def test_steering_refuses_particles_that_do_not_divide_the_batch():
    oracle = dense_problem(0, dim=3)
    space = oracle.space(10)
    with pytest.raises(ValueError, match="groups of particles=4"):
        get_sampler("heun_steered")(oracle, torch.zeros(10, 3), sampling_sigmas(SCHEDULE, 4), space, particles=4)
