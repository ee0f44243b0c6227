"""Independent cross-checks of the backbone evaluation suite (:mod:`moldiff.proteins.evaluate`).

Secondary structure by moldiff's CA assigner against biotite's P-SEA on ideal helices and strands and
on held-out CATH domains; novelty (highest TM-score to training domains, ``tmtools``) on a domain
that is in the training set and on a random walk. Both packages are the ``proteins`` extra (and in
``test``); real CATH domains come from the shared archive and are skipped without it.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

from moldiff.proteins import evaluate as ev
from moldiff.proteins import geometry as geo
from moldiff.proteins.dataset import BackboneDataset


def nerf_chain(n: int, bond: float = 3.8, angle_deg: float = 120.0, dihedral_deg: float = -170.0) -> np.ndarray:
    """CA trace with constant virtual bond length, angle and dihedral (natural extension of reference
    frames: each new point from the last three)."""
    theta, phi = math.radians(angle_deg), math.radians(dihedral_deg)
    x = [np.array([0.0, 0.0, 0.0]), np.array([bond, 0.0, 0.0])]
    x.append(x[1] + bond * np.array([-math.cos(theta), math.sin(theta), 0.0]))
    while len(x) < n:
        a, b, c = x[-3], x[-2], x[-1]
        bc = (c - b) / np.linalg.norm(c - b)
        nrm = np.cross(b - a, bc)
        nrm /= np.linalg.norm(nrm)
        m = np.stack([bc, np.cross(nrm, bc), nrm], axis=1)
        d = bond * np.array([-math.cos(theta), math.sin(theta) * math.cos(phi), math.sin(theta) * math.sin(phi)])
        x.append(c + m @ d)
    return np.stack(x[:n])


def agreement(a: str, b: str) -> float:
    return float(np.mean([p == q for p, q in zip(a, b)]))


@pytest.fixture(scope="module")
def heldout(cath_tar) -> list[np.ndarray]:
    return [b.ca for b in BackboneDataset(cath_tar, "holdout", limit=20)]


@pytest.fixture(scope="module")
def training(cath_tar) -> list[np.ndarray]:
    return [b.ca for b in BackboneDataset(cath_tar, "train", limit=4)]


def test_nerf_chain_has_the_asked_geometry():
    x = torch.as_tensor(nerf_chain(12))
    assert torch.allclose(geo.bond_lengths(x), torch.full((11,), 3.8, dtype=torch.float64))
    assert torch.allclose(geo.bond_angles(x), torch.full((10,), 120.0, dtype=torch.float64))
    assert torch.allclose(geo.virtual_dihedrals(x), torch.full((9,), -170.0, dtype=torch.float64))


def test_ideal_helix_is_helix_by_both_assigners():
    ca = geo.ideal_helix(30)
    ours, psea = geo.secondary_structure(ca), ev.psea_secondary_structure(ca)
    assert len(psea) == 30 and set(psea) <= set("HEC")
    assert ours.count("H") / 30 > 0.85 and psea.count("H") / 30 > 0.85
    assert agreement(ours, psea) > 0.8
    assert ev.psea_secondary_structure(ca.numpy().astype(np.float32)) == psea  # numpy input, any float


def test_extended_strand_is_strand_by_both_assigners():
    ca = nerf_chain(20)  # 3.8 A, 120 deg, -170 deg: a straight-ish beta strand
    ours, psea = geo.secondary_structure(ca), ev.psea_secondary_structure(ca)
    assert ours.count("E") / 20 > 0.8 and psea.count("E") / 20 > 0.8
    assert "H" not in ours + psea and agreement(ours, psea) > 0.8
    # the same chain with helix geometry (91 deg, +50 deg) turns helical for both: the builder is not strand-only
    helix = nerf_chain(20, angle_deg=91.0, dihedral_deg=50.0)
    assert geo.secondary_structure(helix).count("H") > 15 and ev.psea_secondary_structure(helix).count("H") > 15


def test_short_chain_is_coil_for_psea():
    assert ev.psea_secondary_structure(geo.ideal_helix(5)) == "CCCCC"
    assert ev.psea_secondary_structure(np.zeros((0, 3))) == ""


def test_exploded_and_nan_traces_are_undetermined_for_psea():
    """biotite's P-SEA allocates a dense 5.2 A grid over the bounding box (48 GiB for 10,000 A): such
    traces are not passed to it; a NaN residue is undetermined, its neighbours still assigned."""
    exploded = np.random.default_rng(0).uniform(0.0, 10_000.0, size=(50, 3))
    assert ev.psea_secondary_structure(exploded) == "-" * 50
    helix = geo.ideal_helix(20).numpy()
    helix[5] = np.nan
    psea = ev.psea_secondary_structure(helix)
    assert psea[5] == "-" and psea[8:18] == "H" * 10
    result = ev.evaluate_backbones([exploded, geo.ideal_helix(20).numpy()], tm_score=False)
    s = result["summary"]
    assert s["coil_psea"] + s["helix_psea"] + s["strand_psea"] == pytest.approx(20 / 70, abs=1e-9)
    assert any("50 sample residues undetermined" in n for n in result["notes"])


def test_assigners_agree_on_heldout_domains(heldout):
    """Measured on these 20 held-out domains (2,600 residues): helix 0.346 (moldiff) vs 0.358 (P-SEA),
    strand 0.215 vs 0.145 (moldiff takes shorter strand runs), agreement 0.85. An all-coil assigner
    would give helix 0 and agreement about 0.45."""
    s = ev.evaluate_backbones(heldout, tm_score=False)["summary"]
    assert abs(s["helix"] - s["helix_psea"]) < 0.1
    assert 0.2 < s["helix_psea"] < 0.5 and 0.08 < s["strand_psea"] < 0.35
    assert abs(s["helix_psea"] + s["strand_psea"] + s["coil_psea"] - 1) < 1e-9  # no undetermined residue
    assert s["ss_agreement_psea"] > 0.7
    # per residue on the same chains, not a comparison of the fractions
    same = sum(sum(p == q for p, q in zip(geo.secondary_structure(c), ev.psea_secondary_structure(c))) for c in heldout)
    assert ev.backbone_statistics(heldout, psea=True)["ss_same"] == same
    assert s["ss_agreement_psea"] == pytest.approx(same / sum(len(c) for c in heldout))


def test_evaluate_backbones_reports_both_assigners(heldout):
    result = ev.evaluate_backbones(heldout[:4], heldout[4:], tm_score=False)
    for part in (result["summary"], result["reference"]):
        assert {"helix_psea", "strand_psea", "coil_psea", "ss_agreement_psea"} <= set(part)
        assert 0.7 < part["ss_agreement_psea"] <= 1
    report = ev.format_report(result)
    assert "helix fraction (P-SEA, biotite)" in report and "SS agreement moldiff vs P-SEA" in report
    assert not any("biotite" in n for n in result["notes"])
    assert "tm_novelty_mean" not in result["summary"]  # no training= given: novelty skipped


def test_without_biotite_and_tmtools_the_keys_are_absent_with_notes(monkeypatch):
    for name in ("biotite", "biotite.structure", "tmtools"):  # simulate packages that are not installed
        monkeypatch.setitem(sys.modules, name, None)
    cas = [geo.ideal_helix(12).numpy(), nerf_chain(12)]
    result = ev.evaluate_backbones(cas, training=[geo.ideal_helix(20).numpy()])
    assert "helix" in result["summary"] and "helix_psea" not in result["summary"]
    assert "tm_novelty_mean" not in result["summary"]
    notes = " ".join(result["notes"])
    assert "pip install biotite" in notes and "novelty" in notes and "pip install tmtools" in notes
    assert "(P-SEA, biotite)" not in ev.format_report(result) and "vs P-SEA" not in ev.format_report(result)
    assert ev.psea_secondary_structure(cas[0]) is None and ev.novelty_tm_scores(cas, cas) is None


def test_novelty_of_a_training_domain_and_of_a_random_walk(training):
    rng = np.random.default_rng(0)
    steps = rng.normal(size=(99, 3))
    walk = np.concatenate([np.zeros((1, 3)), np.cumsum(3.8 * steps / np.linalg.norm(steps, axis=1, keepdims=True), 0)])
    scores = ev.novelty_tm_scores([training[2], walk], training)
    assert scores.shape == (2,)
    assert scores[0] > 0.99  # itself is in the set
    assert scores[1] < 0.5  # a random walk has no fold
    assert ev.novelty_tm_scores([training[2]], training, max_train=2)[0] < 0.99  # only the first two: not itself
    # normalised by the sample: a 40-residue piece cut out of a training domain is found in it
    piece = training[0][10:50]
    assert ev.novelty_tm_scores([piece], training[:1])[0] > 0.99
    # exploded samples (an untrained model's, CA-CA of hundreds of A) are skipped, not aligned:
    # TM-align takes seconds per pair on them
    exploded = 300.0 * rng.normal(size=(30, 3))
    assert np.isnan(ev.novelty_tm_scores([exploded], training)[0])
    assert ev.novelty_summary(np.array([0.3, 0.6, np.nan, 0.45]), 7) == {
        "tm_novelty_mean": pytest.approx(0.45),
        "fraction_novel": pytest.approx(2 / 3),
        "novelty_num_samples": 3,
        "novelty_skipped": 1,
        "novelty_num_train": 7,
    }


def test_evaluate_backbones_with_training_reports_novelty(heldout, training):
    result = ev.evaluate_backbones([training[1], heldout[0]], tm_score=False, training=training)
    s = result["summary"]
    assert s["novelty_num_train"] == len(training) and s["novelty_num_samples"] == 2
    assert 0.5 < s["tm_novelty_mean"] < 1.0  # one sample is a training domain (TM 1), one is not
    assert s["fraction_novel"] in (0.0, 0.5)
    report = ev.format_report(result)
    assert "max TM to training (mean)" in report and "fraction novel (max TM < 0.5)" in report
    with pytest.raises(ValueError, match="training"):
        ev.evaluate_backbones([heldout[0]], training=[])


def test_benchmark_novelty_option(cath_tar, tmp_path, benchmark_script, capsys):
    bench = benchmark_script("backbones")
    args = ["--model", "untrained", "--num", "2", "--lengths", "12", "--steps", "2", "--reference", str(cath_tar)]
    summary = bench.main([*args, "--max-reference", "4", "--novelty", "2", "--out", str(tmp_path / "b.json")])
    assert summary["novelty_train_domains"] == 2
    # an untrained model's samples are exploded (CA-CA of hundreds of A): skipped, not aligned
    assert summary["all"]["novelty_num_samples"] + summary["all"]["novelty_skipped"] == 2
    assert "novelty_s" in summary["per_length"]["12"] and "helix_psea" in summary["all"]
    assert "TM-aligns in" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        bench.main([*args, "--novelty", "-2"])
