"""ASE Atoms in and out: RDKit -> ASE -> RDKit keeps SMILES, coordinates and charges, with the bonds kept
or perceived again, and a converted molecule goes straight into an ASE calculator."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("ase") is None, reason="ase is not installed (pip install 'moldiff[ase]')"
)


def _embedded(smiles: str, seed: int = 0):
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=seed) == 0
    AllChem.MMFFOptimizeMolecule(mol)  # a clean geometry, so that perceived bonds are the real ones
    return mol


@pytest.mark.parametrize(
    "smiles, perceivable",
    [("c1ccccc1C(=O)O", True), ("N#CC=C", True), ("O=C1CCC(=O)N1", True), ("C[NH3+].CC(=O)[O-]", False)],
)
def test_rdkit_to_ase_to_rdkit(smiles, perceivable):
    """Perceiving bonds knows the total charge only, so an ion pair keeps its charges through the stored
    bonds (xyz2mol finds no neutral-total assignment for it and says so)."""
    from moldiff.molecules.ase_io import from_ase, to_ase
    from moldiff.molecules.bond_metrics import canonical_smiles

    mol = _embedded(smiles)
    atoms = to_ase(mol)
    assert atoms.get_chemical_formula() == to_ase([mol])[0].get_chemical_formula()
    assert atoms.info["charge"] == 0 and atoms.info["bonds"].shape == (mol.GetNumBonds(), 3)
    np.testing.assert_allclose(atoms.get_positions(), mol.GetConformer().GetPositions())
    for bonds in ("auto", "perceive") if perceivable else ("auto",):  # stored bonds, then rdDetermineBonds
        back = from_ase(atoms, bonds=bonds)
        assert canonical_smiles(back) == canonical_smiles(mol), bonds
        np.testing.assert_allclose(back.GetConformer().GetPositions(), mol.GetConformer().GetPositions())
    charges = [a.GetFormalCharge() for a in from_ase(atoms).GetAtoms()]
    assert charges == [a.GetFormalCharge() for a in mol.GetAtoms()]
    if perceivable:
        plain = atoms.copy()
        plain.info.clear()  # as a file format without moldiff's bonds gives it back: bonds perceived
        assert canonical_smiles(from_ase(plain)) == canonical_smiles(mol)


def test_a_converted_molecule_runs_in_an_ase_calculator():
    from ase.calculators.emt import EMT  # ASE's own toy potential: no other package needed

    from moldiff.molecules.ase_io import from_ase, to_ase

    atoms = to_ase(_embedded("CCO"))
    atoms.calc = EMT()
    assert np.isfinite(atoms.get_potential_energy()) and atoms.get_forces().shape == (9, 3)
    assert from_ase(atoms).GetNumBonds() == 8


def test_unperceivable_atoms_are_named():
    from ase import Atoms

    from moldiff.errors import InputError
    from moldiff.molecules.ase_io import from_ase

    with pytest.raises(InputError, match="cannot perceive the bonds of CH3"):
        from_ase(Atoms("CH3", positions=[[0, 0, 0], [1.09, 0, 0], [-0.5, 0.94, 0], [-0.5, -0.94, 0]]), charge=0)
