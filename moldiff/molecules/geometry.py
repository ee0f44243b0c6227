"""Physics checks of 3D geometries: how far a molecule is from a minimum of a force field or of GFN2-xTB,
and PoseBusters' intramolecular checks, for generated molecules with real QM9 molecules beside them.

A molecule whose coordinates are physically sound sits near a local minimum of any reasonable
potential: relaxing it lowers the energy a little and moves the atoms a little. So, for every
*checked* molecule (built with its bonds and charges as written, no implicit hydrogen added, it
sanitises and is one connected fragment; :func:`checkable_molecule`):

* **MMFF94** (RDKit's ``MMFFGetMoleculeForceField``; :func:`mmff_relax`): the energy drop on
  relaxation (kcal/mol, the energy at the given coordinates minus the energy at the minimum RDKit's
  BFGS reaches) and the heavy-atom RMSD between the two geometries after superposition (Å);
* **GFN2-xTB** (Bannwarth, Ehlert & Grimme 2019, through the ``tblite`` package; :func:`xtb_relax`):
  a single point at the given coordinates, then a relaxation, with the same two figures. tblite
  has no optimiser: with ASE installed, ASE's ``BFGS`` drives tblite's ASE calculator
  (``tblite.ase.TBLite``) to ``fmax`` (largest per-atom force, default 0.01 eV/Å: at ASE's default
  0.05 the relaxed energy is uncertain by a few tenths of a kcal/mol, at 0.01 the two optimisers
  agree within a few hundredths); without it, SciPy's L-BFGS-B on tblite's energies and gradients,
  stopping when every gradient component is below the same threshold (in Hartree/Bohr). xTB runs on
  one OpenMP thread (restored afterwards) and on at most ``max_xtb`` molecules (the first checked
  ones, in file order): about a second per QM9-sized molecule, more for a distorted one;
* **PoseBusters** (Buttenschoen, Morris & Deane 2024; ``posebusters.PoseBusters(config="mol")``;
  :func:`posebusters_pass_rates`): pass rates of its intramolecular checks (bond lengths and angles
  against distance-geometry bounds, internal steric clashes, flatness of aromatic rings and double
  bonds, non-flat saturated rings, the UFF energy against an ensemble of 50 conformers, ...), on at
  most ``max_posebusters`` molecules: the energy check costs about a second per QM9 molecule.

The same figures for a fixed subset of QM9's test split (:func:`qm9_reference`: DFT geometries with
their bonds and formal charges) tell what "small" means. Energy drops are reported as medians and
means: a few broken samples make the mean large.

tblite, ASE and PoseBusters are optional (``pip install 'moldiff[physics]'``, ``'moldiff[posebusters]'``);
:func:`evaluate_geometry` notes in one line what it skipped and why.

Example::

    r = evaluate_geometry("samples.sdf", reference=100, max_xtb=20)
    r["samples"]["mmff"]["energy_drop_median"], r["reference"]["mmff"]["energy_drop_median"]
    print(format_geometry_report(r))
"""

from __future__ import annotations

import ctypes
import logging
import os
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal, Sequence

import numpy as np

from moldiff._optional import available, require
from moldiff.errors import InputError, MoldiffError

from .ase_io import to_ase
from .bond_data import BondedQM9Dataset, derive_bonded_arrays
from .bond_metrics import bonded_molecule, mol_bond_arrays
from .evaluate import read_bonded_sdf
from .qm9 import edm_split_indices, load_qm9
from .rdkit_io import MOLECULE_FILE_SUFFIXES, build_molecule, molecule_file_format, read_xyz

__all__ = [
    "HARTREE_TO_KCAL_PER_MOL",
    "Relaxation",
    "RelaxationError",
    "check_geometry",
    "checkable_molecule",
    "evaluate_geometry",
    "format_geometry_report",
    "heavy_atom_rmsd",
    "mmff_relax",
    "posebusters_pass_rates",
    "qm9_reference",
    "read_geometry_molecules",
    "summarize_relaxations",
    "xtb_relax",
    "xtb_single_point",
]

#: 1 Hartree in kcal/mol (CODATA 2018).
HARTREE_TO_KCAL_PER_MOL = 627.5094740631
#: 1 eV in kcal/mol.
EV_TO_KCAL_PER_MOL = 23.060547830619
#: 1 Bohr in Å (CODATA 2018).
BOHR_IN_ANGSTROM = 0.529177210903
#: 1 Hartree/Bohr in eV/Å.
HARTREE_PER_BOHR_IN_EV_PER_ANGSTROM = 27.211386245988 / BOHR_IN_ANGSTROM


class RelaxationError(MoldiffError, ValueError):
    """A molecule the method cannot handle: no MMFF94 parameters, an SCF that does not converge, ...;
    ``reason`` is a short label for the tallies."""

    def __init__(self, reason: str, detail: str = ""):
        self.reason = reason
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass(frozen=True)
class Relaxation:
    """One molecule relaxed by one method.

    Attributes:
        method: ``"MMFF94"`` or ``"GFN2-xTB"``.
        energy_before: energy at the given coordinates, kcal/mol.
        energy_after: energy at the relaxed coordinates, kcal/mol.
        rmsd: heavy-atom RMSD between the given and the relaxed coordinates after superposition, Å.
        converged: the optimiser met its criterion within its step budget.
        steps: optimiser steps (``None`` where the optimiser does not tell: RDKit's MMFF).
        positions: the relaxed coordinates ``[n, 3]``, Å.
    """

    method: str
    energy_before: float
    energy_after: float
    rmsd: float
    converged: bool
    steps: int | None
    positions: np.ndarray

    @property
    def energy_drop(self) -> float:
        """``energy_before - energy_after``, kcal/mol (positive: relaxing lowered the energy)."""
        return self.energy_before - self.energy_after


# ------------------------------------------------------------------------------------------------
# geometry helpers


def _rmsd_after_superposition(a: np.ndarray, b: np.ndarray) -> float:
    """RMSD of two ``[n, 3]`` point sets after the optimal rotation and translation (Kabsch), Å."""
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    u, s, vt = np.linalg.svd(a.T @ b)
    d = np.sign(np.linalg.det(u @ vt)) or 1.0  # a reflection is not a superposition
    e = (a * a).sum() + (b * b).sum() - 2.0 * (s[0] + s[1] + d * s[2])
    return float(np.sqrt(max(e, 0.0) / len(a)))


def heavy_atom_rmsd(atomic_numbers: Any, a: Any, b: Any) -> float:
    """RMSD between two geometries of one molecule (same atom order) over its heavy atoms, after
    superposition, Å (all atoms when it has no heavy atom).

    Example:
        >>> import numpy as np
        >>> a = np.array([[0.0, 0, 0], [1.5, 0, 0], [0, 1.5, 0], [0, 0, 1.0]])
        >>> turned = a @ np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]).T + 5.0
        >>> round(heavy_atom_rmsd([6, 6, 8, 1], a, turned), 6)
        0.0
    """
    z = np.asarray(atomic_numbers).reshape(-1)
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    heavy = z > 1 if (z > 1).any() else np.ones(len(z), dtype=bool)
    return _rmsd_after_superposition(a[heavy], b[heavy])


def checkable_molecule(mol):
    """The molecule the physics checks look at, or ``None``: ``mol`` rebuilt from its atoms, formal
    charges, bonds and conformer exactly as given (:func:`~moldiff.molecules.bond_metrics.bonded_molecule`:
    every hydrogen an atom, none implicit, as the metrics with the molecules' own bonds build it), and
    sanitised, when that succeeds and it is one connected fragment."""
    from rdkit import Chem, rdBase

    if mol is None or mol.GetNumConformers() == 0:
        return None
    try:
        z, q, index, classes = mol_bond_arrays(mol)
    except ValueError:  # a bond type without a class (dative, ...)
        return None
    clean = bonded_molecule(z, q, mol.GetConformer().GetPositions(), (index.T, classes))
    try:
        with rdBase.BlockLogs():
            Chem.SanitizeMol(clean)
    except Exception:  # noqa: BLE001 - RDKit raises several types for one outcome: not valid
        return None
    if len(Chem.GetMolFrags(clean)) != 1:
        return None
    return clean


def _arrays(mol) -> tuple[np.ndarray, np.ndarray, int]:
    """``(atomic numbers, positions Å, total formal charge)`` of a molecule's conformer."""
    z = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64)
    charge = sum(a.GetFormalCharge() for a in mol.GetAtoms())
    return z, np.asarray(mol.GetConformer().GetPositions(), dtype=np.float64), int(charge)


# ------------------------------------------------------------------------------------------------
# MMFF94


def mmff_relax(mol, *, max_iters: int = 2000, variant: Literal["MMFF94", "MMFF94s"] = "MMFF94") -> Relaxation:
    """Relax a molecule with RDKit's MMFF94 and report the energy drop and heavy-atom RMSD.

    Args:
        mol: an RDKit molecule with explicit hydrogens and a 3D conformer (sanitised here, on a copy).
        max_iters: iterations of RDKit's minimiser (default: 2000).
        variant: ``"MMFF94"`` or ``"MMFF94s"`` (default: MMFF94).

    Raises:
        RelaxationError: the molecule does not sanitise, or MMFF94 has no parameters for it.
    """
    from rdkit import Chem, rdBase
    from rdkit.Chem import rdForceFieldHelpers

    m = Chem.Mol(mol)
    with rdBase.BlockLogs():
        try:
            Chem.SanitizeMol(m)
        except Exception as err:  # noqa: BLE001 - RDKit's sanitisation errors have several types
            raise RelaxationError("not sanitisable", str(err).strip().splitlines()[0] if str(err) else "") from None
        props = rdForceFieldHelpers.MMFFGetMoleculeProperties(m, mmffVariant=variant)
        if props is None:
            raise RelaxationError(f"no {variant} parameters")
        ff = rdForceFieldHelpers.MMFFGetMoleculeForceField(m, props)
    if ff is None:
        raise RelaxationError(f"no {variant} force field")
    start = np.asarray(m.GetConformer().GetPositions(), dtype=np.float64)
    before = ff.CalcEnergy()
    status = ff.Minimize(maxIts=int(max_iters))
    after = ff.CalcEnergy()
    relaxed = np.asarray(ff.Positions(), dtype=np.float64).reshape(-1, 3)
    z = np.array([a.GetAtomicNum() for a in m.GetAtoms()])
    return Relaxation(
        variant, float(before), float(after), heavy_atom_rmsd(z, start, relaxed), status == 0, None, relaxed
    )


# ------------------------------------------------------------------------------------------------
# GFN2-xTB through tblite


@contextmanager
def _openmp_threads(threads: int) -> Iterator[None]:
    """OpenMP threads of ``libgomp`` (which tblite links) set to ``threads`` inside the block and restored
    after it: torch's CPU wheel loads a ``libgomp.so.1`` of its own that tblite then shares, so the
    setting would otherwise stay with torch too. Nothing where there is no such library."""
    try:
        gomp = ctypes.CDLL("libgomp.so.1")
        before = int(gomp.omp_get_max_threads())
    except (OSError, AttributeError):
        yield
        return
    gomp.omp_set_num_threads(int(threads))
    try:
        yield
    finally:
        gomp.omp_set_num_threads(before)


def _tblite():
    module = require("tblite.interface", package="tblite", extra="physics", purpose="GFN2-xTB")
    return module


def _unpaired(z: np.ndarray, charge: int) -> int:
    """Unpaired electrons of the lowest spin state: 0 for an even electron count, else 1."""
    return int((int(z.sum()) - int(charge)) % 2)


def _xtb_calculator(z: np.ndarray, pos: np.ndarray, charge: int, method: str):
    interface = _tblite()
    try:
        calc = interface.Calculator(method, z, pos / BOHR_IN_ANGSTROM, charge=float(charge), uhf=_unpaired(z, charge))
    except Exception as err:  # noqa: BLE001 - TBLiteValueError / RuntimeError on input it rejects
        raise RelaxationError("xTB rejected the input", str(err)) from None
    calc.set("verbosity", 0)
    return calc


def xtb_single_point(mol, *, method: str = "GFN2-xTB", threads: int = 1) -> float:
    """The xTB energy of a molecule's conformer, in Hartree (charge: the sum of its formal charges;
    the lowest spin state).

    Raises:
        MissingPackageError: tblite is not installed.
        RelaxationError: the SCF does not converge.
    """
    z, pos, charge = _arrays(mol)
    try:
        with _openmp_threads(threads):
            return float(_xtb_calculator(z, pos, charge, method).singlepoint().get("energy"))
    except RuntimeError as err:
        raise RelaxationError("xTB SCF failed", str(err).strip().splitlines()[0] if str(err) else "") from None


def xtb_relax(
    mol,
    *,
    method: str = "GFN2-xTB",
    fmax: float = 0.01,
    max_steps: int = 500,
    optimizer: Literal["auto", "ase", "scipy"] = "auto",
    threads: int = 1,
) -> Relaxation:
    """Relax a molecule with xTB (tblite) and report the energy drop and heavy-atom RMSD.

    Args:
        mol: an RDKit molecule with explicit hydrogens and a 3D conformer; its formal charges sum to
            the total charge, and the lowest spin state is used.
        method: a tblite method, ``"GFN2-xTB"`` or ``"GFN1-xTB"`` (default: GFN2-xTB).
        fmax: convergence threshold, eV/Å: ASE's largest per-atom force, or (SciPy) the largest
            gradient component (default: 0.01; ASE's default 0.05 leaves the relaxed energy a few tenths
            of a kcal/mol above the minimum).
        max_steps: optimiser steps at most (default: 500).
        optimizer: ``"ase"`` (ASE's BFGS with ``tblite.ase.TBLite``), ``"scipy"`` (L-BFGS-B on tblite's
            gradients) or ``"auto"`` (ASE when installed) (default: auto).
        threads: OpenMP threads of tblite (default: 1).

    Raises:
        MissingPackageError: tblite (or, for ``optimizer="ase"``, ASE) is not installed.
        RelaxationError: the SCF fails at some geometry.
    """
    if optimizer not in ("auto", "ase", "scipy"):
        raise ValueError(f"optimizer must be 'auto', 'ase' or 'scipy', got {optimizer!r}")
    if optimizer == "auto":
        optimizer = "ase" if available("ase") else "scipy"
    z, start, charge = _arrays(mol)
    with _openmp_threads(threads):
        if optimizer == "ase":
            return _xtb_relax_ase(mol, z, start, charge, method, fmax, max_steps)
        return _xtb_relax_scipy(z, start, charge, method, fmax, max_steps)


def _xtb_relax_ase(mol, z, start, charge, method, fmax, max_steps) -> Relaxation:
    _tblite()  # the message names tblite before ASE's own import error could
    calculator = require("tblite.ase", package="tblite", extra="physics", purpose="GFN2-xTB")
    optimize = require("ase.optimize", package="ase", extra="physics", purpose="xTB relaxation with ASE")
    calculators = require("ase.calculators.calculator", package="ase", extra="physics", purpose="xTB with ASE")
    atoms = to_ase(mol)
    atoms.calc = calculator.TBLite(method=method, charge=charge, multiplicity=_unpaired(z, charge) + 1, verbosity=0)
    try:
        before = atoms.get_potential_energy() * EV_TO_KCAL_PER_MOL
        opt = optimize.BFGS(atoms, logfile=None)
        converged = bool(opt.run(fmax=fmax, steps=max_steps))
        after = atoms.get_potential_energy() * EV_TO_KCAL_PER_MOL
    except (calculators.CalculationFailed, RuntimeError) as err:
        raise RelaxationError("xTB SCF failed", str(err).strip().splitlines()[0] if str(err) else "") from None
    relaxed = np.asarray(atoms.get_positions(), dtype=np.float64)
    return Relaxation(method, before, after, heavy_atom_rmsd(z, start, relaxed), converged, int(opt.nsteps), relaxed)


def _xtb_relax_scipy(z, start, charge, method, fmax, max_steps) -> Relaxation:
    from scipy.optimize import minimize

    calc = _xtb_calculator(z, start, charge, method)
    state: dict[str, Any] = {"result": None}

    def energy_and_gradient(x: np.ndarray) -> tuple[float, np.ndarray]:
        calc.update(positions=x.reshape(-1, 3))
        state["result"] = calc.singlepoint(state["result"])
        return float(state["result"].get("energy")), np.asarray(state["result"].get("gradient")).reshape(-1)

    x0 = (start / BOHR_IN_ANGSTROM).reshape(-1)
    try:
        before = energy_and_gradient(x0)[0]
        # gtol bounds every gradient component (Hartree/Bohr); ftol is set below any energy change
        # that matters so that the gradient decides, as fmax does for ASE.
        gtol = fmax / HARTREE_PER_BOHR_IN_EV_PER_ANGSTROM
        res = minimize(
            energy_and_gradient,
            x0,
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": int(max_steps), "gtol": gtol, "ftol": 1e-14},
        )
    except RuntimeError as err:
        raise RelaxationError("xTB SCF failed", str(err).strip().splitlines()[0] if str(err) else "") from None
    relaxed = res.x.reshape(-1, 3) * BOHR_IN_ANGSTROM
    converged = bool(np.abs(res.jac).max() <= gtol)
    return Relaxation(
        method,
        before * HARTREE_TO_KCAL_PER_MOL,
        float(res.fun) * HARTREE_TO_KCAL_PER_MOL,
        heavy_atom_rmsd(z, start, relaxed),
        converged,
        int(res.nit),
        relaxed,
    )


# ------------------------------------------------------------------------------------------------
# PoseBusters


def _posebusters_config(posebusters) -> dict[str, Any]:
    """PoseBusters' ``mol`` configuration without the modules that report nothing: its file lists the
    energy-ratio module twice, once without an output, which ran the 50-conformer ensemble of every
    molecule twice (the checks and their thresholds are unchanged)."""
    import yaml

    with open(Path(posebusters.__file__).parent / "config" / "mol.yml", encoding="utf-8") as f:
        config = yaml.safe_load(f)
    config["modules"] = [m for m in config["modules"] if m.get("chosen_binary_test_output")]
    return config


def posebusters_pass_rates(mols: Sequence[Any]) -> dict[str, float]:
    """Pass rates of PoseBusters' intramolecular checks (``PoseBusters(config="mol")``) over ``mols``.

    Args:
        mols: RDKit molecules with 3D conformers and explicit hydrogens.

    Returns:
        ``{check: fraction passing}`` in PoseBusters' column order (``bond_lengths``, ``bond_angles``,
        ``internal_steric_clash``, ``aromatic_ring_flatness``, ``double_bond_flatness``,
        ``internal_energy``, ...), plus ``all``: the fraction passing every check. A check that could
        not run on a molecule counts as failed. Empty for no molecules.

    Raises:
        MissingPackageError: posebusters is not installed.
    """
    posebusters = require("posebusters", extra="posebusters", purpose="the PoseBusters checks")
    mols = list(mols)
    if not mols:
        return {}
    quiet = logging.getLogger("posebusters")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        table = posebusters.PoseBusters(config=_posebusters_config(posebusters)).bust(
            mols, None, None, full_report=False
        )
    finally:
        quiet.setLevel(level)
    checks = [c for c in table.columns if c not in ("file", "molecule", "position")]
    passed = table[checks].fillna(False).astype(bool)
    rates = {c: float(passed[c].mean()) for c in checks}
    rates["all"] = float(passed.all(axis=1).mean())
    return rates


# ------------------------------------------------------------------------------------------------
# molecules to check


def _molecule_files(path: Path) -> list[Path]:
    if path.is_dir():
        files = sorted(
            p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(tuple(MOLECULE_FILE_SUFFIXES))
        )
        if not files:
            raise FileNotFoundError(f"no molecule files ({', '.join(MOLECULE_FILE_SUFFIXES)}) in {path}")
        return files
    if not path.is_file():
        raise FileNotFoundError(f"no such molecule file or folder: {path}")
    return [path]


def read_geometry_molecules(path: str | os.PathLike) -> list[Any]:
    """The molecules of a samples file or folder with bonds, for the physics checks: an SDF's own bonds
    and formal charges (:func:`~moldiff.molecules.evaluate.read_bonded_sdf`), an XYZ file's bonds
    perceived by RDKit (``rdDetermineBonds``, neutral; ``None`` for a molecule it finds no bonds for).

    Raises:
        FileNotFoundError, InputError, MoleculeRecordError: as the readers.
    """
    mols: list[Any] = []
    for f in _molecule_files(Path(path).expanduser()):
        if molecule_file_format(f) == "sdf":
            mols.extend(read_bonded_sdf(f))
            continue
        for record in read_xyz(f):
            try:
                mols.append(build_molecule(record.atomic_numbers, record.positions, bonds="rdkit"))
            except ValueError:
                mols.append(None)
    return mols


def qm9_reference(num: int = 100, split: str = "test", seed: int = 0, source: str = "qm9pack") -> list[Any]:
    """A fixed random subset of a QM9 split as sanitised RDKit molecules with their DFT coordinates and
    the bonds and formal charges of :mod:`~moldiff.molecules.bond_data` (derived for these molecules
    only, no cache of all of QM9 needed).

    Args:
        num: molecules (default: 100).
        split: EDM's split (default: test).
        seed: ``np.random.default_rng(seed)`` draws the rows, then they are sorted (default: 0).
        source: see :func:`~moldiff.molecules.qm9.load_qm9` (default: qm9pack).
    """
    data = load_qm9(source)
    rows = edm_split_indices(len(data["num_atoms"]))[split]
    pick = np.sort(np.random.default_rng(seed).choice(rows, size=min(int(num), len(rows)), replace=False))
    dataset = BondedQM9Dataset("all", arrays=derive_bonded_arrays(data, rows=pick))
    return [
        bonded_molecule(g.atomic_numbers, g.charges, g.pos, (g.bond_index, g.bond_types), sanitize=True)
        for g in dataset
    ]


# ------------------------------------------------------------------------------------------------
# the checks over many molecules


def summarize_relaxations(results: Sequence[Relaxation | RelaxationError]) -> dict[str, Any]:
    """Figures of one method over many molecules: ``attempted``, ``relaxed``, ``failures``
    (``{reason: count}``), ``converged`` (fraction of the relaxed), and the ``energy_drop_*`` (kcal/mol)
    and ``rmsd_*`` (Å) medians, means and 90th percentiles over the relaxed molecules."""
    done = [r for r in results if isinstance(r, Relaxation)]
    out: dict[str, Any] = {
        "attempted": len(results),
        "relaxed": len(done),
        "failures": dict(Counter(r.reason for r in results if isinstance(r, RelaxationError))),
        "converged": float(np.mean([r.converged for r in done])) if done else None,
    }
    for name, values in (("energy_drop", [r.energy_drop for r in done]), ("rmsd", [r.rmsd for r in done])):
        v = np.asarray(values, dtype=np.float64)
        out[f"{name}_median"] = float(np.median(v)) if len(v) else None
        out[f"{name}_mean"] = float(v.mean()) if len(v) else None
        out[f"{name}_p90"] = float(np.percentile(v, 90)) if len(v) else None
    return out


def _each(fn, mols: Sequence[Any], progress: bool, desc: str) -> list[Relaxation | RelaxationError]:
    items: Iterable[Any] = mols
    if progress:
        from tqdm.auto import tqdm

        items = tqdm(mols, desc=desc, unit="mol")
    out: list[Relaxation | RelaxationError] = []
    for mol in items:
        try:
            out.append(fn(mol))
        except RelaxationError as err:
            out.append(err)
    return out


def check_geometry(
    molecules: Sequence[Any],
    *,
    mmff: bool = True,
    xtb: bool = True,
    max_xtb: int = 20,
    posebusters: bool = False,
    max_posebusters: int = 100,
    optimizer: Literal["auto", "ase", "scipy"] = "auto",
    progress: bool = False,
    desc: str = "",
) -> dict[str, Any]:
    """The physics checks of a list of RDKit molecules (``None`` entries count as unreadable).

    Args:
        molecules: the molecules; only the checkable ones (:func:`checkable_molecule`) are checked.
        mmff: relax with MMFF94 (:func:`mmff_relax`).
        xtb: relax with GFN2-xTB (:func:`xtb_relax`); tblite must be installed.
        max_xtb: xTB on the first ``max_xtb`` checked molecules at most (default: 20).
        posebusters: PoseBusters' pass rates (:func:`posebusters_pass_rates`); posebusters must be installed.
        max_posebusters: PoseBusters on the first ``max_posebusters`` checked molecules at most (its
            energy-ratio check embeds 50 conformers of each: about a second per QM9 molecule, several for
            a distorted one) (default: 100).
        optimizer: the xTB optimiser (see :func:`xtb_relax`).
        progress: show progress bars (labelled with ``desc``).

    Returns:
        ``{"num_molecules", "num_checked", "mmff": summary or None, "xtb": summary or None,
        "posebusters": rates or None, "num_posebusters"}`` (summaries of :func:`summarize_relaxations`).
    """
    checked = [m for m in (checkable_molecule(mol) for mol in molecules) if m is not None]
    out: dict[str, Any] = {"num_molecules": len(molecules), "num_checked": len(checked)}
    out["mmff"] = summarize_relaxations(_each(mmff_relax, checked, progress, f"MMFF94 {desc}")) if mmff else None
    if xtb and max_xtb > 0:
        subset = checked[: int(max_xtb)]
        out["xtb"] = summarize_relaxations(
            _each(lambda m: xtb_relax(m, optimizer=optimizer), subset, progress, f"GFN2-xTB {desc}")
        )
    else:
        out["xtb"] = None
    subset = checked[: int(max_posebusters)] if posebusters else []
    out["posebusters"] = posebusters_pass_rates(subset) if posebusters else None
    out["num_posebusters"] = len(subset)
    return out


def evaluate_geometry(
    molecules: str | os.PathLike | Sequence[Any],
    *,
    reference: int = 100,
    reference_split: str = "test",
    reference_seed: int = 0,
    mmff: bool = True,
    xtb: bool = True,
    max_xtb: int = 20,
    posebusters: bool = False,
    max_posebusters: int = 100,
    optimizer: Literal["auto", "ase", "scipy"] = "auto",
    progress: bool = False,
) -> dict[str, Any]:
    """The physics checks of generated molecules beside the same checks of real QM9 molecules.

    Args:
        molecules: a samples file or folder (:func:`read_geometry_molecules`) or RDKit molecules.
        reference: QM9 molecules checked beside them (:func:`qm9_reference`; 0: none) (default: 100).
        reference_split, reference_seed: which QM9 molecules (default: test, 0).
        mmff, xtb, max_xtb, posebusters, max_posebusters, optimizer, progress: see :func:`check_geometry`.
            xTB is skipped, with a note, when tblite is not installed; ``posebusters=True`` without
            the package raises.

    Returns:
        ``{"source", "samples": check_geometry(...), "reference": check_geometry(...) or None,
        "reference_split", "reference_source", "notes": [one line per thing skipped], "seconds"}``.

    Raises:
        MissingPackageError: ``posebusters=True`` and posebusters is not installed.
    """
    start = time.perf_counter()
    notes: list[str] = []
    if posebusters:
        require("posebusters", extra="posebusters", purpose="the PoseBusters checks")
    if xtb and max_xtb > 0 and not available("tblite"):
        notes.append("GFN2-xTB skipped: tblite is not installed (pip install 'moldiff[physics]')")
        xtb = False
    elif xtb and max_xtb > 0 and optimizer == "auto" and not available("ase"):
        notes.append("GFN2-xTB relaxed with SciPy's L-BFGS-B: ASE is not installed (pip install 'moldiff[physics]')")
    options = dict(
        mmff=mmff,
        xtb=xtb,
        max_xtb=max_xtb,
        posebusters=posebusters,
        max_posebusters=max_posebusters,
        optimizer=optimizer,
    )
    if isinstance(molecules, (str, os.PathLike)):
        source, molecules = str(molecules), read_geometry_molecules(molecules)
    else:
        source, molecules = "molecules", list(molecules)
    if not molecules:
        raise InputError("no molecules to check")
    out: dict[str, Any] = {
        "source": source,
        "samples": check_geometry(molecules, progress=progress, desc="samples", **options),
    }
    out["reference"], out["reference_split"], out["reference_source"] = None, None, None
    if reference > 0:
        ref = qm9_reference(reference, reference_split, reference_seed)
        out["reference"] = check_geometry(ref, progress=progress, desc="QM9", **options)
        out["reference_split"] = reference_split
        out["reference_source"] = f"QM9 {reference_split} split, {len(ref)} molecules (seed {reference_seed})"
    out["notes"] = notes
    out["seconds"] = time.perf_counter() - start
    return out


# ------------------------------------------------------------------------------------------------
# report


def _number(value: Any, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def format_geometry_report(result: dict[str, Any]) -> str:
    """A short table of :func:`evaluate_geometry`'s result: samples and the QM9 reference side by side."""
    columns = [("samples", result["samples"])]
    if result.get("reference"):
        columns.append((f"QM9 {result.get('reference_split', 'test')}", result["reference"]))
    head = f"{'physics checks (connected valid molecules)':<44s}" + "".join(f"{name:>14s}" for name, _ in columns)
    lines = [head]

    def row(label: str, cells: list[str]) -> None:
        lines.append(f"{label:<44s}" + "".join(f"{c:>14s}" for c in cells))

    row("molecules checked", [f"{c['num_checked']} / {c['num_molecules']}" for _, c in columns])
    for key, name in (("mmff", "MMFF94"), ("xtb", "GFN2-xTB")):
        if all(c[key] is None for _, c in columns):
            continue
        parts = [c[key] or {} for _, c in columns]
        row(f"{name}: relaxed", [f"{p.get('relaxed', 0)} / {p.get('attempted', 0)}" for p in parts])
        row(f"{name}: energy drop median (kcal/mol)", [_number(p.get("energy_drop_median"), ".2f") for p in parts])
        row(f"{name}: energy drop mean (kcal/mol)", [_number(p.get("energy_drop_mean"), ".2f") for p in parts])
        row(f"{name}: heavy-atom RMSD median (A)", [_number(p.get("rmsd_median"), ".3f") for p in parts])
        row(f"{name}: heavy-atom RMSD mean (A)", [_number(p.get("rmsd_mean"), ".3f") for p in parts])
        row(
            f"{name}: converged",
            ["-" if p.get("converged") is None else f"{100 * p['converged']:.1f} %" for p in parts],
        )
    rates = [c["posebusters"] for _, c in columns]
    if any(r for r in rates):
        row("PoseBusters: molecules", [str(c.get("num_posebusters", 0)) for _, c in columns])
        for check in next(r for r in rates if r):
            row(f"PoseBusters: {check}", ["-" if not r else f"{100 * r[check]:.1f} %" for r in rates])
    lines.extend(f"note: {n}" for n in result.get("notes", ()))
    return "\n".join(lines)
