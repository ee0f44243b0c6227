"""Fixtures of the image tests: tiny models and PNG folders (one torch thread comes from tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from moldiff.images.model import ImageDiffusion, ImageModelConfig


def tiny_config(**overrides) -> ImageModelConfig:
    """A U-Net of a few thousand parameters for 8 x 8 images."""
    fields = dict(base_channels=8, channel_mults=[1, 2], num_res_blocks=1, heads=2, groups=4, dropout=0.0)
    fields.update(overrides)
    return ImageModelConfig(**fields)


def randomise(module: torch.nn.Module, seed: int = 0, std: float = 0.1) -> torch.nn.Module:
    """Give the zero-initialised layers random weights, so an untrained network's output depends on its input."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            if bool((p == 0).all()):
                p.copy_(std * torch.randn(p.shape, generator=g))
    return module


@pytest.fixture
def tiny_model():
    def make(conditional: bool = True, **overrides) -> ImageDiffusion:
        torch.manual_seed(0)
        stats = {"image_shape": [1, 8, 8], "num_classes": 3, "class_names": ["a", "b", "c"]}
        return randomise(ImageDiffusion(tiny_config(class_conditional=conditional, **overrides), stats)).eval()

    return make


def write_png_folder(root: Path, classes: dict[str, int], size=(8, 8), mode: str = "L", seed: int = 0) -> dict:
    """Write ``classes[name]`` random PNGs under ``root/name/`` (``name = ""``: directly in ``root``).

    Returns ``{relative path: uint8 array [C, H, W]}``.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    written = {}
    for name, count in classes.items():
        folder = root / name if name else root
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(count):
            shape = (size[0], size[1]) if mode == "L" else (size[0], size[1], 3)
            a = rng.integers(0, 256, shape, dtype=np.uint8)
            path = folder / f"img{k:03d}.png"
            Image.fromarray(a).save(path)  # uint8 [H, W] -> "L", [H, W, 3] -> "RGB"
            written[str(path.relative_to(root))] = a[None] if mode == "L" else a.transpose(2, 0, 1)
    return written
