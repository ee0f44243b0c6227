"""Molecules grown around a fixed fragment (moldiff.molecules.fragments), for both shipped families:
the fixed atoms keep their elements and coordinates up to one rigid motion, the bond-aware model keeps
their bonds, the seeding rule holds, and bad fragments stop with one named error."""

from __future__ import annotations

import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

import moldiff
from moldiff.errors import FragmentError
from moldiff.molecules.fragments import kabsch_rmsd, load_fragment


def _toluene_without_methyl_hydrogens():
    """Toluene's 3D conformer with the methyl H removed: a piece with free valences on one carbon."""
    mol = Chem.AddHs(Chem.MolFromSmiles("Cc1ccccc1"))
    AllChem.EmbedMolecule(mol, randomSeed=0)
    AllChem.MMFFOptimizeMolecule(mol)
    rw = Chem.RWMol(mol)
    for idx in sorted((a.GetIdx() for a in mol.GetAtomWithIdx(0).GetNeighbors() if a.GetSymbol() == "H"), reverse=True):
        rw.RemoveAtom(idx)
    piece = rw.GetMol()
    piece.UpdatePropertyCache(strict=False)
    return piece


@pytest.fixture(scope="module")
def piece():
    return _toluene_without_methyl_hydrogens()


@pytest.mark.parametrize("name", ["qm9", "qm9_edm"])
def test_fixed_atoms_keep_their_elements_and_coordinates(piece, name):
    generator = moldiff.load_pretrained(name)
    mols = generator.sample(3, seed=0, steps=8, fragment=piece, add_atoms=(2, 4))
    given = piece.GetConformer().GetPositions()
    elements = [a.GetAtomicNum() for a in piece.GetAtoms()]
    assert len(mols) == 3
    for mol in mols:
        m = piece.GetNumAtoms()
        assert piece.GetNumAtoms() + 2 <= mol.GetNumAtoms() <= piece.GetNumAtoms() + 4
        assert [a.GetAtomicNum() for a in mol.GetAtoms()][:m] == elements  # the fixed atoms come first
        grown = mol.GetConformer().GetPositions()[:m]
        assert kabsch_rmsd(grown, given) < 1e-3  # up to one rigid motion (the zero-CoM frame moves it)
    assert all(r is not None and r < 1e-3 for r in mols.fragment_rmsd)


def test_the_bond_aware_model_keeps_the_fragment_bonds(piece):
    mols = moldiff.load_pretrained("qm9").sample(3, seed=1, steps=8, fragment=piece, add_atoms=(2, 3))
    m = piece.GetNumAtoms()
    for mol in mols:
        for bond in piece.GetBonds():
            i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
            kept = mol.GetBondBetweenAtoms(i, j)
            assert kept is not None, (i, j)
            assert kept.GetIsAromatic() == bond.GetIsAromatic()
        assert all(i < mol.GetNumAtoms() for i in range(m))


def test_molecules_do_not_depend_on_the_batch_size(piece):
    generator = moldiff.load_pretrained("qm9")
    one = generator.sample(4, seed=3, steps=6, fragment=piece, add_atoms=(2, 4), batch_size=1)
    four = generator.sample(4, seed=3, steps=6, fragment=piece, add_atoms=(2, 4), batch_size=4)
    for a, b in zip(one, four):
        assert a.GetNumAtoms() == b.GetNumAtoms()
        np.testing.assert_allclose(a.GetConformer().GetPositions(), b.GetConformer().GetPositions(), atol=1e-4)


def test_bad_fragments_get_one_named_error(piece, tmp_path):
    flat = Chem.MolFromSmiles("CCO")
    AllChem.Compute2DCoords(flat)
    with pytest.raises(FragmentError, match="3D"):
        load_fragment(flat)
    gold = Chem.RWMol(piece)
    gold.GetAtomWithIdx(0).SetAtomicNum(79)
    with pytest.raises(FragmentError, match="unknown element 'Au'|outside|vocabulary|Au"):
        moldiff.load_pretrained("qm9").sample(1, seed=0, steps=2, fragment=gold.GetMol(), add_atoms=(1, 2))
    with pytest.raises(FragmentError, match="more than num_atoms"):
        moldiff.load_pretrained("qm9").sample(1, seed=0, steps=2, fragment=piece, num_atoms=piece.GetNumAtoms() - 1)
    empty = tmp_path / "empty.sdf"
    empty.write_text("")
    with pytest.raises(FragmentError, match="empty"):
        load_fragment(str(empty))
