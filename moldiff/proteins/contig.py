"""Contigs in RFdiffusion's dialect: which residues of a design are generated and which are a motif.

A contig is a ``/``-separated list of segments, read N- to C-terminus (Watson et al. 2023,
RFdiffusion, ``contigmap.contigs``)::

    10-20/A15-30/10-20     10 to 20 new residues, residues 15..30 of chain A of the motif PDB,
                           then 10 to 20 new residues
    5/A10/B3-8/12          fixed lengths, a one-residue motif, a second motif from chain B

* ``a-b`` or ``a``: a scaffold segment of ``a..b`` (or exactly ``a``) generated residues
  (``0`` is allowed, e.g. ``0-5``);
* ``<chain><start>-<end>`` or ``<chain><n>``: motif residues copied from the PDB, in order.

Square brackets around the whole contig (``[10-20/A15-30/10-20]``) are accepted. Chain breaks
(RFdiffusion's ``/0 `` with a space) are not supported: designs are single chains.

:func:`parse_contig` returns a :class:`Contig`; :meth:`Contig.sample` draws the scaffold lengths
and returns a :class:`ContigLayout` (total length, motif mask, motif residue mapping).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from moldiff.errors import InputError

__all__ = ["ContigError", "Segment", "Contig", "ContigLayout", "parse_contig"]

_SCAFFOLD = re.compile(r"^(\d+)(?:-(\d+))?$")
_MOTIF = re.compile(r"^([A-Za-z])(-?\d+)(?:-(-?\d+))?$")


class ContigError(InputError):
    """A contig string that cannot be parsed, or one that cannot be laid out."""


@dataclass(frozen=True)
class Segment:
    """One contig segment.

    Attributes:
        kind: ``"scaffold"`` (generated residues) or ``"motif"`` (copied residues).
        min_length: fewest residues.
        max_length: most residues (equal to ``min_length`` for motifs).
        chain: motif chain (``None`` for scaffolds).
        start: first motif residue number (``None`` for scaffolds).
        end: last motif residue number, inclusive (``None`` for scaffolds).
    """

    kind: str
    min_length: int
    max_length: int
    chain: str | None = None
    start: int | None = None
    end: int | None = None

    def __str__(self) -> str:
        if self.kind == "motif":
            return f"{self.chain}{self.start}" if self.start == self.end else f"{self.chain}{self.start}-{self.end}"
        return str(self.min_length) if self.min_length == self.max_length else f"{self.min_length}-{self.max_length}"


@dataclass(frozen=True)
class ContigLayout:
    """One concrete design layout drawn from a contig.

    Attributes:
        segments: the contig's segments.
        lengths: the number of residues of each segment.
    """

    segments: tuple[Segment, ...]
    lengths: tuple[int, ...]

    @property
    def length(self) -> int:
        """Total residues of the design."""
        return int(sum(self.lengths))

    @property
    def motif_mask(self) -> np.ndarray:
        """``[length]`` bool, true at motif residues."""
        return np.concatenate(
            [np.full(n, s.kind == "motif") for s, n in zip(self.segments, self.lengths)] + [np.zeros(0, bool)]
        )

    @property
    def motif_mapping(self) -> list[dict]:
        """One entry per motif residue: ``{"chain", "residue" (PDB number), "design_index" (1-based)}``."""
        out, pos = [], 0
        for seg, n in zip(self.segments, self.lengths):
            if seg.kind == "motif":
                out += [{"chain": seg.chain, "residue": seg.start + k, "design_index": pos + k + 1} for k in range(n)]
            pos += n
        return out

    def __str__(self) -> str:
        """The sampled contig, e.g. ``"14/A15-30/11"``."""
        return "/".join(str(n) if s.kind == "scaffold" else str(s) for s, n in zip(self.segments, self.lengths))

    def to_dict(self) -> dict:
        """JSON-ready description: sampled contig, length and motif mapping."""
        return {"sampled_contig": str(self), "length": self.length, "motif_mapping": self.motif_mapping}


@dataclass(frozen=True)
class Contig:
    """A parsed contig (see the module docstring).

    Attributes:
        segments: the segments, N- to C-terminus.
        text: the string it was parsed from.
    """

    segments: tuple[Segment, ...]
    text: str = ""

    @property
    def motif_segments(self) -> list[Segment]:
        return [s for s in self.segments if s.kind == "motif"]

    @property
    def motif_length(self) -> int:
        """Residues copied from the motif PDB."""
        return sum(s.min_length for s in self.motif_segments)

    @property
    def length_range(self) -> tuple[int, int]:
        """``(shortest, longest)`` total design length."""
        return sum(s.min_length for s in self.segments), sum(s.max_length for s in self.segments)

    def sample(
        self,
        rng: np.random.Generator | int | None = None,
        length: int | tuple[int, int] | None = None,
        max_tries: int = 10000,
    ) -> ContigLayout:
        """Draw scaffold segment lengths uniformly within their ranges.

        Args:
            rng: numpy generator or seed.
            length: optional total design length, exact or ``(min, max)`` (RFdiffusion's
                ``contigmap.length``); draws are repeated until it holds.
            max_tries: draws before giving up.

        Raises:
            ContigError: when ``length`` lies outside :attr:`length_range` or no draw meets it.
        """
        rng = np.random.default_rng(rng)
        lo, hi = self.length_range
        if length is not None:
            want = (int(length), int(length)) if np.isscalar(length) else (int(length[0]), int(length[1]))
            if want[1] < lo or want[0] > hi:
                raise ContigError(
                    f"contig {self.text!r} gives {lo}-{hi} residues; length {want[0]}-{want[1]} is impossible"
                )
        for _ in range(max_tries):
            lengths = tuple(int(rng.integers(s.min_length, s.max_length + 1)) for s in self.segments)
            total = sum(lengths)
            if length is None or want[0] <= total <= want[1]:
                if total < 2:
                    raise ContigError(f"contig {self.text!r} gave a design of {total} residue(s); at least 2 needed")
                return ContigLayout(self.segments, lengths)
        raise ContigError(f"no draw of contig {self.text!r} met length {length} in {max_tries} tries")


def parse_contig(text: str) -> Contig:
    """Parse a contig such as ``"10-20/A15-30/10-20"``.

    Raises:
        ContigError: naming the offending segment: empty segments, reversed ranges, chain breaks
            (``/0 ``), segments that are neither ``a-b`` nor ``<chain>a-b``, motif residues listed
            twice, or a contig without any segment.

    Example:
        >>> c = parse_contig("10-20/A15-30/10-20")
        >>> c.motif_length, c.length_range
        (16, (36, 56))
    """
    if not isinstance(text, str):
        raise ContigError(f"a contig must be a string, got {type(text).__name__}")
    body = text.strip()
    if body.startswith("[") and body.endswith("]"):
        body = body[1:-1].strip()
    if not body:
        raise ContigError("empty contig")
    if re.search(r"(^|/)0\s", body):
        raise ContigError(f"contig {text!r}: chain breaks ('/0 ') are not supported; designs are single chains")
    segments = []
    for k, raw in enumerate(body.split("/")):
        part = raw.strip()
        where = f"contig {text!r}, segment {k + 1} ({raw!r})"
        if not part:
            raise ContigError(f"{where}: empty segment (two '/' in a row or a trailing '/')")
        if " " in part:
            raise ContigError(f"{where}: spaces inside a segment (chain breaks are not supported)")
        m = _SCAFFOLD.match(part)
        if m:
            a = int(m.group(1))
            b = int(m.group(2)) if m.group(2) is not None else a
            if b < a:
                raise ContigError(f"{where}: range {a}-{b} is reversed")
            segments.append(Segment("scaffold", a, b))
            continue
        m = _MOTIF.match(part)
        if m:
            chain, a = m.group(1), int(m.group(2))
            b = int(m.group(3)) if m.group(3) is not None else a
            if b < a:
                raise ContigError(f"{where}: motif range {a}-{b} is reversed")
            twice = [s for s in segments if s.kind == "motif" and s.chain == chain and s.start <= b and a <= s.end]
            if twice:
                lo, hi = max(a, twice[0].start), min(b, twice[0].end)
                both = f"{chain}{lo}" + (f"-{hi}" if hi > lo else "")
                raise ContigError(
                    f"{where}: motif residues {both} are already in segment {twice[0]} (each motif residue "
                    "can be placed once: twice would put two design residues on the same coordinates)"
                )
            segments.append(Segment("motif", b - a + 1, b - a + 1, chain, a, b))
            continue
        raise ContigError(f"{where}: expected a length range like '10-20' or a motif like 'A15-30'")
    if all(s.max_length == 0 for s in segments):
        raise ContigError(f"contig {text!r} describes no residues")
    return Contig(tuple(segments), text)
