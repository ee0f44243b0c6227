"""Physics checks of geometries: MMFF94 and GFN2-xTB relaxations of real QM9 molecules barely move them
and of distorted ones lower the energy a lot; xTB's water energy is GFN2's; PoseBusters flags a
stretched bond; ``moldiff evaluate --geometry`` reports samples beside QM9 and says what it skipped."""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest

from moldiff.molecules.geometry import heavy_atom_rmsd, mmff_relax

needs_qm9pack = pytest.mark.skipif(importlib.util.find_spec("qm9pack") is None, reason="qm9pack is not installed")
needs_tblite = pytest.mark.skipif(
    importlib.util.find_spec("tblite") is None, reason="tblite is not installed (pip install 'moldiff[physics]')"
)
needs_posebusters = pytest.mark.skipif(
    importlib.util.find_spec("posebusters") is None,
    reason="posebusters is not installed (pip install 'moldiff[posebusters]')",
)


@pytest.fixture(scope="module")
def qm9_molecules():
    """Three molecules of QM9's test split with their DFT geometries, bonds and charges."""
    from moldiff.molecules.geometry import qm9_reference

    if importlib.util.find_spec("qm9pack") is None:
        pytest.skip("qm9pack is not installed")
    return qm9_reference(3, seed=0)


def _moved(mol, positions):
    from rdkit import Chem

    out = Chem.Mol(mol)
    out.GetConformer().SetPositions(np.ascontiguousarray(positions, dtype=np.float64))
    return out


def _distorted(mol, scale=0.25, seed=0):
    pos = mol.GetConformer().GetPositions()
    return _moved(mol, pos + np.random.default_rng(seed).normal(0.0, scale, pos.shape))


def test_rmsd_ignores_rigid_motions_and_hydrogens():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(6, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))  # a rotation
    z = np.array([6, 6, 8, 1, 1, 1])
    b = a @ q.T + 3.0
    b[3:] += 0.5  # hydrogens moved: not counted
    assert heavy_atom_rmsd(z, a, b) == pytest.approx(0.0, abs=1e-9)
    mirrored = a * np.array([-1.0, 1.0, 1.0])  # a mirror image is not superposable
    assert heavy_atom_rmsd(np.full(6, 6), a, mirrored) > 0.01


@needs_qm9pack
def test_mmff_barely_moves_real_molecules_and_relaxes_distorted_ones(qm9_molecules):
    for mol in qm9_molecules:
        real = mmff_relax(mol)
        assert real.converged and 0.0 <= real.energy_drop < 15.0 and real.rmsd < 0.5  # a torsion may turn a little
        bad = mmff_relax(_distorted(mol))
        assert bad.energy_drop > 100.0 and bad.energy_drop > 10 * real.energy_drop
        assert bad.rmsd > real.rmsd and bad.positions.shape == (mol.GetNumAtoms(), 3)


def test_mmff_names_what_it_cannot_handle():
    from rdkit import Chem

    from moldiff.molecules.geometry import RelaxationError

    boron = Chem.AddHs(Chem.MolFromSmiles("[BH4-]"))
    from rdkit.Chem import AllChem

    AllChem.EmbedMolecule(boron, randomSeed=0)
    with pytest.raises(RelaxationError, match="no MMFF94 parameters"):
        mmff_relax(boron)


@needs_tblite
def test_xtb_single_point_of_water_is_gfn2s():
    """GFN2-xTB's total energy of water at its experimental geometry is -5.070 Hartree (tblite and xtb)."""
    from moldiff.molecules.bond_metrics import bonded_molecule
    from moldiff.molecules.geometry import xtb_single_point

    pos = [[0.0, 0.0, 0.1173], [0.0, 0.7572, -0.4692], [0.0, -0.7572, -0.4692]]
    water = bonded_molecule([8, 1, 1], [0, 0, 0], pos, [[0, 1, 1], [0, 2, 1]], sanitize=True)
    assert xtb_single_point(water) == pytest.approx(-5.0704, abs=0.002)


@needs_tblite
@needs_qm9pack
@pytest.mark.parametrize("optimizer", ["ase", "scipy"])
def test_xtb_relaxation_of_real_and_distorted_molecules(qm9_molecules, optimizer):
    from moldiff.molecules.geometry import xtb_relax

    if optimizer == "ase" and importlib.util.find_spec("ase") is None:
        pytest.skip("ase is not installed")
    mol = qm9_molecules[0]
    real = xtb_relax(mol, optimizer=optimizer)
    assert real.converged and 0.0 <= real.energy_drop < 5.0 and real.rmsd < 0.1
    bad = xtb_relax(_distorted(mol), optimizer=optimizer)
    assert bad.converged and bad.energy_drop > 50.0 and bad.rmsd > real.rmsd
    assert bad.energy_after == pytest.approx(real.energy_after, abs=1.0)  # back to the same minimum


@needs_tblite
@needs_qm9pack
def test_the_two_xtb_optimisers_agree(qm9_molecules):
    if importlib.util.find_spec("ase") is None:
        pytest.skip("ase is not installed")
    from moldiff.molecules.geometry import xtb_relax

    a, b = (xtb_relax(qm9_molecules[1], optimizer=o) for o in ("ase", "scipy"))
    assert a.energy_before == pytest.approx(b.energy_before, abs=1e-3)  # kcal/mol: ASE's and our unit constants
    assert a.energy_after == pytest.approx(b.energy_after, abs=0.1)


@needs_posebusters
@needs_qm9pack
def test_posebusters_flags_a_stretched_bond(qm9_molecules):
    from moldiff.molecules.geometry import posebusters_pass_rates

    mol = qm9_molecules[0]
    heavy = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]
    bond = next(b for b in mol.GetBonds() if b.GetBeginAtomIdx() in heavy and b.GetEndAtomIdx() in heavy)
    i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
    pos = mol.GetConformer().GetPositions()
    moving = [j] + [n.GetIdx() for n in mol.GetAtomWithIdx(j).GetNeighbors() if n.GetAtomicNum() == 1]
    direction = (pos[j] - pos[i]) / np.linalg.norm(pos[j] - pos[i])
    pos[moving] += 0.8 * direction  # the bond 0.8 A longer, j's hydrogens carried along
    real = posebusters_pass_rates([mol])
    stretched = posebusters_pass_rates([_moved(mol, pos)])
    assert real["bond_lengths"] == 1.0 and stretched["bond_lengths"] == 0.0
    assert stretched["all"] == 0.0 and set(real) >= {"bond_angles", "internal_steric_clash", "all"}


@needs_qm9pack
def test_evaluate_geometry_reports_samples_beside_qm9(tmp_path, qm9_molecules, capsys):
    from moldiff.cli import main
    from moldiff.molecules.rdkit_io import write_sdf

    path = tmp_path / "samples.sdf"
    write_sdf([qm9_molecules[0], _distorted(qm9_molecules[1]), qm9_molecules[2]], path)
    assert main(["evaluate", str(path), "--bonds", "file", "--geometry", "--geometry-reference", "3",
                 "--xtb-max", "1", "--json", "--no-progress"]) == 0  # fmt: skip
    result = json.loads(capsys.readouterr().out)["geometry"]
    samples, reference = result["samples"], result["reference"]
    assert samples["num_checked"] == 3 and reference["num_checked"] == 3
    assert samples["mmff"]["energy_drop_mean"] > reference["mmff"]["energy_drop_mean"] + 30.0
    assert samples["mmff"]["energy_drop_median"] == pytest.approx(reference["mmff"]["energy_drop_median"], abs=0.05)
    if importlib.util.find_spec("tblite") is not None:
        assert samples["xtb"]["relaxed"] == 1 and reference["xtb"]["attempted"] == 1
    assert main(["evaluate", str(path), "--bonds", "file", "--geometry", "--geometry-reference", "0",
                 "--xtb-max", "0", "--no-progress"]) == 0  # fmt: skip
    report = capsys.readouterr().out
    assert "MMFF94: energy drop median (kcal/mol)" in report and "GFN2-xTB" not in report and "QM9 test" not in report


def test_missing_optional_packages_are_one_line(tmp_path, monkeypatch, capsys, acetaldehyde):
    from moldiff.cli import main
    from moldiff.molecules.rdkit_io import build_molecule, write_sdf

    path = tmp_path / "one.sdf"
    write_sdf([build_molecule(*acetaldehyde)], path)
    monkeypatch.setitem(sys.modules, "posebusters", None)  # as if not installed
    monkeypatch.setitem(sys.modules, "tblite", None)
    assert main(["evaluate", str(path), "--posebusters", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "moldiff evaluate: moldiff evaluate --posebusters needs posebusters, which is not installed: "
        "pip install 'moldiff[posebusters]' (or pip install posebusters)"
    ]
    assert main(["evaluate", str(path), "--geometry", "--geometry-reference", "0", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "note: GFN2-xTB skipped: tblite is not installed (pip install 'moldiff[physics]')" in out
    assert "MMFF94: relaxed" in out and "1 / 1" in out


def test_the_checked_molecules_are_the_connected_valid_ones_as_written(tmp_path, acetaldehyde):
    """As the metrics with the file's bonds: no implicit hydrogen is added to an atom missing a bond (it
    stays a radical, which sanitises), a molecule of two fragments or an over-bonded atom is left out."""
    from moldiff.molecules.bond_metrics import bonded_molecule
    from moldiff.molecules.geometry import checkable_molecule, read_geometry_molecules
    from moldiff.molecules.rdkit_io import build_molecule, write_sdf

    z, pos = acetaldehyde
    two = build_molecule(np.concatenate([z, z]), np.concatenate([pos, pos + 10.0]))
    five = bonded_molecule([6, 1, 1, 1, 1, 1], None, np.eye(6, 3) * 1.1, [[0, k, 1] for k in range(1, 6)])
    path = tmp_path / "mixed.sdf"
    write_sdf([build_molecule(z, pos), build_molecule(z[:-1], pos[:-1]), two, five], path)
    checked = [checkable_molecule(m) for m in read_geometry_molecules(path)]
    assert [m is not None for m in checked] == [True, True, False, False]
    radical = checked[1]
    assert radical.GetNumAtoms() == len(z) - 1 and sum(a.GetNumRadicalElectrons() for a in radical.GetAtoms()) == 1
