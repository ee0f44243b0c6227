"""QM9 with bonds and charges: derivation, the packed batch's pair order, permutations, round trips,
marginals and the cache. Real molecules: a few hundred of QM9's test split (``../shared/data/qm9/qm9.npz``),
derived on the fly (no full-QM9 cache); small molecules embedded from SMILES where no data is needed."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from moldiff.core.categorical import edge_id, edge_permutation, upper_triangle_edges
from moldiff.molecules.bond_data import (
    BondDerivationError,
    BondedBatch,
    BondedMoleculeGraph,
    BondedQM9Dataset,
    collate_bonded,
    dense_bond_matrix,
    derive_bonded_arrays,
    derive_bonds,
    load_bonded_qm9,
)
from moldiff.molecules.bond_metrics import bonded_molecule, canonical_smiles
from moldiff.molecules.qm9 import edm_split_indices, load_qm9

pytest.importorskip("rdkit")


def _reference_smiles(smiles: str) -> str:
    from rdkit import Chem

    mol = Chem.MolFromSmiles(smiles)
    Chem.RemoveStereochemistry(mol)
    return Chem.MolToSmiles(mol)


@pytest.fixture(scope="module")
def qm9(shared_data):
    path = shared_data / "qm9" / "qm9.npz"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return load_qm9(path)


@pytest.fixture(scope="module")
def test_rows():
    rows = edm_split_indices()["test"]
    return np.sort(np.random.RandomState(0).choice(rows, 240, replace=False))


@pytest.fixture(scope="module")
def bonded(qm9, test_rows):
    return derive_bonded_arrays(qm9, test_rows)


@pytest.fixture(scope="module")
def dataset(bonded):
    return BondedQM9Dataset("test", arrays=bonded)


def _embedded(smiles: str, seed: int = 7):
    """(atomic numbers, positions) of an RDKit conformer of ``smiles`` with hydrogens."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=seed) == 0
    AllChem.MMFFOptimizeMolecule(mol)
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()])
    return z, mol.GetConformer().GetPositions()


# ------------------------------------------------------------------------------------------------
# derivation


@pytest.mark.parametrize("smiles", ["c1ccoc1", "c1cc[nH]c1", "Cc1ccncn1", "[NH3+]CC(=O)[O-]", "N#CC(=O)C#C", "OC1CC1F"])
def test_derivation_from_a_conformer_reproduces_the_smiles(smiles):
    z, pos = _embedded(smiles)
    for given in (smiles, None):  # the template, then xyz2mol from the geometry alone
        d = derive_bonds(z, pos, given)
        assert d.method == ("template" if given else "xyz2mol")
        assert d.formal_charges.sum() == 0
        mol = bonded_molecule(z, d.formal_charges, pos, (d.bond_index.T, d.bond_types))
        if given or "+" not in smiles:  # xyz2mol writes the zwitterion as the neutral amino acid
            assert canonical_smiles(mol) == _reference_smiles(smiles)
        kekule = bonded_molecule(z, d.formal_charges, pos, (d.bond_index.T, d.kekule_types))
        assert canonical_smiles(kekule) == canonical_smiles(mol)
        assert set(d.kekule_types.tolist()) <= {1, 2, 3}
        assert (d.bond_types == 4).any() == ("c" in smiles or "n" in smiles)


def test_zwitterion_charges_come_from_the_template():
    z, pos = _embedded("[NH3+]CC(=O)[O-]")
    d = derive_bonds(z, pos, "[NH3+]CC(=O)[O-]")
    assert sorted(d.formal_charges[d.formal_charges != 0].tolist()) == [-1, 1]
    assert z[d.formal_charges == 1].tolist() == [7] and z[d.formal_charges == -1].tolist() == [8]


def test_a_wrong_template_falls_back_to_the_geometry():
    z, pos = _embedded("CCO")
    d = derive_bonds(z, pos, "COC")  # same atoms, another graph
    assert d.method == "xyz2mol"
    assert canonical_smiles(bonded_molecule(z, d.formal_charges, pos, (d.bond_index.T, d.bond_types))) == "CCO"


def test_an_unparsable_smiles_is_an_error_with_a_reason():
    z, pos = _embedded("CCO")
    with pytest.raises(BondDerivationError) as err:
        derive_bonds(z, pos, "C1CC")
    assert err.value.reason == "smiles_unparsable"


def test_strained_cages_get_the_smiles_graph(qm9):
    """The bridgeheads of 2-oxabicyclo[1.1.1]pentanes are 1.8 A apart: RDKit's default connectivity
    bonds them, covFactor 1.15 does not, and the template then matches. GDB 38233 and 72320 have a
    1.71 / 1.77 A bond (covFactor 1.2), 133831 a 1.74 A non-bond (1.1). 133857's geometry is another
    isomer than its SMILES: its bonds come from the geometry (xyz2mol)."""
    row = {int(v): k for k, v in enumerate(qm9["index"])}
    cages = [k for k in range(20000) if qm9["smiles"][k] in ("CC12CC(C1)O2", "CC1C2CC1O2")]
    assert cages
    arrays = derive_bonded_arrays(qm9, cages + [row[g] for g in (38233, 72320, 133831, 133857)])
    assert len(arrays["excluded_rows"]) == 0
    assert arrays["method"].tolist() == [0] * (len(cages) + 3) + [1]
    for k, smiles, method in zip(arrays["rows"], arrays["smiles"], arrays["method"]):
        assert (smiles == _reference_smiles(qm9["smiles"][k])) == (method == 0)


def test_real_molecules_agree_with_their_gdb_smiles(qm9, bonded, test_rows):
    assert len(bonded["rows"]) == len(test_rows) and len(bonded["excluded_rows"]) == 0
    reference = [_reference_smiles(qm9["smiles"][k]) for k in bonded["rows"]]
    assert (np.array(reference) == bonded["smiles"]).mean() >= 0.99
    assert set(np.unique(bonded["formal_charges"]).tolist()) <= {-1, 0, 1}
    assert set(np.unique(bonded["bond_types"]).tolist()) <= {1, 2, 3, 4}
    assert set(np.unique(bonded["kekule_types"]).tolist()) <= {1, 2, 3}


def test_charged_molecules_of_qm9_keep_their_charges(qm9):
    rows = [k for k in range(len(qm9["smiles"])) if "+" in qm9["smiles"][k]][:5]
    arrays = derive_bonded_arrays(qm9, rows)
    assert len(arrays["rows"]) == 5
    offsets = np.concatenate([[0], np.cumsum(arrays["num_atoms"])])
    for m, k in enumerate(arrays["rows"]):
        q = arrays["formal_charges"][offsets[m] : offsets[m + 1]]
        assert q.sum() == 0 and (q == 1).sum() >= 1
        assert arrays["smiles"][m] == _reference_smiles(qm9["smiles"][k])


# ------------------------------------------------------------------------------------------------
# dataset and batch


def test_items_carry_what_the_model_needs(dataset, bonded):
    assert len(dataset) == len(bonded["rows"])
    item = dataset[3]
    n = item.num_atoms
    assert item.pos.shape == (n, 3) and item.pos.dtype == torch.float32
    assert item.atom_types.shape == (n,) and item.atom_types.max() < 5
    assert torch.equal(item.charge_classes, item.charges + 1)
    assert item.bond_index.shape[0] == 2 and (item.bond_index[0] < item.bond_index[1]).all()
    assert item.bond_types.min() >= 1 and item.bond_types.max() <= 4
    assert item.bonds.shape == (item.bond_types.numel(), 3)
    m = item.bond_matrix()
    assert torch.equal(m, m.T) and int((m > 0).sum()) == 2 * item.bond_types.numel()
    assert dataset.methods[3] == "template" and dataset.excluded == {}
    assert BondedQM9Dataset("train", arrays=bonded).__len__() == 0  # the rows are all test rows
    kek = BondedQM9Dataset("test", arrays=bonded, kekulize=True)
    assert int(max(kek[i].bond_types.max() for i in range(len(kek)))) <= 3


def test_pair_classes_follow_upper_triangle_edges_and_edge_id(dataset):
    items = [dataset[i] for i in range(40)]
    batch = collate_bonded(items)
    assert isinstance(batch, BondedBatch) and batch.num_graphs == 40
    assert torch.equal(batch.edge_index, upper_triangle_edges(batch.batch, batch.num_graphs))
    E = int((batch.num_atoms * (batch.num_atoms - 1) // 2).sum())
    assert batch.edge_types.shape == (E,) and batch.edge_types.dtype == torch.long
    assert int((batch.edge_types > 0).sum()) == sum(m.bond_types.numel() for m in items)
    # every pair's class is the molecule's dense bond matrix entry, at edge_id of the pair
    i, j = batch.edge_index
    local = i - batch.ptr[batch.batch[i]], j - batch.ptr[batch.batch[j]]
    dense = [m.bond_matrix() for m in items]
    expected = torch.stack(
        [dense[g][a, b] for g, a, b in zip(batch.batch[i].tolist(), local[0].tolist(), local[1].tolist())]
    )
    assert torch.equal(batch.edge_types, expected)
    assert torch.equal(edge_id(i, j, batch.batch), torch.arange(E))
    assert torch.equal(
        batch.edge_types[edge_id(batch.bond_index[1], batch.bond_index[0], batch.batch)], batch.bond_types
    )
    for a, b in zip(items, batch.unbatch()):
        assert torch.equal(a.bond_index, b.bond_index) and torch.equal(a.bond_types, b.bond_types)
        assert torch.equal(a.charges, b.charges) and torch.equal(a.pos, b.pos)


def test_permuting_atoms_permutes_the_bonds_consistently(dataset):
    gen = torch.Generator().manual_seed(0)
    items = [dataset[i] for i in range(12)]
    perms = [torch.randperm(m.num_atoms, generator=gen) for m in items]
    moved = [m.permute(p) for m, p in zip(items, perms)]
    for m, p, q in zip(items, perms, moved):
        assert torch.equal(q.bond_matrix(), m.bond_matrix()[p][:, p])
        assert torch.equal(q.atomic_numbers, m.atomic_numbers[p])
        assert canonical_smiles(
            bonded_molecule(q.atomic_numbers, q.charges, q.pos, (q.bond_index, q.bond_types))
        ) == canonical_smiles(bonded_molecule(m.atomic_numbers, m.charges, m.pos, (m.bond_index, m.bond_types)))
    a, b = collate_bonded(items), collate_bonded(moved)
    offsets = a.ptr[:-1]
    perm = torch.cat([p + o for p, o in zip(perms, offsets)])
    assert torch.equal(b.edge_types, a.edge_types[edge_permutation(perm, a.batch, a.num_graphs)])
    assert torch.equal(b.pos, a.pos[perm])


def test_stored_bonds_round_trip_to_the_smiles(dataset, qm9):
    for k in range(0, len(dataset), 3):
        m = dataset[k]
        mol = bonded_molecule(m.atomic_numbers, m.charges, m.pos, (m.bond_index, m.bond_types))
        assert mol.GetNumConformers() == 1
        assert np.allclose(mol.GetConformer().GetPositions(), m.pos.numpy(), atol=1e-5)
        smiles = canonical_smiles(mol)
        assert smiles == dataset.smiles[k]
        assert smiles == _reference_smiles(qm9["smiles"][dataset.rows[k]])


def test_collate_of_64_molecules_is_fast(dataset):
    items = [dataset[i] for i in range(64)]
    collate_bonded(items)
    times = []
    for _ in range(15):
        start = time.perf_counter()
        collate_bonded(items)
        times.append(time.perf_counter() - start)
    assert min(times) < 0.010, f"collate of 64 molecules took {1000 * min(times):.1f} ms"


def test_the_loader_yields_bonded_batches(dataset):
    batch = next(iter(dataset.loader(batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(0))))
    assert isinstance(batch, BondedBatch) and batch.num_graphs == 16
    assert batch.edge_types.shape == batch.edge_index.shape[1:]


def test_marginals(dataset):
    m = dataset.marginals()
    for key in ("atom_types", "charges", "bond_types"):
        assert m[key].sum() == pytest.approx(1.0) and (m[key] >= 0).all()
    assert m["bond_types"].shape == (5,) and m["bond_types"][0] > 0.7  # most pairs are not bonded
    assert m["charges"][1] > 0.99
    assert sum(m["num_atoms"].values()) == pytest.approx(1.0)
    assert m["num_pairs"] == int((dataset.num_atoms * (dataset.num_atoms - 1) // 2).sum())
    assert m["bond_types"][1:].sum() * m["num_pairs"] == pytest.approx(m["num_bonds"])
    assert np.allclose(m["charges_per_atom_type"].sum(1)[m["atom_types"] > 0], 1.0)


def test_dense_bond_matrix_and_defaults():
    m = dense_bond_matrix(3, torch.tensor([[0, 1], [1, 2]]), torch.tensor([2, 1]))
    assert m.tolist() == [[0, 2, 0], [2, 0, 1], [0, 1, 0]]
    g = BondedMoleculeGraph(pos=torch.zeros(2, 3), atomic_numbers=torch.tensor([1, 1]), atom_types=torch.tensor([0, 0]))
    assert g.bond_types.numel() == 0 and g.charge_classes.tolist() == [1, 1]
    with pytest.raises(ValueError):
        BondedMoleculeGraph(
            pos=torch.zeros(2, 3),
            atomic_numbers=torch.tensor([1, 1]),
            atom_types=torch.tensor([0, 0]),
            bond_index=torch.tensor([[0, 1]]),
            bond_types=torch.tensor([1]),
        )


# ------------------------------------------------------------------------------------------------
# cache


def test_the_cache_is_written_once_and_reused(qm9, tmp_path, capsys, monkeypatch):
    offsets = np.concatenate([[0], np.cumsum(qm9["num_atoms"])])
    n = 30
    source = tmp_path / "small_qm9.npz"
    np.savez(
        source,
        index=qm9["index"][:n],
        num_atoms=qm9["num_atoms"][:n],
        smiles=qm9["smiles"][:n],
        charges=qm9["atomic_numbers"][: offsets[n]],
        positions=qm9["positions"][: offsets[n]],
    )
    cache = tmp_path / "cache"
    first = load_bonded_qm9(source, cache_dir=cache)
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "derived bonds and charges of 30" in lines[0] and " s: " in lines[0]
    files = sorted(cache.glob("qm9_bonds_*.npz"))
    assert len(files) == 1 and "small_qm9" in files[0].name and "_v1_rdkit-" in files[0].name

    import moldiff.molecules.bond_data as bond_data

    def fail(*args, **kwargs):
        raise AssertionError("the cache was rebuilt")

    monkeypatch.setattr(bond_data, "derive_bonded_arrays", fail)
    again = load_bonded_qm9(source, cache_dir=cache)
    assert capsys.readouterr().err == ""
    assert set(again) == set(first)
    for key in first:
        assert np.array_equal(first[key], again[key]), key
    ds = BondedQM9Dataset("all", source, cache_dir=cache)
    assert len(ds) == n and ds[0].bond_types.numel() > 0


def test_the_modules_import_rdkit_only_inside_functions():
    import ast

    import moldiff.molecules.bond_data as data
    import moldiff.molecules.bond_metrics as metrics

    for module in (data, metrics):
        tree = ast.parse(open(module.__file__).read())
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        names = [a.name for n in top if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in top if isinstance(n, ast.ImportFrom)]
        assert not [m for m in names if m.split(".")[0] == "rdkit"], module.__name__
