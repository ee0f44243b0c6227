"""The shipped `fashion_mnist` model and its feature classifier: offline, class-faithful, on the CLI."""

import os
import subprocess
import sys

import pytest
import torch
from PIL import Image

import moldiff
from moldiff.images.classifier import ImageClassifier
from moldiff.images.model import ImageDiffusion
from moldiff.pretrained import pretrained_path


def test_the_shipped_files_are_small_and_load_offline():
    assert pretrained_path("fashion_mnist").stat().st_size < 20 * 2**20
    assert pretrained_path("fashion_mnist_classifier").stat().st_size < 5 * 2**20
    model = moldiff.load_pretrained("fashion_mnist").model
    classifier = moldiff.load_pretrained("fashion_mnist_classifier")
    assert isinstance(model, ImageDiffusion) and model.conditional and model.num_classes == 10
    assert isinstance(classifier, ImageClassifier) and classifier.info["class_names"][0] == "T-shirt/top"
    stored = torch.load(pretrained_path("fashion_mnist"), weights_only=True)
    assert stored["aliases"] and not any(key in stored["model"] for key in stored["aliases"])  # each tensor once
    assert model.denoiser.network is model.network


def test_the_shipped_model_draws_the_class_it_is_asked_for():
    """Each of 30 few-step samples is classified by the shipped classifier; an untrained model scores ~10%."""
    model = moldiff.load_pretrained("fashion_mnist")
    classifier = moldiff.load_pretrained("fashion_mnist_classifier")
    labels = torch.arange(30) % 10
    images = model.sample(30, seed=0, sampler="dpmpp_2m", steps=12, labels=labels)
    assert images.shape == (30, 1, 28, 28) and bool(torch.isfinite(images).all())
    accuracy = float((classifier.predict(images).argmax(1) == labels).float().mean())
    assert accuracy >= 0.7, accuracy


def test_the_shipped_classifier_recognises_real_test_images(shared_data):
    from moldiff.images.data import IdxImageDataset

    test = IdxImageDataset(shared_data / "images" / "fashion_mnist", "test")
    batch = test.__getitems__(list(range(2000)))
    classifier = moldiff.load_pretrained("fashion_mnist_classifier")
    assert float((classifier.predict(batch.images).argmax(1) == batch.labels).float().mean()) > 0.85


def test_cli_samples_a_png_grid_from_the_shipped_model(tmp_path):
    out = tmp_path / "grid.png"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "moldiff.cli",
            "sample",
            "--model",
            "fashion_mnist",
            "--num",
            "20",
            "--steps",
            "4",
            "--labels",
            "cycle",
            "--out",
            str(out),
            "--no-progress",
        ],
        capture_output=True,
        text=True,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    with Image.open(out) as grid:
        assert grid.mode == "L" and grid.size[0] > 28 * 4


def test_a_classifier_in_the_old_file_format_loads_with_the_same_outputs(tmp_path):
    """Classifiers saved by moldiff 0.1.0's own format ("moldiff-image-classifier") load through the one
    loader as task ``image_classifier``; a foreign file is refused by name."""
    from moldiff.images.classifier import ClassifierConfig
    from moldiff.train.checkpoint import CheckpointError

    torch.manual_seed(0)
    original = ImageClassifier(ClassifierConfig(in_channels=1, num_classes=2, width=4, feature_dim=8)).eval()
    torch.save(
        {
            "format": "moldiff-image-classifier",
            "model": original.state_dict(),
            "info": {"class_names": ["a", "b"]},
            "config": {"in_channels": 1, "num_classes": 2, "width": 4, "feature_dim": 8, "dropout": 0.1},
        },
        tmp_path / "mine.pt",
    )
    loaded = moldiff.load_pretrained(tmp_path / "mine.pt")
    assert isinstance(loaded, ImageClassifier) and loaded.info["class_names"] == ["a", "b"]
    x = torch.rand(3, 1, 12, 12) * 2 - 1
    assert torch.equal(loaded.embed(x), original.embed(x)) and torch.equal(loaded.predict(x), original.predict(x))
    torch.save({"weights": torch.zeros(2)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="foreign.pt"):
        moldiff.load_pretrained(tmp_path / "foreign.pt")


def test_the_image_benchmark_scores_the_shipped_model(shared_data, benchmark_script):
    if not (shared_data / "images" / "fashion_mnist").is_dir():
        pytest.skip("Fashion-MNIST is not in the shared data folder")
    bench = benchmark_script("images")
    result = bench.main(["--model", "fashion_mnist", "--num", "40", "--steps", "12", "--bpd-images", "0"])
    assert result["num"] == 40 and result["model"] == "fashion_mnist"
    # twelve steps of the shipped model: the samples are mostly of the asked class, and closer to real
    # images in the classifier's features than two steps' blur is
    assert result["classifier_accuracy"] > 0.6
    blurred = bench.main(["--model", "fashion_mnist", "--num", "40", "--steps", "2", "--bpd-images", "0"])
    assert result["frechet_distance"] < blurred["frechet_distance"]
