"""The shipped models give the recorded samples for a fixed seed.

``tests/fixtures/reference_samples/`` holds what these three commands wrote (one thread, this
project's CPU machine type) when the per-item seeding rule was introduced (the restructuring of
issue 18 itself left the earlier outputs byte-identical, SHA-256 checked before and after)::

    moldiff sample --model qm9_edm --num 8 --seed 0 --steps 20 --sampler dpmpp_2m --out qm9_edm.sdf
    moldiff sample --model qm9 --num 8 --seed 0 --steps 20 --out qm9.sdf   # recorded 2026-12-02 (stage-4 weights)
    moldiff sample --model fashion_mnist --num 8 --seed 0 --steps 20 --out fm.png
    moldiff sample --model cath_ca --num 2 --length 50 --seed 0 --steps 20 --out bb/   # recorded 2026-12-03 (the angle model)

The comparison allows floating-point rounding of another CPU or thread count (coordinates to
1e-3 A, pixels to 2 of 255); any change of the models, samplers, seeding or decoding fails it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from moldiff.cli import main

REFERENCE = Path(__file__).resolve().parent / "fixtures" / "reference_samples"


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _sdf_arrays(path: Path) -> list[tuple[list[str], np.ndarray]]:
    """(elements, coordinates) of each record of a V2000 SDF, read as text."""
    out = []
    for block in path.read_text().split("$$$$\n"):
        lines = block.splitlines()
        if len(lines) < 4:
            continue
        n = int(lines[3][:3])
        atoms = [line.split() for line in lines[4 : 4 + n]]
        out.append(([a[3] for a in atoms], np.array([[float(v) for v in a[:3]] for a in atoms])))
    return out


def _sdf_bonds(path: Path) -> list[list[tuple[int, int, int]]]:
    """The bond rows (first atom, second atom, order) of each record of a V2000 SDF, read as text."""
    out = []
    for block in path.read_text().split("$$$$\n"):
        lines = block.splitlines()
        if len(lines) < 4:
            continue
        n, b = int(lines[3][:3]), int(lines[3][3:6])
        out.append([(int(r[:3]), int(r[3:6]), int(r[6:9])) for r in lines[4 + n : 4 + n + b]])
    return out


def _ca(path: Path) -> np.ndarray:
    return np.array(
        [
            [float(line[30:38]), float(line[38:46]), float(line[46:54])]
            for line in path.read_text().splitlines()
            if line.startswith("ATOM") and line[12:16] == " CA "
        ]
    )


def test_the_shipped_molecule_model_gives_the_recorded_molecules(tmp_path, one_thread):
    out = tmp_path / "qm9_edm.sdf"
    assert (
        main(
            [
                "sample",
                "--model",
                "qm9_edm",
                "--num",
                "8",
                "--seed",
                "0",
                "--steps",
                "20",
                "--sampler",
                "dpmpp_2m",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    got, want = _sdf_arrays(out), _sdf_arrays(REFERENCE / "qm9_edm.sdf")
    assert len(got) == len(want) == 8
    for (z1, p1), (z2, p2) in zip(got, want):
        assert z1 == z2
        np.testing.assert_allclose(p1, p2, atol=1e-3)


def test_the_bond_aware_molecule_model_gives_the_recorded_molecules(tmp_path, one_thread):
    """The default qm9 (joint sampler with categorical stochasticity): elements, coordinates and the
    generated bonds as recorded."""
    out = tmp_path / "qm9.sdf"
    args = ["sample", "--model", "qm9", "--num", "8", "--seed", "0", "--steps", "20", "--out", str(out)]
    assert main([*args, "--no-progress"]) == 0
    got, want = _sdf_arrays(out), _sdf_arrays(REFERENCE / "qm9.sdf")
    assert len(got) == len(want) == 8
    for (z1, p1), (z2, p2) in zip(got, want):
        assert z1 == z2
        np.testing.assert_allclose(p1, p2, atol=1e-3)
    assert _sdf_bonds(out) == _sdf_bonds(REFERENCE / "qm9.sdf")


def test_the_shipped_image_model_gives_the_recorded_images(tmp_path, one_thread):
    out = tmp_path / "fm.png"
    assert (
        main(
            [
                "sample",
                "--model",
                "fashion_mnist",
                "--num",
                "8",
                "--seed",
                "0",
                "--steps",
                "20",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    got = np.asarray(Image.open(out), dtype=np.int16)
    want = np.asarray(Image.open(REFERENCE / "fm.png"), dtype=np.int16)
    assert got.shape == want.shape and int(np.abs(got - want).max()) <= 2


def test_the_shipped_backbone_model_gives_the_recorded_chains(tmp_path, one_thread):
    assert (
        main(
            [
                "sample",
                "--model",
                "cath_ca",
                "--num",
                "2",
                "--length",
                "50",
                "--seed",
                "0",
                "--steps",
                "20",
                "--out",
                str(tmp_path / "bb"),
                "--no-progress",
            ]
        )
        == 0
    )
    for name in ("design_0000.pdb", "design_0001.pdb"):
        np.testing.assert_allclose(_ca(tmp_path / "bb" / name), _ca(REFERENCE / name), atol=1e-2)
