"""RFdiffusion-style contigs: parsing, errors, sampling and the motif mapping."""

from __future__ import annotations

import numpy as np
import pytest

from moldiff.proteins.contig import ContigError, parse_contig


def test_parse_and_layout():
    c = parse_contig("10-20/A15-30/10-20")
    assert [s.kind for s in c.segments] == ["scaffold", "motif", "scaffold"]
    assert c.motif_length == 16 and c.length_range == (36, 56)
    layout = c.sample(0)
    assert 36 <= layout.length <= 56 and layout.motif_mask.sum() == 16
    first = layout.lengths[0]
    mapping = layout.motif_mapping
    assert mapping[0] == {"chain": "A", "residue": 15, "design_index": first + 1}
    assert mapping[-1]["residue"] == 30 and np.flatnonzero(layout.motif_mask)[0] == first
    assert str(layout).split("/")[1] == "A15-30"


def test_variants_and_fixed_length():
    c = parse_contig("[5/A10/B3-8/0-4]")
    assert [str(s) for s in c.segments] == ["5", "A10", "B3-8", "0-4"]
    assert c.sample(1, length=13).length == 13
    assert parse_contig("10-20/A15-30/10-20").sample(2, length=(40, 42)).length in (40, 41, 42)


@pytest.mark.parametrize(
    "text, words",
    [
        ("", "empty contig"),
        ("10-20//5", "empty segment"),
        ("20-10/A1-5", "reversed"),
        ("10/A9-3", "reversed"),
        ("10/AB1-5", "expected a length range"),
        ("10-x/A1-5", "expected a length range"),
        ("A1-50/0 B1-50", "chain breaks"),
        ("0/0-0", "no residues"),
    ],
)
def test_errors(text, words):
    with pytest.raises(ContigError, match=words):
        parse_contig(text)


def test_impossible_length():
    with pytest.raises(ContigError, match="impossible"):
        parse_contig("10-20/A15-30/10-20").sample(0, length=100)
