"""The categorical machinery against closed-form answers: exact posterior denoisers of small joint
laws, the samplers' exact output laws, noising marginals, loss gradients and pair indexing."""

import math

import pytest
import torch

from moldiff.core import (
    JOINT_SAMPLERS,
    CategoricalSchedule,
    CategoricalSpace,
    FlowSchedule,
    JointSpace,
    clipped_snr_weight,
    count_denoiser_calls,
    edge_id,
    edge_permutation,
    get_sampler,
    joint_loss,
    joint_loss_terms,
    joint_times,
    masking_elbo_weight,
    sample_categorical,
    upper_triangle_edges,
    velocity_weight,
    zero_com_space,
)
from moldiff.testing import random_permutation_within_graphs
from moldiff.testing.categorical import CategoricalTableOracle, exact_sampler_law, total_variation

PRIORS = ["masking", "uniform", "marginal"]
# (sampler, options, exact-law method of the categorical step)
SAMPLER_CASES = [
    ("joint_euler", {}, "euler"),
    ("joint_euler", {"eta": 1.0}, "euler"),
    ("joint_heun", {}, "euler"),
    ("joint_ancestral", {}, "posterior"),
]
CASE_IDS = [f"{n}{'-eta' if o else ''}" for n, o, _ in SAMPLER_CASES]


def _table(shape, seed=0, scale=2.0):
    """A peaked, strongly correlated joint law (its product of marginals is far from it)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.exp(scale * torch.randn(*shape, generator=g, dtype=torch.float64))
    return t / t.sum()


def _product_of_marginals(table):
    out = torch.ones((), dtype=torch.float64)
    for v in range(table.dim()):
        m = table.sum(dim=tuple(d for d in range(table.dim()) if d != v))
        out = out[..., None] * m
    return out.reshape(-1)


def _node_space(num_graphs, prior, marginal=None, nodes=3, classes=3):
    batch = torch.arange(num_graphs).repeat_interleave(nodes)
    return JointSpace({"node": CategoricalSpace.over_nodes(batch, classes, num_graphs, prior=prior, marginal=marginal)})


def _chi2_quantile(df, z=3.719):
    """Wilson-Hilferty approximation of the chi-square quantile (z = 3.719: p = 1e-4)."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def _chi2(counts, probs):
    """Pearson's statistic on the cells with expected count >= 5 (the rest pooled), and its dof."""
    n = counts.sum()
    expected = n * probs
    big = expected >= 5
    obs = torch.cat([counts[big], counts[~big].sum()[None]])
    exp = torch.cat([expected[big], expected[~big].sum()[None]])
    keep = exp > 0
    return float(((obs[keep] - exp[keep]) ** 2 / exp[keep]).sum()), int(keep.sum()) - 1


TABLE = _table((3, 3, 3))
MARGINAL = CategoricalTableOracle(_node_space(1, "uniform"), TABLE).marginal("node")


# ------------------------------------------------------------------------------------------------
# (1) every discrete sampler, for each prior, reaches the target law
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prior", PRIORS)
@pytest.mark.parametrize("name,options,method", SAMPLER_CASES, ids=CASE_IDS)
def test_discrete_samplers_reach_the_target_law(prior, name, options, method):
    """Three node variables with three classes and a correlated joint law, the exact posterior
    denoiser: 4000 samples of 64 steps land within TV 0.06 of the target (sampling noise about 0.02,
    discretisation error at most 0.02, from the exact law below), while the product of the
    marginals, which a sampler ignoring the correlations would produce, is 0.42 away, and a single
    step (all variables drawn at once from their marginals) is rejected too."""
    space = _node_space(4000, prior, MARGINAL)
    oracle = CategoricalTableOracle(space, TABLE)
    sampler = get_sampler(name)
    g = torch.Generator().manual_seed(1)
    out = sampler(oracle, space.prior(g), joint_times(64), space, generator=g, **options)
    assert int(out["node"].max()) < 3  # nothing left masked
    freq = oracle.empirical(out)
    assert total_variation(freq, oracle.probs) < 0.06
    assert total_variation(freq, _product_of_marginals(TABLE)) > 0.3  # a wrong target is rejected
    # the same sampler follows its own exact law: Pearson chi-square at p = 1e-4
    law = exact_sampler_law(
        CategoricalTableOracle(_node_space(1, prior, MARGINAL), TABLE), joint_times(64), method=method, **options
    )
    stat, df = _chi2(freq * 4000, law)
    assert stat < _chi2_quantile(df), (stat, df)
    one = sampler(oracle, space.prior(g), joint_times(1), space, generator=g, **options)
    assert total_variation(oracle.empirical(one), oracle.probs) > 0.3


@pytest.mark.parametrize("prior", PRIORS)
def test_node_and_pair_variables_of_packed_graphs_reach_their_joint_law(prior):
    """Graphs of 3 nodes: 3 node variables (2 classes) and 3 pair variables (2 classes) on the
    upper-triangle pairs, one correlated law over all six. The Euler sampler's samples follow its
    exact law (chi-square), which is within TV 0.03 of the target after 64 steps and 0.2 away in
    one step."""
    graphs = 3000
    batch = torch.arange(graphs).repeat_interleave(3)
    pairs = upper_triangle_edges(batch, graphs)
    assert pairs.shape == (2, 3 * graphs)
    table = _table((2,) * 6, seed=3, scale=1.5)

    def space_of(n, b, p):
        probe = JointSpace(
            {
                "node": CategoricalSpace.over_nodes(b, 2, n, prior="uniform"),
                "pair": CategoricalSpace.over_edges(p, b, 2, n, prior="uniform"),
            }
        )
        o = CategoricalTableOracle(probe, table)
        kw = {"node": {"marginal": o.marginal("node")}, "pair": {"marginal": o.marginal("pair")}}
        if prior != "marginal":
            kw = {"node": {}, "pair": {}}
        return JointSpace(
            {
                "node": CategoricalSpace.over_nodes(b, 2, n, prior=prior, **kw["node"]),
                "pair": CategoricalSpace.over_edges(p, b, 2, n, prior=prior, **kw["pair"]),
            },
            {"pair": CategoricalSchedule("cosine")},
        )

    space = space_of(graphs, batch, pairs)
    oracle = CategoricalTableOracle(space, table)
    g = torch.Generator().manual_seed(2)
    out = get_sampler("joint_euler")(oracle, space.prior(g), joint_times(64), space, generator=g)
    one_batch = torch.zeros(3, dtype=torch.long)
    small = CategoricalTableOracle(space_of(1, one_batch, upper_triangle_edges(one_batch, 1)), table)
    law = exact_sampler_law(small, joint_times(64))
    assert total_variation(law, small.probs) < 0.03
    assert total_variation(exact_sampler_law(small, joint_times(1)), small.probs) > 0.2
    stat, df = _chi2(oracle.empirical(out) * graphs, law)
    assert stat < _chi2_quantile(df), (stat, df)
    wrong, _ = _chi2(oracle.empirical(out) * graphs, _product_of_marginals(table))
    assert wrong > 5 * _chi2_quantile(df)


# ------------------------------------------------------------------------------------------------
# (2) the product with the zero-CoM space keeps zero CoM after every step
# ------------------------------------------------------------------------------------------------


def _independent_oracle(space, marginals, gaussian):
    """Exact denoiser when every categorical variable of block ``name`` is independent with law
    ``marginals[name]`` and the continuous block ``pos`` is ``N(mean, variance P)``."""
    mean, variance = gaussian

    def denoiser(state, t, **_):
        out = {}
        for name, m in marginals.items():
            block = space.blocks[name]
            q = block.noising_matrix(block.per_item(space.schedules[name].alpha(t.double())))  # [M, K, S]
            lik = q.gather(2, state[name][:, None, None].expand(-1, block.num_classes, 1)).squeeze(2)
            out[name] = torch.log(m) + torch.log(lik.clamp_min(1e-300))
        pos = space.blocks["pos"]
        a = pos.per_item(FlowSchedule().alpha(t.double()))
        s = pos.per_item(FlowSchedule().sigma(t.double()))
        out["pos"] = mean + a * variance / (a * a * variance + s * s) * (state["pos"] - a * mean)
        return out

    return denoiser


def _molecule_like_space(sizes, seed=0):
    g = torch.Generator().manual_seed(seed)
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    pairs = upper_triangle_edges(batch, len(sizes))
    m_node = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64)
    m_pair = torch.tensor([0.7, 0.2, 0.1], dtype=torch.float64)
    pos = zero_com_space(batch, len(sizes), dtype=torch.float64)
    space = JointSpace(
        {
            "pos": pos,
            "node": CategoricalSpace.over_nodes(batch, 4, len(sizes), prior="masking"),
            "pair": CategoricalSpace.over_edges(pairs, batch, 3, len(sizes), prior="marginal", marginal=m_pair),
        }
    )
    mean = pos.project(torch.randn(batch.numel(), 3, generator=g, dtype=torch.float64))
    return space, _independent_oracle(space, {"node": m_node, "pair": m_pair}, (mean, 0.5)), mean, (m_node, m_pair)


@pytest.mark.parametrize("name,options,_", SAMPLER_CASES, ids=CASE_IDS)
def test_the_product_with_zero_com_coordinates_keeps_zero_com_after_every_step(name, options, _):
    g = torch.Generator().manual_seed(4)
    sizes = torch.randint(3, 9, (300,), generator=g).tolist()
    space, denoiser, mean, (m_node, m_pair) = _molecule_like_space(sizes)
    pos = space.blocks["pos"]
    worst, seen = [], []

    def check(info):
        worst.append(float(pos.node_mean(info["x"]["pos"]).abs().max()))
        seen.append(info["t_next"])

    x = space.prior(g, dtype=torch.float64)
    x["pos"] = x["pos"] + 1.0  # off the subspace: the sampler projects its input
    out = get_sampler(name)(denoiser, x, joint_times(100), space, generator=g, callback=check, **options)
    assert len(worst) == 100 and max(worst) < 1e-10 and seen[-1] == 0.0
    # the joint state reached the target: coordinates N(mean, 0.5 P) (ancestral sampling is the
    # slowest to get there: 7% low in variance at 100 steps), classes with their marginals
    resid = out["pos"] - mean
    assert abs(float(pos.sum_per_item(resid**2).sum() / pos.dof.sum()) - 0.5) < 0.1 * 0.5
    node_freq = torch.bincount(out["node"], minlength=5).double() / out["node"].numel()
    pair_freq = torch.bincount(out["pair"], minlength=3).double() / out["pair"].numel()
    assert float(node_freq[4]) == 0.0  # no mask left
    assert float((node_freq[:4] - m_node).abs().max()) < 0.04
    assert float((pair_freq - m_pair).abs().max()) < 0.02


# ------------------------------------------------------------------------------------------------
# (3) few-step samplers converge as the steps grow
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prior", PRIORS)
@pytest.mark.parametrize("method,eta", [("euler", 0.0), ("euler", 1.0), ("posterior", 0.0)])
def test_the_exact_law_of_a_few_step_sampler_converges_at_first_order(prior, method, eta):
    """No sampling noise: the output law of the sampler is computed exactly. Its distance to the
    target falls with every doubling of the steps and halves at the end (first order: the
    per-variable steps are exact, the error is that variables move independently within a step);
    one step gives the product of the marginals."""
    oracle = CategoricalTableOracle(_node_space(1, prior, MARGINAL), TABLE)
    errors = [
        total_variation(exact_sampler_law(oracle, joint_times(n), method=method, eta=eta), oracle.probs)
        for n in (1, 2, 4, 8, 16, 32)
    ]
    assert abs(errors[0] - total_variation(_product_of_marginals(TABLE), oracle.probs)) < 1e-9
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
    assert 1.6 < errors[-2] / errors[-1] < 2.4, errors
    assert errors[-1] < 0.05


@pytest.mark.parametrize("name,order", [("joint_euler", 1), ("joint_heun", 2)])
def test_continuous_blocks_of_the_joint_samplers_converge_at_their_order(name, order):
    """Gaussian coordinates on zero-CoM graphs under the linear interpolant: the exact PF-ODE
    solution is ``x(t) = alpha(t) (m + sqrt((v + s(t)^2) / (v + s0^2)) (x0 / alpha0 - m))`` with
    ``s = t / (1 - t)``; Euler halves its error per doubling of the steps, Heun quarters it."""
    sizes = [3, 5, 9]
    batch = torch.repeat_interleave(torch.arange(3), torch.tensor(sizes))
    pos = zero_com_space(batch, 3, dtype=torch.float64)
    space = JointSpace({"pos": pos})
    g = torch.Generator().manual_seed(0)
    mean = pos.project(torch.randn(batch.numel(), 3, generator=g, dtype=torch.float64))
    v = 0.3
    sched = FlowSchedule()

    def denoiser(state, t, **_):
        a, s = pos.per_item(sched.alpha(t.double())), pos.per_item(sched.sigma(t.double()))
        return {"pos": mean + a * v / (a * a * v + s * s) * (state["pos"] - a * mean)}

    t0, t1 = 0.9, 0.05
    x0 = pos.randn(generator=g, dtype=torch.float64) * 2.0
    s0, s1 = t0 / (1 - t0), t1 / (1 - t1)
    exact = (1 - t1) * (mean + math.sqrt((v + s1**2) / (v + s0**2)) * (x0 / (1 - t0) - mean))
    errors = []
    for n in (8, 16, 32, 64):
        out = get_sampler(name)(denoiser, {"pos": x0.clone()}, joint_times(n, t_max=t0, t_min=t1), space)
        errors.append(float((out["pos"] - exact).abs().max()))
    observed = math.log2(errors[-2] / errors[-1])
    assert abs(observed - order) < 0.3, errors


# ------------------------------------------------------------------------------------------------
# (4) noising marginals
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("prior", PRIORS)
def test_noising_matches_its_closed_form(prior):
    """q_t(x_t | x_0) = alpha delta + (1 - alpha) p_0, per clean class, at three times; at t = 0
    nothing changes, at t = 1 the state is the prior."""
    marginal = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64)
    n = 20000
    batch = torch.arange(n)
    block = CategoricalSpace.over_nodes(batch, 3, n, prior=prior, marginal=marginal)
    schedule = CategoricalSchedule("polynomial", power=2.0)
    space = JointSpace({"v": block}, {"v": schedule})
    g = torch.Generator().manual_seed(0)
    x0 = torch.arange(n) % 3
    for t in (0.0, 0.3, 0.7, 1.0):
        xt = space.noise({"v": x0}, torch.full((n,), t, dtype=torch.float64), g)["v"]
        alpha = (1 - t) ** 2
        expected = alpha * torch.eye(3, block.num_states, dtype=torch.float64) + (1 - alpha) * block.prior_probs
        assert torch.allclose(block.noising_matrix(alpha), expected)
        for c in range(3):
            freq = torch.bincount(xt[x0 == c], minlength=block.num_states).double() / int((x0 == c).sum())
            assert float((freq - expected[c]).abs().max()) < 0.02, (t, c, freq, expected[c])
        if t == 0.0:
            assert torch.equal(xt, x0)


def test_continuous_noising_is_the_interpolant_in_the_subspace():
    sizes = [4, 7]
    batch = torch.repeat_interleave(torch.arange(2), torch.tensor(sizes))
    pos = zero_com_space(batch, 2, dtype=torch.float64)
    space = JointSpace({"pos": pos})
    x0 = pos.project(torch.randn(11, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    g = torch.Generator().manual_seed(2)
    draws = torch.stack(
        [space.noise({"pos": x0}, torch.tensor([0.4, 0.4], dtype=torch.float64), g)["pos"] for _ in range(4000)]
    )
    assert float(pos.node_mean(draws[0]).abs().max()) < 1e-12
    assert float((draws.mean(0) - 0.6 * x0).abs().max()) < 0.03
    # per-node variance t^2 (n - 1) / n from the zero-CoM noise
    n = pos.num_nodes[batch].double()
    assert float((draws.var(0).mean(-1) / (0.16 * (n - 1) / n) - 1).abs().max()) < 0.12


def test_transition_probabilities_are_distributions_and_the_last_step_samples_the_prediction():
    g = torch.Generator().manual_seed(0)
    for prior in PRIORS:
        block = CategoricalSpace(4, torch.zeros(50, dtype=torch.long), 1, prior=prior, marginal=torch.ones(4))
        x = torch.randint(0, block.num_states, (50,), generator=g)
        logits = torch.randn(50, 4, generator=g, dtype=torch.float64)
        for method, eta in (("euler", 0.0), ("euler", 3.0), ("posterior", 0.0)):
            for a, a_next in ((0.0, 0.2), (0.3, 0.5), (0.9, 0.99)):
                p = block.transition_probs(x, logits, a, a_next, method=method, eta=eta, dt=0.1)
                assert bool((p >= 0).all()) and torch.allclose(p.sum(-1), torch.ones(50, dtype=p.dtype))
            final = block.transition_probs(x, logits, 0.7, 1.0, method=method, eta=eta, dt=0.3)
            expected = block._embed(block.clean_probs(logits, x))
            assert torch.allclose(final, expected), (prior, method)
    # masking: an unmasked variable keeps its value whatever the network says (eta = 0)
    block = CategoricalSpace(4, torch.zeros(50, dtype=torch.long), 1, prior="masking")
    x = torch.randint(0, 5, (50,), generator=g)
    logits = 3 * torch.randn(50, 4, generator=g)
    for method in ("euler", "posterior"):
        p = block.transition_probs(x, logits, 0.4, 0.6, method=method)
        unmasked = x < 4
        assert torch.equal(p[unmasked], torch.nn.functional.one_hot(x[unmasked], 5).to(p.dtype))
        # a masked one stays masked with probability (1 - alpha_next) / (1 - alpha) = 2/3
        assert torch.allclose(p[~unmasked, 4], torch.full_like(p[~unmasked, 4], 2 / 3))
    p = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.25, 0.25, 0.5, 0.0]], dtype=torch.float64).repeat(5000, 1)
    draws = sample_categorical(p, torch.Generator().manual_seed(1))
    assert int((draws[0::2] != 1).sum()) == 0 and int((draws[1::2] == 3).sum()) == 0
    assert abs(float((draws[1::2] == 2).double().mean()) - 0.5) < 0.03


# ------------------------------------------------------------------------------------------------
# (5) the loss in a tiny case
# ------------------------------------------------------------------------------------------------


def test_joint_loss_terms_and_gradients_have_their_closed_form():
    """Two graphs (2 and 3 nodes): MSE of the projected clean prediction per coordinate entry, and
    the mean cross-entropy over each graph's variables, masked-only for the masking prior. The
    gradient of a cross-entropy term with respect to the logits is ``(softmax - one_hot) / count``."""
    batch = torch.tensor([0, 0, 1, 1, 1])
    pos = zero_com_space(batch, 2, dtype=torch.float64)
    space = JointSpace(
        {
            "pos": pos,
            "node": CategoricalSpace.over_nodes(batch, 3, 2, prior="masking"),
            "kind": CategoricalSpace.over_nodes(batch, 2, 2, prior="uniform"),
        }
    )
    x0 = {
        "pos": pos.project(torch.arange(15, dtype=torch.float64).reshape(5, 3) % 4),
        "node": torch.tensor([0, 2, 1, 1, 0]),
        "kind": torch.tensor([1, 0, 0, 1, 1]),
    }
    noisy = {"pos": x0["pos"] * 0.5, "node": torch.tensor([3, 2, 3, 3, 0]), "kind": torch.tensor([0, 0, 1, 1, 0])}
    logits = torch.tensor(
        [[0.0, 1.0, 2.0], [1.0, 0.0, 0.0], [0.5, 0.5, -1.0], [2.0, 0.0, 1.0], [0.0, 0.0, 0.0]],
        dtype=torch.float64,
        requires_grad=True,
    )
    kind_logits = torch.zeros(5, 2, dtype=torch.float64, requires_grad=True)
    pred_pos = torch.ones(5, 3, dtype=torch.float64)
    terms = joint_loss_terms({"pos": pred_pos, "node": logits, "kind": kind_logits}, x0, noisy, space)
    # coordinates: the prediction is projected first (ones -> zeros)
    expected_pos = torch.stack([(x0["pos"][:2] ** 2).mean(), (x0["pos"][2:] ** 2).mean()])
    assert torch.allclose(terms["pos"], expected_pos)
    ce = -torch.log_softmax(logits.detach(), -1)[torch.arange(5), x0["node"]]
    masked = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0], dtype=torch.float64)
    assert torch.allclose(terms["node"], torch.stack([(ce * masked)[:2].sum() / 2, (ce * masked)[2:].sum() / 3]))
    assert torch.allclose(terms["kind"], torch.full((2,), math.log(2.0), dtype=torch.float64))
    terms["node"].sum().backward()
    count = torch.tensor([2.0, 2.0, 3.0, 3.0, 3.0], dtype=torch.float64)[:, None]
    onehot = torch.nn.functional.one_hot(x0["node"], 3).double()
    assert torch.allclose(logits.grad, (torch.softmax(logits.detach(), -1) - onehot) * masked[:, None] / count)
    # without only_noised every variable counts
    full = joint_loss_terms({"pos": pred_pos, "node": logits, "kind": kind_logits}, x0, noisy, space, only_noised=False)
    assert torch.allclose(full["node"], torch.stack([ce[:2].mean(), ce[2:].mean()]))


def test_joint_loss_weights_time_weightings_and_self_conditioning():
    batch = torch.tensor([0, 0, 0, 1, 1])
    space, denoiser, mean, _ = _molecule_like_space([3, 2])
    clean = {"pos": mean, "node": torch.tensor([0, 1, 2, 3, 0]), "pair": torch.tensor([0, 1, 0, 2])}
    calls = []

    def recording(state, t, self_condition="absent", **kw):
        calls.append(self_condition if self_condition is None or self_condition == "absent" else sorted(self_condition))
        return denoiser(state, t)

    t = torch.tensor([0.25, 0.5], dtype=torch.float64)
    weights = {"pos": 2.0, "pair": 0.5}
    tw = clipped_snr_weight(FlowSchedule())
    total, terms = joint_loss(
        recording,
        clean,
        space,
        generator=torch.Generator().manual_seed(0),
        t=t,
        weights=weights,
        time_weight={"pos": tw},
    )
    assert calls == ["absent"]
    expected = 2.0 * tw(t) * terms["pos"] + terms["node"] + 0.5 * terms["pair"]
    assert torch.allclose(total, expected)
    # EQGAT-diff's clip(SNR, 0.05, 1.5) of the linear interpolant, SNR = ((1 - t) / t)^2
    assert torch.allclose(
        tw(torch.tensor([0.25, 0.5, 0.9], dtype=torch.float64)), torch.tensor([1.5, 1.0, 0.05], dtype=torch.float64)
    )
    assert torch.allclose(velocity_weight(FlowSchedule())(t), 1 / t**2)
    assert torch.allclose(masking_elbo_weight(CategoricalSchedule())(t), 1 / t)
    calls.clear()
    joint_loss(recording, clean, space, generator=torch.Generator().manual_seed(0), t=t, self_condition_prob=1.0)
    assert calls == [None, ["node", "pair", "pos"]]
    with pytest.raises(ValueError, match="unknown blocks"):
        joint_loss(recording, clean, space, t=t, weights={"bond": 1.0})
    assert batch.numel() == 5


# ------------------------------------------------------------------------------------------------
# (6) pair indexing under node permutations
# ------------------------------------------------------------------------------------------------


def test_pair_indexing_is_consistent_under_node_permutations():
    g = torch.Generator().manual_seed(0)
    sizes = [1, 4, 2, 6, 3]
    batch = torch.repeat_interleave(torch.arange(5), torch.tensor(sizes))
    pairs = upper_triangle_edges(batch)
    assert pairs.shape[1] == sum(n * (n - 1) // 2 for n in sizes)
    assert bool((pairs[0] < pairs[1]).all()) and torch.equal(batch[pairs[0]], batch[pairs[1]])
    assert torch.unique(pairs[0] * 100 + pairs[1]).numel() == pairs.shape[1]
    ids = torch.arange(pairs.shape[1])
    assert torch.equal(edge_id(pairs[0], pairs[1], batch), ids) and torch.equal(edge_id(pairs[1], pairs[0], batch), ids)
    # pair variables that are a symmetric function of node labels
    labels = torch.randint(0, 1000, (batch.numel(),), generator=g)

    def pair_values(lab):
        a, b = lab[pairs[0]], lab[pairs[1]]
        return torch.minimum(a, b) * 1000 + torch.maximum(a, b)

    values = pair_values(labels)
    for _ in range(3):
        perm = random_permutation_within_graphs(batch, g)
        moved = edge_permutation(perm, batch)
        assert torch.equal(torch.sort(moved).values, ids)  # a permutation of the pairs
        assert torch.equal(pair_values(labels[perm]), values[moved])  # the variables move with the nodes
    # a sparse list of labelled pairs lands on its pairs
    dense = torch.zeros(pairs.shape[1], dtype=torch.long)
    src, dst = torch.tensor([2, 9, 13]), torch.tensor([1, 7, 15])
    dense[edge_id(src, dst, batch)] = torch.tensor([1, 2, 3])
    assert [int(dense[(pairs[0] == min(a, b)) & (pairs[1] == max(a, b))]) for a, b in zip(src, dst)] == [1, 2, 3]


# ------------------------------------------------------------------------------------------------
# registry and contracts
# ------------------------------------------------------------------------------------------------


def test_joint_samplers_are_registered_and_refuse_tensor_states():
    assert set(JOINT_SAMPLERS) == {c[0] for c in SAMPLER_CASES}
    for name in JOINT_SAMPLERS:
        assert get_sampler(name) is JOINT_SAMPLERS[name]
    space, denoiser, _, _ = _molecule_like_space([3, 4])
    with pytest.raises(TypeError, match="JointSpace"):
        get_sampler("joint_euler")(denoiser, torch.zeros(7, 3), joint_times(4), space)
    with pytest.raises(ValueError, match="times must be"):
        get_sampler("joint_euler")(denoiser, space.prior(), torch.tensor([0.5, 0.8, 0.0]), space)
    calls = []

    def counting(state, t, **kw):
        calls.append(kw.get("self_condition", "absent"))
        return denoiser(state, t)

    times = joint_times(10)
    for name in JOINT_SAMPLERS:
        calls.clear()
        get_sampler(name)(
            counting,
            space.prior(torch.Generator().manual_seed(0)),
            times,
            space,
            generator=torch.Generator().manual_seed(0),
        )
        assert len(calls) == count_denoiser_calls(name, times), name
    calls.clear()
    get_sampler("joint_euler")(counting, space.prior(), joint_times(3), space, self_condition=True)
    assert calls[0] is None and all(isinstance(c, dict) for c in calls[1:]) and len(calls) == 3


def test_samplers_are_pure_functions_of_their_generator():
    space, denoiser, _, _ = _molecule_like_space([3, 5, 4])
    outs = []
    for _ in range(2):
        g = torch.Generator().manual_seed(3)
        outs.append(
            get_sampler("joint_ancestral")(
                denoiser, space.prior(g, dtype=torch.float64), joint_times(8), space, generator=g
            )
        )
    assert all(torch.equal(outs[0][k], outs[1][k]) for k in outs[0])


def test_a_denoiser_missing_a_block_or_with_wrong_logits_is_named():
    space, denoiser, _, _ = _molecule_like_space([3, 4])

    def missing(state, t):
        out = denoiser(state, t)
        del out["pair"]
        return out

    def wrong(state, t):
        out = denoiser(state, t)
        out["node"] = torch.zeros(7, 5)
        return out

    with pytest.raises(ValueError, match="no prediction for blocks \\['pair'\\]"):
        get_sampler("joint_euler")(missing, space.prior(), joint_times(2), space)
    with pytest.raises(ValueError, match="block 'node'"):
        get_sampler("joint_euler")(wrong, space.prior(), joint_times(2), space)
