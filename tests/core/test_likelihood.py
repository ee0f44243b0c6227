import torch

from moldiff.core import EDMSchedule, bits_per_dim, pf_ode_log_likelihood

from .helpers import dense_problem, graph_problem


def test_pf_ode_likelihood_matches_the_gaussian_density_exact_trace():
    oracle = dense_problem(5, dim=4)
    g = torch.Generator().manual_seed(0)
    x0 = oracle.sample(6, g)
    space = oracle.space(6)
    ll = pf_ode_log_likelihood(oracle, x0, space, sigma_min=1e-3, sigma_max=300.0, num_steps=200, trace="exact")
    ref = oracle.log_density(x0, sigma=1e-3)
    rel = ((ll - ref).abs() / ref.abs()).max()
    assert float(rel) < 0.01, (ll, ref)


def test_pf_ode_likelihood_on_zero_com_graphs():
    """Density on the (N-1)*3 + K*N dimensional space: exact trace for small graphs."""
    space, oracle = graph_problem([3, 4, 6], seed=2, feature_width=1)
    oracle.variance = torch.tensor(0.7, dtype=torch.float64)  # scalar variance: closed-form density
    x0 = oracle.sample(torch.Generator().manual_seed(3))
    ll = pf_ode_log_likelihood(oracle, x0, space, sigma_min=1e-3, sigma_max=300.0, num_steps=200, trace="exact")
    ref = oracle.log_density(x0, sigma=1e-3)
    assert float(((ll - ref).abs() / ref.abs()).max()) < 0.01, (ll, ref)


def test_hutchinson_estimate_is_unbiased():
    oracle = dense_problem(6, dim=5)
    g = torch.Generator().manual_seed(1)
    x0 = oracle.sample(1, g).expand(2000, 5).clone()
    space = oracle.space(2000)
    ll = pf_ode_log_likelihood(oracle, x0, space, schedule=EDMSchedule(0.001, 300.0), num_steps=200, generator=g)
    ref = oracle.log_density(x0[:1], sigma=1e-3)
    assert float((ll.mean() - ref).abs() / ref.abs()) < 0.01
    assert float(ll.std()) > 0  # it is an estimate: probes differ per item
    assert float(ll.std()) / 2000**0.5 < 0.005 * float(ref.abs())  # the 1% check above is 2 standard errors wide
    bpd = bits_per_dim(ll, space)
    assert torch.allclose(bpd, -ll / (5 * torch.log(torch.tensor(2.0, dtype=torch.float64))))
