"""Where trained models and data come from: one loader for every trained file and shipped model,
the cache folder and the shared data folder.

>>> import moldiff
>>> gen = moldiff.load_pretrained("qm9")       # doctest: +SKIP
>>> mols = gen.sample(100, seed=0)             # doctest: +SKIP   list of rdkit.Chem.Mol

:func:`load_pretrained` returns, for every generative model, its modality's *generator*: an object
with one sampling contract, ``sample(num, *, seed, sampler, steps, batch_size, progress, device,
**modality_options)``, whose results depend only on ``seed`` (not on ``batch_size`` or on how many
processes share the job):

==================  ==============================================  =============================
task                generator                                       ``sample`` returns
==================  ==============================================  =============================
``molecules``       :class:`moldiff.molecules.MoleculeGenerator`    RDKit molecules (3D conformer)
``backbones``       :class:`moldiff.proteins.BackboneGenerator`     :class:`~moldiff.proteins.Design` s
``images``          :class:`moldiff.images.ImageGenerator`          images ``[num, C, H, W]`` in [-1, 1]
==================  ==============================================  =============================

Models that generate nothing (property predictors, image classifiers) come back as the trained
``nn.Module`` itself. The generator class of a task is recorded in its registration
(:func:`moldiff.train.register_task`), so this module imports no modality: loading a molecule model
imports the molecule package only.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from moldiff.pretrained import PRETRAINED, pretrained_path
from moldiff.train.checkpoint import load_checkpoint, model_from_checkpoint
from moldiff.train.tasks import get_task

__all__ = ["PRETRAINED", "pretrained_path", "load_model", "load_pretrained", "cache_dir", "shared_data_dir"]


def load_model(name_or_path: str | os.PathLike, device: str | torch.device = "cpu", ema: bool = True) -> torch.nn.Module:
    """The trained network behind a pretrained name or a checkpoint path (EMA weights by default), in eval mode."""
    return model_from_checkpoint(load_checkpoint(pretrained_path(name_or_path)), ema=ema, device=device)


def load_pretrained(name_or_path: str | os.PathLike = "qm9", device: str | torch.device = "cpu"):
    """A shipped model by name (``moldiff.pretrained.PRETRAINED``: ``"qm9"``, ``"qm9_alpha"``, ``"cath_ca"``,
    ``"fashion_mnist"``, ...) or any checkpoint / exported file, ready to sample.

    Returns:
        The generator of the model's task (see the module docstring); for models that generate
        nothing (``"qm9_alpha_predictor"``, ``"fashion_mnist_classifier"``, ...) the model itself.
    """
    ckpt = load_checkpoint(pretrained_path(name_or_path))
    model = model_from_checkpoint(ckpt, device=device)
    spec = get_task(ckpt["task"])
    if spec.generator_fn is None:
        return model
    return spec.generator_fn(model, str(name_or_path))


def cache_dir(explicit: str | os.PathLike | None = None) -> Path:
    """The cache folder for processed datasets (created if missing): ``explicit``, else
    ``$MOLDIFF_CACHE_DIR``, else ``~/.cache/moldiff``."""
    if explicit is not None:
        path = Path(explicit)
    elif os.environ.get("MOLDIFF_CACHE_DIR"):
        path = Path(os.environ["MOLDIFF_CACHE_DIR"])
    else:
        path = Path.home() / ".cache" / "moldiff"
    path = path.expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def shared_data_dir() -> Path:
    """The shared real-data folder (``qm9/``, ``proteins/``, ``images/``, ...): ``$MOLDIFF_DATA_DIR``
    when set, else ``../shared/data`` relative to the working directory (a checkout's root).

    The folder is not part of moldiff: it holds public datasets (QM9 with EDM's split, CATH domains,
    Fashion-MNIST, ...) kept beside this repository for development; ``datasets/*.md`` say where
    each file comes from, so anyone can rebuild it.
    """
    return Path(os.environ.get("MOLDIFF_DATA_DIR") or "../shared/data")
