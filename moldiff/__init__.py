"""moldiff: diffusion generative models of 3D molecules, proteins and images.

``import moldiff`` is cheap: sub-packages that need heavy optional libraries (RDKit, e3nn,
Biopython, torch_geometric) import them only when they are used.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = ("core", "nn", "molecules", "proteins", "images", "train", "testing", "hub", "pretrained", "errors")

# public names, imported on first use
_FUNCTIONS = {
    "load_pretrained": "moldiff.hub",
    "load_model": "moldiff.hub",
    "MoldiffError": "moldiff.errors",
}

__all__ = list(_SUBMODULES) + list(_FUNCTIONS) + ["__version__"]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"moldiff.{name}")
    if name in _FUNCTIONS:
        return getattr(importlib.import_module(_FUNCTIONS[name]), name)
    raise AttributeError(f"module 'moldiff' has no attribute {name!r}")
