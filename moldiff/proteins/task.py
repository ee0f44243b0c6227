"""The backbone training tasks: CATH domains or a folder of structures -> a backbone diffusion model.

* ``backbones``: CA coordinates, :class:`~moldiff.proteins.model.BackboneDiffusion` (an EGNN);
* ``backbone_angles``: virtual bond angles and dihedrals,
  :class:`~moldiff.proteins.angles.AngleBackboneDiffusion` (a transformer).

Both are declared as entry points (``moldiff.tasks``), so ``moldiff train configs/cath_ca.yaml``
needs nothing else. The validation set is the fixed held-out
split of :mod:`moldiff.proteins.dataset`; the evaluation hook samples chains from the EMA model
with fixed seeds and reports the backbone metrics of :mod:`moldiff.proteins.evaluate` against it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from moldiff.train.tasks import TaskBundle, register_task

from .angles import AngleBackboneConfig, AngleBackboneDiffusion
from .dataset import BackboneDataset, collate_backbones
from .evaluate import evaluate_backbones
from .generator import BackboneGenerator
from .model import BackboneDiffusion, BackboneModelConfig, save_designs
from .pdb_io import fits_pdb

__all__ = ["BackboneDataConfig", "load_datasets", "dataset_stats", "build", "register", "register_angles"]

TASK_NAME = "backbones"
ANGLES_TASK_NAME = "backbone_angles"


@dataclass
class BackboneDataConfig:
    """The ``data:`` section of a backbone config.

    Attributes:
        source: CATH tar archive or a folder of PDB/mmCIF files (default: the shared CATH archive,
            see :func:`moldiff.proteins.dataset.default_cath_path`).
        holdout_fraction: size of the fixed held-out split (default: 0.1).
        on_error: ``"raise"`` or ``"skip"`` bad structures (default: ``"raise"``).
        min_length: shortest chain used (default: 20).
        max_length: longest chain used (default: none).
        limit: train on the first ``limit`` structures only (default: all).
        valid: use the held-out split for the validation loss and evaluation (default: true).
        eval_samples: chains sampled at each evaluation (0: none) (default: 0).
        eval_lengths: their lengths, cycled (default: ``[50, 100]``).
        eval_steps: sampler steps of the evaluation (default: 50).
    """

    source: Optional[str] = None
    holdout_fraction: float = 0.1
    on_error: str = "raise"
    min_length: int = 20
    max_length: Optional[int] = None
    limit: Optional[int] = None
    valid: bool = True
    eval_samples: int = 0
    eval_lengths: list[int] = field(default_factory=lambda: [50, 100])
    eval_steps: int = 50


def load_datasets(data: BackboneDataConfig) -> tuple[BackboneDataset, BackboneDataset | None]:
    """``(train, held-out or None)`` for a data config."""
    common = dict(
        holdout_fraction=data.holdout_fraction,
        on_error=data.on_error,
        min_length=data.min_length,
        max_length=data.max_length,
    )
    train = BackboneDataset(data.source, "train", limit=data.limit, **common)
    valid = BackboneDataset(data.source, "holdout", **common) if data.valid else None
    return train, valid


def dataset_stats(train: BackboneDataset) -> dict:
    """Statistics a backbone model needs to sample without its data."""
    return {
        "length_histogram": train.length_histogram(),
        "dataset": str(train.source.name),
        "num_structures": len(train),
        "skipped": dict(train.skipped),
    }


def _eval_fn(data: BackboneDataConfig, valid: BackboneDataset | None):
    def evaluate(model: BackboneDiffusion, step: int, out_dir) -> dict:
        lengths = [data.eval_lengths[i % len(data.eval_lengths)] for i in range(data.eval_samples)]
        designs = model.sample(lengths, seed=1234, steps=data.eval_steps)
        # an early model's samples may leave the PDB columns (or diverge): counted, scored if finite, not written
        fit = [d for d in designs if fits_pdb(d.ca)]
        if out_dir is not None and fit:
            save_designs(fit, Path(out_dir) / f"samples_step{step:08d}", metadata={"step": step})
        finite = [d.ca for d in designs if np.isfinite(d.ca).all()]
        counts = {
            "unwritable_fraction": 1.0 - len(fit) / len(designs),
            "non_finite_fraction": 1.0 - len(finite) / len(designs),
        }
        if not finite:
            return counts
        reference = [b.ca for b in valid] if valid is not None else None
        result = evaluate_backbones(finite, reference, tm_score=False)
        return {**counts, **{k: v for k, v in result["summary"].items() if isinstance(v, (int, float))}}

    return evaluate


def build(
    model_cfg: BackboneModelConfig, data_cfg: BackboneDataConfig, *, rank: int = 0, world_size: int = 1, seed: int = 0
):
    """The task's ``build_fn``: datasets, statistics, model and evaluation hook."""
    train, valid = load_datasets(data_cfg)
    stats = dataset_stats(train)
    model = (AngleBackboneDiffusion if isinstance(model_cfg, AngleBackboneConfig) else BackboneDiffusion)(
        model_cfg, stats
    )
    eval_fn = _eval_fn(data_cfg, valid) if data_cfg.eval_samples > 0 else None
    return TaskBundle(
        model=model,
        train_dataset=train,
        collate_fn=collate_backbones,
        dataset_stats=stats,
        eval_fn=eval_fn,
        valid_dataset=valid,
    )


def register() -> None:
    """Register ``backbones`` (called by :func:`moldiff.train.tasks.get_task` through the entry point)."""
    register_task(
        TASK_NAME,
        BackboneModelConfig,
        BackboneDataConfig,
        build,
        model_fn=BackboneDiffusion,
        generator_fn=BackboneGenerator,
    )


def register_angles() -> None:
    """Register ``backbone_angles`` (called by :func:`moldiff.train.tasks.get_task` through the entry point)."""
    register_task(
        ANGLES_TASK_NAME,
        AngleBackboneConfig,
        BackboneDataConfig,
        build,
        model_fn=AngleBackboneDiffusion,
        generator_fn=BackboneGenerator,
    )
