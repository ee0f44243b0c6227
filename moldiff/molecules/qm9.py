"""QM9: 130,831 small organic molecules (H, C, N, O, F; up to 9 heavy atoms) with DFT geometries.

Sources :func:`load_qm9` reads (all offline):

* ``"qm9pack"`` (default): the CSV files inside the installed PyPI package ``qm9pack`` (1.0.3),
  located with :mod:`importlib` without importing the package (its own ``get_data()`` needs the
  removed ``pkg_resources``). Parsed once (about 25 s; one line on stderr says so) into an ``.npz``
  in the cache folder (``cache_dir`` argument, ``$MOLDIFF_CACHE_DIR`` or ``~/.cache/moldiff``);
  later loads take about a second.
* a path to a ``.npz``: either the whole-dataset layout of ``shared/data/qm9/qm9.npz`` (per-atom
  arrays concatenated) or an EDM/Cormorant processed split such as ``edm_test.npz`` (zero-padded to
  29 atoms).
* a path to the original QM9 xyz files: a folder of ``dsgdb9nsd_*.xyz`` or the
  ``dsgdb9nsd.xyz.tar.bz2`` archive (``*^`` exponents are understood). The 3,054 molecules of QM9's
  ``uncharacterized.txt`` are left out when that file is found next to the source (or given with
  ``uncharacterized=``). Parsed once and cached like the CSVs.

Units (as in the QM9 release; the same in every source): positions Å; ``A, B, C`` GHz; ``mu``
Debye; ``alpha`` bohr^3; ``homo, lumo, gap, zpve, U0, U, H, G`` Hartree; ``r2`` bohr^2; ``Cv``
cal/(mol K); ``omega1`` cm^-1 (highest harmonic frequency). EDM converts the energies to eV
(:data:`HARTREE_TO_EV`) and reports HOMO/LUMO/gap errors in meV (:data:`HARTREE_TO_MEV`).

Split (EDM/Cormorant): the 130,831 characterised molecules in GDB-9 index order are permuted with
``np.random.seed(0); np.random.permutation(130831)``; the first 100,000 are train, the next 17,748
valid, the last 13,083 test; each split is then in index order (as in EDM's processed files).

Citation: Ramakrishnan et al., *Sci. Data* 1, 140022 (2014). See ``datasets/qm9.md``.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import importlib.util
import os
import sys
import tarfile
import time
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from moldiff.hub import cache_dir as _cache_dir
from moldiff.train.checkpoint import save_npz_atomic

from .dataset import MoleculeDataset
from .elements import QM9_ATOM_TYPES, atomic_number
from .rdkit_io import parse_float

__all__ = [
    "HARTREE_TO_EV",
    "HARTREE_TO_MEV",
    "QM9_ATOMREF",
    "QM9_NUM_MOLECULES",
    "QM9_PROPERTIES",
    "QM9Dataset",
    "atomic_reference_sum",
    "atomization_energy",
    "edm_split_indices",
    "load_qm9",
]

HARTREE_TO_EV = 27.211386246
HARTREE_TO_MEV = 1000.0 * HARTREE_TO_EV
QM9_NUM_MOLECULES = 130_831
EDM_SPLIT_SIZES = {"train": 100_000, "valid": 17_748, "test": 13_083}

#: Scalar properties: name -> (unit, description). Values are stored in these units.
QM9_PROPERTIES: dict[str, tuple[str, str]] = {
    "A": ("GHz", "rotational constant A"),
    "B": ("GHz", "rotational constant B"),
    "C": ("GHz", "rotational constant C"),
    "mu": ("D", "dipole moment"),
    "alpha": ("bohr^3", "isotropic polarisability"),
    "homo": ("Ha", "HOMO energy"),
    "lumo": ("Ha", "LUMO energy"),
    "gap": ("Ha", "HOMO-LUMO gap"),
    "r2": ("bohr^2", "electronic spatial extent"),
    "zpve": ("Ha", "zero-point vibrational energy"),
    "U0": ("Ha", "internal energy at 0 K"),
    "U": ("Ha", "internal energy at 298.15 K"),
    "H": ("Ha", "enthalpy at 298.15 K"),
    "G": ("Ha", "free energy at 298.15 K"),
    "Cv": ("cal/(mol K)", "heat capacity at 298.15 K"),
    "omega1": ("cm^-1", "highest harmonic vibrational frequency"),
}
_SCALARS = tuple(QM9_PROPERTIES)[:15]  # the 15 values of an xyz file's second line, in order

#: QM9 atomic reference energies (``atomref.txt``): Z -> (ZPVE, U0, U, H, G in Ha; Cv in cal/(mol K)).
QM9_ATOMREF: dict[int, tuple[float, ...]] = {
    1: (0.0, -0.500273, -0.498857, -0.497912, -0.510927, 2.981),
    6: (0.0, -37.846772, -37.845355, -37.844411, -37.861317, 2.981),
    7: (0.0, -54.583861, -54.582445, -54.581501, -54.598897, 2.981),
    8: (0.0, -75.064579, -75.063163, -75.062219, -75.079532, 2.981),
    9: (0.0, -99.718730, -99.717314, -99.716370, -99.733544, 2.981),
}
_ATOMREF_COLUMNS = ("zpve", "U0", "U", "H", "G", "Cv")

_FORMAT_VERSION = 1  # bump when the cached layout changes


# ------------------------------------------------------------------------------------------------
# splits


def edm_split_indices(num_molecules: int = QM9_NUM_MOLECULES) -> dict[str, np.ndarray]:
    """EDM/Cormorant's QM9 split as sorted row indices into the 130,831 characterised molecules.

    Equivalent to ``np.random.seed(0); perm = np.random.permutation(130831)`` cut 100,000 /
    17,748 / 13,083, without touching numpy's global random state.

    Raises:
        ValueError: if ``num_molecules`` is not 130,831 (the recipe is defined for that set only).
    """
    if num_molecules != QM9_NUM_MOLECULES:
        raise ValueError(
            f"the EDM split is defined on the {QM9_NUM_MOLECULES:,} characterised QM9 molecules, got {num_molecules:,}"
            " (are uncharacterised molecules included, or is this a single split file?)"
        )
    perm = np.random.RandomState(0).permutation(num_molecules)
    a, b = EDM_SPLIT_SIZES["train"], EDM_SPLIT_SIZES["train"] + EDM_SPLIT_SIZES["valid"]
    return {"train": np.sort(perm[:a]), "valid": np.sort(perm[a:b]), "test": np.sort(perm[b:])}


def atomization_energy(arrays: dict[str, np.ndarray], name: str = "U0") -> np.ndarray:
    """Atomisation energy ``name - sum of atomic references`` per molecule, Ha (``Cv``: cal/(mol K)).

    Args:
        arrays: the result of :func:`load_qm9`.
        name: one of ``zpve, U0, U, H, G, Cv``.
    """
    return arrays[name] - atomic_reference_sum(arrays["atomic_numbers"], arrays["num_atoms"], name)


def atomic_reference_sum(atomic_numbers: np.ndarray, num_atoms: np.ndarray, name: str = "U0") -> np.ndarray:
    """Sum of QM9's atomic references (``atomref.txt``) of ``name`` over each molecule's atoms, ``[M]``.

    Cormorant's and EDM's QM9 loaders subtract it from these properties (``subtract_thermo``): EDM's
    ``Cv`` targets are ``Cv - 2.981 N`` cal/(mol K), which is what its Table 3 Naive row measures.

    Args:
        atomic_numbers: every molecule's atomic numbers, concatenated, ``[sum(num_atoms)]``.
        num_atoms: atoms per molecule, ``[M]``.
        name: one of ``zpve, U0, U, H, G, Cv``.
    """
    if name not in _ATOMREF_COLUMNS:
        raise KeyError(f"QM9 has atomic references for {list(_ATOMREF_COLUMNS)}, not {name!r}")
    col = _ATOMREF_COLUMNS.index(name)
    ref = np.zeros(10)
    for z, values in QM9_ATOMREF.items():
        ref[z] = values[col]
    per_atom = ref[np.asarray(atomic_numbers)]
    offsets = np.concatenate([[0], np.cumsum(num_atoms)])
    return np.add.reduceat(per_atom, offsets[:-1]) if len(per_atom) else np.zeros(len(num_atoms))


# ------------------------------------------------------------------------------------------------
# sources


def _qm9pack_data_dir() -> Path:
    """The ``data`` folder of the installed qm9pack package, found without importing it."""
    spec = importlib.util.find_spec("qm9pack")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "QM9 source 'qm9pack' needs the PyPI package qm9pack (pip install qm9pack==1.0.3), "
            "or pass a path to qm9.npz / the QM9 xyz archive"
        )
    data = Path(list(spec.submodule_search_locations)[0]) / "data"
    if not (data / "qm9_part1.csv").is_file():
        raise FileNotFoundError(f"qm9pack is installed but {data}/qm9_part1.csv is missing")
    return data


def _parse_number_lists(strings: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Parse many ``"[1.0,2.0,...]"`` / nested-list strings at once.

    Returns:
        (all numbers concatenated as float64, count of numbers per string).
    """
    cleaned = [s.replace("[", "").replace("]", "") for s in strings]
    counts = np.array([c.count(",") + 1 if c.strip() else 0 for c in cleaned], dtype=np.int64)
    values = np.array(",".join(c for c in cleaned if c.strip()).split(","), dtype=np.float64)
    if values.size != counts.sum():
        raise ValueError("malformed number lists in the QM9 CSV")
    return values, counts


def _read_qm9pack() -> dict[str, np.ndarray]:
    data = _qm9pack_data_dir()
    rename = {
        "RotA_GHz": "A",
        "RotB_GHz": "B",
        "RotC_GHz": "C",
        "Dipole_debye": "mu",
        "Polarizability_bohr3": "alpha",
        "HOMO_au": "homo",
        "LUMO_au": "lumo",
        "HOMO_LUMO_gap_au": "gap",
        "R2_bohr2": "r2",
        "ZPVE_au": "zpve",
        "InternalEnergy_0K_au": "U0",
        "InternalEnergy_298K_au": "U",
        "Enthalphy_298K_au": "H",
        "GibbsFreeEnergy_298K_au": "G",
        "Heatcapacity_Cv_cal_mol_K": "Cv",
    }
    columns: dict[str, list[str]] = {}
    header: list[str] | None = None
    csv.field_size_limit(1 << 30)
    for part in ("qm9_part1.csv", "qm9_part2.csv", "qm9_part3.csv"):
        with open(data / part, newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            h = next(reader)
            if header is None:
                header = h
                columns = {name: [] for name in h}
            elif h != header:
                raise ValueError(f"{part}: unexpected header {h}")
            cols = list(columns.values())
            for row in reader:
                for col, value in zip(cols, row):
                    col.append(value)
    num_atoms = np.array(columns["N_atoms"], dtype=np.int32)
    symbols = ",".join(columns["Elements"]).translate(str.maketrans("", "", "[]' ")).split(",")
    lookup = {s: atomic_number(s) for s in set(symbols)}
    atomic_numbers = np.array([lookup[s] for s in symbols], dtype=np.uint8)
    positions, counts = _parse_number_lists(columns["XYZ_Ang"])
    mulliken, mcounts = _parse_number_lists(columns["Mulliken_pop"])
    freqs, fcounts = _parse_number_lists(columns["Harmonic_Freq_cmi"])
    if atomic_numbers.size != num_atoms.sum() or (counts != 3 * num_atoms).any() or (mcounts != num_atoms).any():
        raise ValueError("qm9pack CSV: per-atom lists disagree with N_atoms")
    foffsets = np.concatenate([[0], np.cumsum(fcounts)])[:-1]
    out: dict[str, np.ndarray] = {
        "index": np.array(columns["Index"], dtype=np.int32),
        "num_atoms": num_atoms,
        "atomic_numbers": atomic_numbers,
        "positions": positions.reshape(-1, 3).astype(np.float32),
        "mulliken": mulliken.astype(np.float32),
        "smiles": np.array(columns["SMILES"]),
        "inchi": np.array(columns["InChi"]),
        "omega1": np.maximum.reduceat(freqs, foffsets).astype(np.float32),
    }
    for src, name in rename.items():
        out[name] = np.array([parse_float(v) for v in columns[src]], dtype=np.float64)
    # polarisability tensor, joined on the xyz file name
    with open(data / "qm9_polarizability.csv", newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        next(reader)
        tensor = {row[0]: [float(v) for v in row[1:7]] for row in reader}
    try:
        out["polarizability_tensor"] = np.array([tensor[name] for name in columns["XYZ_file"]], dtype=np.float64)
    except KeyError as exc:
        raise ValueError(f"qm9_polarizability.csv has no row for {exc}") from None
    return out


def read_qm9_xyz(text: str, name: str = "<string>") -> dict[str, object]:
    """Parse one original QM9 ``dsgdb9nsd_*.xyz`` file.

    Args:
        text: the file's content.
        name: used in error messages.

    Returns:
        dict with ``index`` (int), ``atomic_numbers`` [n], ``positions`` [n, 3] (Å), ``mulliken``
        [n], the 15 scalar properties, ``omega1``, ``smiles`` and ``inchi`` (the GDB-17 ones).

    Raises:
        ValueError: naming the file and line when the content is malformed.
    """
    lines = text.splitlines()
    try:
        n = int(lines[0])
        fields = lines[1].split()
        if fields[0] != "gdb" or len(fields) != 17:
            raise ValueError(f"line 2: expected 'gdb <index>' and 15 properties, got {lines[1]!r}")
        out: dict[str, object] = {"index": int(fields[1])}
        for key, value in zip(_SCALARS, fields[2:]):
            out[key] = parse_float(value)
        z = np.empty(n, dtype=np.uint8)
        pos = np.empty((n, 3), dtype=np.float64)
        mull = np.empty(n, dtype=np.float64)
        for k in range(n):
            parts = lines[2 + k].split()
            if len(parts) != 5:
                raise ValueError(f"line {3 + k}: expected 'element x y z charge', got {lines[2 + k]!r}")
            z[k] = atomic_number(parts[0])
            pos[k] = [parse_float(v) for v in parts[1:4]]
            mull[k] = parse_float(parts[4])
        freqs = [parse_float(v) for v in lines[2 + n].split()]
        out.update(
            atomic_numbers=z,
            positions=pos,
            mulliken=mull,
            omega1=max(freqs) if freqs else float("nan"),
            smiles=lines[3 + n].split()[0],
            inchi=lines[4 + n].split()[0],
        )
    except (IndexError, ValueError) as exc:
        raise ValueError(f"{name}: malformed QM9 xyz file ({exc or 'file too short'})") from None
    return out


def _iter_xyz_texts(source: Path) -> Iterable[tuple[str, str]]:
    if source.is_dir():
        files = sorted(source.glob("*.xyz"))
        if not files:
            raise FileNotFoundError(f"no .xyz files in {source}")
        for f in files:
            yield f.name, f.read_text()
        return
    with tarfile.open(source, "r:*") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".xyz"):
                yield member.name, tar.extractfile(member).read().decode("utf-8")


def _read_uncharacterized(path: Path) -> set[int]:
    ids = set()
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts and parts[0].isdigit():
            ids.add(int(parts[0]))
    return ids


def _read_xyz_source(source: Path, uncharacterized: Path | None) -> dict[str, np.ndarray]:
    exclude: set[int] = set()
    if uncharacterized is None:
        candidate = (source if source.is_dir() else source.parent) / "uncharacterized.txt"
        uncharacterized = candidate if candidate.is_file() else None
    if uncharacterized is not None:
        exclude = _read_uncharacterized(Path(uncharacterized))
    mols = [m for name, text in _iter_xyz_texts(source) if (m := read_qm9_xyz(text, name))["index"] not in exclude]
    if not mols:
        raise ValueError(f"no molecules read from {source}")
    mols.sort(key=lambda m: m["index"])
    if uncharacterized is None and len(mols) > QM9_NUM_MOLECULES:
        warnings.warn(
            f"{source}: {len(mols):,} molecules and no uncharacterized.txt found: the 3,054 uncharacterised "
            "molecules are kept, so the EDM split is unavailable (pass uncharacterized=...)",
            stacklevel=3,
        )
    out: dict[str, np.ndarray] = {
        "index": np.array([m["index"] for m in mols], dtype=np.int32),
        "num_atoms": np.array([len(m["atomic_numbers"]) for m in mols], dtype=np.int32),
        "atomic_numbers": np.concatenate([m["atomic_numbers"] for m in mols]),
        "positions": np.concatenate([m["positions"] for m in mols]).astype(np.float32),
        "mulliken": np.concatenate([m["mulliken"] for m in mols]).astype(np.float32),
        "smiles": np.array([m["smiles"] for m in mols]),
        "inchi": np.array([m["inchi"] for m in mols]),
        "omega1": np.array([m["omega1"] for m in mols], dtype=np.float32),
    }
    for key in _SCALARS:
        out[key] = np.array([m[key] for m in mols], dtype=np.float64)
    return out


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        data = {k: f[k] for k in f.files}
    if "charges" not in data or "positions" not in data or "num_atoms" not in data:
        raise ValueError(f"{path}: not a QM9 npz (expected keys charges, positions, num_atoms)")
    charges = data.pop("charges")
    if charges.ndim == 2:  # EDM/Cormorant processed split: zero-padded [M, 29]
        num_atoms = data["num_atoms"].astype(np.int32)
        mask = charges > 0
        if (mask.sum(1) != num_atoms).any():
            raise ValueError(f"{path}: padded charges disagree with num_atoms")
        data["atomic_numbers"] = charges[mask].astype(np.uint8)
        data["positions"] = data["positions"][mask].astype(np.float32)
        data["num_atoms"] = num_atoms
        data["index"] = data["index"].astype(np.int32)
        data["edm_processed"] = np.array(True)
    else:
        data["atomic_numbers"] = charges.astype(np.uint8)
    return data


def _source_key(source: Path) -> str:
    stat = source.stat()
    text = f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def load_qm9(
    source: str | os.PathLike = "qm9pack",
    cache_dir: str | os.PathLike | None = None,
    uncharacterized: str | os.PathLike | None = None,
    refresh: bool = False,
    verbose: bool = False,
) -> dict[str, np.ndarray]:
    """Load QM9 as packed arrays.

    Args:
        source: ``"qm9pack"``, a ``.npz`` file, a folder of QM9 ``.xyz`` files or the
            ``dsgdb9nsd.xyz.tar.bz2`` archive (see the module docstring). (default: ``"qm9pack"``)
        cache_dir: cache folder for parsed sources (default: ``$MOLDIFF_CACHE_DIR`` or
            ``~/.cache/moldiff``).
        uncharacterized: QM9's ``uncharacterized.txt`` for xyz sources (default: looked for next
            to the source).
        refresh: re-parse the source even when a cache exists.
        verbose: print where the data came from and how long it took.

    Returns:
        dict of numpy arrays, molecules sorted by GDB-9 index (``M`` molecules, ``N`` atoms):
        ``index [M]`` int32, ``num_atoms [M]`` int32, ``atomic_numbers [N]`` uint8,
        ``positions [N, 3]`` float32 (Å), the properties of :data:`QM9_PROPERTIES` as ``[M]``
        arrays, and, where the source has them, ``mulliken [N]`` (e), ``smiles [M]``,
        ``inchi [M]``, ``polarizability_tensor [M, 6]`` (bohr^3, xx xy yy xz yz zz).
    """
    start = time.perf_counter()
    if str(source) == "qm9pack":
        version = importlib.metadata.version("qm9pack") if importlib.util.find_spec("qm9pack") else None
        data_dir = _qm9pack_data_dir()
        cache = _cache_dir(cache_dir) / f"qm9_qm9pack-{version}_v{_FORMAT_VERSION}.npz"
        reader = _read_qm9pack
        origin = f"qm9pack {version} ({data_dir})"
    else:
        path = Path(source).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"QM9 source not found: {path} (use 'qm9pack', a .npz, an xyz folder or archive)")
        if path.suffix == ".npz":
            arrays = _read_npz(path)
            if verbose:
                print(f"QM9: {len(arrays['num_atoms']):,} molecules from {path} in {time.perf_counter() - start:.1f} s")
            return arrays
        cache = _cache_dir(cache_dir) / f"qm9_xyz-{_source_key(path)}_v{_FORMAT_VERSION}.npz"
        unc = None if uncharacterized is None else Path(uncharacterized)
        reader = lambda: _read_xyz_source(path, unc)  # noqa: E731
        origin = str(path)
    if cache.is_file() and not refresh:
        arrays = _read_npz_cache(cache)
        how = f"cache {cache}"
    else:
        took = "about 25 s" if str(source) == "qm9pack" else "about 30 s for all of QM9"
        print(
            f"moldiff: parsing QM9 from {origin}, once: cached so that later loads take a second ({took}) in {cache}",
            file=sys.stderr,
            flush=True,
        )
        arrays = reader()
        save_npz_atomic(cache, {k: v for k, v in arrays.items()})
        how = f"parsed {origin}, cached to {cache}"
    if verbose:
        print(f"QM9: {len(arrays['num_atoms']):,} molecules, {how}, {time.perf_counter() - start:.1f} s")
    return arrays


def _read_npz_cache(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


# ------------------------------------------------------------------------------------------------
# dataset


class QM9Dataset(MoleculeDataset):
    """QM9 molecules of one split as a map-style torch ``Dataset`` of ``MoleculeGraph``.

    Args:
        split: ``"train"``, ``"valid"``, ``"test"`` (EDM split) or ``"all"``. A source that is a
            single processed split (such as ``edm_test.npz``) only allows ``"all"`` or the split it
            holds, given as that name. (default: ``"train"``)
        source: see :func:`load_qm9`. (default: ``"qm9pack"``)
        properties: property names (keys of :data:`QM9_PROPERTIES`) to attach to each molecule as
            ``properties [P]`` float32, in the stored units. (default: none)
        remove_hydrogens: drop hydrogen atoms (EDM's ``remove_h`` variant). (default: False)
        cache_dir: cache folder (see :func:`load_qm9`).
        arrays: already loaded :func:`load_qm9` arrays, to build several splits from one load
            (``source`` should then name where they came from; it keys the SMILES cache).

    Attributes:
        vocabulary / atom_types: ``("H", "C", "N", "O", "F")`` (without ``"H"`` if hydrogens are
            removed), EDM's one-hot order.
        split: the split name.
        ids: GDB-9 indices of the molecules, ``[M]``.

    Property values per molecule: ``dataset.property("gap")`` (alias ``property_values``), ``[M]``
    in the units of :data:`QM9_PROPERTIES`.

    Example::

        ds = QM9Dataset("test")
        batch = next(iter(ds.loader(batch_size=64)))
        batch.pos.shape, batch.num_graphs   # (torch.Size([1155, 3]), 64)
    """

    def __init__(
        self,
        split: str = "train",
        source: str | os.PathLike = "qm9pack",
        properties: Sequence[str] = (),
        remove_hydrogens: bool = False,
        cache_dir: str | os.PathLike | None = None,
        arrays: dict[str, np.ndarray] | None = None,
    ) -> None:
        if split not in ("train", "valid", "test", "all"):
            raise ValueError(f"split must be 'train', 'valid', 'test' or 'all', got {split!r}")
        unknown = [p for p in properties if p not in QM9_PROPERTIES]
        if unknown:
            raise ValueError(f"unknown QM9 properties {unknown}; available: {list(QM9_PROPERTIES)}")
        data = load_qm9(source, cache_dir=cache_dir) if arrays is None else arrays
        num_all = len(data["num_atoms"])
        if split == "all":
            rows = np.arange(num_all)
        elif "edm_processed" in data:
            name = Path(str(source)).stem
            if not name.endswith(split):
                raise ValueError(
                    f"{source} holds one processed split ({name!r}); use split='all' or the split it holds"
                )
            rows = np.arange(num_all)
        else:
            rows = edm_split_indices(num_all)[split]
        selected = np.zeros(num_all, dtype=bool)
        selected[rows] = True
        atom_mask = np.repeat(selected, data["num_atoms"])  # rows are sorted, so order is kept
        z = data["atomic_numbers"][atom_mask].astype(np.int64)
        pos = data["positions"][atom_mask]
        num_atoms = data["num_atoms"][rows].astype(np.int64)
        vocabulary = QM9_ATOM_TYPES
        if remove_hydrogens:
            keep = z != 1
            mol_of_atom = np.repeat(np.arange(len(rows)), num_atoms)
            num_atoms = np.bincount(mol_of_atom[keep], minlength=len(rows))
            z, pos = z[keep], pos[keep]
            vocabulary = QM9_ATOM_TYPES[1:]
        self._data_rows = rows
        self._raw = data
        self.split = split
        self.source = str(source)
        self.ids = data["index"][rows].astype(np.int64)
        props = np.stack([data[p][rows] for p in properties], axis=1) if properties else None
        key_source = "qm9pack" if self.source == "qm9pack" else _source_key(Path(self.source))
        super().__init__(
            z,
            pos,
            num_atoms,
            vocabulary,
            properties=props,
            property_names=properties,
            ids=self.ids,
            cache_key=f"qm9-{key_source}-{split}{'-noH' if remove_hydrogens else ''}",
        )

    def property_values(self, name: str) -> np.ndarray:
        """Values of one property for the molecules of this split, ``[M]``, in the stored units
        (:data:`QM9_PROPERTIES`)."""
        if name not in QM9_PROPERTIES:
            raise ValueError(f"unknown QM9 property {name!r}; available: {list(QM9_PROPERTIES)}")
        if name not in self._raw:
            raise KeyError(f"the source {self.source} has no {name!r} values")
        return self._raw[name][self._data_rows]

    @property
    def smiles(self) -> np.ndarray:
        """The GDB-17 SMILES QM9 ships with each molecule, ``[M]`` (not those of the metrics'
        pipeline; see :func:`moldiff.molecules.training_smiles`)."""
        if "smiles" not in self._raw:
            raise KeyError(f"the source {self.source} has no SMILES")
        return self._raw["smiles"][self._data_rows]

    # ``dataset.property("gap")`` reads naturally; defined last so that the builtin ``property``
    # decorator stays usable in the class body above.
    property = property_values
