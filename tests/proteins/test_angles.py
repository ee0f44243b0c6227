"""The internal-coordinate backbone model: NeRF reconstruction, the state, invariances, scaffolding."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from moldiff.proteins import geometry as geo
from moldiff.proteins.angles import (
    AngleBackboneConfig,
    AngleBackboneDiffusion,
    ca_from_internal,
    internal_from_ca,
    padded,
)
from moldiff.proteins.dataset import BackboneDataset, collate_backbones


def _random_rotation(seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))
    return q * torch.sign(torch.linalg.det(q))  # a proper rotation


def _tiny(**overrides) -> AngleBackboneDiffusion:
    torch.manual_seed(0)
    cfg = AngleBackboneConfig(hidden=16, layers=1, heads=2, **overrides)
    return AngleBackboneDiffusion(cfg, {"length_histogram": {40: 1}})


@pytest.fixture(scope="module")
def heldout(cath_tar):
    return BackboneDataset(cath_tar, "holdout", limit=6)


def test_nerf_places_every_residue_at_the_given_bond_angle_and_dihedral():
    gen = torch.Generator().manual_seed(0)
    theta = torch.deg2rad(60 + 90 * torch.rand(3, 30, generator=gen, dtype=torch.float64))
    tau = torch.deg2rad(-180 + 360 * torch.rand(3, 29, generator=gen, dtype=torch.float64))
    ca = ca_from_internal(theta, tau, bond=3.8)
    assert ca.shape == (3, 32, 3)
    for b in range(3):
        assert torch.allclose(geo.bond_lengths(ca[b]), torch.full((31,), 3.8, dtype=torch.float64), atol=1e-10)
        th, tu = internal_from_ca(ca[b])
        assert torch.allclose(th, theta[b], atol=1e-9)
        wrapped = torch.remainder(tu - tau[b] + math.pi, 2 * math.pi) - math.pi
        assert wrapped.abs().max() < 1e-9


def test_ideal_helix_angles_rebuild_a_right_handed_helix():
    theta = torch.full((18,), math.radians(91.0), dtype=torch.float64)
    tau = torch.full((17,), math.radians(50.0), dtype=torch.float64)
    ca = ca_from_internal(theta, tau)
    assert geo.secondary_structure(ca).count("H") >= 16
    mirrored = ca_from_internal(theta, -tau)  # the opposite dihedrals: the mirror image, no helix
    assert geo.secondary_structure(mirrored).count("H") == 0
    assert geo.kabsch_rmsd(mirrored.numpy() * np.array([1.0, 1.0, -1.0]), ca.numpy()) < 1e-8


def test_real_domain_survives_the_round_trip_within_a_tenth_of_an_angstrom(heldout):
    model = _tiny()
    for chain in heldout:
        ca = torch.as_tensor(chain.ca, dtype=torch.float64)
        batch = torch.zeros(len(ca), dtype=torch.long)
        state = model.encode(ca, batch, 1)
        assert state.shape == (len(ca) - 2, 3)
        rebuilt = model.decode(state, [len(ca)])
        # exact angles, bonds fixed at 3.80 A instead of 3.80 +- 0.05: the lever arm stays small
        assert geo.kabsch_rmsd(rebuilt.numpy(), chain.ca) < 0.25
        assert geo.chain_breaks(rebuilt) == 0


def test_state_is_invariant_under_rigid_motions_and_dihedrals_flip_under_reflection(heldout):
    model = _tiny()
    ca = torch.as_tensor(heldout[0].ca, dtype=torch.float64)
    batch = torch.zeros(len(ca), dtype=torch.long)
    state = model.encode(ca, batch, 1)
    moved = ca @ _random_rotation(3).T + torch.tensor([5.0, -7.0, 2.0], dtype=torch.float64)
    torch.testing.assert_close(model.encode(moved, batch, 1), state, rtol=0, atol=1e-9)
    mirror = model.encode(ca * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64), batch, 1)
    torch.testing.assert_close(mirror[:, :2], state[:, :2], rtol=0, atol=1e-9)  # theta, cos tau
    torch.testing.assert_close(mirror[:, 2], -state[:, 2], rtol=0, atol=1e-9)  # sin tau is odd


def test_state_columns_have_about_the_scale_of_sigma_data(heldout):
    model = _tiny()
    batch = collate_backbones(list(heldout))
    state = model.encode(batch.ca.double(), batch.batch, batch.num_graphs)
    spread = state.std(dim=0)
    assert ((spread > 0.45) & (spread < 0.95)).all(), spread


def test_network_treats_chains_of_a_packed_batch_independently():
    model = _tiny()
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(20, 3, generator=gen), torch.randn(33, 3, generator=gen)
    t = torch.tensor([0.3, -0.2])
    both = model.network(
        torch.cat([a, b]), t, batch=torch.repeat_interleave(torch.arange(2), torch.tensor([20, 33])), num_graphs=2
    )
    alone = model.network(b, t[1:], batch=torch.zeros(33, dtype=torch.long), num_graphs=1)
    torch.testing.assert_close(both[20:], alone, rtol=1e-5, atol=1e-5)


def test_recycling_sees_the_predicted_chain_and_starts_as_the_model_without_it(heldout):
    """geometry_features: the first pass's clean prediction decodes to the chain it predicts (at a
    small sigma, the real domain's distances); a zero-initialised bias leaves the output of the model
    without it unchanged; once trained, the output depends on those distances."""
    from moldiff.core.parameterisation import edm_preconditioning

    plain, seeing = _tiny(), _tiny(geometry_features=8)
    with torch.no_grad():  # a network that is not all zeros (adaLN-Zero starts at the identity)
        for parameter in plain.network.parameters():
            parameter.normal_(0.0, 0.2, generator=torch.Generator().manual_seed(parameter.numel()))
    seeing.network.load_state_dict(plain.network.state_dict(), strict=False)
    ca = torch.as_tensor(heldout[0].ca, dtype=torch.float32)
    state = seeing.encode(ca, torch.zeros(len(ca), dtype=torch.long), 1)
    real = torch.cdist(ca[1:-1].double(), ca[1:-1].double()).float()
    network = seeing.network
    seen = network.chain_distances(state[None])[0]
    assert (seen - real).abs().max() < 0.5  # exact 3.80 A spacing against the data's 3.80 +- 0.05
    sigma = torch.tensor([1e-3])
    _, _, c_in, c_noise = edm_preconditioning(sigma, seeing.config.sigma_data)
    x, t = c_in * state, c_noise
    first = torch.randn(1, len(state), 3)  # any first pass: at this sigma D is x_t to within c_out = O(sigma)
    recycled = network.recycled_state(x[None], first, t)
    assert (network.chain_distances(recycled)[0] - real).abs().max() < 0.5
    batch = torch.zeros(len(state), dtype=torch.long)
    torch.testing.assert_close(network(x, t, batch=batch, num_graphs=1), plain.network(x, t, batch=batch, num_graphs=1))
    torch.nn.init.normal_(network.geometry_bias.weight)
    assert not torch.allclose(
        network(x, t, batch=batch, num_graphs=1), plain.network(x, t, batch=batch, num_graphs=1), atol=1e-4
    )
    with pytest.raises(ValueError, match="prediction: edm"):
        AngleBackboneConfig(geometry_features=8, prediction="eps")
    with pytest.raises(ValueError, match="geometry_features"):
        AngleBackboneConfig(geometry_features=-1)


def test_padded_round_trip():
    x = torch.arange(10.0).reshape(5, 2)
    out, mask = padded(x, [2, 3])
    assert out.shape == (2, 3, 2) and mask.tolist() == [[True, True, False], [True, True, True]]
    torch.testing.assert_close(out[mask], x)


def test_training_crops_long_chains_and_the_loss_falls_when_overfitting(heldout):
    model = _tiny(max_train_length=40)
    model.network.requires_grad_(True)
    batch = collate_backbones([heldout[0], heldout[1]])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    first = None
    losses = []
    for _ in range(60):
        gen.manual_seed(0)  # the same noise and crop every step: a fixed regression target
        loss, _ = model.training_loss(batch, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        first = first if first is not None else losses[-1]
    assert np.mean(losses[-5:]) < 0.6 * first


def test_samples_have_exact_spacing_and_scaffolds_keep_a_one_segment_motif(tmp_path, heldout):
    model = _tiny()
    designs = model.sample(30, num=3, seed=0, steps=4)
    for d in designs:
        assert d.ca.shape == (30, 3)
        assert np.allclose(geo.bond_lengths(d.ca).numpy(), 3.8, atol=1e-6)
    again = model.sample(30, num=3, seed=0, steps=4)
    assert all(np.array_equal(a.ca, b.ca) for a, b in zip(designs, again))

    from moldiff.proteins.pdb_io import write_design

    motif_source = heldout[0].ca[10:26]  # 16 residues of a real domain, numbered 1-16 in the file
    pdb, _ = write_design(tmp_path, "motif", motif_source, {})
    scaffolds = model.scaffold(pdb, "5-8/A1-16/5-8", num=3, seed=0, steps=4)
    for s in scaffolds:
        # the motif's angles are held fixed: its shape is exact up to the 3.80 A spacing
        assert s.motif_rmsd < 0.2, s.motif_rmsd
        assert s.ca.shape[0] == s.layout.length


def test_chains_shorter_than_four_residues_are_refused():
    with pytest.raises(ValueError, match="at least 4 residues"):
        _tiny().sample(3, num=1, steps=2)


def test_motif_distance_likelihood_is_maximal_at_the_motif_and_guides_two_segments_together(tmp_path, heldout):
    from moldiff.proteins.angles import motif_distance_log_likelihood

    model = _tiny()
    ca = torch.as_tensor(heldout[0].ca[:40], dtype=torch.float64)
    mask = torch.zeros(40, dtype=torch.bool)
    mask[5:13] = mask[25:33] = True
    state = model.encode(ca, torch.zeros(40, dtype=torch.long), 1)
    log_likelihood = motif_distance_log_likelihood(model, model.decode(state, [40]), mask, [40], tolerance=1.0)
    assert float(log_likelihood(state)) == pytest.approx(0.0, abs=1e-12)
    bent = state.clone().requires_grad_(True)
    with torch.no_grad():
        bent[18:20, 1:] = torch.tensor([1.0, 0.0], dtype=torch.float64)  # two linker dihedrals to 0 deg
    value = log_likelihood(bent)
    assert float(value) < -0.5
    (grad,) = torch.autograd.grad(value.sum(), bent)
    assert grad[18:20].abs().sum() > 1.0 and grad[:3].abs().sum() < 1e-9  # only the linker moves the segments
    one = torch.zeros(40, dtype=torch.bool)
    one[5:13] = True
    assert motif_distance_log_likelihood(model, ca, one, [40], 1.0) is None  # one segment: nothing to place


def test_structure_potentials_cost_nothing_for_a_real_domain_and_push_extended_or_clashing_chains(heldout):
    from moldiff.proteins.angles import structure_log_likelihood

    model = _tiny()
    chains = [torch.as_tensor(c.ca, dtype=torch.float64) for c in heldout]
    ca = min(chains, key=lambda c: geo.radius_of_gyration(c) / geo.expected_radius_of_gyration(len(c)))
    n = len(ca)
    state = model.encode(ca, torch.zeros(n, dtype=torch.long), 1)
    log_likelihood = structure_log_likelihood(model, [n], rg=1.0, clash=1.0)
    assert geo.radius_of_gyration(ca) < 1.05 * geo.expected_radius_of_gyration(n)  # a compact real domain
    assert float(log_likelihood(state)) > -0.05
    straight = state.clone()
    straight[:, 0] = (150.0 - 106.0) / 17.1 * 0.7  # every bond angle 150 deg, every dihedral 180 deg
    straight[:, 1:] = torch.tensor([-1.0, 0.0], dtype=torch.float64)
    assert float(structure_log_likelihood(model, [n], rg=1.0)(straight)) < -10  # a rod: Rg far above 3.22 N^0.318
    tight = state.clone()
    tight[:, 0] = (70.0 - 106.0) / 17.1 * 0.7  # 70 deg angles, 0 deg dihedrals: the chain runs into itself
    tight[:, 1:] = torch.tensor([1.0, 0.0], dtype=torch.float64)
    assert geo.clashes(model.decode(tight, [n])) > 0
    assert float(structure_log_likelihood(model, [n], clash=1.0)(tight)) < -1


def test_decoded_distance_loss_is_zero_at_the_truth_and_trains_the_network_through_the_chain(heldout):
    from moldiff.proteins.angles import decoded_distance_loss

    model = _tiny()
    chains = [torch.as_tensor(c.ca, dtype=torch.float64) for c in heldout[:2]]
    lengths = [len(c) for c in chains]
    batch = torch.repeat_interleave(torch.arange(2), torch.tensor(lengths))
    state = model.encode(torch.cat(chains), batch, 2)
    assert decoded_distance_loss(model, state, state, lengths).abs().max() < 1e-12
    # one wrong dihedral in the middle of chain 0 swings the rest of it: only chain 0 pays
    bent = state.clone()
    j = lengths[0] // 2
    bent[j, 1:] = -bent[j, 1:]
    loss = decoded_distance_loss(model, bent.requires_grad_(True), state, lengths)
    assert loss[0] > 0.5 and loss[1].abs() < 1e-12
    (grad,) = torch.autograd.grad(loss.sum(), bent)
    assert grad[j].abs().sum() > 0 and grad[lengths[0] - 2 :].abs().max() == 0  # chain 1 untouched
    # invariant under rigid motions of the true chain (the state is)
    moved = torch.cat([chains[0] @ _random_rotation(3).T + 5.0, chains[1]])
    torch.testing.assert_close(decoded_distance_loss(model, bent, model.encode(moved, batch, 2), lengths), loss)
    # in training: a finite term that reaches the network, off unless weighted
    on = _tiny(distance_loss_weight=0.1, distance_loss_sigma_max=100.0)
    off = _tiny()
    both = collate_backbones([heldout[0], heldout[1]])
    loss_on, _ = on.training_loss(both, torch.Generator().manual_seed(0))
    loss_off, _ = off.training_loss(both, torch.Generator().manual_seed(0))
    assert torch.isfinite(loss_on) and loss_on > loss_off
    loss_on.backward()
    assert all(p.grad is not None for p in on.network.parameters() if p.requires_grad)
    with pytest.raises(ValueError, match="distance_loss_weight"):
        AngleBackboneConfig(distance_loss_weight=-1.0)


def test_potentials_are_named_and_only_the_angle_model_has_them():
    with pytest.raises(ValueError, match="unknown potential 'rog'"):
        AngleBackboneConfig(sample_potentials={"rog": 1.0})
    with pytest.raises(ValueError, match="at least 0"):
        _tiny().sample(20, num=1, steps=2, potentials={"clash": -1.0})
    from moldiff.proteins.model import BackboneDiffusion, BackboneModelConfig

    coordinates = BackboneDiffusion(BackboneModelConfig(hidden=8, layers=1), {"length_histogram": {20: 1}})
    with pytest.raises(ValueError, match="no guiding potentials"):
        coordinates.sample(20, num=1, steps=2, potentials={"rg": 1.0})
    guided = _tiny().sample(24, num=2, seed=0, steps=3, potentials={"rg": 1.0, "clash": 10.0})
    plain = _tiny().sample(24, num=2, seed=0, steps=3, potentials={})
    assert not np.allclose(guided[0].ca, plain[0].ca)  # the potentials act
    # the potentials act only at noise levels up to potentials_sigma_max
    never = _tiny().sample(24, num=2, seed=0, steps=3, potentials={"rg": 1.0, "clash": 10.0}, potentials_sigma_max=1e-6)
    always = _tiny().sample(24, num=2, seed=0, steps=3, potentials={"rg": 1.0, "clash": 10.0}, potentials_sigma_max=1e6)
    assert all(np.array_equal(a.ca, b.ca) for a, b in zip(never, plain))
    assert all(np.array_equal(a.ca, b.ca) for a, b in zip(always, guided))
    late = _tiny(sample_potentials_sigma_max=0.5).sample(
        24, num=2, seed=0, steps=3, potentials={"rg": 1.0, "clash": 10.0}
    )
    assert not any(np.allclose(a.ca, b.ca) for a, b in zip(late, plain))  # the last levels are guided
    with pytest.raises(ValueError, match="sample_potentials_sigma_max must be positive"):
        AngleBackboneConfig(sample_potentials_sigma_max=0.0)
    with pytest.raises(ValueError, match="potentials_sigma_max must be positive"):
        _tiny().sample(24, num=1, steps=2, potentials={"rg": 1.0}, potentials_sigma_max=0.0)


def test_particle_steering_keeps_the_most_compact_draws_whatever_the_batch(tmp_path):
    """Steering by the Rg potential alone, 8 draws per chain: the chains kept are more compact than
    the plain draws of the same seed, and a chain does not depend on which others share its batch."""
    model = _tiny(sample_steering={"rg": 1.0}, sample_particles=8)
    plain = model.sample(30, num=6, seed=0, steps=6, potentials={}, particles=1)
    steered = model.sample(30, num=6, seed=0, steps=6, potentials={})  # the config's 8 particles
    alone = model.sample(30, num=6, seed=0, steps=6, potentials={}, batch_size=2)
    assert all(np.allclose(a.ca, b.ca, atol=1e-4) for a, b in zip(steered, alone))
    rg = [np.mean([geo.radius_of_gyration(d.ca) for d in designs]) for designs in (plain, steered)]
    assert rg[1] < 0.9 * rg[0], rg
    assert all(d.ca.shape == (30, 3) for d in steered)
    from moldiff.proteins.pdb_io import write_backbone_pdb

    pdb = write_backbone_pdb(tmp_path / "motif.pdb", steered[0].ca)  # exact 3.80 A spacing
    designs = model.scaffold(pdb, "5/A6-15/5", num=2, seed=0, steps=6, potentials={})  # every particle keeps it
    assert all(d.motif_rmsd < 0.01 for d in designs), [d.motif_rmsd for d in designs]
    with pytest.raises(ValueError, match="samples with heun_steered"):
        model.sample(30, num=1, steps=2, sampler="euler")
    with pytest.raises(ValueError, match="needs steering potentials"):
        model.sample(30, num=1, steps=2, steering={})
    with pytest.raises(ValueError, match="unknown potential 'rog'"):
        AngleBackboneConfig(sample_steering={"rog": 1.0})
    from moldiff.proteins.model import BackboneDiffusion, BackboneModelConfig

    coordinates = BackboneDiffusion(BackboneModelConfig(hidden=8, layers=1), {"length_histogram": {20: 1}})
    with pytest.raises(ValueError, match="no steering potentials"):
        coordinates.sample(20, num=1, steps=2, particles=4, steering={"rg": 1.0})


def test_scaffolding_benchmark_cuts_motifs_from_heldout_domains_and_scores_them(cath_tar, benchmark_script, capsys):
    bench = benchmark_script("backbone_scaffolding")
    record = bench.main(
        ["--model", "untrained", "--motifs", "1", "--num", "2", "--steps", "2", "--reference", str(cath_tar)]
    )
    kinds = {m["kind"] for m in record["motifs"]}
    assert kinds == {"one_segment", "two_segments"}
    one = next(m for m in record["motifs"] if m["kind"] == "one_segment")
    assert one["contig"].count("/A") == 1  # flank / motif / flank
    result = record["models"]["untrained"]
    assert result["one_segment"]["designs"] == 2 and result["two_segments"]["designs"] == 2
    # the angles inside one segment are held fixed: its RMSD is that of the 3.80 A spacing alone
    assert result["one_segment"]["motif_rmsd_median"] < 0.2
    assert result["one_segment"]["whole_chain"] == 1.0
    assert "success" in capsys.readouterr().out


def test_scaffolding_contigs_put_the_motif_at_its_native_place(benchmark_script):
    from moldiff.proteins.contig import parse_contig

    contig = benchmark_script("backbone_scaffolding").contig_for([(10, 21), (40, 47)], 100)
    assert contig == "5-15/A11-22/13-23/A41-48/47-57"  # native flanks and linker +- 5, motif numbered from 1
    lo, hi = parse_contig(contig).length_range
    assert lo <= 100 <= hi


def test_sample_command_takes_potentials_and_refuses_them_where_they_do_not_apply(tmp_path, capsys):
    import json

    from moldiff.cli import main

    out = tmp_path / "plain"
    args = ["sample", "--model", "cath_ca", "--num", "1", "--length", "24", "--steps", "3", "--no-progress"]
    assert main([*args, "--potential", "none", "--out", str(out)]) == 0
    assert json.loads((out / "design_0000.json").read_text())["potentials"] == {}
    assert main([*args, "--potential", "rog=1", "--out", str(tmp_path / "bad")]) == 2
    assert "unknown potential 'rog'" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    egnn = ["sample", "--model", "cath_ca_egnn", "--num", "1", "--length", "24", "--steps", "2", "--no-progress"]
    assert main([*egnn, "--potential", "rg=1", "--out", str(tmp_path / "egnn")]) == 2
    assert "no guiding potentials" in capsys.readouterr().err


def test_sample_command_steers_particles_and_refuses_steering_where_it_does_not_apply(tmp_path, capsys):
    import json

    from moldiff.cli import main

    args = ["sample", "--model", "cath_ca", "--num", "1", "--length", "24", "--steps", "4", "--no-progress"]
    out = tmp_path / "steered"
    assert main([*args, "--particles", "3", "--steer", "rg=1", "--steer", "clash=100", "--out", str(out)]) == 0
    meta = json.loads((out / "design_0000.json").read_text())
    assert meta["particles"] == 3 and meta["steering"] == {"rg": 1.0, "clash": 100.0}
    assert meta["sampler"] == "heun_steered"
    late = tmp_path / "late"
    assert main([*args, "--potential-sigma-max", "0.3", "--out", str(late)]) == 0
    assert json.loads((late / "design_0000.json").read_text())["potentials_sigma_max"] == 0.3
    assert main([*args, "--potential-sigma-max", "0", "--out", str(tmp_path / "late0")]) == 2
    assert "--potential-sigma-max must be a positive number" in capsys.readouterr().err
    assert main([*args, "--particles", "0", "--out", str(tmp_path / "zero")]) == 2
    assert "--particles must be at least 1" in capsys.readouterr().err
    assert main([*args, "--particles", "2", "--steer", "none", "--out", str(tmp_path / "nosteer")]) == 2
    assert "needs steering potentials" in capsys.readouterr().err
    mol = ["sample", "--model", "qm9", "--num", "1", "--particles", "2", "--out", str(tmp_path / "m.sdf")]
    assert main(mol) == 2
    assert "apply to protein backbone models" in capsys.readouterr().err
