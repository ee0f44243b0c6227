"""The ``images`` training task: idx files (Fashion-MNIST, MNIST) or a folder of PNGs -> :class:`ImageDiffusion`.

Registered lazily with the engine (:data:`moldiff.train.tasks.LAZY_TASKS`), so
``moldiff train configs/fashion_mnist.yaml`` needs nothing else. The evaluation hook samples a
fixed-seed grid from the EMA model (``eval/samples_step<N>.png``) and, when ``data.eval_classifier``
names a classifier file (:mod:`moldiff.images.classifier`), reports the Frechet distance,
precision and recall of the samples against the validation images in that classifier's features
(and, for class-conditional models, the classifier's accuracy on the samples).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from .data import FASHION_MNIST_CLASSES, MNIST_CLASSES, IdxImageDataset, ImageDataset, ImageFolderDataset, collate_images
from .model import ImageDiffusion, ImageModelConfig

__all__ = ["ImageDataConfig", "load_datasets", "dataset_stats", "build", "register"]

TASK_NAME = "images"
_IDX_CLASSES = {"fashion_mnist": FASHION_MNIST_CLASSES, "mnist": MNIST_CLASSES, "idx": None}


@dataclass
class ImageDataConfig:
    """The ``data:`` section of an image config.

    Attributes:
        dataset: ``"fashion_mnist"``, ``"mnist"`` or ``"idx"`` (MNIST-format idx files, class names
            as given) or ``"folder"`` (PNG files; labels from sub-folders) (default: ``"fashion_mnist"``).
        root: folder of the idx files or of the PNGs; ``~`` and ``$VARS`` are expanded, relative
            paths are relative to the working directory (default: ``../shared/data/images/fashion_mnist``).
        split: idx split used for training: ``"train"`` or ``"test"`` (default: ``"train"``).
        valid_split: idx split for the validation loss and the evaluation metrics (``None``: none)
            (default: ``"test"``).
        valid_root: folder datasets: a second folder of validation PNGs (default: none).
        image_size: folder datasets: resize images to this square size (default: keep).
        channels: folder datasets: 1 or 3 (default: from the images).
        class_names: names of the labels of an ``idx`` dataset (default: ``"0"``, ``"1"``, ...).
        limit: train on the first ``limit`` images only (default: all).
        eval_samples: images sampled at each evaluation (0: no sampling) (default: 64).
        eval_sampler: sampler of those evaluations (default: ``"dpmpp_2m"``).
        eval_steps: its steps (default: 20).
        eval_classifier: a classifier file for the feature metrics (default: none).
        eval_reference: validation images the feature metrics compare with (default: 2000).
    """

    dataset: str = "fashion_mnist"
    root: str = "../shared/data/images/fashion_mnist"
    split: str = "train"
    valid_split: Optional[str] = "test"
    valid_root: Optional[str] = None
    image_size: Optional[int] = None
    channels: Optional[int] = None
    class_names: Optional[list[str]] = None
    limit: Optional[int] = None
    eval_samples: int = 64
    eval_sampler: str = "dpmpp_2m"
    eval_steps: int = 20
    eval_classifier: Optional[str] = None
    eval_reference: int = 2000


def _path(p: str) -> Path:
    return Path(os.path.expandvars(os.path.expanduser(p)))


def load_datasets(data: ImageDataConfig) -> tuple[ImageDataset, ImageDataset | None]:
    """``(train_dataset, valid_dataset or None)`` for a data config."""
    if data.dataset in _IDX_CLASSES:
        names = data.class_names or _IDX_CLASSES[data.dataset]
        train = IdxImageDataset(_path(data.root), data.split, names)
        valid = IdxImageDataset(_path(data.root), data.valid_split, names) if data.valid_split else None
    elif data.dataset == "folder":
        train = ImageFolderDataset(_path(data.root), channels=data.channels, size=data.image_size)
        valid = None
        if data.valid_root:
            valid = ImageFolderDataset(_path(data.valid_root), channels=train.image_shape[0],
                                       size=data.image_size or train.image_shape[1:])
    else:
        raise ValueError(f"unknown image dataset {data.dataset!r}; expected one of "
                         f"{sorted(_IDX_CLASSES) + ['folder']}")
    return train, valid


def dataset_stats(train: ImageDataset, name: str) -> dict:
    """Statistics an image model needs to sample without its data (and a description of the data)."""
    hist = torch.bincount(train.images.reshape(-1), minlength=256).double()  # exact moments, no float copy
    levels = torch.arange(256, dtype=torch.float64) / 127.5 - 1
    mean = float((hist * levels).sum() / hist.sum())
    return {
        "image_shape": list(train.image_shape),
        "num_classes": train.num_classes,
        "class_names": list(train.class_names),
        "dataset": name,
        "num_images": len(train),
        "pixel_mean": mean,
        "pixel_std": float(((hist * (levels - mean) ** 2).sum() / hist.sum()).sqrt()),
    }


def _eval_fn(data: ImageDataConfig, valid: ImageDataset | None):
    reference = {}

    def evaluate(model: ImageDiffusion, step: int, out_dir) -> dict:
        from .grid import save_grid

        labels = torch.arange(data.eval_samples) % model.num_classes if model.conditional else None
        samples = model.sample(data.eval_samples, seed=1234, sampler=data.eval_sampler, steps=data.eval_steps,
                               labels=labels).cpu()
        if out_dir is not None:
            save_grid(samples, Path(out_dir) / f"samples_step{step:08d}.png",
                      nrow=model.num_classes if model.conditional else None)
        metrics = {"sample_mean": float(samples.mean()), "sample_std": float(samples.std())}
        if data.eval_classifier and valid is not None:
            from .classifier import load_classifier
            from .metrics import classifier_accuracy, feature_metrics

            if "features" not in reference:  # cached across evaluations
                reference["classifier"] = load_classifier(_path(data.eval_classifier))
                n = min(data.eval_reference, len(valid))
                reference["features"] = reference["classifier"].embed(valid.__getitems__(list(range(n))).images)
            clf = reference["classifier"]
            metrics.update(feature_metrics(reference["features"], clf.embed(samples)))
            if labels is not None:
                metrics["classifier_accuracy"] = classifier_accuracy(clf.predict, samples, labels)
        return metrics

    return evaluate


def build(model_cfg: ImageModelConfig, data_cfg: ImageDataConfig, *, rank: int = 0, world_size: int = 1,
          seed: int = 0):
    """The task's ``build_fn``: datasets, statistics, model and evaluation hook."""
    from moldiff.train.tasks import TaskBundle

    train, valid = load_datasets(data_cfg)
    if data_cfg.limit is not None:
        train = train.subset(data_cfg.limit)
    stats = dataset_stats(train, data_cfg.dataset)
    model = ImageDiffusion(model_cfg, stats)
    eval_fn = _eval_fn(data_cfg, valid) if data_cfg.eval_samples > 0 else None
    return TaskBundle(model=model, train_dataset=train, collate_fn=collate_images, dataset_stats=stats,
                      eval_fn=eval_fn, valid_dataset=valid)


def register() -> None:
    """Register ``images`` (called lazily by :func:`moldiff.train.tasks.get_task`)."""
    from moldiff.train.tasks import register_task

    register_task(TASK_NAME, ImageModelConfig, ImageDataConfig, build, model_fn=ImageDiffusion)
