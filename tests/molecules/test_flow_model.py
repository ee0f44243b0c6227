"""The bond-aware molecule model (MoleculeFlow): symmetries of its denoiser, its loss, its samples, the
seeding rule, and the whole path through the engine, the generator and ``moldiff sample``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from moldiff.molecules.bond_data import BondedQM9Dataset, collate_bonded, derive_bonded_arrays
from moldiff.molecules.flow_model import MoleculeFlow, MoleculeFlowConfig
from moldiff.molecules.flow_task import flow_stats
from moldiff.molecules.qm9 import load_qm9
from moldiff.testing import random_rotation

from .conftest import permute_atoms


@pytest.fixture(scope="module")
def small_qm9():
    """80 QM9 molecules with their bonds and charges (derived here, no cache of all of QM9)."""
    arrays = derive_bonded_arrays(load_qm9("qm9pack"), rows=list(range(0, 8000, 100)))
    return BondedQM9Dataset("all", arrays=arrays)


def _model(dataset, **overrides):
    torch.manual_seed(0)
    cfg = MoleculeFlowConfig(hidden=32, pair_hidden=8, layers=2, **overrides)
    return MoleculeFlow(cfg, flow_stats(dataset))


def _noisy(model, batch, g):
    space = model.space(batch.batch, batch.num_graphs, batch.edge_index)
    t = torch.rand(batch.num_graphs, generator=g, dtype=torch.float64) * 0.8 + 0.1
    return space.noise(model.encode(batch), t, g), t.float()


def test_coordinates_are_equivariant_and_every_categorical_output_invariant(small_qm9):
    model = _model(small_qm9).double()
    batch = collate_bonded([small_qm9[i] for i in range(4)])
    g = torch.Generator().manual_seed(1)
    state, t = _noisy(model, batch, g)
    state["pos"] = state["pos"].double()
    kw = {"batch": batch.batch, "pairs": batch.edge_index}
    out = model.denoise(state, t, **kw)
    sc = {k: v.detach() for k, v in out.items()}
    for reflection in (False, True):
        q = random_rotation(g, reflection=reflection)
        moved = dict(state, pos=state["pos"] @ q.T)
        moved_sc = dict(sc, pos=sc["pos"] @ q.T)
        for self_condition, rotated_sc in ((None, None), (sc, moved_sc)):
            a = model.denoise(state, t, self_condition=self_condition, **kw)
            b = model.denoise(moved, t, self_condition=rotated_sc, **kw)
            torch.testing.assert_close(b["pos"], a["pos"] @ q.T, atol=1e-8, rtol=1e-8)
            for name in ("type", "charge", "bond"):
                torch.testing.assert_close(b[name], a[name], atol=1e-8, rtol=1e-8)


def test_permuting_atoms_permutes_types_charges_and_bonds_consistently(small_qm9):
    model = _model(small_qm9).double()
    batch = collate_bonded([small_qm9[i] for i in range(3)])
    g = torch.Generator().manual_seed(2)
    state, t = _noisy(model, batch, g)
    state["pos"] = state["pos"].double()
    permuted, perm, pair_perm = permute_atoms(state, batch, g)
    kw = {"batch": batch.batch, "pairs": batch.edge_index}
    a, b = model.denoise(state, t, **kw), model.denoise(permuted, t, **kw)
    torch.testing.assert_close(b["pos"], a["pos"][perm], atol=1e-8, rtol=1e-8)
    for name in ("type", "charge"):
        torch.testing.assert_close(b[name], a[name][perm], atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(b["bond"], a["bond"][pair_perm], atol=1e-8, rtol=1e-8)
    # the clean molecule's own bonds move the same way: the pair variables are the molecule's bonds
    clean = collate_bonded(
        [small_qm9[i].permute(perm[batch.batch == k] - batch.ptr[k]) for k, i in enumerate(range(3))]
    )
    assert torch.equal(clean.edge_types, batch.edge_types[pair_perm])


def test_training_lowers_every_loss_term(small_qm9):
    model = _model(small_qm9)
    batch = collate_bonded([small_qm9[i] for i in range(32)])
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(3)

    def terms():
        with torch.no_grad():
            out = [model.training_loss(batch, torch.Generator().manual_seed(s))[1] for s in range(4)]
        return {k: float(np.mean([o[k] for o in out])) for k in out[0]}

    before = terms()
    for _ in range(60):
        loss, _ = model.training_loss(batch, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = terms()
    # a tiny network for 60 steps: the categorical terms fall fast, the coordinate regression slowly
    for name, factor in (("pos_loss", 0.9), ("type_loss", 0.8), ("bond_loss", 0.8), ("charge_loss", 0.8)):
        assert after[name] < factor * before[name], (name, before, after)


def test_samples_have_zero_com_valid_classes_and_do_not_depend_on_the_batch(small_qm9):
    from moldiff.core import item_generators

    model = _model(small_qm9).eval()
    sizes = torch.tensor([5, 9, 7])
    whole = model.sample_states(sizes, steps=4, generator=item_generators(5, range(3)))
    parts = [model.sample_states(sizes[k : k + 1], steps=4, generator=item_generators(5, [k])) for k in range(3)]
    torch.testing.assert_close(whole["pos"], torch.cat([p["pos"] for p in parts]), atol=1e-5, rtol=1e-5)
    assert torch.equal(whole["bond"], torch.cat([p["bond"] for p in parts]))
    assert torch.equal(whole["type"], torch.cat([p["type"] for p in parts]))
    com = torch.zeros(3, 3).index_add_(0, whole["batch"], whole["pos"]) / sizes[:, None]
    assert com.abs().max() < 1e-4
    assert int(whole["type"].max()) < len(model.atom_types) and int(whole["bond"].max()) < 5
    records = model.split_molecules(whole)
    assert [len(r["atomic_numbers"]) for r in records] == [5, 9, 7]
    assert all(((r["bonds"][:, 0] < r["bonds"][:, 1]) & (r["bonds"][:, 2] > 0)).all() for r in records)


def test_the_engine_trains_it_and_moldiff_sample_writes_its_own_bonds(tmp_path, small_qm9, monkeypatch, capsys):
    import json

    from rdkit import Chem

    import moldiff
    from moldiff.cli import main
    from moldiff.molecules import flow_task
    from moldiff.molecules.flow_task import FlowDataConfig
    from moldiff.molecules.generator import FlowMoleculeGenerator, SampledMolecules
    from moldiff.train.config import ExperimentConfig, TrainConfig
    from moldiff.train.logs import read_log
    from moldiff.train.loop import Trainer

    monkeypatch.setattr(flow_task, "BondedQM9Dataset", lambda split, source, **options: small_qm9)  # no full cache
    cfg = ExperimentConfig(
        task="molecule_flow",
        model=MoleculeFlowConfig(hidden=16, pair_hidden=8, layers=1, sample_steps=3),
        data=FlowDataConfig(valid_split=None, eval_samples=4, eval_steps=3),
        train=TrainConfig(
            steps=3,
            batch_size=8,
            log_every=1,
            ckpt_every=3,
            eval_every=3,
            eval_batches=0,
            device="cpu",
            progress=False,
            best_metric=None,
        ),
    )
    result = Trainer(cfg, out_dir=tmp_path / "run").fit()
    evaluation = read_log(tmp_path / "run" / "log.jsonl", kind="eval")[-1]
    assert {"molecule_stability", "connected_validity", "edm_molecule_stability"} <= evaluation.keys()
    ckpt = str(result.last_checkpoint)

    gen = moldiff.load_pretrained(ckpt)
    assert isinstance(gen, FlowMoleculeGenerator)
    mols = gen.sample(4, seed=0)
    assert isinstance(mols, SampledMolecules) and len(mols) == 4
    assert all(m.HasProp("moldiff_sanitized") for m in mols)
    assert mols.failed == [i for i, m in enumerate(mols) if m.GetProp("moldiff_sanitized") == "0"]

    out = tmp_path / "x.sdf"
    assert main(["sample", "--model", ckpt, "--num", "6", "--out", str(out), "--no-progress"]) == 0
    written = [m for m in Chem.SDMolSupplier(str(out), sanitize=False, removeHs=False)]
    records = gen.sample_arrays(6, seed=0)  # the same molecules: the file holds the model's own bonds and charges
    assert len(written) == 6
    for mol, record in zip(written, records):
        assert mol.GetNumBonds() == len(record["bonds"])
        assert [a.GetFormalCharge() for a in mol.GetAtoms()] == record["formal_charges"].tolist()
        assert mol.HasProp("moldiff_sanitized")
    capsys.readouterr()
    assert main(["evaluate", str(out), "--bonds", "file", "--json", "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["num_molecules"] == 6 and "own bonds" in report["protocol"]
    assert main(["evaluate", str(out), "--no-progress"]) == 0
    assert "EDM's protocol" in capsys.readouterr().out
