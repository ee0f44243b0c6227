"""The HTML report: one self-contained file with the metric tables, the depiction grid and the plots,
checked as text, as decoded images, and rendered by a real headless browser (Debian's chromium)."""

from __future__ import annotations

import base64
import html
import importlib.util
import io
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from moldiff.cli import main
from moldiff.errors import MissingPackageError
from moldiff.molecules.evaluate import evaluate_file
from moldiff.molecules.properties import PROPERTY_NAMES
from moldiff.molecules.rdkit_io import write_sdf
from moldiff.molecules.report import bond_lengths, build_report, reference_summary, write_report

Chem = pytest.importorskip("rdkit.Chem")
Image = pytest.importorskip("PIL.Image")
pytest.importorskip("matplotlib", reason="the report needs matplotlib: pip install 'moldiff[report]'")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DATA_URI = re.compile(r'<img [^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"')
REFERENCE_SMILES = ["CCO", "CC(=O)O", "c1ccccc1O", "CC1CC1", "OCC#N", "CC(C)=O", "C1COC1", "NC(=O)C=O"]


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """12 molecules of the shipped model, with their own bonds (20 steps: some are invalid)."""
    path = tmp_path_factory.mktemp("report") / "samples.sdf"
    args = ["sample", "--model", "qm9", "--num", "12", "--steps", "20", "--out", str(path), "--no-progress"]
    assert main(args) == 0
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    from rdkit.Chem import AllChem

    mols = []
    for k, smiles in enumerate(REFERENCE_SMILES):
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        AllChem.EmbedMolecule(mol, randomSeed=k)
        AllChem.MMFFOptimizeMolecule(mol)
        mols.append(mol)
    path = tmp_path_factory.mktemp("reference") / "reference.sdf"
    write_sdf(mols, path)
    return path


@pytest.fixture(scope="module")
def report(samples, reference, tmp_path_factory):
    out = tmp_path_factory.mktemp("html") / "report.html"
    write_report(samples, out, bonds="file", reference=reference, legend="qed,sa", max_draw=12)
    return out


def _pngs(text: str) -> list:
    images = []
    for data in DATA_URI.findall(text):
        image = Image.open(io.BytesIO(base64.b64decode(data, validate=True)))
        image.load()
        images.append(image)
    return images


def test_the_report_is_one_self_contained_file(report):
    text = report.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.rstrip().endswith("</html>")
    assert "<script" not in text and "<link" not in text and "@import" not in text
    assert not re.search(r'(src|href)="(?!data:)', text), "every picture is embedded"
    assert "http://" not in text and "https://" not in text
    images = _pngs(text)
    assert len(images) == 5  # the grid, atoms, rings, QED, bond lengths
    assert all(im.format == "PNG" and im.size[0] > 100 and im.size[1] > 100 for im in images)
    grid = images[0]
    assert grid.size == (6 * 220, 2 * 220)  # 12 molecules, 6 per row


def test_the_report_holds_the_metrics_of_moldiff_evaluate(report, samples):
    text = report.read_text(encoding="utf-8")
    result = evaluate_file(samples, bonds="file")
    assert html.escape(result["protocol"]) in text
    for key in ("atom_stability", "molecule_stability", "validity", "connected_validity", "sdf_readback"):
        assert f'<td class="text">{key}</td><td>{100 * result[key]:.2f} %</td>' in text, key
    assert '<table class="summary">' in text and "QED, median" in text and "with a PAINS alert" in text
    text_class = ' class="text"'
    header = "".join(
        f"<th{text_class if n in ('smiles', 'pains_alerts', 'brenk_alerts') else ''}>{n}</th>" for n in PROPERTY_NAMES
    )
    assert header in text
    assert text.count("<tr>") >= 12 + 3  # every molecule has its row
    assert "reference.sdf, 8 of its 8 molecules, their own bonds" in text


def test_bond_lengths_are_grouped_by_elements_and_order():
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles("c1ccccc1C=O"))
    AllChem.EmbedMolecule(mol, randomSeed=0)
    lengths = bond_lengths(mol)
    assert sorted(lengths) == ["C-C", "C-H", "C:C", "C=O"]
    assert len(lengths["C:C"]) == 6 and len(lengths["C-H"]) == 6
    assert all(1.3 < v < 1.5 for v in lengths["C:C"]) and all(1.0 < v < 1.15 for v in lengths["C-H"])


@pytest.mark.skipif(importlib.util.find_spec("qm9pack") is None, reason="qm9pack is not installed")
def test_the_default_reference_is_a_fixed_random_subset_of_qm9_training(tmp_path):
    first, text = reference_summary(None, size=30, seed=0)
    again, _ = reference_summary("qm9", size=30, seed=0)  # from the cache
    assert "QM9 training split, 30 random molecules (seed 0)" in text
    assert len(first["num_atoms"]) == 30 and (first["valid"] == 1).all()
    assert (first["num_atoms"] == again["num_atoms"]).all() and (first["bond_kinds"] == again["bond_kinds"]).all()
    assert set(first["bond_kinds"]) >= {"C-H", "C-C"}


def test_the_report_command(samples, reference, tmp_path, capsys):
    out = tmp_path / "r.html"
    args = ["report", str(samples), "--bonds", "file", "--out", str(out), "--reference", str(reference)]
    assert main(args) == 0
    assert f"wrote the report of {samples} to {out}" in capsys.readouterr().err
    assert main(args) == 2 and "--overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite", "--max-draw", "3"]) == 0
    assert _pngs(out.read_text())[0].size == (3 * 220, 220)
    assert main([*args, "--overwrite", "--reference-size", "0"]) == 2


def test_without_matplotlib_the_report_says_how_to_install_it(samples, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    with pytest.raises(MissingPackageError, match=r"moldiff report needs matplotlib.*pip install 'moldiff\[report\]'"):
        build_report(samples, bonds="file")
    assert main(["report", str(samples), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'moldiff[report]'" in err[0]
    assert not (tmp_path / "r.html").exists()


# ------------------------------------------------------------------------------------------------
# a real browser

_CHECK = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.naturalHeight]);
  const tables = Array.from(document.querySelectorAll("table")).map(t => [t.className, t.rows.length]);
  const out = document.createElement("pre");
  out.id = "moldiff-check";
  out.textContent = JSON.stringify({images: images, tables: tables, width: document.body.scrollWidth});
  document.body.appendChild(out);
});
</script>
"""


def _chromium(*args: str) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install -y chromium)")
def test_a_headless_browser_renders_the_images_and_tables(report, tmp_path):
    # the DOM after loading, with a probe script added to a copy (the report itself has no script)
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text(encoding="utf-8").replace("</body>", _CHECK + "</body>"), encoding="utf-8")
    dom = _chromium("--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    found = re.search(r'<pre id="moldiff-check">(.*?)</pre>', dom.stdout, re.S)
    assert found, dom.stdout[-2000:]
    check = json.loads(html.unescape(found.group(1)))
    assert len(check["images"]) == 5
    assert all(complete and w > 0 and h > 0 for complete, w, h in check["images"]), check["images"]
    assert check["images"][0][1:] == [6 * 220, 2 * 220]  # the grid at its natural size
    tables = dict(check["tables"])
    assert tables["metrics"] == 11 and tables["summary"] >= 9 and tables["molecules"] == 13
    # a screenshot of the report itself: not a blank page
    shot = tmp_path / "shot.png"
    run = _chromium(f"--screenshot={shot}", "--window-size=1200,2400", report.as_uri())
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    grey = Image.open(shot).convert("L")
    assert grey.size == (1200, 2400)
    pixels = np.asarray(grey, dtype=np.float64)
    assert pixels.var() > 100, f"the page looks blank (pixel variance {pixels.var():.1f})"
    assert (pixels < 128).mean() > 0.005  # text, strokes and bars, not only white
