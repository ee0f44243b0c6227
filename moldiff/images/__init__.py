"""moldiff.images: image data, diffusion models of images, grids and image metrics.

* :mod:`~moldiff.images.data` — idx files (MNIST, Fashion-MNIST) and folders of PNGs, in memory as
  ``uint8 [N, C, H, W]``, served as floats in ``[-1, 1]``;
* :mod:`~moldiff.images.model` — :class:`ImageDiffusion`, a :class:`~moldiff.nn.unet.UNet` on the
  core's schedules, losses, samplers and classifier-free guidance;
* :mod:`~moldiff.images.grid` — image grids and a dependency-free PNG writer;
* :mod:`~moldiff.images.classifier` — the small CNN whose features the metrics use;
* :mod:`~moldiff.images.metrics` — Frechet distance, k-NN precision / recall, classifier accuracy,
  bits per dimension (in moldiff's classifier features: not FID);
* :mod:`~moldiff.images.inception` — Inception-v3 features for a real FID, offline weights, GPU only;
* :mod:`~moldiff.images.task` — the ``images`` training task.

Names are imported on first use; Pillow is needed only to read PNG folders.
"""

from __future__ import annotations

from moldiff._lazy import lazy_exports

_EXPORTS = {
    "read_idx": "data",
    "write_idx": "data",
    "IdxFormatError": "data",
    "ImageBatch": "data",
    "ImageDataset": "data",
    "IdxImageDataset": "data",
    "ImageFolderDataset": "data",
    "collate_images": "data",
    "to_float": "data",
    "to_uint8": "data",
    "FASHION_MNIST_CLASSES": "data",
    "make_grid": "grid",
    "write_png": "grid",
    "save_grid": "grid",
    "ImageDiffusion": "model",
    "ImageModelConfig": "model",
    "ImageClassifier": "classifier",
    "ClassifierConfig": "classifier",
    "ClassifierDataConfig": "classifier",
    "evaluate_classifier": "classifier",
    "ImageGenerator": "generator",
    "ImageSourceConfig": "data",
    "load_datasets": "data",
    "load_classifier": "classifier",
    "frechet_distance": "metrics",
    "precision_recall": "metrics",
    "feature_metrics": "metrics",
    "classifier_accuracy": "metrics",
    "image_bits_per_dim": "metrics",
    "ImageDataConfig": "task",
    "InceptionFeatures": "inception",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
