"""A small CNN classifier whose penultimate features feed the image metrics.

Inception-v3 features (FID) are out of reach offline on a CPU (about 1 image/s here), so moldiff
trains its own feature extractor for each small dataset: :class:`ImageClassifier`, three
convolutional stages and a global average pool (``feature_dim`` features), then a linear layer
to the class logits. Metrics computed in its features are "Frechet distance (moldiff classifier
features)", never FID (see :mod:`moldiff.images.metrics`).

    >>> from moldiff.images.data import IdxImageDataset                       # doctest: +SKIP
    >>> train = IdxImageDataset("../shared/data/images/fashion_mnist", "train")  # doctest: +SKIP
    >>> test = IdxImageDataset("../shared/data/images/fashion_mnist", "test")    # doctest: +SKIP
    >>> clf, info = train_classifier(train, valid=test, steps=3000)           # doctest: +SKIP
    >>> save_classifier(clf, "runs/classifiers/fashion_mnist.pt", info)       # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from .data import ImageDataset

Tensor = torch.Tensor

__all__ = ["ClassifierConfig", "ImageClassifier", "train_classifier", "evaluate_classifier", "save_classifier",
           "load_classifier", "CLASSIFIER_FORMAT"]

CLASSIFIER_FORMAT = "moldiff-image-classifier"


@dataclass
class ClassifierConfig:
    """Architecture of an :class:`ImageClassifier`.

    Attributes:
        in_channels: image channels.
        num_classes: number of classes.
        width: channels of the first stage (doubled at each of the next two) (default: 32).
        feature_dim: size of the feature vector used by the metrics (default: 128).
        dropout: dropout before the linear head, in training only (default: 0.1).
    """

    in_channels: int = 1
    num_classes: int = 10
    width: int = 32
    feature_dim: int = 128
    dropout: float = 0.1


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8 if cout % 8 == 0 else 1, cout), nn.SiLU())


class ImageClassifier(nn.Module):
    """``conv-conv-pool, conv-conv-pool, conv-conv, global mean -> features -> linear -> logits``.

    Args:
        config: the architecture.

    Shapes:
        ``x [B, C, H, W]`` floats in ``[-1, 1]`` -> logits ``[B, num_classes]``;
        :meth:`features`: ``[B, feature_dim]``.
    """

    def __init__(self, config: ClassifierConfig | None = None) -> None:
        super().__init__()
        self.config = config or ClassifierConfig()
        c, w = self.config, self.config.width
        self.body = nn.Sequential(_conv(c.in_channels, w), _conv(w, w), nn.AvgPool2d(2, ceil_mode=True),
                                  _conv(w, 2 * w), _conv(2 * w, 2 * w), nn.AvgPool2d(2, ceil_mode=True),
                                  _conv(2 * w, 4 * w), _conv(4 * w, c.feature_dim))
        self.dropout = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.feature_dim, c.num_classes)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features: the global spatial mean of the last stage, ``[B, feature_dim]``."""
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.dropout(self.features(x)))

    @torch.no_grad()
    def embed(self, images: Tensor, batch_size: int = 500) -> Tensor:
        """:meth:`features` of many images ``[N, C, H, W]`` in eval mode, batch by batch, ``[N, feature_dim]`` on CPU."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        out = [self.features(images[i:i + batch_size].to(device)).cpu() for i in range(0, images.shape[0], batch_size)]
        self.train(was_training)
        return torch.cat(out)

    @torch.no_grad()
    def predict(self, images: Tensor, batch_size: int = 500) -> Tensor:
        """Logits of many images in eval mode, ``[N, num_classes]`` on CPU."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        out = [self(images[i:i + batch_size].to(device)).cpu() for i in range(0, images.shape[0], batch_size)]
        self.train(was_training)
        return torch.cat(out)


@torch.no_grad()
def evaluate_classifier(model: ImageClassifier, dataset: ImageDataset, batch_size: int = 500) -> float:
    """Accuracy of ``model`` on a labelled dataset."""
    idx = list(range(len(dataset)))
    correct = 0
    for start in range(0, len(dataset), batch_size):
        batch = dataset.__getitems__(idx[start:start + batch_size])
        correct += int((model.predict(batch.images, batch_size).argmax(1) == batch.labels).sum())
    return correct / max(len(dataset), 1)


def train_classifier(train: ImageDataset, *, valid: ImageDataset | None = None, config: ClassifierConfig | None = None,
                     steps: int = 3000, batch_size: int = 128, lr: float = 2e-3, weight_decay: float = 1e-4,
                     shift: int = 2, seed: int = 0, device: str | torch.device = "cpu",
                     log_every: int = 0) -> tuple[ImageClassifier, dict]:
    """Train an :class:`ImageClassifier` with cross-entropy, AdamW and a cosine learning-rate decay.

    Args:
        train: labelled training images.
        valid: labelled images for the reported accuracy (default: none).
        config: architecture (default: sized from the data, :class:`ClassifierConfig` defaults otherwise).
        steps: optimiser steps (default: 3000, about 6 epochs of Fashion-MNIST).
        batch_size: images per step (default: 128).
        lr: peak learning rate (default: 2e-3; 100 warm-up steps).
        weight_decay: AdamW weight decay (default: 1e-4).
        shift: random translations by up to ``shift`` pixels (zero padding) as augmentation (default: 2).
        seed: seed of the initialisation, batches and augmentation.
        device: training device.
        log_every: print the running loss every this many steps (0: silent).

    Returns:
        ``(model in eval mode, info)`` with ``info`` = ``{"steps", "train_accuracy"`` (last 10% of
        steps, augmented batches) ``, "valid_accuracy", "seconds", "class_names", "image_shape"}``.
    """
    from moldiff.train.optim import LRSchedule

    if train.labels is None:
        raise ValueError("the classifier needs a labelled dataset")
    config = config or ClassifierConfig(in_channels=train.image_shape[0], num_classes=train.num_classes)
    torch.manual_seed(seed)
    model = ImageClassifier(config).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    schedule = LRSchedule(steps, warmup_steps=min(100, steps // 10), decay="cosine", min_ratio=0.02)
    g = torch.Generator().manual_seed(seed)
    n = len(train)
    tick = time.perf_counter()
    hits = seen = 0
    running = None
    for step in range(steps):
        schedule.apply(opt, lr, step)
        batch = train.__getitems__(torch.randint(0, n, (batch_size,), generator=g).tolist())
        x, y = batch.images, batch.labels
        if shift > 0:
            x = F.pad(x, (shift,) * 4, value=-1.0)
            dx, dy = torch.randint(0, 2 * shift + 1, (2,), generator=g).tolist()
            x = x[:, :, dy:dy + train.image_shape[1], dx:dx + train.image_shape[2]]
        x, y = x.to(device), y.to(device)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = float(loss.detach())
        running = value if running is None else 0.98 * running + 0.02 * value
        if step >= steps - max(1, steps // 10):
            hits += int((logits.argmax(1) == y).sum())
            seen += y.numel()
        if log_every and (step + 1) % log_every == 0:
            print(f"classifier step {step + 1}/{steps}: loss {running:.4f}", flush=True)
    model.eval()
    info = {"steps": steps, "train_accuracy": hits / max(seen, 1), "seconds": time.perf_counter() - tick,
            "class_names": list(train.class_names), "image_shape": list(train.image_shape)}
    if valid is not None:
        info["valid_accuracy"] = evaluate_classifier(model, valid)
    return model, info


def save_classifier(model: ImageClassifier, path: str | os.PathLike, info: dict | None = None) -> Path:
    """Save weights, architecture and ``info`` (accuracies, class names) to one file, atomically."""
    from moldiff.train.checkpoint import atomic_save

    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return atomic_save({"format": CLASSIFIER_FORMAT, "config": asdict(model.config), "info": dict(info or {}),
                        "model": state}, path)


def load_classifier(path: str | os.PathLike, device: str | torch.device = "cpu") -> ImageClassifier:
    """Load a classifier written by :func:`save_classifier`, in eval mode; its ``info`` dict is attached
    as ``model.info``. ``path`` may also name a shipped classifier (``"fashion_mnist_classifier"``)."""
    from moldiff.models.pretrained import pretrained_path

    path = pretrained_path(path)
    blob = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(blob, dict) or blob.get("format") != CLASSIFIER_FORMAT:
        raise ValueError(f"{path} is not a moldiff image classifier file")
    model = ImageClassifier(ClassifierConfig(**blob["config"]))
    model.load_state_dict(blob["model"])
    model.info = blob.get("info", {})
    return model.to(device).eval()
