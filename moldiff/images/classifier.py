"""A small CNN classifier whose penultimate features feed the image metrics.

Inception-v3 features (FID) are out of reach offline on a CPU (about 1 image/s here), so moldiff
trains its own feature extractor for each small dataset: :class:`ImageClassifier`, three
convolutional stages and a global average pool (``feature_dim`` features), then a linear layer
to the class logits. Metrics computed in its features are "Frechet distance (moldiff classifier
features)", never FID (see :mod:`moldiff.images.metrics`).

It trains through the engine like every other model (task ``image_classifier``,
``configs/fashion_mnist_classifier.yaml``) and is saved and loaded like every other model::

    moldiff train configs/fashion_mnist_classifier.yaml --out runs/fashion_mnist_classifier

and in Python::

    clf = moldiff.load_pretrained("runs/fashion_mnist_classifier/checkpoints/best.ckpt")
    clf = moldiff.load_pretrained("fashion_mnist_classifier")   # the shipped one
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn
from torch.nn import functional as F

from moldiff.hub import load_model
from moldiff.train.tasks import TaskBundle, register_task

from .data import ImageDataset, ImageSourceConfig, collate_images, dataset_stats, load_datasets

Tensor = torch.Tensor

__all__ = [
    "ClassifierConfig",
    "ClassifierDataConfig",
    "ImageClassifier",
    "evaluate_classifier",
    "load_classifier",
    "register",
]

TASK_NAME = "image_classifier"


@dataclass
class ClassifierConfig:
    """The ``model:`` section of a classifier config: the architecture of an :class:`ImageClassifier`.

    Attributes:
        in_channels: image channels (default: from the data).
        num_classes: number of classes (default: from the data).
        width: channels of the first stage (doubled at each of the next two) (default: 32).
        feature_dim: size of the feature vector used by the metrics (default: 128).
        dropout: dropout before the linear head, in training only (default: 0.1).
    """

    in_channels: Optional[int] = None
    num_classes: Optional[int] = None
    width: int = 32
    feature_dim: int = 128
    dropout: float = 0.1


@dataclass
class ClassifierDataConfig(ImageSourceConfig):
    """The ``data:`` section of a classifier config: the images (see
    :class:`~moldiff.images.task.ImageSourceConfig`) and the augmentation.

    Attributes:
        shift: random translations of each training batch by up to ``shift`` pixels (zero padding) (default: 2).
    """

    shift: int = 2


def _conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8 if cout % 8 == 0 else 1, cout), nn.SiLU())


class ImageClassifier(nn.Module):
    """``conv-conv-pool, conv-conv-pool, conv-conv, global mean -> features -> linear -> logits``.

    Args:
        config: the architecture.
        stats: the statistics of its training data (``class_names``, ``image_shape``, ...; saved with the
            weights), which also give ``in_channels`` and ``num_classes`` when the config leaves them out.
        shift: training augmentation, random translations by up to this many pixels.

    Shapes:
        ``x [B, C, H, W]`` floats in ``[-1, 1]`` -> logits ``[B, num_classes]``;
        :meth:`features`: ``[B, feature_dim]``.
    """

    def __init__(self, config: ClassifierConfig | None = None, stats: dict | None = None, shift: int = 0) -> None:
        super().__init__()
        self.config = config or ClassifierConfig()
        self.stats = dict(stats or {})
        self.shift = int(shift)
        c, w = self.config, self.config.width
        in_channels = c.in_channels or (self.stats["image_shape"][0] if "image_shape" in self.stats else 1)
        num_classes = c.num_classes or self.stats.get("num_classes", 10)
        self.body = nn.Sequential(
            _conv(in_channels, w),
            _conv(w, w),
            nn.AvgPool2d(2, ceil_mode=True),
            _conv(w, 2 * w),
            _conv(2 * w, 2 * w),
            nn.AvgPool2d(2, ceil_mode=True),
            _conv(2 * w, 4 * w),
            _conv(4 * w, c.feature_dim),
        )
        self.dropout = nn.Dropout(c.dropout)
        self.head = nn.Linear(c.feature_dim, num_classes)

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features: the global spatial mean of the last stage, ``[B, feature_dim]``."""
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.dropout(self.features(x)))

    @property
    def info(self) -> dict:
        """What is known of its training data and accuracy (``class_names``, ``valid_accuracy``, ...)."""
        return self.stats

    def training_loss(self, batch, generator: torch.Generator | None = None):
        """Cross-entropy of a batch, after a random translation by up to ``shift`` pixels (zero padding)."""
        x, y = batch.images, batch.labels
        if self.shift > 0:
            h, w = x.shape[-2:]
            x = F.pad(x, (self.shift,) * 4, value=-1.0)
            dx, dy = torch.randint(0, 2 * self.shift + 1, (2,), generator=generator, device=x.device).tolist()
            x = x[:, :, dy : dy + h, dx : dx + w]
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        return loss, {"accuracy": (logits.argmax(1) == y).float().mean().detach()}

    @torch.no_grad()
    def embed(self, images: Tensor, batch_size: int = 500) -> Tensor:
        """:meth:`features` of many images ``[N, C, H, W]`` in eval mode, batch by batch, ``[N, feature_dim]`` on CPU."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        out = [
            self.features(images[i : i + batch_size].to(device)).cpu() for i in range(0, images.shape[0], batch_size)
        ]
        self.train(was_training)
        return torch.cat(out)

    @torch.no_grad()
    def predict(self, images: Tensor, batch_size: int = 500) -> Tensor:
        """Logits of many images in eval mode, ``[N, num_classes]`` on CPU."""
        was_training = self.training
        self.eval()
        device = next(self.parameters()).device
        out = [self(images[i : i + batch_size].to(device)).cpu() for i in range(0, images.shape[0], batch_size)]
        self.train(was_training)
        return torch.cat(out)


@torch.no_grad()
def evaluate_classifier(model: ImageClassifier, dataset: ImageDataset, batch_size: int = 500) -> float:
    """Accuracy of ``model`` on a labelled dataset."""
    idx = list(range(len(dataset)))
    correct = 0
    for start in range(0, len(dataset), batch_size):
        batch = dataset.__getitems__(idx[start : start + batch_size])
        correct += int((model.predict(batch.images, batch_size).argmax(1) == batch.labels).sum())
    return correct / max(len(dataset), 1)


def build(
    model_cfg: ClassifierConfig, data_cfg: ClassifierDataConfig, *, rank: int = 0, world_size: int = 1, seed: int = 0
) -> TaskBundle:
    """The task's ``build_fn``: labelled images, their statistics and the classifier; the evaluation
    reports the accuracy on the validation images."""
    train, valid = load_datasets(data_cfg)
    if train.labels is None:
        raise ValueError(f"the classifier needs labelled images; {data_cfg.root} has none")
    if data_cfg.limit is not None:
        train = train.subset(data_cfg.limit)
    stats = dataset_stats(train, data_cfg.dataset)
    model = ImageClassifier(model_cfg, stats, shift=data_cfg.shift)

    def evaluate(ema_model: ImageClassifier, step: int, out_dir) -> dict:
        return {"valid_accuracy": evaluate_classifier(ema_model, valid)}

    return TaskBundle(
        model=model,
        train_dataset=train,
        collate_fn=collate_images,
        dataset_stats=stats,
        eval_fn=evaluate if valid is not None else None,
        valid_dataset=None,
    )


def load_classifier(path: str | os.PathLike, device: str | torch.device = "cpu") -> ImageClassifier:
    """A trained classifier (a checkpoint, an exported file or a shipped name such as
    ``"fashion_mnist_classifier"``) in eval mode; its training-data statistics are ``model.info``."""
    model = load_model(path, device=device)
    if not isinstance(model, ImageClassifier):
        raise ValueError(f"{path} holds a {type(model).__name__}, not an image classifier")
    return model


def register() -> None:
    """Register ``image_classifier`` (called by :func:`moldiff.train.tasks.get_task` through the entry point)."""
    register_task(TASK_NAME, ClassifierConfig, ClassifierDataConfig, build, model_fn=ImageClassifier)
