"""Entry points for ``moldiff evaluate``: metrics of an SDF file of samples or of a dataset split.

Both return a flat dict (JSON-serialisable) with the keys of
:func:`moldiff.molecules.metrics.evaluate_molecules` plus a few describing what was evaluated;
:func:`format_report` turns it into a short text table.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Iterable, Literal

from .dataset import training_smiles
from .metrics import METRIC_KEYS, evaluate_molecules
from .qm9 import QM9Dataset
from .sdf import SDFDataset

__all__ = ["evaluate_dataset", "evaluate_sdf", "format_report", "resolve_training_smiles"]


def resolve_training_smiles(spec: Any, cache_dir: str | os.PathLike | None = None) -> frozenset[str] | None:
    """Reference SMILES for novelty from a flexible specification.

    Args:
        spec: ``None`` (no novelty); ``"qm9"`` (SMILES of QM9's EDM training split, built with the
            metrics' pipeline and cached); a path to a text file with one SMILES per line (first
            column); or an iterable of SMILES strings.
        cache_dir: cache folder for the QM9 SMILES.

    Returns:
        A frozenset of SMILES, or ``None``.
    """
    if spec is None:
        return None
    if isinstance(spec, str) and spec.lower() == "qm9":
        return training_smiles(QM9Dataset("train", cache_dir=cache_dir), cache_dir=cache_dir)
    if isinstance(spec, (str, os.PathLike)):
        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(f"training SMILES: {path} is neither 'qm9' nor an existing file")
        return frozenset(line.split()[0] for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return frozenset(spec)


def evaluate_sdf(
    path: str | os.PathLike,
    training_smiles: Any = None,
    bonds: Literal["edm", "rdkit"] = "edm",
    on_error: Literal["raise", "skip"] = "raise",
    progress: bool = False,
) -> dict[str, Any]:
    """EDM's metrics for the molecules of an SDF file (or a folder of SDF files).

    Only elements and coordinates are used: bonds written in the file are ignored and perceived
    again from distances, as in EDM's protocol.

    Args:
        path: ``.sdf`` / ``.sdf.gz`` file or folder.
        training_smiles: see :func:`resolve_training_smiles` (``"qm9"``, a file, SMILES or None).
        bonds: ``"edm"`` or ``"rdkit"`` bond perception. (default: ``"edm"``)
        on_error: ``"raise"`` or ``"skip"`` bad records (skips are reported under ``skipped``).
        progress: show a progress bar.

    Returns:
        The metrics dict plus ``source``, ``bonds``, ``skipped`` (``{reason: count}``) and
        ``seconds``.
    """
    start = time.perf_counter()
    dataset = SDFDataset(path, on_error=on_error)
    result = evaluate_molecules(
        dataset.iter_molecules(), training_smiles=resolve_training_smiles(training_smiles), bonds=bonds, progress=progress
    )
    result.update(source=str(path), bonds=bonds, skipped=dict(dataset.skipped), seconds=time.perf_counter() - start)
    return result


def evaluate_dataset(
    name: str = "qm9",
    split: str = "test",
    source: str | os.PathLike | None = None,
    training_smiles: Any = None,
    bonds: Literal["edm", "rdkit"] = "edm",
    limit: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """EDM's metrics on real molecules of a dataset split (EDM's "data" row).

    Args:
        name: ``"qm9"``, or ``"sdf"`` with ``source`` an SDF file or folder.
        split: QM9 split (``"train"``, ``"valid"``, ``"test"``, ``"all"``); ignored for SDF.
        source: QM9 source (default ``"qm9pack"``, see :func:`moldiff.molecules.qm9.load_qm9`) or the
            SDF path.
        training_smiles: for novelty, see :func:`resolve_training_smiles`.
        bonds: ``"edm"`` or ``"rdkit"``. (default: ``"edm"``)
        limit: evaluate only the first ``limit`` molecules of the split.
        progress: show a progress bar.

    Returns:
        The metrics dict plus ``dataset``, ``split``, ``source``, ``bonds`` and ``seconds``.

    Example:
        >>> r = evaluate_dataset("qm9", "test")                     # doctest: +SKIP
        >>> round(100 * r["molecule_stability"], 2)                 # doctest: +SKIP
        95.22
    """
    start = time.perf_counter()
    if name == "qm9":
        dataset = QM9Dataset(split, source="qm9pack" if source is None else source)
    elif name == "sdf":
        if source is None:
            raise ValueError("evaluate_dataset('sdf') needs source=<SDF file or folder>")
        dataset, split = SDFDataset(source), "all"
    else:
        raise ValueError(f"unknown dataset {name!r}; use 'qm9' or 'sdf'")
    molecules: Iterable = dataset.iter_molecules()
    if limit is not None:
        molecules = (dataset.molecule(i) for i in range(min(limit, len(dataset))))
    result = evaluate_molecules(molecules, training_smiles=resolve_training_smiles(training_smiles), bonds=bonds, progress=progress)
    result.update(
        dataset=name, split=split, source=str(source or "qm9pack"), bonds=bonds, seconds=time.perf_counter() - start
    )
    return result


def format_report(result: dict[str, Any]) -> str:
    """A short human-readable table of a metrics dict (fractions shown as percentages)."""
    lines = []
    for key in METRIC_KEYS:
        value = result.get(key)
        if key == "num_molecules":
            lines.append(f"{key:<24s} {value:,}")
        elif value is None:
            lines.append(f"{key:<24s} -")
        else:
            lines.append(f"{key:<24s} {100 * value:6.2f} %")
    for key in ("skipped",):
        if result.get(key):
            lines.append(f"{key:<24s} {result[key]}")
    return "\n".join(lines)
