"""Image grids and a dependency-free PNG writer.

:func:`make_grid` tiles a batch ``[N, C, H, W]`` into one image; :func:`write_png` encodes an 8-bit
grey or RGB array as PNG with the standard library only (``zlib``; PNG specification, ISO/IEC
15948:2004: signature, ``IHDR``, one ``IDAT`` of filter-type-0 scanlines, ``IEND``), so sampling
needs no imaging package. :func:`save_grid` does both.
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from moldiff.files import atomic_write

from .data import to_uint8

Tensor = torch.Tensor

__all__ = ["make_grid", "write_png", "save_grid"]


def make_grid(
    images: Tensor | np.ndarray, nrow: int | None = None, padding: int = 2, pad_value: int = 255
) -> np.ndarray:
    """Tile images into a grid, row by row.

    Args:
        images: ``[N, C, H, W]`` (or ``[N, H, W]``), ``uint8``, or floats in ``[-1, 1]`` (converted
            with :func:`moldiff.images.data.to_uint8`); ``C`` is 1 or 3.
        nrow: images per row (default: ``ceil(sqrt(N))``, a square grid).
        padding: pixels between images and around the border (default: 2).
        pad_value: grey level of the padding (default: 255, white).

    Returns:
        ``uint8`` array ``[C, rows (H + p) + p, nrow (W + p) + p]``; empty cells are padding.
    """
    x = torch.as_tensor(images)
    if x.dim() == 3:
        x = x.unsqueeze(1)
    if x.dim() != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"images must be [N, C, H, W] with C = 1 or 3, got shape {tuple(x.shape)}")
    if x.dtype != torch.uint8:
        x = to_uint8(x)
    n, c, h, w = x.shape
    if n == 0:
        raise ValueError("no images to tile")
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    grid = np.full((c, rows * (h + padding) + padding, nrow * (w + padding) + padding), pad_value, dtype=np.uint8)
    arr = x.cpu().numpy()
    for k in range(n):
        r, col = divmod(k, nrow)
        top, left = padding + r * (h + padding), padding + col * (w + padding)
        grid[:, top : top + h, left : left + w] = arr[k]
    return grid


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png(image: np.ndarray | Tensor, path: str | os.PathLike) -> Path:
    """Write an 8-bit image as PNG.

    Args:
        image: ``uint8`` ``[C, H, W]`` with ``C`` 1 (grey) or 3 (RGB), or ``[H, W]``.
        path: destination; parent folders are created.

    Returns:
        ``path``.
    """
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[None]
    if a.dtype != np.uint8 or a.ndim != 3 or a.shape[0] not in (1, 3):
        raise ValueError(f"write_png needs uint8 [1 or 3, H, W], got {a.dtype} {a.shape}")
    c, h, w = a.shape
    rows = np.ascontiguousarray(a.transpose(1, 2, 0)).reshape(h, w * c)
    raw = np.concatenate([np.zeros((h, 1), dtype=np.uint8), rows], axis=1).tobytes()  # filter type 0 per scanline
    colour_type = 0 if c == 1 else 2
    png = (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, 0))
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )
    return atomic_write(path, lambda tmp: tmp.write_bytes(png))  # whole or not at all


def save_grid(
    images: Tensor | np.ndarray,
    path: str | os.PathLike,
    nrow: int | None = None,
    padding: int = 2,
    pad_value: int = 255,
) -> Path:
    """:func:`make_grid` then :func:`write_png`; returns ``path``."""
    return write_png(make_grid(images, nrow, padding, pad_value), path)
