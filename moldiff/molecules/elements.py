"""Chemical elements: symbols <-> atomic numbers, and the atom-type vocabularies of datasets.

The periodic table is built in (no RDKit import), so this module is cheap to import.

Example:
    >>> atomic_number("Cl"), element_symbol(35)
    (17, 'Br')
    >>> atomic_numbers(["C", "H", "O"]).tolist()
    [6, 1, 8]
"""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from moldiff.errors import InputError

__all__ = [
    "ELEMENT_SYMBOLS",
    "QM9_ATOM_TYPES",
    "UnknownElementError",
    "atomic_number",
    "atomic_numbers",
    "element_symbol",
    "element_symbols",
    "is_element_symbol",
    "vocabulary_from_atomic_numbers",
    "vocabulary_index",
]

#: Element symbols indexed by atomic number (index 0 is the dummy atom ``"*"``), Z = 1..118.
ELEMENT_SYMBOLS: tuple[str, ...] = tuple(
    """* H He Li Be B C N O F Ne Na Mg Al Si P S Cl Ar K Ca Sc Ti V Cr Mn Fe Co Ni Cu Zn Ga Ge As Se
    Br Kr Rb Sr Y Zr Nb Mo Tc Ru Rh Pd Ag Cd In Sn Sb Te I Xe Cs Ba La Ce Pr Nd Pm Sm Eu Gd Tb Dy
    Ho Er Tm Yb Lu Hf Ta W Re Os Ir Pt Au Hg Tl Pb Bi Po At Rn Fr Ra Ac Th Pa U Np Pu Am Cm Bk Cf Es
    Fm Md No Lr Rf Db Sg Bh Hs Mt Ds Rg Cn Nh Fl Mc Lv Ts Og""".split()
)
assert len(ELEMENT_SYMBOLS) == 119

_NUMBER_OF: dict[str, int] = {s: z for z, s in enumerate(ELEMENT_SYMBOLS) if z > 0}
_NUMBER_OF.update({"D": 1, "T": 1})  # deuterium and tritium, as RDKit reads them

#: EDM's QM9 atom-type vocabulary, in the order of its one-hot encoding.
QM9_ATOM_TYPES: tuple[str, ...] = ("H", "C", "N", "O", "F")


class UnknownElementError(InputError):
    """Raised for an element symbol or atomic number that names no chemical element."""


def _normalise(symbol: str) -> str:
    s = symbol.strip()
    return s[:1].upper() + s[1:].lower()


def is_element_symbol(symbol: str) -> bool:
    """Whether ``symbol`` names a chemical element (case-insensitive, e.g. ``"CL"`` -> True)."""
    return _normalise(symbol) in _NUMBER_OF


def atomic_number(symbol: str | int) -> int:
    """Atomic number of an element symbol (case-insensitive; an int is checked and returned).

    Args:
        symbol: element symbol such as ``"C"``, ``"cl"``, ``"BR"``, or an atomic number.

    Returns:
        The atomic number, 1..118.

    Raises:
        UnknownElementError: if the symbol names no element (for example ``"Xx"`` or ``"*"``).
    """
    if isinstance(symbol, (int, np.integer)):
        element_symbol(int(symbol))  # validates the range
        return int(symbol)
    try:
        return _NUMBER_OF[_normalise(symbol)]
    except KeyError:
        raise UnknownElementError(f"unknown element symbol {symbol!r}") from None


def element_symbol(z: int) -> str:
    """Element symbol of an atomic number.

    Raises:
        UnknownElementError: if ``z`` is outside 1..118.
    """
    z = int(z)
    if not 1 <= z < len(ELEMENT_SYMBOLS):
        raise UnknownElementError(f"unknown atomic number {z} (expected 1..{len(ELEMENT_SYMBOLS) - 1})")
    return ELEMENT_SYMBOLS[z]


def atomic_numbers(symbols: Iterable[str | int]) -> np.ndarray:
    """Atomic numbers of a sequence of symbols, ``[N]`` int64."""
    return np.fromiter((atomic_number(s) for s in symbols), dtype=np.int64)


def element_symbols(numbers: Iterable[int]) -> list[str]:
    """Element symbols of a sequence of atomic numbers (accepts numpy arrays and torch tensors)."""
    if hasattr(numbers, "tolist"):
        numbers = numbers.tolist()
    return [element_symbol(z) for z in numbers]


def vocabulary_from_atomic_numbers(numbers: Iterable[int] | np.ndarray) -> tuple[str, ...]:
    """The sorted set of elements present, as symbols ordered by atomic number.

    Args:
        numbers: atomic numbers of any shape (e.g. all atoms of a dataset concatenated).

    Returns:
        e.g. ``("H", "C", "N", "O", "F", "S", "Cl", "Br", "I")``.
    """
    present = np.unique(np.asarray(list(numbers) if not isinstance(numbers, np.ndarray) else numbers))
    return tuple(element_symbol(z) for z in present.tolist())


def vocabulary_index(vocabulary: Sequence[str]) -> np.ndarray:
    """Lookup table from atomic number to vocabulary index (-1 where absent), ``[119]`` int64."""
    table = np.full(len(ELEMENT_SYMBOLS), -1, dtype=np.int64)
    for i, s in enumerate(vocabulary):
        table[atomic_number(s)] = i
    return table
