"""CA geometry: an ideal helix and its mirror image, real domain sizes, distances and superposition."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from moldiff.proteins import geometry as geo
from moldiff.testing import random_rotation


def test_ideal_helix_and_its_mirror():
    helix = geo.ideal_helix(30)
    assert torch.allclose(geo.bond_lengths(helix), torch.tensor(3.8, dtype=torch.float64), atol=0.05)
    assert torch.allclose(geo.bond_angles(helix), torch.tensor(91.0, dtype=torch.float64), atol=2.0)
    assert torch.allclose(geo.virtual_dihedrals(helix), torch.tensor(50.0, dtype=torch.float64), atol=2.0)
    assert geo.secondary_structure_fractions(helix)["helix"] > 0.8
    assert geo.left_handed_fraction(geo.virtual_dihedrals(helix)) == 0.0

    mirror = geo.ideal_helix(30, left_handed=True)
    assert torch.allclose(geo.virtual_dihedrals(mirror), -geo.virtual_dihedrals(helix))
    assert geo.left_handed_fraction(geo.virtual_dihedrals(mirror)) == 1.0
    assert geo.secondary_structure_fractions(mirror)["helix"] == 0.0  # a mirrored helix is no helix
    assert geo.clashes(helix) == 0 and geo.chain_breaks(helix) == 0


def test_real_domains(cath_tar):
    from moldiff.proteins.dataset import BackboneDataset

    data = BackboneDataset(cath_tar, "holdout", limit=12)
    ratios = [geo.radius_of_gyration(b.ca) / geo.expected_radius_of_gyration(len(b)) for b in data]
    assert 0.85 < np.median(ratios) < 1.2
    dihedrals = np.concatenate([geo.virtual_dihedrals(b.ca).numpy() for b in data])
    assert geo.left_handed_fraction(dihedrals) < 0.06
    assert geo.left_handed_fraction(-dihedrals) > 0.2  # mirror images
    ss = [geo.secondary_structure_fractions(b.ca) for b in data]
    assert 0.15 < np.mean([s["helix"] for s in ss]) < 0.6 and np.mean([s["strand"] for s in ss]) > 0.05


def test_wasserstein_matches_scipy():
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=300), rng.normal(1.0, 2.0, size=170)
    assert geo.wasserstein_1d(a, b) == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-10)
    assert geo.wasserstein_1d(a, a) == 0.0


def test_kabsch_rmsd():
    x = torch.randn(10, 3, dtype=torch.float64)
    q = random_rotation(torch.Generator().manual_seed(0))
    assert geo.kabsch_rmsd(x, x @ q.T + 5.0) < 1e-10
    assert geo.kabsch_rmsd(x, -x) > 0.1  # a reflection is not a superposition
