import numpy as np
import pytest
import torch
from rdkit import Chem

from moldiff.molecules.metrics import METRIC_KEYS, assess_molecule, evaluate_molecules, molecule_smiles
from moldiff.molecules.rdkit_io import build_molecule

# EDM's SMILES keep the explicit hydrogens of the point cloud
ACETALDEHYDE_SMILES = Chem.MolToSmiles(Chem.AddHs(Chem.MolFromSmiles("CC=O")))


def test_real_molecule_is_stable_valid_and_connected(acetaldehyde):
    a = assess_molecule(*acetaldehyde)
    assert a.stable and a.valid and a.connected_valid
    assert a.smiles == ACETALDEHYDE_SMILES == "[H]C(=O)C([H])([H])[H]" and a.num_fragments == 1


def test_removing_a_hydrogen_breaks_stability(acetaldehyde):
    z, pos = acetaldehyde
    a = assess_molecule(z[:-1], pos[:-1])
    assert not a.stable and a.num_stable_atoms == a.num_atoms - 1
    r = evaluate_molecules([(z, pos), (z[:-1], pos[:-1])])
    assert r["molecule_stability"] == 0.5
    assert r["atom_stability"] == pytest.approx(12 / 13)


def test_far_apart_fragments_are_valid_but_not_connected(acetaldehyde):
    z, pos = acetaldehyde
    two = (np.concatenate([z, z[:3]]), np.concatenate([pos, pos[:3] + 20.0]))  # + a loose C-C-O
    a = assess_molecule(*two)
    assert a.valid and not a.connected_valid and a.num_fragments == 2
    assert a.smiles == ACETALDEHYDE_SMILES  # the largest fragment, as EDM
    r = evaluate_molecules([two])
    assert r["validity"] == 1.0 and r["connected_validity"] == 0.0 and r["fraction_disconnected"] == 1.0


def test_cloud_of_loose_atoms_is_edm_valid():
    pos = np.arange(5)[:, None] * np.array([[5.0, 0, 0]])
    r = evaluate_molecules([(np.full(5, 6), pos)])
    assert r["validity"] == 1.0 and r["connected_validity"] == 0.0 and r["molecule_stability"] == 0.0


def test_uniqueness_novelty_and_input_kinds(acetaldehyde):
    z, pos = acetaldehyde
    rot = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))[0]
    mols = [
        (z, pos),
        (torch.as_tensor(z), torch.as_tensor(pos @ rot.T + 3.0)),  # same molecule, moved, as tensors
        build_molecule(z, pos, bonds=None),  # an RDKit Mol: bonds are re-perceived
        (np.array([8, 1, 1]), np.array([[0, 0, 0.1173], [0, 0.7572, -0.4692], [0, -0.7572, -0.4692]])),
        (np.array([6, 6]), np.array([[0.0, 0, 0], [3.0, 0, 0]])),  # two loose C: EDM-valid 'C'
    ]
    r = evaluate_molecules(mols, training_smiles={ACETALDEHYDE_SMILES})
    assert set(r) == set(METRIC_KEYS)
    assert r["num_molecules"] == 5 and r["validity"] == 1.0
    assert r["uniqueness"] == pytest.approx(3 / 5)  # acetaldehyde, water, methane
    assert r["novelty"] == pytest.approx(2 / 3)
    assert evaluate_molecules(mols)["novelty"] is None


def test_invalid_molecule_counts_as_invalid():
    # a carbon with five hydrogens at 1.09 A: valence 5, RDKit refuses it
    directions = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1.0]])
    pos = np.concatenate([[[0.0, 0, 0]], 1.09 * directions])
    a = assess_molecule(np.array([6, 1, 1, 1, 1, 1]), pos)
    assert not a.valid and not a.stable
    r = evaluate_molecules([(np.array([6, 1, 1, 1, 1, 1]), pos)])
    assert r["validity"] == 0.0 and r["uniqueness"] == 0.0


def test_rdkit_bond_perception(acetaldehyde):
    a = assess_molecule(*acetaldehyde, bonds="rdkit")
    assert a.stable and a.smiles == ACETALDEHYDE_SMILES


def test_training_smiles_pipeline_is_whole_molecule(acetaldehyde):
    z, pos = acetaldehyde
    assert molecule_smiles(z, pos) == ACETALDEHYDE_SMILES
    two = (np.concatenate([z, [6]]), np.concatenate([pos, [[20.0, 0, 0]]]))
    assert molecule_smiles(*two) == "C." + ACETALDEHYDE_SMILES
    assert molecule_smiles(*two, largest_fragment=True) == ACETALDEHYDE_SMILES


def test_graph_batches_and_records_are_accepted(acetaldehyde):
    from moldiff.molecules.graph import MoleculeGraph, collate_molecules
    from moldiff.molecules.rdkit_io import XYZMolecule

    z, pos = acetaldehyde
    graph = MoleculeGraph(
        torch.as_tensor(pos, dtype=torch.float32), torch.as_tensor(z), torch.zeros(7, dtype=torch.long)
    )
    batch = collate_molecules([graph, graph])
    assert evaluate_molecules(batch)["num_molecules"] == 2
    half = (torch.as_tensor(z), torch.as_tensor(pos).to(torch.bfloat16))
    assert evaluate_molecules([graph, XYZMolecule(z, pos, ""), half])["molecule_stability"] == 1.0


def test_first_training_smiles_say_what_they_compute_and_where_the_cache_goes(
    tmp_path, monkeypatch, capsys, acetaldehyde
):
    from moldiff.molecules.dataset import MoleculeDataset, training_smiles

    z, pos = acetaldehyde
    dataset = MoleculeDataset(
        np.concatenate([z, z]),
        np.concatenate([pos, pos + 5.0]),
        [len(z), len(z)],
        ("H", "C", "O"),
        cache_key="two-acetaldehydes",
    )
    monkeypatch.setenv("MOLDIFF_CACHE_DIR", str(tmp_path / "cache"))
    first = training_smiles(dataset)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "SMILES of 2 training molecules (two-acetaldehydes)" in err
    assert "novelty" in err and "under a second" in err and str(tmp_path / "cache") in err
    assert training_smiles(dataset) == first == {ACETALDEHYDE_SMILES}
    assert capsys.readouterr().err == ""  # warm cache: silent
