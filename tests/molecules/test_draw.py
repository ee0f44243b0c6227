"""Depiction grids: valid PNG and SVG files of the expected size, legends, invalid molecules, the command."""

from __future__ import annotations

import io
import math
import xml.etree.ElementTree as ET

import pytest

from moldiff.cli import main
from moldiff.molecules.draw import depiction, depiction_grid, draw_file, grid_shape, legend_texts, parse_legend
from moldiff.molecules.properties import molecule_table
from moldiff.molecules.rdkit_io import write_sdf

Chem = pytest.importorskip("rdkit.Chem")
Image = pytest.importorskip("PIL.Image")

SMILES = ["CCO", "c1ccccc1O", "CC(=O)Oc1ccccc1C(=O)O", "O=C1C(=Cc2ccccc2)SC(=S)N1", "CC=O", "C1CC1N", "OCC#N"]


def _molecules():
    from rdkit.Chem import AllChem

    mols = []
    for k, smiles in enumerate(SMILES):
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        AllChem.EmbedMolecule(mol, randomSeed=k)
        mols.append(mol)
    broken = Chem.RWMol(mols[0])
    broken.AddBond(0, 6, Chem.BondType.SINGLE)  # a pentavalent carbon: drawn all the same
    mols.append(broken.GetMol())
    return mols


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    path = tmp_path_factory.mktemp("draw") / "samples.sdf"
    write_sdf(_molecules(), path)
    return path


def _png(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    image = Image.open(io.BytesIO(data))
    image.load()  # decodes the whole image: a truncated file fails here
    return image


@pytest.mark.parametrize("per_row, size", [(5, 250), (3, 120), (10, 100)])
def test_the_png_grid_has_the_expected_size(samples, tmp_path, per_row, size):
    out = tmp_path / "grid.png"
    count = draw_file(samples, out, bonds="file", per_row=per_row, size=size)
    image = _png(out)
    n = len(SMILES) + 1
    assert count == n and grid_shape(n, per_row) == (min(per_row, n), math.ceil(n / per_row))
    assert image.size == (min(per_row, n) * size, math.ceil(n / per_row) * size)
    pixels = image.convert("L")
    assert pixels.getextrema()[0] < 100  # there are dark strokes on the white page


def test_the_svg_grid_is_valid_xml_of_the_expected_size(samples, tmp_path):
    out = tmp_path / "grid.svg"
    assert draw_file(samples, out, bonds="file", per_row=4, size=200, legend="qed,sa", max_molecules=6) == 6
    root = ET.fromstring(out.read_bytes())
    assert root.tag.endswith("svg")
    assert (root.get("width"), root.get("height")) == ("800px", "400px")
    text = out.read_text(encoding="iso-8859-1")
    assert "class='legend'" in text  # RDKit draws the legends as paths
    assert text.count("<!-- END OF HEADER -->") == 1 and text.rstrip().endswith("</svg>")


def test_legends_show_smiles_or_the_chosen_properties():
    mols = _molecules()
    rows = molecule_table(mols, "file")
    assert legend_texts(rows[:2], ["smiles"]) == ["CCO", "Oc1ccccc1"]
    qed = legend_texts(rows[:1], ["qed", "sa"])[0]
    assert qed.startswith("qed 0.") and "  sa " in qed
    assert legend_texts(rows[-1:], ["smiles"]) == ["invalid"]
    assert legend_texts(rows[-1:], ["index", "qed"]) == [f"invalid  index {len(mols) - 1}"]
    assert parse_legend(None) == ["smiles"] and parse_legend("qed, sa") == ["qed", "sa"]
    with pytest.raises(Exception, match="unknown \\['qd'\\]; known: index"):
        parse_legend("qd")


def test_hydrogens_are_removed_and_2d_coordinates_computed():
    d = depiction(_molecules()[0])
    assert d.GetNumAtoms() == 3 and not d.GetConformer().Is3D()
    assert depiction(_molecules()[-1]).GetNumAtoms() >= 3  # the invalid one too


def test_a_grid_of_one_and_bad_arguments():
    png = depiction_grid(_molecules()[:1], ["x"], per_row=5, size=100)
    assert Image.open(io.BytesIO(png)).size == (100, 100)
    with pytest.raises(Exception, match="no molecules"):
        depiction_grid([], [])
    with pytest.raises(Exception, match="per_row"):
        depiction_grid(_molecules()[:1], per_row=0)


def test_the_draw_command(samples, tmp_path, capsys):
    out = tmp_path / "grid.png"
    args = ["draw", str(samples), "--out", str(out), "--bonds", "file", "--legend", "qed,sa", "--per-row", "4"]
    assert main([*args, "--max", "6", "--size", "150"]) == 0
    assert "drew 6 molecules" in capsys.readouterr().err
    assert _png(out).size == (600, 300)
    assert main(args) == 2  # exists
    assert "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite"]) == 0 and _png(out).size == (1000, 500)
    assert main(["draw", str(samples), "--out", str(tmp_path / "g.jpg")]) == 2
    assert ".png or .svg" in capsys.readouterr().err
    assert main(["draw", str(samples), "--out", str(tmp_path / "g.svg"), "--legend", "qd"]) == 2
    assert "known: index" in capsys.readouterr().err
    assert main(["draw", str(samples), "--out", str(tmp_path / "g.svg"), "--per-row", "0"]) == 2
    # EDM's protocol draws the bonds perceived from the coordinates
    assert main(["draw", str(samples), "--out", str(tmp_path / "edm.svg")]) == 0
