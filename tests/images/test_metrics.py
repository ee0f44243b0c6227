"""Frechet distance against closed forms, k-NN precision / recall sanity, accuracy, bits per dimension."""

import math

import pytest
import torch

from moldiff.images.metrics import (
    classifier_accuracy,
    dequantisation_offset,
    dequantize,
    feature_statistics,
    frechet_distance,
    frechet_distance_from_features,
    image_bits_per_dim,
    knn_radii,
    precision_recall,
)
from moldiff.testing import DenseGaussianOracle


def _spd(dim, seed):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    return a @ a.T / dim + 0.1 * torch.eye(dim, dtype=torch.float64)


def test_frechet_distance_of_identical_gaussians_is_zero():
    mu, cov = torch.randn(16, dtype=torch.float64), _spd(16, 0)
    assert abs(frechet_distance(mu, cov, mu, cov)) < 1e-9


def test_frechet_distance_matches_closed_forms():
    # commuting covariances (shared eigenvectors): |dmu|^2 + sum (sqrt(a) - sqrt(b))^2
    q, _ = torch.linalg.qr(torch.randn(5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    a, b = (
        torch.tensor([0.5, 1.0, 2.0, 3.0, 4.0], dtype=torch.float64),
        torch.tensor([1.0, 1.0, 0.3, 5.0, 0.1], dtype=torch.float64),
    )
    mu1, mu2 = torch.zeros(5, dtype=torch.float64), torch.arange(5, dtype=torch.float64)
    expected = float((mu1 - mu2).square().sum() + (a.sqrt() - b.sqrt()).square().sum())
    assert frechet_distance(mu1, q @ torch.diag(a) @ q.T, mu2, q @ torch.diag(b) @ q.T) == pytest.approx(
        expected, rel=1e-9
    )
    # two dimensions, non-commuting: tr((S1^1/2 S2 S1^1/2)^1/2) = sqrt(tr(S1 S2) + 2 sqrt(det S1 det S2))
    s1, s2 = _spd(2, 2), _spd(2, 3)
    cross = math.sqrt(float(torch.trace(s1 @ s2)) + 2 * math.sqrt(float(torch.det(s1) * torch.det(s2))))
    expected = float(torch.trace(s1) + torch.trace(s2)) - 2 * cross + 1.0
    assert frechet_distance(torch.zeros(2), s1, torch.tensor([1.0, 0.0]), s2) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_from_samples_converges():
    g = torch.Generator().manual_seed(0)
    cov = _spd(4, 4)
    chol = torch.linalg.cholesky(cov)
    x = torch.randn(20000, 4, generator=g, dtype=torch.float64) @ chol.T
    y = (torch.randn(20000, 4, generator=g, dtype=torch.float64) @ chol.T) + torch.tensor(
        [0.5, 0, 0, 0], dtype=torch.float64
    )
    mu, c = feature_statistics(x)
    assert torch.allclose(c, cov, atol=0.05)
    assert frechet_distance_from_features(x, x) == pytest.approx(0.0, abs=1e-9)
    assert frechet_distance_from_features(x, y) == pytest.approx(0.25, abs=0.03)


def test_precision_and_recall_sanity():
    g = torch.Generator().manual_seed(0)
    real = torch.randn(300, 8, generator=g)
    assert precision_recall(real, real) == (1.0, 1.0)
    assert precision_recall(real, real + 100.0) == (0.0, 0.0)
    # half the samples on the data, half far away: precision ~ 1/2; the near half covers the data well
    fake = torch.cat([torch.randn(300, 8, generator=g), torch.randn(300, 8, generator=g) + 100.0])
    precision, recall = precision_recall(real, fake)
    assert 0.4 < precision < 0.55 and recall > 0.6
    # a collapsed generator (one mode of the data) is precise but has low recall
    precision, recall = precision_recall(real, 0.05 * torch.randn(300, 8, generator=g))
    assert precision > 0.9 and recall < 0.2
    assert knn_radii(torch.tensor([[0.0], [1.0], [3.0]]), k=1).tolist() == [1.0, 1.0, 2.0]


def test_classifier_accuracy():
    labels = torch.tensor([0, 1, 2, 1])
    images = torch.nn.functional.one_hot(torch.tensor([0, 1, 2, 2]), 3).float()  # the "image" is its one-hot class
    assert classifier_accuracy(lambda x: x, images, labels, batch_size=3) == 0.75


def test_dequantisation_bins():
    u = torch.tensor([0, 255], dtype=torch.uint8).repeat(1000)
    y = dequantize(u, torch.Generator().manual_seed(0))
    assert float(y[0::2].min()) >= -1 and float(y[0::2].max()) < -1 + 2 / 256
    assert float(y[1::2].min()) >= 1 - 2 / 256 and float(y[1::2].max()) < 1
    assert dequantisation_offset(8, 2.0) == 7.0


def test_bits_per_dim_of_a_gaussian_oracle_matches_the_closed_form():
    """bpd = -log N(y; m, C + sigma_min^2) / (D ln 2) + 7 for the dequantised y, D = 1 x 2 x 2."""
    oracle = DenseGaussianOracle(torch.tensor([0.1, -0.2, 0.0, 0.3], dtype=torch.float64), 0.2 * _spd(4, 5))
    images = torch.randint(60, 200, (5, 1, 2, 2), generator=torch.Generator().manual_seed(1), dtype=torch.uint8)
    bpd = image_bits_per_dim(
        oracle,
        images,
        generator=torch.Generator().manual_seed(7),
        sigma_min=1e-3,
        sigma_max=300.0,
        num_steps=200,
        trace="exact",
        dtype=torch.float64,
    )
    y = dequantize(images, torch.Generator().manual_seed(7)).double()  # the same dequantisation noise
    expected = -oracle.log_density(y, sigma=1e-3) / (4 * math.log(2)) + 7
    assert bpd.shape == (5,)
    assert torch.allclose(bpd, expected, rtol=0, atol=0.02), (bpd, expected)  # 200 Heun steps: ~0.005 bits off
