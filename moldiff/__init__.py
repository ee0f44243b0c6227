"""moldiff: diffusion generative models of 3D molecules, proteins and images.

``import moldiff`` is cheap: sub-packages that need heavy optional libraries (RDKit, e3nn,
Biopython, torch_geometric) import them only when they are used.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("core", "nn", "molecules", "proteins", "images", "data", "models", "train", "testing")

__all__ = list(_SUBMODULES) + ["__version__"]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"moldiff.{name}")
    raise AttributeError(f"module 'moldiff' has no attribute {name!r}")
