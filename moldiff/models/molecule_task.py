"""The ``molecules`` training task: QM9 or a user's SDF files -> :class:`MoleculeDiffusion`.

Registered lazily with the engine (:data:`moldiff.train.tasks.LAZY_TASKS`), so ``moldiff train
configs/qm9_small.yaml`` needs nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from .molecule import MoleculeDiffusion, MoleculeModelConfig


@dataclass
class MoleculeDataConfig:
    """The ``data:`` section of a molecule config.

    Attributes:
        dataset: ``"qm9"`` or ``"sdf"``.
        source: QM9: ``"qm9pack"`` (the installed package), a ``.npz`` (e.g.
            ``../shared/data/qm9/qm9.npz``), a folder of QM9 ``.xyz`` files or
            ``dsgdb9nsd.xyz.tar.bz2``; SDF: an ``.sdf``/``.sdf.gz`` file or a folder of them.
        split: QM9 split used for training (EDM split: ``"train"``).
        valid_split: QM9 split for the validation loss (``None``: no validation).
        remove_hydrogens: drop hydrogen atoms.
        on_error: SDF only: ``"raise"`` at the first bad record or ``"skip"`` and count.
        limit: use only the first ``limit`` training molecules (quick experiments).
        eval_samples: molecules sampled from the EMA model at each evaluation (0: none).
        eval_sampler: sampler for those evaluations.
        eval_steps: its number of steps.
    """

    dataset: str = "qm9"
    source: str = "qm9pack"
    split: str = "train"
    valid_split: Optional[str] = "valid"
    remove_hydrogens: bool = False
    on_error: str = "raise"
    limit: Optional[int] = None
    eval_samples: int = 0
    eval_sampler: str = "dpmpp_2m"
    eval_steps: int = 50


class _Subset(torch.utils.data.Dataset):
    def __init__(self, dataset, n: int) -> None:
        self.dataset, self.n = dataset, min(n, len(dataset))

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):
        return self.dataset[i]


def load_datasets(data: MoleculeDataConfig, context: list[str]):
    """``(train_dataset, valid_dataset or None)`` for a data config."""
    if data.dataset == "qm9":
        from moldiff.data.qm9 import QM9Dataset, load_qm9

        arrays = load_qm9(data.source)
        train = QM9Dataset(data.split, data.source, properties=context, remove_hydrogens=data.remove_hydrogens, arrays=arrays)
        valid = None
        if data.valid_split:
            valid = QM9Dataset(data.valid_split, data.source, properties=context,
                               remove_hydrogens=data.remove_hydrogens, arrays=arrays)
    elif data.dataset == "sdf":
        if context:
            raise ValueError("conditioning on properties needs a dataset with properties (QM9)")
        from moldiff.data.sdf import SDFDataset

        train = SDFDataset(data.source, on_error=data.on_error, remove_hydrogens=data.remove_hydrogens)
        valid = None
    else:
        raise ValueError(f"unknown dataset {data.dataset!r}; expected 'qm9' or 'sdf'")
    return train, valid


def dataset_stats(train, context: list[str]) -> dict:
    """Statistics a molecule model needs to sample without its data."""
    from moldiff.molecules.elements import atomic_number

    stats = {
        "atom_types": list(train.vocabulary),
        "atomic_numbers": [atomic_number(s) for s in train.vocabulary],
        "num_atoms_histogram": {int(k): int(v) for k, v in train.num_atoms_histogram().items()},
        "dataset": type(train).__name__,
        "num_molecules": len(train),
    }
    if context:
        values = {name: np.asarray(train.property(name), dtype=np.float64) for name in context}
        stats["context_mean"] = {n: float(v.mean()) for n, v in values.items()}
        stats["context_std"] = {n: float(v.std()) for n, v in values.items()}
        stats["context_range"] = {n: [float(v.min()), float(v.max())] for n, v in values.items()}
    return stats


def _eval_fn(data: MoleculeDataConfig):
    def evaluate(model: MoleculeDiffusion, step: int, out_dir) -> dict:
        from moldiff.molecules.metrics import evaluate_molecules

        g = torch.Generator(device="cpu").manual_seed(1234)
        device = next(model.parameters()).device
        sizes = model.sample_num_atoms(data.eval_samples, generator=g)
        pos, types, batch = model.sample_states(sizes, sampler=data.eval_sampler, steps=data.eval_steps,
                                                generator=torch.Generator(device=device).manual_seed(1234))
        mols = split_molecules(model, pos, types, batch)
        metrics = evaluate_molecules(mols)
        if out_dir is not None:
            from moldiff.molecules.rdkit_io import write_sdf

            Path(out_dir).mkdir(parents=True, exist_ok=True)
            write_sdf(mols, Path(out_dir) / f"samples_step{step:08d}.sdf")
        return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}

    return evaluate


def split_molecules(model: MoleculeDiffusion, pos: torch.Tensor, types: torch.Tensor, batch: torch.Tensor):
    """Per-molecule ``(atomic_numbers [n], positions [n, 3])`` numpy pairs from a packed sample."""
    z = model.atomic_numbers.cpu()[types.cpu()].numpy()
    p = pos.detach().cpu().double().numpy()
    counts = torch.bincount(batch.cpu()).tolist()
    out, start = [], 0
    for n in counts:
        out.append((z[start:start + n], p[start:start + n]))
        start += n
    return out


def build(model_cfg: MoleculeModelConfig, data_cfg: MoleculeDataConfig, *, rank: int = 0, world_size: int = 1, seed: int = 0):
    from moldiff.data.molecule_graph import collate_molecules
    from moldiff.train.tasks import TaskBundle

    train, valid = load_datasets(data_cfg, list(model_cfg.context))
    stats = dataset_stats(train, list(model_cfg.context))
    if data_cfg.limit is not None:
        train = _Subset(train, data_cfg.limit)
    model = MoleculeDiffusion(model_cfg, stats)
    return TaskBundle(model=model, train_dataset=train, collate_fn=collate_molecules, dataset_stats=stats,
                      eval_fn=_eval_fn(data_cfg) if data_cfg.eval_samples > 0 else None, valid_dataset=valid)


def model_from_stats(model_cfg: MoleculeModelConfig, stats: dict) -> MoleculeDiffusion:
    return MoleculeDiffusion(model_cfg, stats)


def register() -> None:
    from moldiff.train.tasks import register_task

    register_task("molecules", MoleculeModelConfig, MoleculeDataConfig, build, model_fn=model_from_stats)
