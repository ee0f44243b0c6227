"""The assembled molecule diffusion model: equivariance through the core's wrapper, training, sampling."""

import pytest
import torch

from moldiff.core import molecule_space
from moldiff.molecules.graph import MoleculeGraph, collate_molecules
from moldiff.molecules.model import MoleculeDiffusion, MoleculeModelConfig
from moldiff.testing import assert_equivariant

STATS = {
    "atom_types": ["H", "C", "N", "O", "F"],
    "atomic_numbers": [1, 6, 7, 8, 9],
    "num_atoms_histogram": {3: 2, 5: 3, 9: 1},
}


def _molecules():
    """Water, methane and ammonia-like geometries (Angstrom)."""
    water = MoleculeGraph(
        torch.tensor([[0.0, 0.0, 0.12], [0.0, 0.76, -0.47], [0.0, -0.76, -0.47]]),
        torch.tensor([8, 1, 1]),
        torch.tensor([3, 0, 0]),
    )
    methane = MoleculeGraph(
        torch.tensor(
            [[0.0, 0.0, 0.0], [0.63, 0.63, 0.63], [-0.63, -0.63, 0.63], [-0.63, 0.63, -0.63], [0.63, -0.63, -0.63]]
        ),
        torch.tensor([6, 1, 1, 1, 1]),
        torch.tensor([1, 0, 0, 0, 0]),
    )
    ammonia = MoleculeGraph(
        torch.tensor([[0.0, 0.0, 0.11], [0.0, 0.94, -0.26], [0.81, -0.47, -0.26], [-0.81, -0.47, -0.26]]),
        torch.tensor([7, 1, 1, 1]),
        torch.tensor([2, 0, 0, 0]),
    )
    return [water, methane, ammonia]


@pytest.mark.parametrize("network", ["egnn", "e3nn"])
def test_the_denoiser_is_equivariant_through_the_state_wrapper(network):
    torch.manual_seed(0)
    cfg = MoleculeModelConfig(network=network, hidden=16, layers=2, e3nn_irreps="8x0e + 4x1o")
    model = MoleculeDiffusion(cfg, STATS).double()
    batch = collate_molecules(_molecules())
    x0 = model.encode(batch.pos.double(), batch.atom_types, batch.batch, batch.num_graphs)
    sigma = torch.full((batch.num_graphs,), 0.7, dtype=torch.float64)

    def fn(pos, h, b, num_graphs):
        out = model.denoiser(torch.cat([pos, h], -1), sigma, batch=b, num_graphs=num_graphs)
        return out[:, :3], out[:, 3:]

    # x0-prediction moves with the molecule: translation equivariant, not invariant
    assert_equivariant(
        fn,
        x0[:, :3],
        x0[:, 3:],
        batch.batch,
        batch.num_graphs,
        reflections=True,
        translation=False,
        atol=1e-8,
        rtol=1e-6,
    )


def test_training_reduces_the_loss_on_a_tiny_set():
    torch.manual_seed(0)
    model = MoleculeDiffusion(MoleculeModelConfig(hidden=32, layers=2), STATS)
    batch = collate_molecules(_molecules() * 4)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    g = torch.Generator().manual_seed(0)
    t = torch.full((batch.num_graphs,), 0.0)

    @torch.no_grad()
    def fixed_loss():
        gen = torch.Generator().manual_seed(123)
        from moldiff.core import denoising_loss

        x0 = model.encode(batch.pos, batch.atom_types, batch.batch, batch.num_graphs)
        space = molecule_space(batch.batch, model.feature_width, batch.num_graphs)
        losses = [
            denoising_loss(
                model.denoiser,
                x0,
                space,
                generator=gen,
                t=t + tt,
                extra_args={"batch": batch.batch, "num_graphs": batch.num_graphs},
            ).mean()
            for tt in (0.05, 0.3, 0.6)
        ]
        return float(sum(losses))

    before = fixed_loss()
    for _ in range(100):
        loss, metrics = model.training_loss(batch, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert fixed_loss() < 0.7 * before


def test_sampling_gives_packed_molecules_of_the_requested_sizes_with_zero_com():
    torch.manual_seed(0)
    model = MoleculeDiffusion(
        MoleculeModelConfig(hidden=16, layers=2, schedule_options={"num_steps": 100}), STATS
    ).eval()
    positions = molecule_space(torch.repeat_interleave(torch.arange(3), torch.tensor([3, 5, 9])), 6).blocks[0]
    com = []
    pos, types, batch = model.sample_states(
        [3, 5, 9],
        sampler="ddpm",
        generator=torch.Generator().manual_seed(0),
        callback=lambda info: com.append(float(positions.node_mean(info["x"][:, :3]).abs().max())),
    )
    assert pos.shape == (17, 3) and types.shape == (17,) and torch.equal(torch.bincount(batch), torch.tensor([3, 5, 9]))
    assert len(com) == 100 and max(com) < 1e-4
    assert int(types.max()) < 5
    sizes = model.sample_num_atoms(3000, generator=torch.Generator().manual_seed(0))
    freq = torch.bincount(sizes, minlength=10).double() / 3000
    assert abs(float(freq[5]) - 0.5) < 0.04 and abs(float(freq[9]) - 1 / 6) < 0.03 and float(freq[4]) == 0.0


def test_one_molecule_per_size_below_two_atoms_is_refused():
    model = MoleculeDiffusion(MoleculeModelConfig(hidden=8, layers=1), STATS)
    with pytest.raises(ValueError, match="at least 2 atoms"):
        model.sample_states([1, 4])


def test_the_molecule_config_shares_the_diffusion_keys_and_reads_older_files():
    """The diffusion half of the molecule config is moldiff.core.DiffusionSettings, as for images and backbones;
    the keys older configs and checkpoints used (schedule_steps, schedule_power, precision) still load, into
    the same schedule; strings that name a choice are checked when the config is read."""
    import pytest

    from moldiff.core import DiffusionSettings
    from moldiff.errors import ConfigError
    from moldiff.train.config import from_dict

    assert issubclass(MoleculeModelConfig, DiffusionSettings)
    old = from_dict(
        MoleculeModelConfig,
        {
            "hidden": 16,
            "layers": 2,
            "schedule": "polynomial",
            "schedule_steps": 500,
            "schedule_power": 3.0,
            "precision": 1e-4,
        },
        "model",
    )
    new = from_dict(
        MoleculeModelConfig,
        {"hidden": 16, "layers": 2, "schedule_options": {"num_steps": 500, "power": 3.0, "precision": 1e-4}},
        "model",
    )
    assert old == new
    a, b = old.build_schedule(), new.build_schedule()
    t = torch.linspace(0, 1, 11, dtype=torch.float64)
    assert a.num_steps == 500 and torch.equal(a.alpha(t), b.alpha(t))
    from moldiff.core import make_schedule

    linear = from_dict(MoleculeModelConfig, {"schedule": "ddpm_linear", "schedule_steps": 200}).build_schedule()
    assert torch.equal(linear.alpha(t), make_schedule("ddpm_linear", num_steps=200).alpha(t))
    with pytest.raises(ConfigError, match="model.network: expected one of 'egnn', 'e3nn'"):
        from_dict(MoleculeModelConfig, {"network": "egn"}, "model")
    with pytest.raises(ConfigError, match="model.edges"):
        from_dict(MoleculeModelConfig, {"edges": "radious"}, "model")
    for key, wrong in [
        ("sampler", "hen"),
        ("weighting", "epss"),
        ("prediction", "x_0"),
        ("schedule", "polynomal"),
        ("noise_sampler", "lognormall"),
        ("sample_grid", "karas"),
    ]:
        with pytest.raises(ConfigError, match=f"model.{key}: expected one of .*got '{wrong}'"):
            from_dict(MoleculeModelConfig, {key: wrong}, "model")
