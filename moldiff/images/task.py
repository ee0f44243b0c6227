"""The ``images`` training task: idx files (Fashion-MNIST, MNIST) or a folder of PNGs -> :class:`ImageDiffusion`.

Declared as an entry point (``moldiff.tasks``), so
``moldiff train configs/fashion_mnist.yaml`` needs nothing else. The evaluation hook samples a
fixed-seed grid from the EMA model (``eval/samples_step<N>.png``) and, when ``data.eval_classifier``
names a classifier file (:mod:`moldiff.images.classifier`), reports the Frechet distance,
precision and recall of the samples against the validation images in that classifier's features
(and, for class-conditional models, the classifier's accuracy on the samples).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import torch

from moldiff.train.tasks import TaskBundle, register_task

from .classifier import load_classifier
from .data import ImageDataset, ImageSourceConfig, collate_images, dataset_stats, load_datasets
from .generator import ImageGenerator
from .grid import save_grid
from .metrics import classifier_accuracy, feature_metrics
from .model import ImageDiffusion, ImageModelConfig

__all__ = ["ImageDataConfig", "build", "register"]

TASK_NAME = "images"


@dataclass
class ImageDataConfig(ImageSourceConfig):
    """The ``data:`` section of an image diffusion config: the images (see
    :class:`~moldiff.images.data.ImageSourceConfig`) and the evaluation during training.

    Attributes:
        eval_samples: images sampled at each evaluation (0: no sampling) (default: 64).
        eval_sampler: sampler of those evaluations (default: ``"dpmpp_2m"``).
        eval_steps: its steps (default: 20).
        eval_classifier: a classifier file or shipped name for the feature metrics (default: none).
        eval_reference: validation images the feature metrics compare with (default: 2000).
    """

    eval_samples: int = 64
    eval_sampler: str = "dpmpp_2m"
    eval_steps: int = 20
    eval_classifier: Optional[str] = None
    eval_reference: int = 2000


def _eval_fn(data: ImageDataConfig, valid: ImageDataset | None):
    reference = {}

    def evaluate(model: ImageDiffusion, step: int, out_dir) -> dict:
        labels = torch.arange(data.eval_samples) % model.num_classes if model.conditional else None
        samples = model.sample(
            data.eval_samples, seed=1234, sampler=data.eval_sampler, steps=data.eval_steps, labels=labels
        ).cpu()
        if out_dir is not None:
            save_grid(
                samples,
                Path(out_dir) / f"samples_step{step:08d}.png",
                nrow=model.num_classes if model.conditional else None,
            )
        metrics = {"sample_mean": float(samples.mean()), "sample_std": float(samples.std())}
        if data.eval_classifier and valid is not None:
            if "features" not in reference:  # cached across evaluations
                reference["classifier"] = load_classifier(data.eval_classifier)
                n = min(data.eval_reference, len(valid))
                reference["features"] = reference["classifier"].embed(valid.__getitems__(list(range(n))).images)
            clf = reference["classifier"]
            metrics.update(feature_metrics(reference["features"], clf.embed(samples)))
            if labels is not None:
                metrics["classifier_accuracy"] = classifier_accuracy(clf.predict, samples, labels)
        return metrics

    return evaluate


def build(model_cfg: ImageModelConfig, data_cfg: ImageDataConfig, *, rank: int = 0, world_size: int = 1, seed: int = 0):
    """The task's ``build_fn``: datasets, statistics, model and evaluation hook."""
    train, valid = load_datasets(data_cfg)
    if data_cfg.limit is not None:
        train = train.subset(data_cfg.limit)
    stats = dataset_stats(train, data_cfg.dataset)
    model = ImageDiffusion(model_cfg, stats)
    eval_fn = _eval_fn(data_cfg, valid) if data_cfg.eval_samples > 0 else None
    return TaskBundle(
        model=model,
        train_dataset=train,
        collate_fn=collate_images,
        dataset_stats=stats,
        eval_fn=eval_fn,
        valid_dataset=valid,
    )


def register() -> None:
    """Register ``images`` (called by :func:`moldiff.train.tasks.get_task` through the entry point)."""
    register_task(
        TASK_NAME, ImageModelConfig, ImageDataConfig, build, model_fn=ImageDiffusion, generator_fn=ImageGenerator
    )
