"""The backbone denoiser and model: symmetries, handedness, graph size, scaffolding, training, temperature."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from moldiff.proteins.geometry import ideal_helix
from moldiff.proteins.model import BackboneDiffusion, BackboneModelConfig, BackboneNetwork, backbone_graph
from moldiff.proteins.pdb_io import write_backbone_pdb
from moldiff.testing import assert_equivariant, assert_not_reflection_equivariant


def _network(chirality: bool = True, **overrides) -> BackboneNetwork:
    torch.manual_seed(0)
    net = BackboneNetwork(BackboneModelConfig(hidden=16, layers=2, knn=6, chirality=chirality, **overrides)).double()
    for block in net.egnn.blocks:  # EDM initialises the coordinate head near zero; make it matter
        torch.nn.init.normal_(block.coord_update.coord_mlp[4].weight, std=0.1)
    return net


def _chains() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    pos = torch.cat([ideal_helix(14), ideal_helix(10) + 5.0]) / 10 + 0.05 * torch.randn(
        24, 3, generator=g, dtype=torch.float64
    )
    batch = torch.repeat_interleave(torch.arange(2), torch.tensor([14, 10]))
    return pos, torch.zeros(24, 1, dtype=torch.float64), batch


def _fn(net):
    t = torch.tensor([0.3, 0.7], dtype=torch.float64)
    return lambda p, h, b, n: net(p, t, batch=b, num_graphs=n)


WITH_DISTANCE_RBF = {"distance_rbf": 8, "norm_constant": 0.1}


@pytest.mark.parametrize("overrides", [{}, WITH_DISTANCE_RBF], ids=["plain", "distance_rbf"])
def test_rotation_translation_equivariant_not_mirror_symmetric(overrides):
    net = _network(**overrides)
    pos, h, batch = _chains()
    assert_equivariant(_fn(net), pos, h, batch, 2, permutation=False, atol=1e-9, rtol=1e-7)
    assert_not_reflection_equivariant(_fn(net), pos, h, batch, 2, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("overrides", [{}, WITH_DISTANCE_RBF], ids=["plain", "distance_rbf"])
def test_without_the_dihedral_features_mirror_images_are_equivalent(overrides):
    net = _network(chirality=False, **overrides)
    pos, h, batch = _chains()
    assert_equivariant(_fn(net), pos, h, batch, 2, permutation=False, reflections=True, atol=1e-9, rtol=1e-7)


def test_distance_rbf_sees_the_noisy_chain_in_angstrom_at_every_noise_level():
    """Under EDM preconditioning the network gets ``c_in x`` and ``c_noise``; the RBFs must see the
    edge lengths of ``x`` itself, in A, whatever sigma is."""
    net = _network(distance_rbf=8)
    cfg = net.config
    pos, _, batch = _chains()
    for sigma in (0.01, 0.5, 3.0):
        sig = torch.full((2,), sigma, dtype=torch.float64)
        c_in = 1 / torch.sqrt(sig**2 + cfg.sigma_data**2)
        c_noise = sig.log() / 4
        edge_index, attr = net.graph(c_in[batch, None] * pos, batch, 2, net.angstrom_per_unit(c_noise))
        i, j = edge_index
        expected = net.rbf((pos[i] - pos[j]).norm(dim=-1) * cfg.coord_scale)
        assert torch.allclose(attr[:, -8:], expected, atol=1e-10)
    # one residue pair 3.8 A apart lights the centres near 3.8 A, not those near 0 or 20 A
    two = torch.tensor([[0.0, 0.0, 0.0], [0.38, 0.0, 0.0]], dtype=torch.float64)
    _, attr = net.graph(two, torch.zeros(2, dtype=torch.long), 1)
    centres = net.rbf.centres
    assert centres[attr[0, -8:].argmax()] == centres[(centres - 3.8).abs().argmin()]


def test_old_configs_without_distance_rbf_build_the_same_network():
    """A checkpoint saved before ``distance_rbf`` and ``norm_constant`` existed has neither key: the
    defaults must rebuild the network of that time (relative positions and dihedrals as the only extra
    edge features, EDM's norm constant 1), so its weights load and compute the same function."""
    from moldiff.nn.egnn import EGNNDenoiser

    net = _network()  # the config as an old checkpoint gives it: the new keys at their defaults
    cfg = net.config
    assert net.rbf is None
    old = EGNNDenoiser(
        1,
        1,
        hidden=cfg.hidden,
        layers=cfg.layers,
        attention=cfg.attention,
        coords_range=cfg.coords_range,
        edges="knn",
        knn=cfg.knn,
        extra_edge_features=2 * cfg.max_relative_position + 1 + 4,
        normalization_factor=cfg.normalization_factor,
    ).double()
    old.load_state_dict(net.egnn.state_dict())  # same parameter names and shapes
    pos, h, batch = _chains()
    edge_index, edge_attr = net.graph(pos, batch, 2)
    t = torch.tensor([0.3, 0.7], dtype=torch.float64)
    eps_old, _ = old(pos, t[batch].unsqueeze(-1), batch, 2, edge_index=edge_index, edge_attr=edge_attr)
    assert torch.allclose(net(pos, t, batch=batch, num_graphs=2), eps_old, atol=1e-12)


def test_node_order_matters():
    net = _network()
    pos, h, batch = _chains()
    out = _fn(net)(pos, h, batch, 2)
    perm = torch.cat([torch.randperm(14, generator=torch.Generator().manual_seed(0)), torch.arange(14, 24)])
    assert not torch.allclose(_fn(net)(pos[perm], h, batch, 2), out[perm], atol=1e-6)


def test_graph_grows_linearly_with_length():
    counts = {}
    for n in (100, 200, 400):
        pos = torch.randn(n, 3) * n ** (1 / 3)
        batch = torch.zeros(n, dtype=torch.long)
        edges = backbone_graph(pos, batch, 1, knn=16, sequence_offsets=[1, 2])
        assert edges.unique(dim=1).shape[1] == edges.shape[1] and bool((edges[0] != edges[1]).all())
        counts[n] = edges.shape[1] / n
    assert all(16 <= c <= 20 for c in counts.values())
    assert max(counts.values()) - min(counts.values()) < 1.0


def _tiny_model(**overrides) -> BackboneDiffusion:
    torch.manual_seed(0)
    return BackboneDiffusion(
        BackboneModelConfig(hidden=16, layers=2, knn=8, **overrides), {"length_histogram": {24: 3, 30: 1}}
    )


def test_motif_scaffolding_keeps_the_motif_exact(tmp_path):
    motif = tmp_path / "motif.pdb"
    write_backbone_pdb(motif, ideal_helix(20).numpy() + 7.0)
    model = _tiny_model()
    designs = model.scaffold(motif, "4-8/A3-12/4-8", num=3, seed=0, steps=6)
    for d in designs:
        assert 18 <= len(d.ca) <= 26 and d.motif_mask.sum() == 10
        assert d.motif_rmsd < 1e-3
        assert d.metadata()["motif_mapping"][0]["residue"] == 3
    assert [d.layout.length for d in designs] == [
        d.layout.length for d in model.scaffold(motif, "4-8/A3-12/4-8", 3, seed=0, steps=2)
    ]
    with pytest.raises(ValueError, match="residue A35 is not in motif"):
        model.scaffold(motif, "5/A35-40/5", steps=2)


def test_sampling_lengths_seed_and_temperature():
    model = _tiny_model()
    drawn = model.sample(num=6, seed=0, steps=3)
    assert {len(d.ca) for d in drawn} <= {24, 30}
    a = model.sample(40, num=2, seed=1, steps=3, sampler="euler_maruyama")
    b = model.sample(40, num=2, seed=1, steps=3, sampler="euler_maruyama")
    cold = model.sample(40, num=2, seed=1, steps=3, sampler="euler_maruyama", temperature=0.1)
    assert np.array_equal(a[0].ca, b[0].ca) and a[0].ca.shape == (40, 3)
    assert np.abs(cold[0].ca).mean() < np.abs(a[0].ca).mean()
    with pytest.raises(ValueError, match="temperature"):
        model.sample(10, steps=2, temperature=0.0)


def test_a_few_training_steps_reduce_the_loss():
    from moldiff.proteins.dataset import collate_backbones
    from moldiff.proteins.pdb_io import Backbone

    model = _tiny_model()
    chains = [Backbone(ideal_helix(n).numpy(), "A" * n) for n in (20, 24, 28, 32)]
    batch = collate_backbones(chains)

    def loss():  # averaged over fixed draws of noise levels and noise
        with torch.no_grad():
            return np.mean(
                [float(model.training_loss(batch, torch.Generator().manual_seed(s))[0].detach()) for s in range(16)]
            )

    before = loss()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        opt.zero_grad()
        model.training_loss(batch, g)[0].backward()
        opt.step()
    assert loss() < 0.8 * before  # 0.83 -> 0.53 with these seeds


def test_local_distance_loss_is_the_closed_form_and_blind_to_rigid_motions():
    from moldiff.proteins.model import local_distance_loss

    pos, _, batch = _chains()
    rot = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64))[0]
    mirrored_moved = (pos @ rot.T) * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64) + 3.0
    assert torch.allclose(
        local_distance_loss(mirrored_moved, pos, batch, 2), torch.zeros(2, dtype=torch.float64), atol=1e-20
    )
    # stretching chain 0 by s turns each distance d into s d: error ((s - 1) d)^2, chain 1 untouched
    s = 1.1
    stretched = pos.clone()
    stretched[:14] *= s
    loss = local_distance_loss(stretched, pos, batch, 2, offsets=(1, 3))
    d = torch.cat([(pos[o:14] - pos[: 14 - o]).norm(dim=-1) for o in (1, 3)])
    assert torch.allclose(loss, torch.tensor([((s - 1) * d).pow(2).mean(), 0.0], dtype=torch.float64))


def test_the_local_distance_term_adds_to_the_loss_only_at_small_noise():
    from moldiff.proteins.dataset import collate_backbones
    from moldiff.proteins.pdb_io import Backbone

    batch = collate_backbones([Backbone(ideal_helix(n).numpy(), "A" * n) for n in (20, 24)])
    plain = _tiny_model()

    def loss(**options):
        model = _tiny_model(**options)
        model.load_state_dict(plain.state_dict())
        value = model.training_loss(batch, torch.Generator().manual_seed(3))[0]
        return value

    base = loss()
    assert torch.equal(loss(local_distance_weight=1.0, local_distance_sigma_max=0.0), base)  # no chain that clean
    everywhere = loss(local_distance_weight=1.0, local_distance_sigma_max=1e9)
    assert everywhere > base and everywhere.requires_grad
    assert torch.allclose(loss(local_distance_weight=2.0, local_distance_sigma_max=1e9) - base, 2 * (everywhere - base))
