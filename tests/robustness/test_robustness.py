"""Each hostile input or fault of the suite ends as it must: a one-line error naming the file, record,
option or key with exit status 2, or a correct result; and no earlier file is damaged."""

from __future__ import annotations

import pytest

from .cases import CASES


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(case, tmp_path):
    outcome = case.run(tmp_path)
    assert outcome.kind == case.expected, f"[{case.category}] {case.name}: {outcome.kind}: {outcome.detail}"


def test_every_category_of_the_issue_is_covered():
    categories = {c.category for c in CASES}
    wanted = {
        "malformed SDF",
        "malformed XYZ",
        "malformed PDB",
        "malformed mmCIF",
        "binary SDF",
        "binary PDB",
        "gzip",
        "NaN/inf",
        "empty",
        "single atom",
        "unknown elements",
        "huge values",
        "bad contigs",
        "bad CLI numbers",
        "bad configs",
        "truncated checkpoints",
        "foreign checkpoints",
        "malicious checkpoints",
        "full disk",
        "kill -9",
        "concurrent runs",
        "outputs",
        "header injection",
        "fragments",
    }
    assert wanted <= categories, sorted(wanted - categories)
