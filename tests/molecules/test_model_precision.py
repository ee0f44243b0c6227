"""The molecule model in bf16: the training loss within a stated tolerance of fp32, sampling with
precision="bf16" (the EGNN's dense bf16 path) keeping zero centre of mass after every step."""

import pytest
import torch

import moldiff.nn.egnn as egnn
from moldiff.core import molecule_space
from moldiff.molecules.graph import collate_molecules
from moldiff.molecules.model import MoleculeDiffusion, MoleculeModelConfig

from .test_model import STATS, _molecules


def test_bf16_training_loss_is_within_3_percent_of_fp32():
    torch.manual_seed(0)
    model = MoleculeDiffusion(MoleculeModelConfig(hidden=64, layers=4), STATS)
    batch = collate_molecules(_molecules() * 8)
    losses = {}
    for bf16 in (False, True):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss, _ = model.training_loss(batch, torch.Generator().manual_seed(1))
        loss.backward()
        losses[bf16] = (float(loss.detach()), torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
        model.zero_grad()
    assert abs(losses[True][0] - losses[False][0]) < 0.03 * losses[False][0]
    g32, g16 = losses[False][1], losses[True][1]
    assert (g16 - g32).norm() < 0.05 * g32.norm()


@pytest.mark.parametrize("sampler", ["ddpm", "dpmpp_2m"])
def test_bf16_sampling_keeps_zero_com_and_runs_the_dense_path(monkeypatch, sampler):
    torch.manual_seed(0)
    model = MoleculeDiffusion(
        MoleculeModelConfig(hidden=16, layers=2, schedule_options={"num_steps": 100}), STATS
    ).eval()
    sizes = [3, 5, 9, 5]
    positions = molecule_space(torch.repeat_interleave(torch.arange(4), torch.tensor(sizes)), 6).blocks[0]
    dtypes = []
    real = egnn.dense_egnn_forward
    monkeypatch.setattr(egnn, "dense_egnn_forward", lambda *a: dtypes.append(a[-1]) or real(*a))
    for precision in ("fp32", "bf16"):
        com = []
        pos, types, batch = model.sample_states(
            sizes,
            sampler=sampler,
            steps=20,
            generator=torch.Generator().manual_seed(0),
            precision=precision,
            callback=lambda info, com=com: com.append(float(positions.node_mean(info["x"][:, :3]).abs().max())),
        )
        assert pos.dtype == torch.float32 and torch.isfinite(pos).all()
        assert len(com) == 20 and max(com) < 1e-4
    assert dtypes and set(dtypes) == {torch.bfloat16}  # fp32 ran the edge list, bf16 the dense bf16 path
    assert not torch.is_autocast_enabled("cpu")
