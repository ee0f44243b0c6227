"""Bonds from interatomic distances, with EDM's bond-length tables, and atom stability.

EDM (Hoogeboom et al., 2022) decodes a generated point cloud into a molecule by looking only at the
distance ``d`` of every atom pair, in picometres, against reference bond lengths ``b1`` (single),
``b2`` (double) and ``b3`` (triple) with margins of 10, 5 and 3 pm:

* no bond unless ``d < b1 + 10``;
* then a double bond if the pair has a double length and ``d < b2 + 5``;
* then a triple bond if the pair has a triple length and ``d < b3 + 3``;
* otherwise a single bond.

An atom is *stable* when the sum of its bond orders equals one of its allowed valences; a molecule is
stable when all of its atoms are. Formal charges are not considered (as in EDM).

Tables:

* For H, C, N, O and F the lengths and valences are exactly EDM's (QM9 protocol):
  single H-H 74, C-H 109, N-H 101, O-H 96, F-H 92, C-C 154, C-N 147, C-O 143, C-F 135, N-N 145,
  N-O 140, N-F 136, O-O 148, O-F 142, F-F 142; double C=C 134, C=N 129, C=O 120, N=N 125, N=O 121,
  O=O 121; triple C#C 120, C#N 116, C#O 113, N#N 110 (pm). Valences H 1, C 4, N 3, O 2, F 1.
* For the other elements of drug-like sets (B, Si, P, S, Cl, Br, I) we add typical bond lengths from
  standard tables of average covalent bond lengths (pm): single H-S 134, H-Cl 127, H-Br 141,
  H-I 161, H-P 144, H-Si 148, H-B 119, C-S 182, C-Cl 177, C-Br 194, C-I 214, C-P 184, C-Si 185,
  C-B 156, N-S 168, N-P 177, N-Cl 175, N-Br 214, N-I 222, O-S 151, O-P 163, O-Si 163, O-Cl 164,
  O-I 194, F-S 158, F-P 156, F-Si 160, F-Cl 166, F-Br 178, F-I 187, S-S 204, S-P 210, S-Cl 207,
  S-Br 225, S-I 234, P-P 221, P-Cl 203, P-Br 222, Cl-Cl 199, Cl-Br 214, Cl-I 232, Br-Br 228,
  Br-I 247, I-I 266, Si-Si 233, Si-Cl 202; double C=S 160, S=O 143, P=O 150, P=S 186. Allowed
  valences S 2/4/6, P 3/5, Cl 1, Br 1, I 1, B 3, Si 4. These extend EDM's protocol and leave every
  H/C/N/O/F pair unchanged; they are *not* part of any published benchmark.
* A pair with no tabulated single length never bonds; an element with no allowed valence is never
  stable.

Aromatic rings are not perceived (EDM's rule gives alternating or all-single bonds by distance), so
distance-based stability of drug-like molecules is much lower than for QM9.

Distances are computed in the floating-point type of the input positions, as
``sqrt((dx^2 + dy^2) + dz^2) * 100`` in that order (EDM's float32 arithmetic on QM9 coordinates).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from .elements import ELEMENT_SYMBOLS, atomic_number, element_symbol

__all__ = [
    "ALLOWED_VALENCES",
    "allowed_valences",
    "bond_table_summary",
    "BOND_LENGTHS_PM",
    "EDM_MARGINS_PM",
    "atom_stability",
    "bond_length",
    "edm_bond_matrix",
    "edm_bond_order",
    "molecule_stability",
    "valences",
]

#: EDM's margins (pm) added to the single, double and triple reference lengths.
EDM_MARGINS_PM: tuple[int, int, int] = (10, 5, 3)

_SINGLE = """
H-H 74 C-H 109 N-H 101 O-H 96 F-H 92 C-C 154 C-N 147 C-O 143 C-F 135 N-N 145 N-O 140 N-F 136
O-O 148 O-F 142 F-F 142
H-S 134 H-Cl 127 H-Br 141 H-I 161 H-P 144 H-Si 148 H-B 119 C-S 182 C-Cl 177 C-Br 194 C-I 214
C-P 184 C-Si 185 C-B 156 N-S 168 N-P 177 N-Cl 175 N-Br 214 N-I 222 O-S 151 O-P 163 O-Si 163
O-Cl 164 O-I 194 F-S 158 F-P 156 F-Si 160 F-Cl 166 F-Br 178 F-I 187 S-S 204 S-P 210 S-Cl 207
S-Br 225 S-I 234 P-P 221 P-Cl 203 P-Br 222 Cl-Cl 199 Cl-Br 214 Cl-I 232 Br-Br 228 Br-I 247
I-I 266 Si-Si 233 Si-Cl 202
"""
_DOUBLE = """
C-C 134 C-N 129 C-O 120 N-N 125 N-O 121 O-O 121
C-S 160 S-O 143 P-O 150 P-S 186
"""
_TRIPLE = """
C-C 120 C-N 116 C-O 113 N-N 110
"""


def _parse_table(text: str) -> dict[tuple[str, str], int]:
    table: dict[tuple[str, str], int] = {}
    tokens = text.split()
    for pair, length in zip(tokens[0::2], tokens[1::2]):
        a, b = pair.split("-")
        table[(a, b)] = table[(b, a)] = int(length)
    return table


#: Reference bond lengths in pm, keyed by bond order (1, 2, 3) then by the symmetric symbol pair.
BOND_LENGTHS_PM: dict[int, dict[tuple[str, str], int]] = {
    1: _parse_table(_SINGLE),
    2: _parse_table(_DOUBLE),
    3: _parse_table(_TRIPLE),
}

#: Allowed valences (sum of bond orders) per element. H/C/N/O/F are EDM's; the rest extend it.
ALLOWED_VALENCES: dict[str, tuple[int, ...]] = {
    "H": (1,),
    "C": (4,),
    "N": (3,),
    "O": (2,),
    "F": (1,),
    "B": (3,),
    "Si": (4,),
    "P": (3, 5),
    "S": (2, 4, 6),
    "Cl": (1,),
    "Br": (1,),
    "I": (1,),
}


def bond_length(sym_i: str, sym_j: str, order: int = 1) -> int | None:
    """Reference length in pm of a bond of the given order, or ``None`` if not tabulated."""
    return BOND_LENGTHS_PM[order].get((sym_i, sym_j))


def edm_bond_order(sym_i: str, sym_j: str, distance_angstrom: float) -> int:
    """EDM's bond order (0 = none, 1, 2, 3) for one atom pair at the given distance.

    Args:
        sym_i, sym_j: element symbols, e.g. ``"C"``, ``"O"``.
        distance_angstrom: interatomic distance in Å.

    Returns:
        The bond order; 0 for pairs without a tabulated single length.

    Example:
        >>> edm_bond_order("C", "O", 1.21), edm_bond_order("C", "H", 1.09), edm_bond_order("C", "C", 2.0)
        (2, 1, 0)
    """
    d = 100.0 * float(distance_angstrom)
    m1, m2, m3 = EDM_MARGINS_PM
    b1 = bond_length(sym_i, sym_j, 1)
    if b1 is None or not d < b1 + m1:
        return 0
    b2 = bond_length(sym_i, sym_j, 2)
    if b2 is None or not d < b2 + m2:
        return 1
    b3 = bond_length(sym_i, sym_j, 3)
    if b3 is None or not d < b3 + m3:
        return 2
    return 3


def _threshold_tables() -> np.ndarray:
    """Thresholds ``b_k + margin_k`` in pm, ``[3, 119, 119]`` float64; ``-inf`` where untabulated."""
    n = len(ELEMENT_SYMBOLS)
    tables = np.full((3, n, n), -np.inf)
    for k, (order, margin) in enumerate(zip((1, 2, 3), EDM_MARGINS_PM)):
        for (a, b), length in BOND_LENGTHS_PM[order].items():
            tables[k, atomic_number(a), atomic_number(b)] = length + margin
    return tables


_THRESHOLDS = _threshold_tables()
_VALENCE_TABLE = np.zeros((len(ELEMENT_SYMBOLS), 8), dtype=bool)  # [Z, valence] -> allowed
for _sym, _vals in ALLOWED_VALENCES.items():
    _VALENCE_TABLE[atomic_number(_sym), list(_vals)] = True
_TORCH_CACHE: dict[Any, tuple[Any, Any]] = {}


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def _torch_tables(device: Any):
    import torch

    key = str(device)
    if key not in _TORCH_CACHE:
        _TORCH_CACHE[key] = (
            torch.as_tensor(_THRESHOLDS, device=device),
            torch.as_tensor(_VALENCE_TABLE, device=device),
        )
    return _TORCH_CACHE[key]


def edm_bond_matrix(atomic_numbers: Any, positions: Any) -> Any:
    """EDM bond orders of all atom pairs of one molecule, vectorised.

    Works on numpy arrays or torch tensors (any device); the result has the input's library.

    Args:
        atomic_numbers: ``[N]`` integer atomic numbers.
        positions: ``[N, 3]`` coordinates in Å (float32 or float64; arithmetic in that type).

    Returns:
        ``[N, N]`` symmetric integer matrix of bond orders 0..3 with a zero diagonal
        (numpy int64 or torch long).
    """
    if _is_torch(positions) or _is_torch(atomic_numbers):
        import torch

        pos = torch.as_tensor(positions)
        if not pos.is_floating_point():
            pos = pos.to(torch.get_default_dtype())
        z = torch.as_tensor(atomic_numbers, device=pos.device).long()
        thresholds, _ = _torch_tables(pos.device)
        diff = pos[:, None, :] - pos[None, :, :]
        sq = diff * diff
        d = torch.sqrt((sq[..., 0] + sq[..., 1]) + sq[..., 2]) * 100
        t = thresholds[:, z[:, None], z[None, :]].to(d.dtype)
        single = d < t[0]
        double = single & (d < t[1])
        triple = double & (d < t[2])
        order = single.long() + double.long() + triple.long()
        order.fill_diagonal_(0)
        return order
    pos = np.asarray(positions)
    if not np.issubdtype(pos.dtype, np.floating):
        pos = pos.astype(np.float64)
    z = np.asarray(atomic_numbers, dtype=np.int64)
    _check_shapes(z, pos)
    diff = pos[:, None, :] - pos[None, :, :]
    sq = diff * diff
    d = np.sqrt((sq[..., 0] + sq[..., 1]) + sq[..., 2]) * pos.dtype.type(100)
    t = _THRESHOLDS[:, z[:, None], z[None, :]]
    single = d < t[0]
    double = single & (d < t[1])
    triple = double & (d < t[2])
    order = single.astype(np.int64) + double + triple
    np.fill_diagonal(order, 0)
    return order


def _check_shapes(z: np.ndarray, pos: np.ndarray) -> None:
    if z.ndim != 1 or pos.shape != (z.shape[0], 3):
        raise ValueError(f"expected atomic_numbers [N] and positions [N, 3], got {z.shape} and {pos.shape}")
    if z.size and (z.min() < 1 or z.max() >= len(ELEMENT_SYMBOLS)):
        raise ValueError(f"atomic numbers must lie in 1..{len(ELEMENT_SYMBOLS) - 1}, got {z.min()}..{z.max()}")


def valences(bond_matrix: Any) -> Any:
    """Sum of bond orders per atom, ``[N]``, from an ``[N, N]`` bond-order matrix."""
    return bond_matrix.sum(-1)


def atom_stability(atomic_numbers: Any, positions: Any = None, *, bond_matrix: Any = None) -> Any:
    """Which atoms have an allowed valence under EDM's distance-based bonds.

    Args:
        atomic_numbers: ``[N]`` atomic numbers (numpy or torch).
        positions: ``[N, 3]`` coordinates in Å; used to compute the bonds when ``bond_matrix`` is
            not given.
        bond_matrix: optional precomputed ``[N, N]`` bond orders (e.g. from :func:`edm_bond_matrix`).

    Returns:
        ``[N]`` boolean array (same library as the input): True where the atom is stable.
    """
    if bond_matrix is None:
        if positions is None:
            raise ValueError("atom_stability needs positions or bond_matrix")
        bond_matrix = edm_bond_matrix(atomic_numbers, positions)
    if _is_torch(bond_matrix):
        import torch

        _, table = _torch_tables(bond_matrix.device)
        z = torch.as_tensor(atomic_numbers, device=bond_matrix.device).long()
        v = bond_matrix.sum(-1).clamp(0, table.shape[1] - 1)
        return table[z, v]
    z = np.asarray(atomic_numbers, dtype=np.int64)
    v = np.clip(np.asarray(bond_matrix).sum(-1), 0, _VALENCE_TABLE.shape[1] - 1)
    return _VALENCE_TABLE[z, v]


def molecule_stability(atomic_numbers: Any, positions: Any) -> tuple[int, int, bool]:
    """EDM stability of one molecule.

    Args:
        atomic_numbers: ``[N]`` atomic numbers.
        positions: ``[N, 3]`` coordinates in Å.

    Returns:
        ``(num_stable_atoms, num_atoms, molecule_is_stable)``.
    """
    stable = atom_stability(atomic_numbers, positions)
    n_stable = int(stable.sum())
    n = int(stable.shape[0])
    return n_stable, n, n_stable == n


def allowed_valences(symbol_or_z: str | int) -> tuple[int, ...]:
    """Allowed valences of an element (empty tuple when none are tabulated)."""
    sym = element_symbol(symbol_or_z) if isinstance(symbol_or_z, (int, np.integer)) else symbol_or_z
    return ALLOWED_VALENCES.get(sym, ())


def bond_table_summary(symbols: Sequence[str] | None = None) -> Mapping[str, Any]:
    """The lengths (pm) and valences in use for the given elements (all tabulated ones by default).

    Handy for documenting an experiment: ``json.dumps(bond_table_summary(dataset.vocabulary))``.
    """
    keep = set(symbols) if symbols is not None else None

    def rows(order: int) -> dict[str, int]:
        out = {}
        for (a, b), length in BOND_LENGTHS_PM[order].items():
            if atomic_number(a) <= atomic_number(b) and (keep is None or (a in keep and b in keep)):
                out[f"{a}-{b}"] = length
        return out

    return {
        "margins_pm": list(EDM_MARGINS_PM),
        "single_pm": rows(1),
        "double_pm": rows(2),
        "triple_pm": rows(3),
        "allowed_valences": {s: list(v) for s, v in ALLOWED_VALENCES.items() if keep is None or s in keep},
    }
