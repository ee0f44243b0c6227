"""Per-molecule properties: RDKit's own numbers for known molecules, both protocols, alerts, the missing
SA score, the CSV table and ``moldiff evaluate --per-molecule``."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from moldiff.cli import main
from moldiff.molecules import properties
from moldiff.molecules.properties import (
    MISSING,
    PROPERTY_NAMES,
    file_properties,
    format_value,
    molecule_properties,
    molecule_table,
    set_sdf_properties,
    structural_alerts,
    write_properties_csv,
)
from moldiff.molecules.rdkit_io import write_sdf

Chem = pytest.importorskip("rdkit.Chem")

KNOWN = ["CCO", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O", "O=C1C(=Cc2ccccc2)SC(=S)N1", "CC=O"]


def _with_hydrogens(smiles: str, seed: int = 0):
    """The molecule with explicit hydrogens and one embedded 3D conformer, as a sampler writes it."""
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=seed) == 0
    AllChem.MMFFOptimizeMolecule(mol)
    return mol


@pytest.fixture
def no_sa_score(monkeypatch):
    """An RDKit without its Contrib SA_Score, as far as moldiff can tell."""
    monkeypatch.setattr(properties, "_sa", {"module": None, "reason": "RDKit's Contrib SA_Score is not here (test)"})


@pytest.mark.parametrize("smiles", KNOWN)
def test_the_descriptors_are_rdkits_for_known_molecules(smiles):
    from rdkit.Chem import QED, Descriptors, rdMolDescriptors

    row = molecule_properties(_with_hydrogens(smiles), bonds="file")
    ref = Chem.MolFromSmiles(smiles)
    assert row["valid"] and row["stable"] and row["connected"]
    assert row["smiles"] == Chem.MolToSmiles(ref)
    assert row["qed"] == pytest.approx(QED.qed(ref), abs=1e-12)
    assert row["logp"] == pytest.approx(Descriptors.MolLogP(ref), abs=1e-12)
    assert row["mw"] == pytest.approx(Descriptors.MolWt(ref), abs=1e-9)
    assert row["rings"] == rdMolDescriptors.CalcNumRings(ref)
    assert row["aromatic_rings"] == rdMolDescriptors.CalcNumAromaticRings(ref)
    assert row["heavy_atoms"] == ref.GetNumAtoms()
    assert row["num_atoms"] == Chem.AddHs(ref).GetNumAtoms()
    assert list(row) == list(PROPERTY_NAMES)


def test_ring_sizes_and_counts():
    row = molecule_properties(_with_hydrogens("C1CC1c1ccc2ccccc2c1"), bonds="file")
    assert (row["rings"], row["aromatic_rings"], row["max_ring"]) == (3, 2, 6)
    assert molecule_properties(_with_hydrogens("CCO"), bonds="file")["max_ring"] == 0


def test_a_pains_positive_molecule_is_flagged_by_name():
    rhodanine = Chem.MolFromSmiles("O=C1C(=Cc2ccccc2)SC(=S)N1")  # 5-benzylidene rhodanine, PAINS ene_rhod_A
    assert structural_alerts(rhodanine, "pains") == ["ene_rhod_A(235)"]
    row = molecule_properties(_with_hydrogens("O=C1C(=Cc2ccccc2)SC(=S)N1"), bonds="file")
    assert row["pains"] == 1 and row["pains_alerts"] == "ene_rhod_A(235)"
    clean = molecule_properties(_with_hydrogens("CCO"), bonds="file")
    assert clean["pains"] == 0 and clean["pains_alerts"] == ""


def test_brenk_alerts_name_unwanted_groups():
    row = molecule_properties(_with_hydrogens("CC=O"), bonds="file")
    assert row["brenk"] == 1 and row["brenk_alerts"] == "aldehyde"
    with pytest.raises(ValueError, match="catalog"):
        structural_alerts(Chem.MolFromSmiles("C"), "nope")


def test_the_sa_score_is_contribs_and_easy_molecules_score_low():
    ethanol = molecule_properties(_with_hydrogens("CCO"), bonds="file", names=["sa"])
    cubane = molecule_properties(_with_hydrogens("C12C3C4C1C5C2C3C45"), bonds="file", names=["sa"])
    assert 1.0 <= ethanol["sa"] < 2.5 < cubane["sa"] <= 10.0


def test_a_missing_sa_score_reads_missing(no_sa_score, tmp_path):
    row = molecule_properties(_with_hydrogens("CCO"), bonds="file")
    assert row["sa"] is None and row["qed"] is not None
    assert format_value("sa", row["sa"]) == MISSING
    path = write_properties_csv([row], tmp_path / "t.csv")
    with open(path, newline="") as fh:
        assert next(iter(csv.DictReader(fh)))["sa"] == MISSING


def test_both_protocols_on_atoms_and_coordinates(acetaldehyde):
    z, pos = acetaldehyde
    edm = molecule_properties((z, pos), bonds="edm")
    assert edm["valid"] and edm["stable"] and edm["smiles"] == "CC=O"
    # the same molecule, its own bonds
    mol = _with_hydrogens("CC=O")
    assert molecule_properties(mol, bonds="file")["smiles"] == "CC=O"
    # a pentavalent carbon: invalid by its own bonds, no descriptors
    broken = Chem.RWMol(mol)
    broken.AddBond(0, 2, Chem.BondType.SINGLE)
    row = molecule_properties(broken.GetMol(), bonds="file")
    assert not row["valid"] and not row["stable"] and row["smiles"] is None
    assert all(row[n] is None for n in ("qed", "sa", "logp", "mw", "rings", "pains", "pains_alerts"))
    assert 0 < row["atom_stability"] < 1


def test_disconnected_molecules_are_counted():
    row = molecule_properties(_with_hydrogens("CCO.O"), bonds="file")
    assert row["valid"] and not row["connected"] and row["fragments"] == 2


def test_only_the_asked_names_are_computed():
    row = molecule_properties(_with_hydrogens("CCO"), bonds="file", names=["qed", "valid"])
    assert list(row) == ["qed", "valid"]
    with pytest.raises(Exception, match="unknown molecule properties.*known: index"):
        molecule_properties(_with_hydrogens("CCO"), bonds="file", names=["qedd"])


def test_sdf_properties_and_the_csv_table(tmp_path):
    mols = [_with_hydrogens(s) for s in KNOWN]
    rows = molecule_table(mols, bonds="file")
    assert [r["index"] for r in rows] == list(range(len(KNOWN)))
    for mol, row in zip(mols, rows):
        set_sdf_properties(mol, row)
    write_sdf(mols, tmp_path / "m.sdf")
    back = [m for m in Chem.SDMolSupplier(str(tmp_path / "m.sdf"), removeHs=False)]
    assert back[3].GetProp("moldiff_pains_alerts") == "ene_rhod_A(235)"
    assert float(back[0].GetProp("moldiff_qed")) == pytest.approx(rows[0]["qed"], abs=1e-4)
    assert back[0].GetProp("moldiff_valid") == "1" and not back[0].HasProp("moldiff_index")
    # the table of the file, by its own bonds, is the table of the molecules
    table = file_properties(tmp_path / "m.sdf", bonds="file")
    assert [r["smiles"] for r in table] == [r["smiles"] for r in rows]
    out = write_properties_csv(table, tmp_path / "t.csv")
    with open(out, newline="") as fh:
        read = list(csv.reader(fh))
    assert read[0] == list(PROPERTY_NAMES) and len(read) == len(KNOWN) + 1
    assert read[1][PROPERTY_NAMES.index("valid")] == "1"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_evaluate_writes_the_per_molecule_table(tmp_path, capsys):
    mols = [_with_hydrogens(s, seed=k) for k, s in enumerate(KNOWN)]
    write_sdf(mols, tmp_path / "m.sdf")
    table = tmp_path / "table.csv"
    args = ["evaluate", str(tmp_path / "m.sdf"), "--bonds", "file", "--per-molecule", str(table)]
    assert main(args) == 0
    assert "validity" in capsys.readouterr().out
    with open(table, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["smiles"] for r in rows] == [Chem.MolToSmiles(Chem.MolFromSmiles(s)) for s in KNOWN]
    assert rows[3]["pains"] == "1"
    # refused without --overwrite, before the work; replaced with it
    before = table.read_bytes()
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err and table.read_bytes() == before
    assert main([*args[:3], "edm", *args[4:], "--overwrite"]) == 0
    with open(table, newline="") as fh:
        assert len(list(csv.DictReader(fh))) == len(KNOWN)
    # no table of a dataset split
    assert main(["evaluate", "--dataset", "qm9", "--per-molecule", str(tmp_path / "x.csv")]) == 2


def test_evaluate_prints_a_note_when_the_sa_score_is_missing(no_sa_score, tmp_path, capsys):
    write_sdf([_with_hydrogens("CCO")], tmp_path / "m.sdf")
    assert (
        main(["evaluate", str(tmp_path / "m.sdf"), "--bonds", "file", "--per-molecule", str(tmp_path / "t.csv")]) == 0
    )
    err = capsys.readouterr().err
    assert "note: SA score missing" in err and len([line for line in err.splitlines() if "SA score" in line]) == 1
    assert (tmp_path / "t.csv").read_text().splitlines()[1].split(",")[PROPERTY_NAMES.index("sa")] == MISSING


def test_xyz_files_have_no_bonds_of_their_own(tmp_path, acetaldehyde):
    from moldiff.molecules.rdkit_io import write_xyz

    write_xyz([acetaldehyde], tmp_path / "m.xyz")
    assert file_properties(tmp_path / "m.xyz", bonds="edm")[0]["smiles"] == "CC=O"
    with pytest.raises(Exception, match="XYZ file holds no bonds"):
        file_properties(tmp_path / "m.xyz", bonds="file")
    assert np.isclose(file_properties(tmp_path / "m.xyz", bonds="edm")[0]["atom_stability"], 1.0)
