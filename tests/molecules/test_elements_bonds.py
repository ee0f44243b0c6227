import numpy as np
import pytest
import torch

from moldiff.molecules import bonds, elements
from moldiff.molecules.bonds import atom_stability, edm_bond_matrix, edm_bond_order


def test_element_round_trip_and_errors():
    assert elements.atomic_number("Cl") == 17
    assert elements.atomic_number("BR") == 35
    assert elements.element_symbol(53) == "I"
    assert [elements.element_symbol(z) for z in range(1, 119)] == list(elements.ELEMENT_SYMBOLS[1:])
    assert elements.QM9_ATOM_TYPES == ("H", "C", "N", "O", "F")
    with pytest.raises(elements.UnknownElementError, match="Xx"):
        elements.atomic_number("Xx")
    with pytest.raises(elements.UnknownElementError, match="0"):
        elements.element_symbol(0)
    assert elements.vocabulary_from_atomic_numbers(np.array([17, 1, 6, 6, 1])) == ("H", "C", "Cl")


def test_edm_thresholds_and_margins():
    # C-C: single below 154+10, double below 134+5, triple below 120+3 (pm)
    assert edm_bond_order("C", "C", 1.639) == 1
    assert edm_bond_order("C", "C", 1.641) == 0
    assert edm_bond_order("C", "C", 1.389) == 2
    assert edm_bond_order("C", "C", 1.229) == 3
    assert edm_bond_order("C", "F", 1.20) == 1  # no double length for C-F
    assert edm_bond_order("O", "O", 1.2) == 2
    assert edm_bond_order("H", "Cl", 1.3) == 1  # extension table
    assert edm_bond_order("Se", "C", 1.0) == 0  # untabulated pair never bonds
    assert bonds.ALLOWED_VALENCES["S"] == (2, 4, 6)
    assert bonds.ALLOWED_VALENCES["P"] == (3, 5)


def test_bond_matrix_matches_scalar_rule_numpy_and_torch():
    rng = np.random.default_rng(0)
    z = rng.choice([1, 6, 7, 8, 9, 16, 17], size=12)
    pos = rng.normal(scale=1.2, size=(12, 3))
    m = edm_bond_matrix(z, pos)
    symbols = elements.element_symbols(z)
    for i in range(12):
        for j in range(12):
            expected = 0 if i == j else edm_bond_order(symbols[i], symbols[j], np.linalg.norm(pos[i] - pos[j]))
            assert m[i, j] == expected
    mt = edm_bond_matrix(torch.as_tensor(z), torch.as_tensor(pos))
    assert isinstance(mt, torch.Tensor) and torch.equal(mt, torch.as_tensor(m))
    np.testing.assert_array_equal(
        atom_stability(z, pos), atom_stability(torch.as_tensor(z), torch.as_tensor(pos)).numpy()
    )


def test_atom_stability_of_a_real_molecule(acetaldehyde):
    z, pos = acetaldehyde
    m = edm_bond_matrix(z, pos)
    assert m[1, 2] == 2  # C=O
    assert m.sum(1).tolist() == [4, 4, 2, 1, 1, 1, 1]
    assert atom_stability(z, pos).all()
    n_stable, n, stable = bonds.molecule_stability(z[:-1], pos[:-1])  # drop one H: its carbon has valence 3
    assert (n_stable, n, stable) == (5, 6, False)
