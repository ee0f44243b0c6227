"""The filter expression language: precedence, chains, three-valued logic, types, errors, and
filtering molecules."""

from __future__ import annotations

import pytest

from moldiff.errors import InputError
from moldiff.molecules import filter_molecules, parse_filter, properties
from moldiff.molecules.filters import FilterError
from moldiff.molecules.properties import PROPERTY_NAMES

Chem = pytest.importorskip("rdkit.Chem")

ROW = {"valid": True, "stable": False, "connected": True, "qed": 0.6, "sa": 3.0, "pains": 0, "brenk": 2, "mw": 150.0}


def truth(expression: str, **row):
    return parse_filter(expression).truth({**ROW, **row})


def test_not_binds_tighter_than_and_and_and_tighter_than_or():
    # or(valid, and(stable, not connected)): True by its first term
    assert truth("valid or stable and not connected") is True
    assert truth("(valid or stable) and not connected") is False
    assert truth("not valid or connected") is True  # (not valid) or connected
    assert truth("not (valid or connected)") is False
    assert truth("not not valid") is True
    assert truth("stable and valid or connected") is True  # (stable and valid) or connected
    assert truth("stable and (valid or connected)") is False
    tree = parse_filter("valid or qed > 0.5 and not pains")._tree
    assert tree[0] == "or" and tree[1][1][0] == "and" and tree[1][1][1][1][0] == "not"


def test_comparisons_chains_counts_and_literals():
    assert truth("qed > 0.5") and not truth("qed >= 0.61") and truth("qed <= 0.6") and truth("qed == 0.6")
    assert truth("0.3 <= qed < 0.8") and not truth("0.3 <= qed < 0.5") and not truth("0.7 < qed < 0.8")
    assert truth("not pains") and truth("brenk") and truth("brenk == 2") and truth("pains = 0")
    assert truth("mw <= 1.5e2") and truth("mw > -1") and truth("sa < 4 and qed != 0.5")
    assert truth("valid == true") and truth("stable = false") and truth("valid != stable")
    assert truth('smiles == "CCO"', smiles="CCO") and truth("smiles != 'C'", smiles="CCO")
    assert truth("valid AND Not stable") is True  # keywords in any case, names in lower case
    assert truth("(((valid)))") is True


def test_missing_values_are_unknown_and_never_pass():
    invalid = {"valid": False, "qed": None, "pains": None}
    assert truth("qed > 0.5", **invalid) is None
    assert truth("not qed > 0.5", **invalid) is None
    assert truth("valid and qed > 0.5", **invalid) is False  # false and unknown
    assert truth("not valid or qed > 0.5", **invalid) is True  # true or unknown
    assert truth("qed > 0.5 or stable", **invalid) is None
    assert truth("not pains", **invalid) is None
    assert truth("0.9 < qed < 0.5", qed=0.7) is False
    f = parse_filter("not qed > 0.5")
    assert f({**ROW, **invalid}) is False and f(ROW) is False and f({**ROW, "qed": 0.2}) is True


def test_the_names_an_expression_reads():
    assert parse_filter("valid and qed > 0.5 and not pains and qed < 0.9").names == ("valid", "qed", "pains")
    assert parse_filter("1 < 2").names == ()


@pytest.mark.parametrize(
    "expression, message",
    [
        ("valid and qed > 0.5 and not pain", "at character 29: unknown name 'pain' (did you mean 'pains'?)"),
        ("qed and valid", "at character 1: qed (a number) is not true or false; compare it, e.g. qed > 0.5"),
        ("not mw", "mw (a number) is not true or false"),
        ("smiles", 'smiles (text) is not true or false; compare it, e.g. smiles == "..."'),
        ("qed >", "at character 6: expected a name, a number or '(' after '>', found the end of the expression"),
        ("(valid", "at character 7: expected ')' to close the '(' at character 1"),
        ("valid)", "at character 6: ')' without a matching '('"),
        ("valid stable", "at character 7: expected 'and', 'or' or the end, found 'stable'"),
        ("valid && stable", "at character 7: unexpected '&' (write 'and')"),
        ("valid || stable", "unexpected '|' (write 'or')"),
        ("!valid", "unexpected '!' (write 'not')"),
        ("smiles > 3", "'>' compares numbers, not smiles (text) and the number 3"),
        ("valid == 1", "'==' cannot compare valid (a bool) with the number 1"),
        ("qed > 'high'", "'>' compares numbers, not qed (a number) and the text 'high'"),
        ("", "the expression is empty"),
        ("   ", "the expression is empty"),
        ("valid or", "expected a name, a number or '(', found the end of the expression"),
        ("__import__('os').system('true')", "at character 17: unexpected '.'"),
        ("__import__('os')", "unknown name '__import__'"),
        ("qed > 0.5; rm", "unexpected ';'"),
        ("VALID", "unknown name 'VALID' (did you mean 'valid'?)"),
    ],
)
def test_bad_expressions_give_one_named_error_listing_the_known_names(expression, message):
    with pytest.raises(FilterError) as caught:
        parse_filter(expression)
    text = str(caught.value)
    assert isinstance(caught.value, InputError)
    assert message in text, text
    assert text.startswith(f"filter {expression!r}")
    assert text.endswith("known names: " + ", ".join(PROPERTY_NAMES))
    assert "\n" not in text


def test_a_filter_needing_a_missing_sa_score_is_refused(monkeypatch):
    monkeypatch.setattr(properties, "_sa", {"module": None, "reason": "no Contrib here (test)"})
    with pytest.raises(FilterError, match="needs the SA score, which is missing here: no Contrib here"):
        filter_molecules([], "valid and sa < 4")
    assert filter_molecules([], "valid and qed > 0.5") == []


def _mol(smiles: str):
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=0)
    return mol


def test_filter_molecules_keeps_the_passing_ones_in_order():
    smiles = ["CCO", "O=C1C(=Cc2ccccc2)SC(=S)N1", "CC(=O)Oc1ccccc1C(=O)O", "c1ccccc1O"]
    mols = [_mol(s) for s in smiles]
    broken = Chem.RWMol(_mol("CCO"))
    broken.AddBond(0, 6, Chem.BondType.SINGLE)  # a pentavalent carbon, a hydrogen with two bonds
    mols.insert(1, broken.GetMol())
    kept = filter_molecules(mols, "valid and not pains")
    assert [Chem.MolToSmiles(Chem.RemoveHs(m)) for m in kept] == [
        Chem.MolToSmiles(Chem.MolFromSmiles(s)) for s in (smiles[0], smiles[2], smiles[3])
    ]
    kept, rows = filter_molecules(mols, "aromatic_rings >= 1 and qed > 0.53", return_rows=True)
    assert len(kept) == len(rows) == 2 and all(r["qed"] > 0.53 for r in rows)
    assert [r["index"] for r in filter_molecules(mols, "not valid", return_rows=True)[1]] == [1]
    assert len(filter_molecules(mols, parse_filter("valid"))) == 4
