"""Molecule I/O: RDKit molecules from atoms and coordinates, SDF and XYZ readers and writers.

RDKit is imported inside the functions that need it, so importing this module is cheap.

Coordinates are in Å everywhere. Atoms are given as atomic numbers ``[N]`` and positions ``[N, 3]``
(numpy arrays, torch tensors or nested lists).

Bad input never passes silently: readers raise :class:`MoleculeRecordError` (SDF) or
:class:`XYZFormatError` (XYZ) naming the file and the record or line; the SDF reader can instead skip
bad records and report them (``on_error="skip"``).
"""

from __future__ import annotations

import gzip
import io
import math
import os
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Literal, NamedTuple, Sequence

import numpy as np

from moldiff.errors import InputError
from moldiff.files import atomic_write, header_text

from .bonds import edm_bond_matrix
from .elements import ELEMENT_SYMBOLS, UnknownElementError, atomic_number, element_symbol

__all__ = [
    "MOLECULE_FILE_SUFFIXES",
    "MoleculeRecordError",
    "SDFRecord",
    "SkippedRecord",
    "XYZFormatError",
    "XYZMolecule",
    "build_molecule",
    "mol_to_arrays",
    "molecule_file_format",
    "open_text",
    "parse_float",
    "read_sdf_records",
    "read_xyz",
    "write_sdf",
    "write_xyz",
]

BondMethod = Literal["edm", "rdkit"]
OnError = Literal["raise", "skip"]

#: Reasons a record can be rejected, as used in ``SkippedRecord.reason`` and ``SDFDataset.skipped``.
SKIP_REASONS = (
    "unreadable",
    "unparsable",
    "unknown_element",
    "nonfinite_coordinates",
    "too_few_atoms",
    "no_3d_conformer",
    "not_in_vocabulary",
)


#: Molecule files moldiff reads and writes, by how the name ends (case-insensitive): ``"sdf"`` or ``"xyz"``.
MOLECULE_FILE_SUFFIXES: dict[str, str] = {
    ".sdf": "sdf",
    ".sdf.gz": "sdf",
    ".sd": "sdf",
    ".sd.gz": "sdf",
    ".mol": "sdf",
    ".mol.gz": "sdf",
    ".xyz": "xyz",
    ".xyz.gz": "xyz",
}


# ----------------------------------------------------------------------------------------------
# small helpers


def molecule_file_format(path: str | os.PathLike) -> Literal["sdf", "xyz"]:
    """``"sdf"`` or ``"xyz"``: the format of a molecule file, from how its name ends
    (:data:`MOLECULE_FILE_SUFFIXES`).

    Raises:
        InputError: for any other name; the message names the file and the suffixes understood.
    """
    name = Path(path).name.lower()
    for suffix in sorted(MOLECULE_FILE_SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return MOLECULE_FILE_SUFFIXES[suffix]  # type: ignore[return-value]
    found = "".join(Path(name).suffixes[-2:]) or "no suffix"
    raise InputError(
        f"{path}: unknown molecule file type ({found}); moldiff reads and writes {', '.join(MOLECULE_FILE_SUFFIXES)}"
    )


def open_text(path: str | os.PathLike, mode: str = "r", compress: bool | None = None) -> IO[str]:
    """Open a text file, transparently (de)compressing ``.gz`` files.

    Args:
        path: file path; a name ending in ``.gz`` is read or written with gzip.
        mode: ``"r"`` or ``"w"``.
        compress: gzip or not whatever the name (default: by the name).
    """
    path = Path(path)
    if path.suffix == ".gz" if compress is None else compress:
        return gzip.open(path, mode + "t", encoding="utf-8", newline="")
    return open(path, mode, encoding="utf-8", newline="")


def parse_float(text: str) -> float:
    """Parse a float, accepting Mathematica-style exponents (``1.5*^-6``) as QM9 xyz files use.

    Raises:
        ValueError: if ``text`` is not a number.
    """
    return float(text.replace("*^", "e"))


def _as_numpy(atomic_numbers: Any, positions: Any) -> tuple[np.ndarray, np.ndarray]:
    if hasattr(atomic_numbers, "detach"):
        atomic_numbers = atomic_numbers.detach().cpu().numpy()
    if hasattr(positions, "detach"):
        positions = positions.detach().cpu()
        if positions.dtype.is_floating_point and positions.element_size() < 4:  # fp16 / bf16
            positions = positions.float()
        positions = positions.numpy()
    z = np.asarray(atomic_numbers)
    if z.dtype.kind in "US":  # symbols
        z = np.array([atomic_number(s) for s in z.tolist()], dtype=np.int64)
    z = z.astype(np.int64, copy=False)
    pos = np.asarray(positions)
    if z.ndim != 1 or pos.shape != (z.shape[0], 3):
        raise ValueError(f"expected atomic_numbers [N] and positions [N, 3], got {z.shape} and {pos.shape}")
    return z, pos


def _molecule_arrays(item: Any) -> tuple[np.ndarray, np.ndarray]:
    """(atomic_numbers, positions) of an RDKit Mol, an ``(atomic_numbers, positions)`` pair, or an
    object with ``atomic_numbers`` and ``pos`` (``MoleculeGraph``) or ``positions`` (``SDFRecord``,
    ``XYZMolecule``) attributes."""
    if hasattr(item, "GetAtoms"):
        return mol_to_arrays(item)
    if hasattr(item, "atomic_numbers"):
        if hasattr(item, "pos"):
            return _as_numpy(item.atomic_numbers, item.pos)
        if hasattr(item, "positions"):
            return _as_numpy(item.atomic_numbers, item.positions)
    if isinstance(item, (tuple, list)) and len(item) >= 2:
        return _as_numpy(item[0], item[1])
    raise TypeError(
        f"expected an RDKit Mol, an (atomic_numbers, positions) pair or a MoleculeGraph, got {type(item).__name__}"
    )


# ----------------------------------------------------------------------------------------------
# RDKit molecules


def build_molecule(
    atomic_numbers: Any,
    positions: Any,
    bonds: BondMethod | None = "edm",
    *,
    formal_charges: Any = None,
    total_charge: int = 0,
    sanitize: bool = False,
    add_conformer: bool = True,
    bond_matrix: Any = None,
):
    """An RDKit molecule with a 3D conformer from atoms and coordinates.

    Args:
        atomic_numbers: ``[N]`` atomic numbers (or element symbols).
        positions: ``[N, 3]`` coordinates in Å.
        bonds: how bonds are perceived: ``"edm"`` (EDM's distance tables, see
            :mod:`moldiff.molecules.bonds`; atoms may take implicit hydrogens as in EDM's validity
            check), ``"rdkit"`` (``rdDetermineBonds.DetermineBonds``: connectivity from covalent
            radii, then bond orders and charges consistent with ``total_charge``; hydrogens must be
            explicit) or ``None`` (atoms only). (default: ``"edm"``)
        formal_charges: optional ``[N]`` integer formal charges to set on the atoms.
        total_charge: net charge passed to RDKit's bond-order assignment (``bonds="rdkit"`` only).
        sanitize: run ``Chem.SanitizeMol`` and let its error propagate (default: False; the
            property cache is updated leniently so the molecule can be written and inspected).
        add_conformer: attach the coordinates as a 3D conformer (default: True).
        bond_matrix: optional precomputed ``[N, N]`` EDM bond orders (skips the distance step).

    Returns:
        ``rdkit.Chem.Mol``.

    Raises:
        ValueError: if RDKit cannot assign bonds (``bonds="rdkit"``) or sanitization fails.
    """
    from rdkit import Chem

    z, pos = _as_numpy(atomic_numbers, positions)
    if bonds not in ("edm", "rdkit", None):
        raise ValueError(f"bonds must be 'edm', 'rdkit' or None, got {bonds!r}")
    mol = Chem.RWMol()
    charges = None if formal_charges is None else np.asarray(formal_charges).astype(int).tolist()
    for i, zi in enumerate(z.tolist()):
        atom = Chem.Atom(int(zi))
        if charges is not None and charges[i]:
            atom.SetFormalCharge(charges[i])
        mol.AddAtom(atom)
    if bonds == "edm":
        orders = edm_bond_matrix(z, pos) if bond_matrix is None else np.asarray(bond_matrix)
        bond_types = (None, Chem.BondType.SINGLE, Chem.BondType.DOUBLE, Chem.BondType.TRIPLE)
        ii, jj = np.nonzero(np.triu(orders, 1))
        for i, j in zip(ii.tolist(), jj.tolist()):
            mol.AddBond(i, j, bond_types[int(orders[i, j])])
    if add_conformer or bonds == "rdkit":
        conf = Chem.Conformer(len(z))
        conf.SetPositions(np.ascontiguousarray(pos, dtype=np.float64))
        conf.Set3D(True)
        mol.AddConformer(conf, assignId=True)
    mol = mol.GetMol()
    if bonds == "rdkit":
        from rdkit.Chem import rdDetermineBonds

        try:
            rdDetermineBonds.DetermineBonds(mol, charge=int(total_charge))
        except Exception as exc:  # RDKit raises ValueError/RuntimeError depending on the failure
            raise ValueError(f"RDKit could not assign bonds to this molecule: {exc}") from exc
        if not add_conformer:
            mol.RemoveAllConformers()
    if sanitize:
        Chem.SanitizeMol(mol)
    else:
        mol.UpdatePropertyCache(strict=False)
    return mol


def mol_to_arrays(mol, conf_id: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """Atomic numbers ``[N]`` int64 and positions ``[N, 3]`` float64 (Å) of an RDKit molecule.

    Raises:
        ValueError: if the molecule has no conformer.
    """
    if mol.GetNumConformers() == 0:
        raise ValueError("the RDKit molecule has no conformer (no coordinates)")
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64)
    return z, np.asarray(mol.GetConformer(conf_id).GetPositions(), dtype=np.float64)


# ----------------------------------------------------------------------------------------------
# SDF


class MoleculeRecordError(InputError):
    """A bad record in a molecule file; the message names the file, record number and title.

    Attributes:
        path: the file.
        record: 1-based record number within the file.
        title: the record's title line ('' if none).
        reason: one of ``SKIP_REASONS``.
    """

    def __init__(self, path: str | os.PathLike, record: int, title: str, reason: str, detail: str):
        self.path, self.record, self.title, self.reason, self.detail = str(path), record, title, reason, detail
        name = f" ({title!r})" if title else ""
        super().__init__(f"{self.path}, record {record}{name}: {detail}")


@dataclass(frozen=True)
class SkippedRecord:
    """A record that was skipped (``on_error="skip"``), with the reason and the full message."""

    path: str
    record: int
    title: str
    reason: str
    message: str


@dataclass
class SDFRecord:
    """One molecule read from an SDF file.

    Attributes:
        atomic_numbers: ``[N]`` int64.
        positions: ``[N, 3]`` float64, Å.
        formal_charges: ``[N]`` int64.
        title: the record's first line.
        path: the file it came from.
        record: 1-based record number within that file.
    """

    atomic_numbers: np.ndarray
    positions: np.ndarray
    formal_charges: np.ndarray
    title: str
    path: str
    record: int


def _decode_block(raw: bytes) -> tuple[str | None, str]:
    """``(text, "")`` of one record's bytes, or ``(None, why not)`` for binary data.

    UTF-8 is expected; other bytes without NULs are read as Latin-1 (old files write titles that way),
    so the parser, not the decoder, judges them."""
    if b"\x00" in raw:
        at = raw.index(b"\x00")
        hint = "; it looks gzip-compressed: name it .sdf.gz" if raw.startswith(b"\x1f\x8b") else ""
        return None, f"binary data, not text (a NUL byte at offset {at}){hint}"
    try:
        return raw.decode("utf-8"), ""
    except UnicodeDecodeError:
        return raw.decode("latin-1"), ""


def _open_bytes(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def _iter_sdf_blocks(path: Path) -> Iterator[tuple[int, str | None, str]]:
    """``(record number, mol block text, "")`` for each ``$$$$``-terminated record of an SDF file, or
    ``(number, None, why)`` for a record that cannot be read as text; a gzip stream that breaks off
    (a truncated or corrupt ``.gz``) ends the file with one such record."""
    lines: list[bytes] = []
    number = 0
    try:
        with _open_bytes(path) as fh:
            for line in fh:
                if line.strip() == b"$$$$":
                    number += 1
                    yield (number, *_decode_block(b"".join(lines)))
                    lines = []
                else:
                    lines.append(line)
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        why = "not a gzip file" if isinstance(err, gzip.BadGzipFile) else f"a broken gzip stream ({err})"
        yield number + 1, None, f"cannot read the file from here on: {why}"
        return
    if b"".join(lines).strip():
        yield (number + 1, *_decode_block(b"".join(lines)))


def _diagnose_v2000(block: str) -> tuple[str, str] | None:
    """Pre-check a V2000 connection table: (reason, detail) for a defect we can name, else None."""
    lines = block.splitlines()
    if len(lines) < 4:
        return "unparsable", f"the block has {len(lines)} lines; a mol block needs a header and a counts line"
    counts = lines[3]
    if "V3000" in counts:
        return None  # leave V3000 to RDKit
    try:
        n_atoms = int(counts[0:3])
    except ValueError:
        return "unparsable", f"malformed counts line {counts.rstrip()!r}"
    if len(lines) < 4 + n_atoms:
        return "unparsable", f"the counts line announces {n_atoms} atoms but the block ends after {len(lines) - 4}"
    for k in range(n_atoms):
        line = lines[4 + k]
        symbol = line[31:34].strip()
        if symbol in ("D", "T"):
            continue
        if symbol not in ELEMENT_SYMBOLS[1:]:
            return "unknown_element", f"unknown element {symbol!r} (atom {k + 1})"
        try:
            xyz = [float(line[0:10]), float(line[10:20]), float(line[20:30])]
        except ValueError:
            return "unparsable", f"malformed coordinates in atom line {k + 1}: {line.rstrip()!r}"
        if not all(math.isfinite(v) for v in xyz):
            return "nonfinite_coordinates", f"non-finite coordinates for atom {k + 1}: {xyz}"
    return None


def _parse_sdf_block(block: str) -> tuple[str, np.ndarray, np.ndarray, np.ndarray] | tuple[str, str]:
    """Parse one mol block: ``(title, z, pos, charges)`` on success or ``(reason, detail)``."""
    from rdkit import Chem, rdBase

    diagnosis = _diagnose_v2000(block)
    if diagnosis is not None:
        return diagnosis
    with rdBase.BlockLogs():
        try:
            mol = Chem.MolFromMolBlock(block, sanitize=False, removeHs=False, strictParsing=True)
        except Exception as exc:  # some parse failures raise instead of returning None
            return "unparsable", f"RDKit could not parse the block ({exc})"
    if mol is None:
        return "unparsable", "RDKit could not parse the block"
    n = mol.GetNumAtoms()
    if n < 2:
        return "too_few_atoms", f"{n} atom(s); a molecule needs at least 2"
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64)
    if (z < 1).any():
        k = int(np.argmin(z))
        return "unknown_element", f"unknown element {mol.GetAtomWithIdx(k).GetSymbol()!r} (atom {k + 1})"
    if mol.GetNumConformers() == 0 or not mol.GetConformer().Is3D():
        return "no_3d_conformer", "no 3D conformer (2D coordinates: the header does not say 3D and all z are 0)"
    pos = np.asarray(mol.GetConformer().GetPositions(), dtype=np.float64)
    if not np.isfinite(pos).all():
        k = int(np.argwhere(~np.isfinite(pos))[0, 0])
        return "nonfinite_coordinates", f"non-finite coordinates for atom {k + 1}"
    charges = np.array([a.GetFormalCharge() for a in mol.GetAtoms()], dtype=np.int64)
    title = mol.GetProp("_Name") if mol.HasProp("_Name") else ""
    return title, z, pos, charges


def read_sdf_records(
    path: str | os.PathLike,
    on_error: OnError = "raise",
    skipped: list[SkippedRecord] | None = None,
) -> list[SDFRecord]:
    """Read every molecule of an SDF file (``.sdf`` or ``.sdf.gz``) with its 3D coordinates.

    Hydrogens are kept as written; bonds in the file are ignored (use :func:`build_molecule` to
    perceive them). Each record is checked for: an unparsable block, an unknown element, non-finite
    coordinates, fewer than 2 atoms, and a missing 3D conformer.

    Args:
        path: the SDF file.
        on_error: ``"raise"`` to raise :class:`MoleculeRecordError` at the first bad record, or
            ``"skip"`` to leave bad records out. (default: ``"raise"``)
        skipped: with ``on_error="skip"``, a list that receives one :class:`SkippedRecord` per
            skipped record; without it, a single warning summarises what was skipped.

    Returns:
        The good records, in file order.

    Raises:
        MoleculeRecordError: naming the file, record number and title of the first bad record.
        FileNotFoundError: if the file does not exist.
    """
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"SDF file not found: {path}")
    records: list[SDFRecord] = []
    local_skips: list[SkippedRecord] = []
    for number, block, problem in _iter_sdf_blocks(path):
        if block is None:
            error = MoleculeRecordError(path, number, "", "unreadable", problem)
            if on_error == "raise":
                raise error
            local_skips.append(SkippedRecord(str(path), number, "", "unreadable", str(error)))
            continue
        result = _parse_sdf_block(block)
        if len(result) == 4:
            title, z, pos, charges = result
            records.append(SDFRecord(z, pos, charges, title, str(path), number))
            continue
        reason, detail = result
        title = block.splitlines()[0].strip() if block.strip() else ""
        error = MoleculeRecordError(path, number, title, reason, detail)
        if on_error == "raise":
            raise error
        local_skips.append(SkippedRecord(str(path), number, title, reason, str(error)))
    if skipped is not None:
        skipped.extend(local_skips)
    elif local_skips:
        warnings.warn(
            f"{path}: skipped {len(local_skips)} bad record(s), first: {local_skips[0].message}", stacklevel=2
        )
    return records


def _safe_property(value: str) -> str:
    """An SDF data item's value that cannot end its record or start another data item: multi-line
    values stay, unless a line of theirs is empty, starts with ``>`` or ``$$$$`` (then one line)."""
    lines = value.replace("\r", "").split("\n")
    if any(not line.strip() or line.startswith((">", "$$$$")) for line in lines[1:]) or value.startswith("$$$$"):
        return header_text(value)
    return "\n".join(lines)


def write_sdf(
    molecules: Iterable[Any],
    path: str | os.PathLike,
    bonds: BondMethod | None = "edm",
    titles: Sequence[str] | None = None,
) -> int:
    """Write molecules to an SDF file (``.sdf`` or gzipped ``.sdf.gz``).

    Coordinates are written with 4 decimals (V2000 precision, 1e-4 Å). The file is written whole or
    not at all (:func:`moldiff.files.atomic_write`: an existing file keeps its content when writing
    fails). Titles and property values are made safe for their one line (:func:`moldiff.files.header_text`:
    a newline in a title would end the record's header early).

    Args:
        molecules: RDKit molecules (written with their own bonds) or ``(atomic_numbers,
            positions)`` pairs / ``MoleculeGraph`` objects (bonds perceived with ``bonds``).
        path: output file.
        bonds: bond perception for non-RDKit inputs (see :func:`build_molecule`). (default: ``"edm"``)
        titles: optional title line per molecule.

    Returns:
        The number of molecules written.
    """
    from rdkit import Chem

    path = Path(path)
    count = 0

    def write(tmp: Path) -> None:
        nonlocal count
        # RDKit writes into a buffer and Python moves each record to the file, so that a write error
        # (a full disk) is raised as the OSError it is, not hidden inside RDKit's C++ writer
        buffer = io.StringIO()
        with open_text(tmp, "w", compress=path.suffix == ".gz") as fh:
            writer = Chem.SDWriter(buffer)
            writer.SetKekulize(False)
            for k, item in enumerate(molecules):
                if hasattr(item, "GetAtoms"):
                    mol = Chem.Mol(item)
                    mol.UpdatePropertyCache(strict=False)
                else:
                    z, pos = _molecule_arrays(item)
                    mol = build_molecule(z, pos, bonds=bonds)
                if titles is not None:
                    mol.SetProp("_Name", header_text(titles[k]))
                elif mol.HasProp("_Name"):
                    mol.SetProp("_Name", header_text(mol.GetProp("_Name")))
                for name in mol.GetPropNames():
                    mol.SetProp(name, _safe_property(mol.GetProp(name)))
                writer.write(mol)
                writer.flush()
                fh.write(buffer.getvalue())
                buffer.seek(0)
                buffer.truncate()
                count += 1
            writer.close()
            fh.write(buffer.getvalue())

    atomic_write(path, write)
    return count


# ----------------------------------------------------------------------------------------------
# XYZ


class XYZFormatError(InputError):
    """A malformed XYZ file; the message names the file and line."""


class XYZMolecule(NamedTuple):
    """One frame of an XYZ file: atomic numbers ``[N]`` int64, positions ``[N, 3]`` float64 (Å),
    and the comment line."""

    atomic_numbers: np.ndarray
    positions: np.ndarray
    comment: str


def write_xyz(
    molecules: Iterable[Any],
    path: str | os.PathLike,
    comments: Sequence[str] | None = None,
) -> int:
    """Write molecules as a (multi-frame) XYZ file; coordinates with 8 decimals (Å).

    Args:
        molecules: ``(atomic_numbers, positions)`` pairs, RDKit molecules with a conformer, or
            ``MoleculeGraph`` objects.
        path: output file (``.gz`` compresses).
        comments: optional comment line per molecule (no newlines).

    Returns:
        The number of frames written.
    """
    path = Path(path)
    count = 0

    def write(tmp: Path) -> None:
        nonlocal count
        with open_text(tmp, "w", compress=path.suffix == ".gz") as fh:
            for k, item in enumerate(molecules):
                z, pos = _molecule_arrays(item)
                comment = "" if comments is None else str(comments[k])
                if "\n" in comment:
                    raise ValueError(f"comment {k} contains a newline")
                fh.write(f"{len(z)}\n{header_text(comment)}\n")
                for zi, (x, y, w) in zip(z.tolist(), np.asarray(pos, dtype=np.float64).tolist()):
                    fh.write(f"{element_symbol(zi):<2s} {x:15.8f} {y:15.8f} {w:15.8f}\n")
                count += 1

    atomic_write(path, write)
    return count


def read_xyz(path: str | os.PathLike) -> list[XYZMolecule]:
    """Read a (multi-frame) XYZ file.

    Each frame is an atom-count line, a comment line, then one ``element x y z`` line per atom
    (element as a symbol or an atomic number; extra columns are ignored; ``*^`` exponents are
    accepted). Blank lines between frames are allowed.

    Args:
        path: the file (``.gz`` is decompressed).

    Returns:
        One :class:`XYZMolecule` per frame.

    Raises:
        XYZFormatError: naming the file and line for a malformed count, a missing or short atom
            line, an unknown element or a non-numeric / non-finite coordinate.
    """
    path = Path(path)
    try:
        with _open_bytes(path) as fh:
            raw = fh.read()
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise XYZFormatError(f"{path}: cannot be read: not a valid gzip file ({err})") from None
    text, problem = _decode_block(raw)
    if text is None:
        raise XYZFormatError(f"{path}: cannot be read: {problem.replace('.sdf.gz', '.xyz.gz')}")
    lines = text.splitlines()
    frames: list[XYZMolecule] = []
    i = 0

    def fail(line_no: int, msg: str) -> XYZFormatError:
        return XYZFormatError(f"{path}, line {line_no}: {msg}")

    while i < len(lines):
        if not lines[i].strip():
            i += 1
            continue
        try:
            n = int(lines[i].split()[0])
            if n < 1 or len(lines[i].split()) != 1:
                raise ValueError
        except ValueError:
            raise fail(i + 1, f"expected the number of atoms of frame {len(frames) + 1}, got {lines[i]!r}") from None
        if len(lines) < i + 2 + n:
            available = max(len(lines) - i - 2, 0)
            raise fail(
                i + 1, f"frame {len(frames) + 1} announces {n} atoms but the file ends after {available} atom line(s)"
            )
        comment = lines[i + 1]
        z = np.empty(n, dtype=np.int64)
        pos = np.empty((n, 3), dtype=np.float64)
        for k in range(n):
            line_no = i + 3 + k
            fields = lines[line_no - 1].split()
            if len(fields) < 4:
                raise fail(line_no, f"expected 'element x y z' for atom {k + 1}, got {lines[line_no - 1]!r}")
            try:
                z[k] = int(fields[0]) if fields[0].isdigit() else atomic_number(fields[0])
                element_symbol(int(z[k]))
            except UnknownElementError:
                raise fail(line_no, f"unknown element {fields[0]!r} (atom {k + 1})") from None
            try:
                pos[k] = [parse_float(v) for v in fields[1:4]]
            except ValueError:
                raise fail(line_no, f"non-numeric coordinate in {lines[line_no - 1]!r}") from None
            if not np.isfinite(pos[k]).all():
                raise fail(line_no, f"non-finite coordinate in {lines[line_no - 1]!r}")
        frames.append(XYZMolecule(z, pos, comment))
        i += 2 + n
    if not frames:
        raise XYZFormatError(f"{path}: no molecules found (empty file)")
    return frames
