"""Where trained models and data come from: one loader for every trained file and shipped model,
the cache folder and the shared data folder.

Example::

    import moldiff
    gen = moldiff.load_pretrained("qm9")
    mols = gen.sample(100, seed=0)   # list of rdkit.Chem.Mol

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

__all__ = [
    "PRETRAINED",
    "Generator",
    "pretrained_path",
    "load_model",
    "load_pretrained",
    "cache_dir",
    "shared_data_dir",
    "data_path",
]


class Generator:
    """What the modality generators share: the trained model (in eval mode), where it came from, its device.

    Args:
        model: the trained model.
        source: a pretrained name or a path, recorded in the outputs.
    """

    def __init__(self, model: torch.nn.Module, source: str = "") -> None:
        self.model = model.eval()
        self.source = source

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device) -> "Generator":
        """Move the model to ``device``; returns the generator."""
        self.model.to(device)
        return self


def load_model(
    name_or_path: str | os.PathLike, device: str | torch.device = "cpu", ema: bool = True
) -> torch.nn.Module:
    """The trained network behind a pretrained name or a checkpoint path (EMA weights by default), in eval mode."""
    path = pretrained_path(name_or_path)
    return model_from_checkpoint(load_checkpoint(path), ema=ema, device=device, source=path)


def load_pretrained(name_or_path: str | os.PathLike = "qm9", device: str | torch.device = "cpu"):
    """A shipped model by name (``moldiff.pretrained.PRETRAINED``: ``"qm9"``, ``"qm9_alpha"``, ``"cath_ca"``,
    ``"fashion_mnist"``, ...) or any checkpoint / exported file, ready to sample.

    Returns:
        The generator of the model's task (see the module docstring); for models that generate
        nothing (``"qm9_alpha_predictor"``, ``"fashion_mnist_classifier"``, ...) the model itself.
    """
    ckpt = load_checkpoint(pretrained_path(name_or_path))
    model = model_from_checkpoint(ckpt, device=device, source=pretrained_path(name_or_path))
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


def data_path(given: str | os.PathLike | None, shared: str, *, option: str | None = None) -> Path:
    """The data a script reads: ``given`` (a path from its command line) when set, else ``shared``
    inside :func:`shared_data_dir`, checked to exist.

    Args:
        given: the path the user passed, or ``None``.
        shared: the default, relative to the shared data folder, e.g. ``"molecules/drug_like_3d.sdf.gz"``.
        option: the script's option that passes the path instead (``"--sdf"``), named in the message.

    Raises:
        FileNotFoundError: with a one-line message naming the missing path and what to do (set
            ``MOLDIFF_DATA_DIR`` to the folder that holds it, or pass ``option``); scripts print it
            and exit non-zero (``raise SystemExit(f"...: {err}")``) instead of a traceback.
    """
    if given is not None:
        path = Path(given).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"{option + ' ' if option else ''}{path}: no such file or folder")
        return path
    root = shared_data_dir()
    path = root / shared
    if path.exists():
        return path
    now = f"{root} from MOLDIFF_DATA_DIR" if os.environ.get("MOLDIFF_DATA_DIR") else f"the default {root}"
    instead = f", or pass {option} PATH" if option else ""
    raise FileNotFoundError(
        f"{path} not found: set MOLDIFF_DATA_DIR to the folder holding {Path(shared).parts[0]}/ "
        f"(the shared data folder, now {now}; datasets/*.md say where its files come from)"
        f"{instead}"
    )
