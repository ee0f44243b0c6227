"""Per-molecule properties of generated molecules: one row per molecule, for a CSV table, SDF
properties, filters, depiction legends and reports.

Each molecule is scored under one of the protocols of ``moldiff evaluate``
(:data:`moldiff.molecules.evaluate.PROTOCOLS`), by the same per-molecule functions the aggregate
metrics use, never a copy of them:

* ``bonds="file"``: the molecule's own bonds and formal charges
  (:func:`moldiff.molecules.bond_metrics.assess_bonded_molecule`; the protocol of MiDi, EQGAT-diff
  and SemlaFlow): ``valid`` means the whole molecule sanitises, ``smiles`` is its canonical SMILES;
* ``bonds="edm"`` or ``"rdkit"``: bonds perceived again from the coordinates
  (:func:`moldiff.molecules.metrics.assess_molecule`; EDM's protocol): ``valid`` means it sanitises,
  ``smiles`` is the SMILES of its largest fragment (EDM's validity).

The RDKit descriptors (QED, SA score, logP, molecular weight, rings, structural alerts) are those of
the molecule ``smiles`` names (hydrogens implicit, no stereochemistry), so they are empty for an
invalid molecule. :data:`PROPERTIES` lists every property with its kind:

========================  ======  ===========================================================
name                      kind    what
========================  ======  ===========================================================
``index``                 count   position of the molecule in its file or list (from 0)
``valid``                 bool    sanitises (see above)
``stable``                bool    every atom has an allowed valence
``connected``             bool    one fragment
``num_atoms``             count   atoms, hydrogens included
``heavy_atoms``           count   atoms other than hydrogen
``fragments``             count   connected components of the bond graph
``atom_stability``        number  fraction of the molecule's atoms that are stable
``smiles``                text    canonical SMILES, hydrogens implicit (empty when invalid)
``qed``                   number  RDKit's QED (Bickerton et al. 2012), 0..1
``sa``                    number  synthetic accessibility (Ertl & Schuffenhauer 2009), 1 (easy) .. 10
``logp``                  number  Crippen logP (``Descriptors.MolLogP``)
``mw``                    number  molecular weight (``Descriptors.MolWt``, g/mol)
``rings``                 count   rings (SSSR)
``aromatic_rings``        count   aromatic rings
``max_ring``              count   size of the largest ring (0 without rings)
``pains``                 count   PAINS alerts matched (RDKit ``FilterCatalog``, PAINS A+B+C)
``pains_alerts``          text    their names, ``;``-separated
``brenk``                 count   Brenk alerts matched (unwanted groups, Brenk et al. 2008)
``brenk_alerts``          text    their names
========================  ======  ===========================================================

The SA score is RDKit's ``Contrib/SA_Score/sascorer.py`` (``rdkit.RDConfig.RDContribDir``). An RDKit
built without its ``Contrib`` folder has none: then every ``sa`` cell of a table reads ``missing``
(:data:`MISSING`), :func:`sa_unavailable_reason` says why, and a filter that names ``sa`` is refused.

RDKit is imported inside the functions that need it.

Example::

    rows = file_properties("samples.sdf", bonds="file")
    rows[0]["qed"], rows[0]["pains_alerts"]
    write_properties_csv(rows, "table.csv")
"""

from __future__ import annotations

import csv
import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

import numpy as np

from moldiff.errors import InputError
from moldiff.files import atomic_write

from .bond_metrics import _molecule_fields, assess_bonded_molecule, bonded_molecule
from .evaluate import PROTOCOLS, read_bonded_sdf, read_molecule_files
from .metrics import assess_molecule
from .rdkit_io import _molecule_arrays, build_molecule, molecule_file_format

__all__ = [
    "MISSING",
    "PROPERTIES",
    "PROPERTY_NAMES",
    "Property",
    "file_properties",
    "molecule_properties",
    "molecule_table",
    "read_scored_items",
    "sa_score",
    "sa_unavailable_reason",
    "scored_molecule",
    "set_sdf_properties",
    "structural_alerts",
    "write_properties_csv",
]

Bonds = Literal["edm", "rdkit", "file"]

#: What a table cell says for a property this RDKit cannot compute (the SA score without ``Contrib``).
MISSING = "missing"


@dataclass(frozen=True)
class Property:
    """One per-molecule property.

    Attributes:
        name: its column, filter name and (prefixed ``moldiff_``) SDF property.
        kind: ``"bool"``, ``"count"`` (an integer; true when not 0 where a filter needs a truth),
            ``"number"`` or ``"text"``.
        group: which computation gives it (properties of one group are computed together).
        help: one line.
    """

    name: str
    kind: Literal["bool", "count", "number", "text"]
    group: str
    help: str


_TABLE = (
    ("index", "count", "index", "position of the molecule in its file or list (from 0)"),
    ("valid", "bool", "assess", "the molecule sanitises (protocol file: whole; edm/rdkit: EDM's validity)"),
    ("stable", "bool", "assess", "every atom has an allowed valence"),
    ("connected", "bool", "assess", "one fragment"),
    ("num_atoms", "count", "assess", "atoms, hydrogens included"),
    ("heavy_atoms", "count", "assess", "atoms other than hydrogen"),
    ("fragments", "count", "assess", "connected components of the bond graph"),
    ("atom_stability", "number", "assess", "fraction of the atoms that are stable"),
    ("smiles", "text", "assess", "canonical SMILES, hydrogens implicit (empty when invalid)"),
    ("qed", "number", "descriptors", "RDKit's QED, 0..1"),
    ("sa", "number", "sa", "synthetic accessibility score, 1 (easy) .. 10 (hard)"),
    ("logp", "number", "descriptors", "Crippen logP"),
    ("mw", "number", "descriptors", "molecular weight (g/mol)"),
    ("rings", "count", "descriptors", "rings (SSSR)"),
    ("aromatic_rings", "count", "descriptors", "aromatic rings"),
    ("max_ring", "count", "descriptors", "size of the largest ring (0 without rings)"),
    ("pains", "count", "pains", "PAINS alerts matched"),
    ("pains_alerts", "text", "pains", "names of the PAINS alerts matched"),
    ("brenk", "count", "brenk", "Brenk alerts matched"),
    ("brenk_alerts", "text", "brenk", "names of the Brenk alerts matched"),
)

#: Every per-molecule property, by name, in table order.
PROPERTIES: dict[str, Property] = {name: Property(name, kind, group, text) for name, kind, group, text in _TABLE}
#: The names of :data:`PROPERTIES`, in table order (the CSV columns).
PROPERTY_NAMES: tuple[str, ...] = tuple(PROPERTIES)

_DESCRIPTORS = tuple(p.name for p in PROPERTIES.values() if p.group == "descriptors")
_ALERT_CATALOGS = {"pains": "PAINS", "brenk": "BRENK"}
_catalogs: dict[str, Any] = {}
_sa: dict[str, Any] = {}


# ------------------------------------------------------------------------------------------------
# SA score and structural alerts


def _sa_module():
    """RDKit's Contrib ``sascorer`` module, or ``None`` (the reason in ``_sa["reason"]``); loaded once."""
    if "module" not in _sa:
        from rdkit import RDConfig

        path = Path(getattr(RDConfig, "RDContribDir", "") or "") / "SA_Score" / "sascorer.py"
        _sa["module"], _sa["reason"] = None, None
        if not path.is_file():
            _sa["reason"] = f"RDKit's Contrib SA_Score is not in this RDKit installation ({path} not found)"
        else:
            try:
                spec = importlib.util.spec_from_file_location("moldiff_sascorer", path)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                _sa["module"] = module
            except Exception as err:  # noqa: BLE001 - any failure of a third-party script means "no SA score"
                _sa["reason"] = f"RDKit's Contrib SA_Score ({path}) could not be loaded: {err}"
    return _sa["module"]


def sa_unavailable_reason() -> str | None:
    """Why this RDKit gives no SA score (one line), or ``None`` when it does."""
    _sa_module()
    return _sa["reason"]


def sa_score(mol) -> float | None:
    """The synthetic accessibility score of a sanitised RDKit molecule (RDKit's Contrib
    ``sascorer.calculateScore``), or ``None`` when this RDKit has no Contrib SA_Score."""
    module = _sa_module()
    return None if module is None else float(module.calculateScore(mol))


def _catalog(which: str):
    if which not in _catalogs:
        from rdkit.Chem.FilterCatalog import FilterCatalog, FilterCatalogParams

        params = FilterCatalogParams()
        params.AddCatalog(getattr(FilterCatalogParams.FilterCatalogs, _ALERT_CATALOGS[which]))
        _catalogs[which] = FilterCatalog(params)
    return _catalogs[which]


def structural_alerts(mol, catalog: Literal["pains", "brenk"] = "pains") -> list[str]:
    """Names of the alerts of an RDKit ``FilterCatalog`` that a sanitised molecule matches, each once,
    in the catalog's order (e.g. ``["ene_five_het_A(201)"]`` for PAINS).

    Args:
        mol: an RDKit molecule (sanitised).
        catalog: ``"pains"`` (PAINS A, B and C, Baell & Holloway 2010) or ``"brenk"`` (Brenk et al. 2008).
    """
    if catalog not in _ALERT_CATALOGS:
        raise ValueError(f"catalog must be one of {sorted(_ALERT_CATALOGS)}, got {catalog!r}")
    names: list[str] = []
    for entry in _catalog(catalog).GetMatches(mol):
        name = entry.GetDescription()
        if name not in names:
            names.append(name)
    return names


# ------------------------------------------------------------------------------------------------
# one molecule


def _check_bonds(bonds: str) -> None:
    if bonds not in PROTOCOLS:
        raise InputError(f"bonds must be one of {sorted(PROTOCOLS)}, got {bonds!r}")


def _check_names(names: Iterable[str] | None) -> list[str]:
    if names is None:
        return list(PROPERTY_NAMES)
    names = list(names)
    unknown = [n for n in names if n not in PROPERTIES]
    if unknown:
        raise InputError(f"unknown molecule properties {unknown}; known: {', '.join(PROPERTY_NAMES)}")
    return names


def scored_molecule(item: Any, bonds: Bonds = "file"):
    """The RDKit molecule a protocol scores, with its 3D conformer, not sanitised: for ``"file"`` the
    molecule's own bonds and charges (:func:`~moldiff.molecules.bond_metrics.bonded_molecule`), for
    ``"edm"`` / ``"rdkit"`` the bonds perceived from its coordinates
    (:func:`~moldiff.molecules.rdkit_io.build_molecule`; when RDKit can assign none, the atoms alone).

    Args:
        item: an RDKit molecule, an ``(atomic_numbers, positions)`` pair (``"edm"`` / ``"rdkit"``) or
            any molecule :func:`~moldiff.molecules.bond_metrics.evaluate_bonded_molecules` accepts (``"file"``).
        bonds: the protocol.
    """
    _check_bonds(bonds)
    if bonds == "file":
        z, q, pos, kw = _molecule_fields(item)
        return bonded_molecule(z, q, pos, **kw)
    z, pos = _molecule_arrays(item)
    try:
        return build_molecule(z, pos, bonds=bonds)
    except ValueError:  # RDKit found no bond orders: the atoms alone (the metrics call it invalid)
        return build_molecule(z, pos, bonds=None)


def _assess(item: Any, bonds: Bonds) -> dict[str, Any]:
    if bonds == "file":
        z, q, pos, kw = _molecule_fields(item)
        a = assess_bonded_molecule(z, q, pos, **kw)
    else:
        z, pos = _molecule_arrays(item)
        a = assess_molecule(z, pos, bonds=bonds)
    z = np.asarray(z)
    return {
        "valid": a.valid,
        "stable": a.stable,
        "connected": a.connected,
        "num_atoms": int(a.num_atoms),
        "heavy_atoms": int((z != 1).sum()),
        "fragments": int(a.num_fragments),
        "atom_stability": a.num_stable_atoms / a.num_atoms if a.num_atoms else 0.0,
        "smiles": a.smiles,
    }


def _descriptors(mol) -> dict[str, Any]:
    from rdkit.Chem import QED, Descriptors, rdMolDescriptors

    rings = mol.GetRingInfo().AtomRings()
    return {
        "qed": float(QED.qed(mol)),
        "logp": float(Descriptors.MolLogP(mol)),
        "mw": float(Descriptors.MolWt(mol)),
        "rings": int(rdMolDescriptors.CalcNumRings(mol)),
        "aromatic_rings": int(rdMolDescriptors.CalcNumAromaticRings(mol)),
        "max_ring": max((len(r) for r in rings), default=0),
    }


def molecule_properties(
    item: Any, bonds: Bonds = "file", names: Iterable[str] | None = None, index: int | None = None
) -> dict[str, Any]:
    """The properties of one molecule (see the module docstring).

    Args:
        item: the molecule (see :func:`scored_molecule`).
        bonds: the protocol, ``"file"``, ``"edm"`` or ``"rdkit"``. (default: ``"file"``)
        names: compute only these properties (and what they need): a filter that names ``valid``
            and ``qed`` matches no structural alert (default: all of :data:`PROPERTY_NAMES`).
        index: the value of ``index``.

    Returns:
        ``{name: value}`` for the asked names, in table order; ``None`` where a value does not exist
        (the descriptors of an invalid molecule, the SA score without RDKit's Contrib).
    """
    from rdkit import Chem, rdBase

    _check_bonds(bonds)
    wanted = _check_names(names)
    groups = {PROPERTIES[n].group for n in wanted}
    row: dict[str, Any] = {"index": index}
    row.update(_assess(item, bonds))
    mol = None
    if row["smiles"] is not None and (groups & {"descriptors", "sa", "pains", "brenk"} or "smiles" in wanted):
        with rdBase.BlockLogs():
            mol = Chem.MolFromSmiles(row["smiles"])  # hydrogens implicit
        row["smiles"] = None if mol is None else Chem.MolToSmiles(mol)
    if "descriptors" in groups:
        row.update(_descriptors(mol) if mol is not None else dict.fromkeys(_DESCRIPTORS))
    if "sa" in groups:
        row["sa"] = sa_score(mol) if mol is not None else None
    for which in ("pains", "brenk"):
        if which in groups:
            alerts = structural_alerts(mol, which) if mol is not None else None
            row[which] = None if alerts is None else len(alerts)
            row[f"{which}_alerts"] = None if alerts is None else ";".join(alerts)
    return {n: row.get(n) for n in wanted}


def molecule_table(
    molecules: Iterable[Any],
    bonds: Bonds = "file",
    names: Iterable[str] | None = None,
    *,
    progress: bool = False,
    start: int = 0,
) -> list[dict[str, Any]]:
    """:func:`molecule_properties` of every molecule, ``index`` counting from ``start``."""
    names = _check_names(names)
    items = list(molecules)
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(items, desc="molecule properties", unit="mol")
    return [molecule_properties(m, bonds, names, index=start + k) for k, m in enumerate(items)]


def read_scored_items(
    path: str | os.PathLike, bonds: Bonds = "edm", on_error: Literal["raise", "skip"] = "raise"
) -> list[Any]:
    """The molecules of a samples file as a protocol reads them, with the readers of
    :func:`moldiff.molecules.evaluate.evaluate_file`: for ``"file"`` the SDF's molecules with their
    own bonds and charges (unsanitised RDKit molecules), for ``"edm"`` / ``"rdkit"``
    ``(atomic_numbers, positions)`` pairs of an SDF, XYZ file or folder.

    Raises:
        InputError: ``bonds="file"`` on a file without bonds (XYZ), an unknown suffix.
    """
    _check_bonds(bonds)
    if bonds == "file":
        if molecule_file_format(path) != "sdf":
            raise InputError(f"{path}: an XYZ file holds no bonds; score it with EDM's protocol (--bonds edm)")
        return read_bonded_sdf(path)
    molecules, _ = read_molecule_files(path, on_error=on_error)
    return molecules


def file_properties(
    path: str | os.PathLike,
    bonds: Bonds = "edm",
    names: Iterable[str] | None = None,
    *,
    on_error: Literal["raise", "skip"] = "raise",
    progress: bool = False,
) -> list[dict[str, Any]]:
    """The per-molecule table of a samples file (what ``moldiff evaluate FILE --per-molecule`` writes).

    Args:
        path: an SDF (``.sdf``, ``.sdf.gz``), XYZ file or folder, as :func:`read_scored_items` reads them.
        bonds: the protocol (as ``moldiff evaluate --bonds``). (default: ``"edm"``)
        names: the properties (default: all).
        on_error: skip bad SDF records (``"skip"``) or stop (``"raise"``).
        progress: a progress bar on stderr.
    """
    return molecule_table(read_scored_items(path, bonds, on_error), bonds, names, progress=progress)


# ------------------------------------------------------------------------------------------------
# output


def format_value(name: str, value: Any) -> str:
    """A property's value as a table cell or SDF property: booleans ``1`` / ``0``, numbers with four
    decimals at most, ``""`` where there is no value, :data:`MISSING` for the SA score of an RDKit
    without Contrib."""
    if value is None:
        return MISSING if name == "sa" and sa_unavailable_reason() is not None else ""
    if isinstance(value, (bool, np.bool_)):
        return "1" if value else "0"
    if isinstance(value, (float, np.floating)):
        return repr(round(float(value), 4))
    return str(value)


def write_properties_csv(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> Path:
    """Write per-molecule rows to a CSV file, atomically (:func:`moldiff.files.atomic_write`): a
    header line with the property names, then one line per molecule (:func:`format_value`).

    The destination is not checked here: the command checks it (and ``--overwrite``) before the work.
    """
    names = list(rows[0]) if rows else list(PROPERTY_NAMES)

    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            out = csv.writer(fh)
            out.writerow(names)
            for row in rows:
                out.writerow([format_value(n, row.get(n)) for n in names])

    return atomic_write(path, write)


def set_sdf_properties(mol, row: dict[str, Any], prefix: str = "moldiff_") -> None:
    """Store a row's properties on an RDKit molecule as ``moldiff_<name>`` (written by
    :func:`moldiff.molecules.rdkit_io.write_sdf` as SDF data items); ``index`` and empty values are
    left out."""
    for name, value in row.items():
        text = format_value(name, value)
        if name != "index" and text != "":
            mol.SetProp(prefix + name, text)
