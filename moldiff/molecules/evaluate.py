"""Entry points for ``moldiff evaluate``: metrics of a file of samples or of a dataset split.

Both return a flat dict (JSON-serialisable) with the keys of
:func:`moldiff.molecules.metrics.evaluate_molecules` plus a few describing what was evaluated;
:func:`format_report` turns it into a short text table.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Literal

import numpy as np

from moldiff.errors import InputError

from .bond_data import training_bonded_smiles
from .bond_metrics import BOND_METRIC_KEYS, evaluate_bonded_molecules
from .dataset import training_smiles
from .metrics import METRIC_KEYS, evaluate_molecules
from .qm9 import QM9Dataset
from .rdkit_io import MOLECULE_FILE_SUFFIXES, MoleculeRecordError, _iter_sdf_blocks, molecule_file_format, read_xyz
from .sdf import SDFDataset

__all__ = [
    "evaluate_dataset",
    "evaluate_file",
    "evaluate_sdf",
    "format_report",
    "read_molecule_files",
    "resolve_training_smiles",
]


def resolve_training_smiles(
    spec: Any, cache_dir: str | os.PathLike | None = None, progress: bool = False
) -> frozenset[str] | None:
    """Reference SMILES for novelty from a flexible specification.

    Args:
        spec: ``None`` (no novelty); ``"qm9"`` (SMILES of QM9's EDM training split, built with the
            metrics' pipeline and cached); a path to a text file with one SMILES per line (first
            column); or an iterable of SMILES strings.
        cache_dir: cache folder for the QM9 SMILES.
        progress: show a progress bar while the QM9 SMILES are first computed.

    Returns:
        A frozenset of SMILES, or ``None``.
    """
    if spec is None:
        return None
    if isinstance(spec, str) and spec.lower() == "qm9":
        return training_smiles(QM9Dataset("train", cache_dir=cache_dir), cache_dir=cache_dir, progress=progress)
    if isinstance(spec, (str, os.PathLike)):
        path = Path(spec)
        if not path.is_file():
            raise FileNotFoundError(f"training SMILES: {path} is neither 'qm9' nor an existing file")
        return frozenset(line.split()[0] for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    return frozenset(spec)


def read_molecule_files(
    path: str | os.PathLike, on_error: Literal["raise", "skip"] = "raise"
) -> tuple[list[tuple[np.ndarray, np.ndarray]], dict[str, int]]:
    """The molecules of a file ``moldiff sample`` writes (``.sdf``, ``.sdf.gz`` or ``.xyz``; see
    :data:`~moldiff.molecules.rdkit_io.MOLECULE_FILE_SUFFIXES`), or of every such file in a folder.

    Positions are float32, as the datasets and samplers hold them, whatever the file's format.

    Args:
        path: the file or folder.
        on_error: ``"raise"`` or ``"skip"`` bad SDF records. An XYZ file has no records to resync
            on, so a malformed one always raises.

    Returns:
        ``[(atomic_numbers [n], positions [n, 3] float32 Å), ...]`` in file order (in a folder: the
        SDF files, then the XYZ files, each sorted by name), and ``{reason: count}`` of skipped SDF
        records.

    Raises:
        InputError: a file name with a suffix no reader knows (the message lists the known ones).
        FileNotFoundError: a missing path, or a folder without molecule files.
        MoleculeRecordError, XYZFormatError: a bad record or line (named in the message).
    """
    path = Path(path).expanduser()
    if path.is_dir():
        files = sorted(
            p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(tuple(MOLECULE_FILE_SUFFIXES))
        )
        if not files:
            raise FileNotFoundError(f"no molecule files ({', '.join(MOLECULE_FILE_SUFFIXES)}) in {path}")
    elif path.is_file():
        files = [path]
    else:
        raise FileNotFoundError(f"no such molecule file or folder: {path}")
    formats = {f: molecule_file_format(f) for f in files}  # an unknown suffix stops here, before any reading
    molecules: list[tuple[np.ndarray, np.ndarray]] = []
    skipped: Counter = Counter()
    sdf_files = [f for f in files if formats[f] == "sdf"]
    if sdf_files:  # one dataset over a folder's SDF files, as before XYZ files were read
        dataset = SDFDataset(path if path.is_dir() else sdf_files[0], on_error=on_error)
        molecules.extend(dataset.iter_molecules())
        skipped.update(dataset.skipped)
    for f in files:
        if formats[f] == "xyz":
            molecules.extend((m.atomic_numbers, m.positions.astype(np.float32)) for m in read_xyz(f))
    return molecules, dict(skipped)


def read_bonded_sdf(path: str | os.PathLike) -> list:
    """The molecules of an SDF file (``.sdf``, ``.sdf.gz``) exactly as written: their bonds and formal
    charges, hydrogens kept, not sanitised (so that the metrics, not the reader, judge them).

    Raises:
        MoleculeRecordError: a record that cannot be read as text, that RDKit cannot parse even without
            sanitisation, or whose coordinates are not finite (named by file and number).
        FileNotFoundError: a missing file.
    """
    from rdkit import Chem, rdBase

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SDF file not found: {path}")
    mols = []
    with rdBase.BlockLogs():
        for k, block, problem in _iter_sdf_blocks(path):
            if block is None:
                raise MoleculeRecordError(path, k, "", "unreadable", problem)
            title = block.splitlines()[0].strip() if block.strip() else ""
            try:
                mol = Chem.MolFromMolBlock(block, sanitize=False, removeHs=False)
            except Exception as err:  # noqa: BLE001 - some malformed blocks raise instead of returning None
                raise MoleculeRecordError(
                    path, k, title, "unparsable", f"RDKit cannot parse the block ({err})"
                ) from None
            if mol is None:
                raise MoleculeRecordError(path, k, title, "unparsable", "RDKit cannot parse the block")
            if mol.GetNumConformers() and not np.isfinite(mol.GetConformer().GetPositions()).all():
                raise MoleculeRecordError(path, k, title, "nonfinite_coordinates", "non-finite coordinates")
            mol.UpdatePropertyCache(strict=False)
            mols.append(mol)
    if not mols:
        raise InputError(f"{path}: no molecules found (empty file)")
    return mols


#: The protocols of :func:`evaluate_file`: EDM's distance-based bond perception (``"edm"``, or RDKit's
#: perception, ``"rdkit"``), or the bonds and formal charges written in the file (``"file"``: the
#: MiDi / EQGAT-diff / SemlaFlow protocol, valence with formal charges, validity by sanitisation).
PROTOCOLS = {
    "edm": "EDM's protocol: bonds perceived from distances with EDM's tables; the file's bonds ignored",
    "rdkit": "bonds perceived from distances by RDKit; the file's bonds ignored",
    "file": "the file's own bonds and formal charges (MiDi / EQGAT-diff / SemlaFlow protocol)",
}


def evaluate_file(
    path: str | os.PathLike,
    training_smiles: Any = None,
    bonds: Literal["edm", "rdkit", "file"] = "edm",
    on_error: Literal["raise", "skip"] = "raise",
    progress: bool = False,
) -> dict[str, Any]:
    """Metrics of the molecules of a samples file (SDF, gzipped SDF or XYZ, as ``moldiff sample``
    writes them) or a folder of such files, under one of two protocols (:data:`PROTOCOLS`).

    With ``bonds="edm"`` (default) or ``"rdkit"`` only elements and coordinates are used: bonds
    written in the file are ignored and perceived again from distances, as in EDM's protocol
    (:func:`moldiff.molecules.metrics.evaluate_molecules`). With ``bonds="file"`` the molecules are
    scored with the bonds and formal charges the file holds
    (:func:`moldiff.molecules.bond_metrics.evaluate_bonded_molecules`; SDF only).

    Args:
        path: ``.sdf`` / ``.sdf.gz`` / ``.xyz`` file or folder (see :func:`read_molecule_files`).
        training_smiles: see :func:`resolve_training_smiles` (``"qm9"``, a file, SMILES or None).
        bonds: ``"edm"``, ``"rdkit"`` or ``"file"``. (default: ``"edm"``)
        on_error: ``"raise"`` or ``"skip"`` bad SDF records (skips are reported under ``skipped``).
        progress: show a progress bar (one tick per molecule scored).

    Returns:
        The metrics dict plus ``source``, ``bonds``, ``protocol`` (in words), ``skipped``
        (``{reason: count}``) and ``seconds``.

    Raises:
        InputError: for a file name whose suffix is none of the formats above, or ``bonds="file"``
            on a file without bonds (XYZ).
    """
    if bonds not in PROTOCOLS:
        raise InputError(f"bonds must be one of {sorted(PROTOCOLS)}, got {bonds!r}")
    start = time.perf_counter()
    if bonds == "file":
        if molecule_file_format(path) != "sdf":
            raise InputError(f"{path}: an XYZ file holds no bonds; score it with EDM's protocol (--bonds edm)")
        if training_smiles is not None and str(training_smiles).lower() == "qm9":
            training_smiles = training_bonded_smiles()
        result = evaluate_bonded_molecules(
            read_bonded_sdf(path), resolve_training_smiles(training_smiles), progress=progress
        )
        skipped = {}
    else:
        molecules, skipped = read_molecule_files(path, on_error=on_error)
        result = evaluate_molecules(
            molecules,
            training_smiles=resolve_training_smiles(training_smiles, progress=progress),
            bonds=bonds,
            progress=progress,
        )
    result.update(
        source=str(path), bonds=bonds, protocol=PROTOCOLS[bonds], skipped=skipped, seconds=time.perf_counter() - start
    )
    return result


#: The name :func:`evaluate_file` had when it read SDF files only.
evaluate_sdf = evaluate_file


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

    Example::

        r = evaluate_dataset("qm9", "test")
        round(100 * r["molecule_stability"], 2)   # 95.22
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
    count = len(dataset) if limit is None else min(limit, len(dataset))
    molecules: Iterable = (dataset.molecule(i) for i in range(count))
    result = evaluate_molecules(
        molecules,
        training_smiles=resolve_training_smiles(training_smiles, progress=progress),
        bonds=bonds,
        progress=progress,
        total=count,
    )
    result.update(
        dataset=name, split=split, source=str(source or "qm9pack"), bonds=bonds, seconds=time.perf_counter() - start
    )
    return result


def format_report(result: dict[str, Any]) -> str:
    """A short human-readable table of a metrics dict (fractions shown as percentages)."""
    lines = [f"protocol: {result['protocol']}"] if result.get("protocol") else []
    keys = BOND_METRIC_KEYS if result.get("bonds") == "file" else METRIC_KEYS
    for key in keys:
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
