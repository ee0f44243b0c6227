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
        stats.update(context_stats(train, context))
    return stats


def context_stats(train, context: list[str]) -> dict:
    """The statistics of the properties a conditional molecule model is conditioned on, from its
    training data (for EDM's protocol, the generator's half of the QM9 training split).

    Args:
        train: a dataset with ``property(name) [M]`` and ``num_atoms [M]``.
        context: property names.

    Returns:
        ``{"context_mean", "context_std", "context_mad", "context_range", "context_given_n"}``:
        per property the mean, the standard deviation, the mean absolute deviation (EDM's
        ``compute_mean_mad``, the spread EDM normalises the context by), ``[min, max]`` and ``p(c | N)``
        (:func:`context_histograms`).
    """
    values = {name: np.asarray(train.property(name), dtype=np.float64) for name in context}
    num_atoms = np.asarray(train.num_atoms)
    return {
        "context_mean": {n: float(v.mean()) for n, v in values.items()},
        "context_std": {n: float(v.std()) for n, v in values.items()},
        "context_mad": {n: float(np.abs(v - v.mean()).mean()) for n, v in values.items()},
        "context_range": {n: [float(v.min()), float(v.max())] for n, v in values.items()},
        "context_given_n": {n: context_histograms(num_atoms, v) for n, v in values.items()},
    }


def normalise_context(
    stats: dict,
    names: list[str],
    values,
    num_graphs: int,
    *,
    spread: str = "context_std",
    allow_missing: bool = False,
    device=None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-molecule context ``[B, P]`` in a model's normalised units, ``(c - mean) / spread``, and which
    entries are given.

    Args:
        stats: the model's statistics (:func:`context_stats`).
        names: the model's properties, in column order.
        values: ``{name: value or [B] values}`` in physical units (names not among ``names`` are
            ignored), or a ``[B, P]`` tensor of all of them in column order.
        num_graphs: ``B``.
        spread: the statistic divided by: ``"context_std"`` (the EDM-style models of
            :mod:`moldiff.molecules.model`) or ``"context_mad"`` (EDM's own choice, the bond-aware
            :class:`~moldiff.molecules.flow_model.MoleculeFlow`).
        allow_missing: accept a dict without some of ``names``: their column is 0 and not given.
        device: where the result goes (default: where the values are).

    Returns:
        ``(normalised [B, P] float32, present [B, P] bool)``.

    Raises:
        ValueError: a property missing (without ``allow_missing``).
    """
    if isinstance(values, torch.Tensor):
        raw = values.to(torch.float32).reshape(num_graphs, len(names))
        present = torch.ones_like(raw, dtype=torch.bool)
    else:
        missing = [n for n in names if n not in values]
        if missing and not allow_missing:
            raise ValueError(f"this model is conditioned on {names}; missing {missing}")
        cols, given = [], []
        for n in names:
            if n in values:
                cols.append(torch.as_tensor(values[n], dtype=torch.float32).reshape(-1).expand(num_graphs))
                given.append(torch.ones(num_graphs, dtype=torch.bool, device=cols[-1].device))
            else:
                cols.append(torch.zeros(num_graphs))
                given.append(torch.zeros(num_graphs, dtype=torch.bool))
        target = cols[0].device if cols else None
        raw = torch.stack([c.to(target) for c in cols], dim=-1) if cols else torch.zeros(num_graphs, 0)
        present = torch.stack([g.to(raw.device) for g in given], dim=-1) if given else raw.bool()
    mean = torch.tensor([stats["context_mean"][n] for n in names], dtype=torch.float32, device=raw.device)
    scale = torch.tensor([stats[spread][n] for n in names], dtype=torch.float32, device=raw.device)
    normalised = torch.where(present, (raw - mean) / scale, torch.zeros_like(raw))
    device = raw.device if device is None else device
    return normalised.to(device), present.to(device)


def sample_num_atoms_given_context(
    stats: dict, condition: dict[str, torch.Tensor], generator: torch.Generator | None = None
) -> torch.Tensor:
    """Molecule sizes drawn from ``p(N | c)`` for given targets, from the statistics a conditional
    model keeps: ``p(N | c) ∝ p(N) prod_p p(c_p | N)`` (the properties independent given ``N``, as
    :func:`~moldiff.molecules.model.sample_context` draws them), with ``p(c_p | N)`` the density of the
    stored histogram (:func:`context_histograms`; a size's bins count at least the property's whole
    range / bins wide, so that a size with one training molecule is no point mass). The reverse of EDM's
    ``N ~ p(N), c ~ p(c | N)``: for a target asked for by a user, a size that can have it.

    A molecule whose targets no training size reaches (a forced value outside the training range, or
    a combination never seen together at any size) gets the size whose ranges are nearest: the
    smallest sum over properties of the distance outside ``[min, max]`` in units of the property's
    whole range.

    Args:
        stats: ``num_atoms_histogram`` and ``context_given_n`` of a conditional model.
        condition: ``{name: [num] values}`` in physical units (one or more of the model's properties).
        generator: random source.

    Returns:
        ``[num]`` long sizes.
    """
    hist = {int(k): float(v) for k, v in stats["num_atoms_histogram"].items()}
    sizes = np.array(sorted(hist))
    log_prior = np.log(np.array([hist[n] for n in sizes]) / sum(hist.values()))
    names = list(condition)
    num = len(next(iter(condition.values()))) if names else 0
    log_joint = np.zeros((num, len(sizes)))  # log p(N) + sum_p log p(c_p | N), up to a constant
    distance = np.zeros((num, len(sizes)))
    for name in names:
        c = np.asarray(torch.as_tensor(condition[name], dtype=torch.float64).reshape(-1).cpu())[:, None]  # [num, 1]
        table = {int(k): v for k, v in stats["context_given_n"][name].items()}
        lo = np.array([table[n]["range"][0] if n in table else np.inf for n in sizes])
        hi = np.array([table[n]["range"][1] if n in table else -np.inf for n in sizes])
        bins = max(len(v["counts"]) for v in table.values())
        counts = np.array([table[n]["counts"] if n in table else np.zeros(bins) for n in sizes], dtype=np.float64)
        seen = np.isfinite(lo)
        whole = max(float(hi[seen].max() - lo[seen].min()), 1e-12)
        width = np.where(seen, (hi - lo) / bins, 1.0)
        tolerance = 0.5 * whole / bins  # a size with one training molecule (lo = hi) takes targets near it
        inside = (c >= lo - tolerance) & (c <= hi + tolerance) & seen
        with np.errstate(divide="ignore", invalid="ignore"):
            k = np.where(width > 0, np.floor((c - lo) / np.where(width > 0, width, 1.0)), 0.0)
            k = np.clip(np.nan_to_num(k, nan=0.0, posinf=0.0, neginf=0.0), 0, bins - 1).astype(np.int64)
            share = counts[np.arange(len(sizes))[None, :], k] / counts.sum(1)
            density = np.where(inside, share / np.maximum(width, whole / bins), 0.0)
            log_joint += np.log(density)
        distance += (np.maximum(lo - c, 0.0) + np.maximum(c - hi, 0.0)) / whole
        distance[:, ~seen] = np.inf
    log_joint += log_prior[None, :]
    reachable = np.isfinite(log_joint).any(axis=1)
    probs = np.zeros_like(log_joint)
    if reachable.any():
        z = log_joint[reachable]
        probs[reachable] = np.exp(z - z.max(axis=1, keepdims=True))
    nearest = np.argmin(distance, axis=1)
    probs[~reachable, nearest[~reachable]] = 1.0
    if num == 0:
        return torch.zeros(0, dtype=torch.long)
    pick = torch.multinomial(torch.from_numpy(probs), 1, generator=generator)[:, 0]
    return torch.from_numpy(sizes)[pick].long()


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
