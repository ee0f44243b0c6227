import gzip

import numpy as np
import pytest
from rdkit import Chem

from moldiff.molecules.rdkit_io import (
    MoleculeRecordError,
    XYZFormatError,
    build_molecule,
    mol_to_arrays,
    read_sdf_records,
    read_xyz,
    write_sdf,
    write_xyz,
)

ATOM = "{:10.4f}{:10.4f}{:10.4f} {:<3s} 0  0  0  0  0  0  0  0  0  0  0  0\n"


def mol_block(title, atoms, dim="3D"):
    """A V2000 mol block (no bonds) for hand-made bad-input fixtures."""
    text = f"{title}\n  moldiff      {dim}\n\n{len(atoms):3d}  0  0  0  0  0  0  0  0  0999 V2000\n"
    for sym, (x, y, z) in atoms:
        text += ATOM.format(x, y, z, sym)
    return text + "M  END\n$$$$\n"


WATER = [("O", (0.0, 0.0, 0.1173)), ("H", (0.0, 0.7572, -0.4692)), ("H", (0.0, -0.7572, -0.4692))]


def test_build_molecule_edm_and_rdkit_bonds(acetaldehyde):
    z, pos = acetaldehyde
    mol = build_molecule(z, pos)
    assert mol.GetNumConformers() == 1 and mol.GetConformer().Is3D()
    np.testing.assert_allclose(mol.GetConformer().GetPositions(), pos)
    Chem.SanitizeMol(mol)
    assert Chem.MolToSmiles(Chem.RemoveHs(mol)) == "CC=O"
    mol2 = build_molecule(z, pos, bonds="rdkit", sanitize=True)
    assert Chem.MolToSmiles(Chem.RemoveHs(mol2)) == "CC=O"
    assert build_molecule(z, pos, bonds=None).GetNumBonds() == 0
    z2, pos2 = mol_to_arrays(mol)
    np.testing.assert_array_equal(z2, z)


def test_sdf_round_trip(tmp_path, acetaldehyde):
    z, pos = acetaldehyde
    shifted = (z[:3], pos[:3] + 5.0)
    path = tmp_path / "out.sdf.gz"
    assert write_sdf([(z, pos), shifted], path, titles=["a", "b"]) == 2
    records = read_sdf_records(path)
    assert [r.title for r in records] == ["a", "b"] and [r.record for r in records] == [1, 2]
    np.testing.assert_array_equal(records[0].atomic_numbers, z)
    np.testing.assert_allclose(records[0].positions, pos, atol=1e-4)  # V2000 keeps 4 decimals
    np.testing.assert_allclose(records[1].positions, shifted[1], atol=1e-4)
    # RDKit molecules are written with their own bonds
    write_sdf([build_molecule(z, pos)], tmp_path / "m.sdf")
    m = Chem.MolFromMolFile(str(tmp_path / "m.sdf"), removeHs=False)
    assert m.GetNumBonds() == 6


def test_xyz_round_trip(tmp_path, acetaldehyde):
    z, pos = acetaldehyde
    path = tmp_path / "out.xyz"
    write_xyz([(z, pos), (z[:2], pos[:2])], path, comments=["first", "second"])
    frames = read_xyz(path)
    assert len(frames) == 2 and frames[0].comment == "first"
    np.testing.assert_array_equal(frames[0].atomic_numbers, z)
    np.testing.assert_allclose(frames[0].positions, pos, atol=1e-8)
    np.testing.assert_allclose(frames[1].positions, pos[:2], atol=1e-8)


def test_xyz_reader_accepts_mathematica_exponents_and_atomic_numbers(tmp_path):
    path = tmp_path / "q.xyz"
    path.write_text("2\nqm9 style\nC 0.0 0.0 1.5*^-3 -0.1\n8 0.0 0.0 1.2 0.1\n")
    (frame,) = read_xyz(path)
    assert frame.atomic_numbers.tolist() == [6, 8]
    assert frame.positions[0, 2] == pytest.approx(1.5e-3)


@pytest.mark.parametrize(
    "text, message",
    [
        ("two\nc\nC 0 0 0\nC 0 0 1\n", "line 1: expected the number of atoms"),
        ("3\nc\nC 0 0 0\nC 0 0 1\n", "announces 3 atoms but the file ends after 2"),
        ("2\nc\nC 0 0 0\nXx 0 0 1\n", "line 4: unknown element 'Xx'"),
        ("2\nc\nC 0 0 0\nC 0 zero 1\n", "line 4: non-numeric coordinate"),
        ("2\nc\nC 0 0 0\nC 0 0\n", "line 4: expected 'element x y z'"),
        ("2\nc\nC 0 0 nan\nC 0 0 1\n", "line 3: non-finite coordinate"),
        ("\n\n", "no molecules"),
    ],
)
def test_xyz_reader_errors_name_the_line(tmp_path, text, message):
    path = tmp_path / "bad.xyz"
    path.write_text(text)
    with pytest.raises(XYZFormatError, match=message) as info:
        read_xyz(path)
    assert "bad.xyz" in str(info.value)


BAD_RECORDS = {
    "unparsable": "broken\n  moldiff      3D\n\nthis is not a counts line\nM  END\n$$$$\n",
    "unknown_element": mol_block("alien", [("C", (0, 0, 0)), ("Xx", (1.5, 0, 0.2))]),
    "nonfinite_coordinates": mol_block("nan-mol", [("C", (0, 0, 0)), ("O", (float("nan"), 0, 0.2))]),
    "too_few_atoms": mol_block("lonely", [("C", (0, 0, 0.3))]),
    "no_3d_conformer": mol_block("flat", [("C", (0, 0, 0)), ("O", (1.2, 0, 0))], dim="2D"),
}


@pytest.mark.parametrize("reason", sorted(BAD_RECORDS))
def test_bad_sdf_record_raises_naming_the_record(tmp_path, reason):
    path = tmp_path / "bad.sdf"
    path.write_text(mol_block("good", WATER) + BAD_RECORDS[reason] + mol_block("good2", WATER))
    with pytest.raises(MoleculeRecordError) as info:
        read_sdf_records(path)
    err = info.value
    assert err.record == 2 and err.reason == reason
    assert "bad.sdf, record 2" in str(err)
    title = BAD_RECORDS[reason].splitlines()[0]
    assert repr(title) in str(err)


def test_bad_sdf_records_skipped_and_counted(tmp_path):
    path = tmp_path / "mixed.sdf.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(mol_block("w1", WATER) + "".join(BAD_RECORDS.values()) + mol_block("w2", WATER))
    skipped = []
    records = read_sdf_records(path, on_error="skip", skipped=skipped)
    assert [r.title for r in records] == ["w1", "w2"] and records[1].record == 7
    assert [s.reason for s in skipped] == list(BAD_RECORDS)
    assert [s.record for s in skipped] == [2, 3, 4, 5, 6]
    with pytest.warns(UserWarning, match="skipped 5 bad record"):
        read_sdf_records(path, on_error="skip")
