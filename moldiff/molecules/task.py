"""The ``molecules`` training task: QM9 or a user's SDF files -> :class:`MoleculeDiffusion`.

Declared as an entry point (``moldiff.tasks``), so ``moldiff train configs/qm9_small.yaml`` needs
nothing else.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from moldiff.train.tasks import TaskBundle, register_task

from .generator import MoleculeGenerator
from .graph import collate_molecules
from .metrics import evaluate_molecules
from .model import MoleculeDiffusion, MoleculeModelConfig, sample_context, split_molecules
from .rdkit_io import write_sdf
from .training_data import DatasetRows, MoleculeDataConfig, data_report, dataset_stats, load_datasets


def _eval_fn(data: MoleculeDataConfig):
    def evaluate(model: MoleculeDiffusion, step: int, out_dir) -> dict:
        g = torch.Generator(device="cpu").manual_seed(1234)
        device = next(model.parameters()).device
        sizes = model.sample_num_atoms(data.eval_samples, generator=g)
        # A conditional model is scored on targets drawn from p(c | N), as it is sampled by default.
        context = sample_context(model.stats, list(model.config.context), sizes, g) if model.config.context else None
        pos, types, batch = model.sample_states(
            sizes,
            sampler=data.eval_sampler,
            steps=data.eval_steps,
            context=context,
            generator=torch.Generator(device=device).manual_seed(1234),
        )
        mols = split_molecules(model, pos, types, batch)
        metrics = evaluate_molecules(mols)
        if out_dir is not None:
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            write_sdf(mols, Path(out_dir) / f"samples_step{step:08d}.sdf")
        return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}

    return evaluate


def build(
    model_cfg: MoleculeModelConfig, data_cfg: MoleculeDataConfig, *, rank: int = 0, world_size: int = 1, seed: int = 0
):
    train, valid = load_datasets(data_cfg, list(model_cfg.context))
    stats = dataset_stats(train, list(model_cfg.context))
    if data_cfg.limit is not None:
        train = DatasetRows(train, np.arange(min(data_cfg.limit, len(train))))
    model = MoleculeDiffusion(model_cfg, stats)
    return TaskBundle(
        model=model,
        train_dataset=train,
        collate_fn=collate_molecules,
        dataset_stats=stats,
        eval_fn=_eval_fn(data_cfg) if data_cfg.eval_samples > 0 else None,
        valid_dataset=valid,
        data_report=data_report(train, data_cfg),
    )


def register() -> None:
    """Register ``molecules`` (called by :func:`moldiff.train.tasks.get_task` through the entry point)."""
    register_task(
        "molecules",
        MoleculeModelConfig,
        MoleculeDataConfig,
        build,
        model_fn=MoleculeDiffusion,
        generator_fn=MoleculeGenerator,
    )
