"""Training data of the molecule models: the ``data:`` section of a molecule config, QM9 or SDF
datasets, EDM's halves of the QM9 training split, and the statistics saved with a model.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np
import torch

from moldiff.errors import ConfigError

from .elements import atomic_number
from .graph import collate_molecules
from .qm9 import QM9Dataset, load_qm9
from .sdf import SDFDataset


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
        half: ``None`` (the whole split), ``"predictor"`` or ``"generator"``: one half of the QM9
            training split for EDM's conditional-generation protocol (Hoogeboom et al. 2022,
            Sec. 5.3), cut by :func:`training_half_rows` (EDM's own recipe).
        eval_samples: molecules sampled from the EMA model at each evaluation (0: none).
        eval_sampler: sampler for those evaluations.
        eval_steps: its number of steps.
    """

    dataset: str = "qm9"
    source: str = "qm9pack"
    split: str = "train"
    valid_split: Optional[str] = "valid"
    remove_hydrogens: bool = False
    on_error: Literal["raise", "skip"] = "raise"
    limit: Optional[int] = None
    half: Optional[str] = None
    eval_samples: int = 0
    eval_sampler: str = "dpmpp_2m"
    eval_steps: int = 50


#: The halves of :func:`training_half_rows`: property predictor first, generator second.
HALVES = ("predictor", "generator")


def training_half_rows(num: int, half: str) -> np.ndarray:
    """Rows of one half of a training split, sorted, for EDM's conditional-generation protocol.

    EDM's own recipe (``qm9/data/utils.py``, datasets ``qm9_first_half`` / ``qm9_second_half``;
    Hoogeboom et al. 2022, Sec. 5.3 and App.): ``np.random.seed(42); perm =
    np.random.permutation(num)``; the property predictor trains on ``perm[:num // 2]``, the
    conditional generator on ``perm[num // 2:]``. Applied to the 100,000 molecules of the EDM train
    split (held in index order, as EDM's processed file) it selects the same molecules as EDM; the
    legacy ``RandomState(42)`` reproduces ``np.random.seed(42)`` without touching numpy's global state.

    Args:
        num: size of the split (QM9 train: 100,000).
        half: ``"predictor"`` (first half) or ``"generator"`` (second half).

    Returns:
        ``[num // 2]`` or ``[num - num // 2]`` sorted row indices into the split.
    """
    if half not in HALVES:
        raise ValueError(f"half must be one of {HALVES} or null, got {half!r}")
    perm = np.random.RandomState(42).permutation(num)
    rows = perm[: num // 2] if half == "predictor" else perm[num // 2 :]
    return np.sort(rows)


class DatasetRows(torch.utils.data.Dataset):
    """A view of some rows of a molecule dataset, with the statistics :func:`dataset_stats` reads.

    Args:
        dataset: a :class:`~moldiff.molecules.dataset.MoleculeDataset` (or another view).
        rows: row indices into it.
    """

    def __init__(self, dataset, rows) -> None:
        self.dataset, self.rows = dataset, np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):
        return self.dataset[int(self.rows[i])]

    @property
    def vocabulary(self):
        return self.dataset.vocabulary

    @property
    def num_atoms(self) -> np.ndarray:
        return np.asarray(self.dataset.num_atoms)[self.rows]

    def num_atoms_histogram(self) -> dict[int, int]:
        sizes, counts = np.unique(self.num_atoms, return_counts=True)
        return {int(s): int(c) for s, c in zip(sizes, counts)}

    def property(self, name: str) -> np.ndarray:
        return np.asarray(self.dataset.property(name))[self.rows]

    def loader(self, batch_size: int, shuffle: bool = False, **kwargs):
        return torch.utils.data.DataLoader(
            self, batch_size=batch_size, shuffle=shuffle, collate_fn=collate_molecules, **kwargs
        )


def load_datasets(data: MoleculeDataConfig, context: list[str]):
    """``(train_dataset, valid_dataset or None)`` for a data config."""
    if data.dataset == "qm9":
        arrays = load_qm9(data.source)
        train = QM9Dataset(
            data.split, data.source, properties=context, remove_hydrogens=data.remove_hydrogens, arrays=arrays
        )
        if data.half is not None:
            train = DatasetRows(train, training_half_rows(len(train), data.half))
        valid = None
        if data.valid_split:
            valid = QM9Dataset(
                data.valid_split, data.source, properties=context, remove_hydrogens=data.remove_hydrogens, arrays=arrays
            )
    elif data.dataset == "sdf":
        if context:
            raise ConfigError("model.context: conditioning on properties needs a dataset with properties (QM9)")
        if data.half is not None:
            raise ConfigError("data.half: EDM's halves of the QM9 training split need dataset: qm9")
        train = SDFDataset(data.source, on_error=data.on_error, remove_hydrogens=data.remove_hydrogens)
        valid = None
    else:
        raise ConfigError(f"data.dataset: unknown dataset {data.dataset!r}; expected 'qm9' or 'sdf'")
    return train, valid


def data_report(train, data: MoleculeDataConfig) -> dict:
    """What the engine reports about the training data (:attr:`moldiff.train.TaskBundle.data_report`):
    the records skipped with ``data.on_error=skip``, by reason, with the first one's message."""
    records = getattr(getattr(train, "dataset", train), "skipped_records", None) or []
    if not records:
        return {}
    reasons = dict(Counter(r.reason for r in records))
    return {
        "skipped_records": len(records),
        "skipped": reasons,
        "first_skipped": records[0].message,
        "message": f"data: skipped {len(records)} bad record(s) of {data.source} ({reasons}); first: {records[0].message}",
    }


def dataset_stats(train, context: list[str]) -> dict:
    """Statistics a molecule model needs to sample without its data."""
    stats = {
        "atom_types": list(train.vocabulary),
        "atomic_numbers": [atomic_number(s) for s in train.vocabulary],
        "num_atoms_histogram": {int(k): int(v) for k, v in train.num_atoms_histogram().items()},
        "dataset": type(getattr(train, "dataset", train)).__name__,
        "num_molecules": len(train),
    }
    if context:
        values = {name: np.asarray(train.property(name), dtype=np.float64) for name in context}
        stats["context_mean"] = {n: float(v.mean()) for n, v in values.items()}
        stats["context_std"] = {n: float(v.std()) for n, v in values.items()}
        stats["context_range"] = {n: [float(v.min()), float(v.max())] for n, v in values.items()}
        stats["context_given_n"] = {n: context_histograms(np.asarray(train.num_atoms), v) for n, v in values.items()}
    return stats


def context_histograms(num_atoms: np.ndarray, values: np.ndarray, bins: int = 1000) -> dict[int, dict]:
    """``p(c | N)`` of one property as EDM's ``DistributionProperty``: per molecule size, a histogram
    of ``bins`` equal bins between that size's minimum and maximum (Hoogeboom et al. 2022, App.).

    Returns:
        ``{N: {"range": [min, max], "counts": [bins] ints}}`` (plain data, stored in checkpoints).
    """
    out = {}
    for n in np.unique(num_atoms):
        v = values[num_atoms == n]
        lo, hi = float(v.min()), float(v.max())
        idx = np.minimum(((v - lo) / (hi - lo + 1e-12) * bins).astype(np.int64), bins - 1)
        out[int(n)] = {"range": [lo, hi], "counts": np.bincount(idx, minlength=bins).tolist()}
    return out
