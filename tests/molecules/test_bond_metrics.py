"""Metrics of molecules generated with bonds and charges: real QM9 test molecules (their own bonds) score
as real molecules, hand-made broken ones are flagged by the metric that should flag them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from moldiff.molecules.bond_data import BondedQM9Dataset, collate_bonded, derive_bonded_arrays
from moldiff.molecules.bond_metrics import (
    BOND_METRIC_KEYS,
    assess_bonded_molecule,
    atom_valences,
    bond_list,
    bonded_molecule,
    canonical_smiles,
    evaluate_bonded_molecules,
    mol_bond_arrays,
    sdf_readback,
    stable_atoms,
)
from moldiff.molecules.qm9 import edm_split_indices, load_qm9

pytest.importorskip("rdkit")


@pytest.fixture(scope="module")
def bonded_arrays(shared_data):
    """300 random molecules of QM9's test split with their derived bonds and charges."""
    path = shared_data / "qm9" / "qm9.npz"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    rows = np.sort(np.random.RandomState(1).choice(edm_split_indices()["test"], 300, replace=False))
    return derive_bonded_arrays(load_qm9(path), rows)


@pytest.fixture(scope="module")
def test_molecules(bonded_arrays):
    return BondedQM9Dataset("test", arrays=bonded_arrays)


def _pos(n: int, seed: int = 0) -> np.ndarray:
    return np.random.RandomState(seed).normal(size=(n, 3)) * 1.5


def _hydrogens(first: int, heavy: list[int], counts: list[int]) -> list[tuple[int, int, int]]:
    """Single bonds from each heavy atom to its hydrogens, numbered from ``first``."""
    rows, h = [], first
    for atom, count in zip(heavy, counts):
        for _ in range(count):
            rows.append((atom, h, 1))
            h += 1
    return rows


# hand-made molecules: (atomic numbers, formal charges, bonds (i, j, class))
METHANE = ([6, 1, 1, 1, 1], [0] * 5, _hydrogens(1, [0], [4]))
PENTAVALENT_C = ([6, 1, 1, 1, 1, 1], [0] * 6, _hydrogens(1, [0], [5]))
DISCONNECTED = ([6, 1, 1, 1, 1, 8, 1, 1], [0] * 8, _hydrogens(1, [0], [4]) + [(5, 6, 1), (5, 7, 1)])
AMMONIUM = ([7, 1, 1, 1, 1], [1, 0, 0, 0, 0], _hydrogens(1, [0], [4]))
TRIVALENT_N_PLUS = ([7, 1, 1, 1], [1, 0, 0, 0], _hydrogens(1, [0], [3]))
AROMATIC_CHAIN = ([6, 6] + [1] * 6, [0] * 8, [(0, 1, 4)] + _hydrogens(2, [0, 1], [3, 3]))
# furan with aromatic bonds: O 0, C 1-4, H 5-8
FURAN = (
    [8, 6, 6, 6, 6, 1, 1, 1, 1],
    [0] * 9,
    [(0, 1, 4), (1, 2, 4), (2, 3, 4), (3, 4, 4), (4, 0, 4)] + _hydrogens(5, [1, 2, 3, 4], [1, 1, 1, 1]),
)
# CH3 radical: a carbon missing a hydrogen
METHYL = ([6, 1, 1, 1], [0] * 4, _hydrogens(1, [0], [3]))


def _assess(mol, **kw):
    z, q, b = mol
    return assess_bonded_molecule(z, q, _pos(len(z)), np.array(b), **kw)


# ------------------------------------------------------------------------------------------------
# real molecules


def test_qm9_test_molecules_score_as_real_molecules(test_molecules, bonded_arrays):
    items = [test_molecules[i] for i in range(len(test_molecules))]
    own = set(test_molecules.smiles.tolist())
    result = evaluate_bonded_molecules(items, training_smiles=own)
    assert tuple(result) == BOND_METRIC_KEYS and result["num_molecules"] == 300
    assert result["atom_stability"] >= 0.99
    assert result["molecule_stability"] >= 0.98
    assert result["validity"] >= 0.99 and result["validity_largest_fragment"] >= 0.99
    assert result["connected_validity"] >= 0.99 and result["fraction_disconnected"] == 0.0
    assert result["sdf_readback"] >= 0.99
    assert result["uniqueness"] == 1.0
    assert result["novelty"] == 0.0
    assert evaluate_bonded_molecules(items[:20], training_smiles=set(), sdf=False)["novelty"] == 1.0
    # the same figures from a packed batch, from Kekulé bonds, and under MiDi's valence table
    assert evaluate_bonded_molecules(collate_bonded(items[:50]), sdf=False)["molecule_stability"] >= 0.98
    kek = BondedQM9Dataset("test", arrays=bonded_arrays, kekulize=True)
    assert evaluate_bonded_molecules([kek[i] for i in range(len(kek))], sdf=False)["molecule_stability"] >= 0.98
    assert evaluate_bonded_molecules(items, valences="midi", sdf=False)["molecule_stability"] >= 0.98


def test_midi_aromatic_arithmetic_flags_furan_but_kekule_does_not():
    assert _assess(FURAN).stable and _assess(FURAN).valid
    midi = _assess(FURAN, aromatic="midi")  # O: 1.5 + 1.5 = 3, not 2
    assert not midi.stable and midi.num_stable_atoms == 8


def test_inputs_as_lists_matrices_pairs_and_rdkit_molecules_agree(test_molecules):
    m = test_molecules[5]
    n = m.num_atoms
    forms = [
        (m.atomic_numbers, m.charges, m.pos, m.bonds),  # [B, 3] rows
        (m.atomic_numbers, m.charges, m.pos, (m.bond_index, m.bond_types)),  # ([2, B], [B])
        (m.atomic_numbers, m.charges, m.pos, (m.bond_index.T, m.bond_types)),  # ([B, 2], [B])
        (m.atomic_numbers, m.charges, m.pos, m.bond_matrix()),  # dense [n, n]
        {
            "atomic_numbers": m.atomic_numbers,
            "formal_charges": m.charges,
            "positions": m.pos,
            "bond_matrix": torch.triu(m.bond_matrix()),
        },  # upper triangle only
        bonded_molecule(m.atomic_numbers, m.charges, m.pos, m.bonds),  # an RDKit Mol
        m,  # the item itself
    ]
    results = [evaluate_bonded_molecules([f], sdf=False) for f in forms]
    assert all(r == results[0] for r in results) and results[0]["molecule_stability"] == 1.0
    mol = bonded_molecule(m.atomic_numbers, m.charges, m.pos, m.bonds)
    z, q, index, classes = mol_bond_arrays(mol)
    assert torch.equal(torch.from_numpy(index.T), m.bond_index) and torch.equal(torch.from_numpy(classes), m.bond_types)
    assert mol.GetNumAtoms() == n and np.allclose(mol.GetConformer().GetPositions(), m.pos.numpy(), atol=1e-5)


# ------------------------------------------------------------------------------------------------
# broken molecules


def test_a_carbon_with_five_bonds_is_unstable_and_invalid():
    a = _assess(PENTAVALENT_C)
    assert a.num_stable_atoms == 5 and not a.stable  # the hydrogens are fine, the carbon is not
    assert not a.valid and a.largest_fragment_smiles is None
    assert _assess(METHANE).stable and _assess(METHANE).smiles == "C"


def test_a_disconnected_pair_fails_connected_validity_only():
    a = _assess(DISCONNECTED)
    assert a.stable and a.valid and a.num_fragments == 2 and not a.connected_valid
    assert a.smiles == "C.O" and a.largest_fragment_smiles == "C"
    r = evaluate_bonded_molecules(
        [(np.array(DISCONNECTED[0]), np.array(DISCONNECTED[1]), _pos(8), np.array(DISCONNECTED[2]))]
    )
    assert r["validity"] == 1.0 and r["connected_validity"] == 0.0 and r["fraction_disconnected"] == 1.0


def test_a_charged_nitrogen_needs_four_bonds():
    assert _assess(AMMONIUM).stable and _assess(AMMONIUM).smiles == "[NH4+]"
    a = _assess(TRIVALENT_N_PLUS)
    assert not a.stable and a.num_stable_atoms == 3
    assert a.valid and a.smiles == "[NH3+]"  # RDKit sanitizes it (a radical cation); stability flags it
    assert _assess(TRIVALENT_N_PLUS, valences="midi").stable  # MiDi's table allows N+ with 2, 3 or 4 bonds


def test_an_aromatic_bond_outside_a_ring_is_invalid_and_unstable():
    a = _assess(AROMATIC_CHAIN)
    assert not a.valid and not a.stable and a.num_stable_atoms == 6  # both carbons: 3 + 1.5
    z, q, b = AROMATIC_CHAIN
    mol = bonded_molecule(z, q, _pos(len(z)), np.array(b))
    assert canonical_smiles(mol) is None
    # RDKit's molfile reader is lenient here: it reads the aromatic (type 4) chain bond back as "C:C"
    assert sdf_readback([mol]).tolist() == [True]
    assert _assess(AROMATIC_CHAIN, aromatic="midi").stable  # MiDi truncates 4.5 to 4


def test_a_missing_hydrogen_stays_a_radical():
    a = _assess(METHYL)
    assert not a.stable and a.valid and a.smiles == "[CH3]"
    z, q, b = METHYL
    implicit = bonded_molecule(z, q, None, np.array(b), implicit_hydrogens=True)
    assert canonical_smiles(implicit) == "C"  # EDM / MiDi builders would add the hydrogen back


def test_a_set_with_broken_molecules(tmp_path):
    mols = [METHANE, PENTAVALENT_C, DISCONNECTED, AMMONIUM, TRIVALENT_N_PLUS, AROMATIC_CHAIN, FURAN, METHANE]
    items = [(np.array(z), np.array(q), _pos(len(z)), np.array(b)) for z, q, b in mols]
    r = evaluate_bonded_molecules(items, training_smiles={"C"})
    assert r["num_molecules"] == 8
    assert r["molecule_stability"] == pytest.approx(5 / 8)  # methane x2, disconnected, ammonium, furan
    assert r["validity"] == pytest.approx(6 / 8)  # not: C with 5 bonds, the aromatic chain
    assert r["connected_validity"] == pytest.approx(5 / 8)
    assert r["uniqueness"] == pytest.approx(5 / 6)  # C, C.O, [NH4+], [NH3+], c1ccoc1; methane twice
    assert r["novelty"] == pytest.approx(4 / 5)
    assert r["sdf_readback"] == pytest.approx(7 / 8)  # all but the pentavalent carbon
    n_atoms = sum(len(z) for z, _, _ in mols)
    assert r["atom_stability"] == pytest.approx((n_atoms - 1 - 1 - 2) / n_atoms)
    path = tmp_path / "broken.sdf"
    ok = sdf_readback([bonded_molecule(*item) for item in items], path)
    assert path.is_file() and ok.tolist() == [True, False, True, True, True, True, True, True]


# ------------------------------------------------------------------------------------------------
# building blocks


def test_bonded_molecule_keeps_charges_conformer_and_aromatic_flags():
    z, q, b = FURAN
    pos = _pos(len(z))
    mol = bonded_molecule(z, q, pos, np.array(b))
    assert np.allclose(mol.GetConformer().GetPositions(), pos) and mol.GetConformer().Is3D()
    assert sum(a.GetIsAromatic() for a in mol.GetAtoms()) == 5
    assert canonical_smiles(mol) == "c1ccoc1"
    nh4 = bonded_molecule(*AMMONIUM[:2], None, np.array(AMMONIUM[2]))
    assert nh4.GetNumConformers() == 0 and nh4.GetAtomWithIdx(0).GetFormalCharge() == 1


def test_bond_list_rejects_malformed_bonds():
    assert [x.tolist() for x in bond_list(3, [[2, 0, 1], [1, 0, 2], [1, 2, 0]])] == [[0, 0], [1, 2], [2, 1]]
    for bad in ([[0, 0, 1]], [[0, 1, 1], [1, 0, 2]], [[0, 1, 5]], [[0, 3, 1]], [[0, 1]]):
        with pytest.raises(ValueError):
            bond_list(3, bad)
    with pytest.raises(ValueError):
        bond_list(3, bond_matrix=np.array([[0, 1, 0], [2, 0, 0], [0, 0, 0]]))  # asymmetric
    with pytest.raises(ValueError):
        bond_list(3, [[0, 1, 1]], bond_matrix=np.zeros((3, 3)))


def test_valences_and_tables():
    z, q, b = FURAN
    i, j, c = bond_list(len(z), np.array(b))
    mol = bonded_molecule(z, q, None, np.array(b))
    assert atom_valences(len(z), i, j, c, mol).tolist() == [2, 4, 4, 4, 4, 1, 1, 1, 1]
    assert atom_valences(len(z), i, j, c, aromatic="midi").tolist() == [3, 4, 4, 4, 4, 1, 1, 1, 1]
    v = np.array([4.0, 3.0, 3.0, 1.0, 0.0])
    zz, qq = np.array([6, 6, 7, 8, 9]), np.array([0, 0, 1, -1, -1])
    assert stable_atoms(zz, qq, v).tolist() == [True, False, False, True, False]
    assert stable_atoms(zz, qq, v, "midi").tolist() == [True, True, True, True, True]
    assert stable_atoms(np.array([6]), np.array([2]), np.array([4.0]), "midi").tolist() == [True]  # neutral fallback
    assert stable_atoms(np.array([6]), np.array([2]), np.array([4.0])).tolist() == [False]
