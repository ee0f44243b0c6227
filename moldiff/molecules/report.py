"""A one-file HTML report of generated molecules: metrics, depictions and distributions against real data.

:func:`write_report` (``moldiff report samples.sdf --out report.html``) writes one self-contained HTML
file: no network and no script are needed to read it (inline CSS; every picture a PNG embedded as a
base64 ``data:`` URI). It holds

* the metric table of ``moldiff evaluate`` under the chosen protocol
  (:func:`moldiff.molecules.evaluate.evaluate_file`, the same numbers);
* a table of per-molecule properties (:mod:`moldiff.molecules.properties`), samples beside the
  reference: medians of QED, SA score, logP, molecular weight, atoms and rings; fractions with
  PAINS and Brenk alerts;
* the depiction grid of the first molecules (:mod:`moldiff.molecules.draw`);
* matplotlib histograms of atom count, ring count, QED and the lengths of the four most common
  bond kinds of the reference (element pair and order, e.g. ``C-H``, ``C=O``, ``C:C`` aromatic),
  samples against the reference;
* the per-molecule table itself (the first rows).

The reference is a fixed random subset of QM9's training split (``reference_size`` molecules,
default 2,000, drawn with ``numpy.random.default_rng(seed)``), with the bonds and formal charges of
:mod:`moldiff.molecules.bond_data` (derived for those molecules only); its summary is cached in
:func:`moldiff.hub.cache_dir`. Or any SDF file (``reference="mols.sdf"``), read with its own bonds
(a random subset of the same size when it holds more). The reference is real data, so its bonds are
its own whatever the samples' protocol.

matplotlib is an optional extra (``pip install 'moldiff[report]'``); without it the report stops
with a one-line message saying so.
"""

from __future__ import annotations

import base64
import html
import io
import os
import time
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from moldiff import __version__
from moldiff._optional import require
from moldiff.errors import InputError
from moldiff.files import atomic_write
from moldiff.hub import cache_dir as _cache_dir
from moldiff.train.checkpoint import save_npz_atomic

from .bond_data import BondedQM9Dataset, derive_bonded_arrays
from .bond_metrics import BOND_METRIC_KEYS
from .draw import depiction_grid, legend_texts, parse_legend
from .evaluate import evaluate_file, read_bonded_sdf
from .metrics import METRIC_KEYS
from .properties import (
    PROPERTY_NAMES,
    format_value,
    molecule_table,
    read_scored_items,
    sa_unavailable_reason,
    scored_molecule,
)
from .qm9 import edm_split_indices, load_qm9

__all__ = ["bond_lengths", "build_report", "reference_summary", "summary_of", "write_report"]

#: Bumped when the cached reference summary changes meaning.
REFERENCE_VERSION = 1
#: The per-molecule columns a summary keeps (numbers; ``None`` becomes NaN).
SUMMARY_COLUMNS = ("valid", "num_atoms", "heavy_atoms", "qed", "sa", "logp", "mw", "rings", "pains", "brenk")
_BOND_CHARS = {1: "-", 2: "=", 3: "#", 12: ":"}

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; background: #fff; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 1.6em; }
p.meta { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f2f2f2; }
td.text, th.text { text-align: left; }
div.scroll { overflow-x: auto; }
table.molecules td { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.85em; }
img { max-width: 100%; height: auto; }
img.grid { border: 1px solid #ddd; }
figure { display: inline-block; margin: 0.5em 1em 0.5em 0; vertical-align: top; }
figcaption { color: #555; font-size: 0.9em; }
.note { color: #8a5300; }
"""


# ------------------------------------------------------------------------------------------------
# summaries: per-molecule columns and bond lengths


def bond_lengths(mol) -> dict[str, list[float]]:
    """Bond lengths of an RDKit molecule with a 3D conformer, grouped by kind: the two elements in
    alphabetical order around the bond's order (``C-H``, ``C=O``, ``C#N``, ``C:C`` aromatic), Å."""
    if not mol.GetNumConformers():
        return {}
    pos = mol.GetConformer().GetPositions()
    out: dict[str, list[float]] = {}
    for b in mol.GetBonds():
        i, j = b.GetBeginAtomIdx(), b.GetEndAtomIdx()
        a, c = sorted((mol.GetAtomWithIdx(i).GetSymbol(), mol.GetAtomWithIdx(j).GetSymbol()))
        order = 12 if b.GetIsAromatic() else int(round(b.GetBondTypeAsDouble()))
        key = f"{a}{_BOND_CHARS.get(order, '~')}{c}"
        out.setdefault(key, []).append(float(np.linalg.norm(pos[i] - pos[j])))
    return out


def summary_of(items: Sequence[Any], bonds: str, rows: Sequence[dict] | None = None) -> dict[str, np.ndarray]:
    """The arrays a report plots for a set of molecules: :data:`SUMMARY_COLUMNS` (float, NaN where no
    value) and ``bond_kinds`` / ``bond_lengths`` (one entry per bond of the protocol's molecules).
    ``rows``: their property rows, when already computed."""
    if rows is None:
        rows = molecule_table(items, bonds, [n for n in PROPERTY_NAMES if n in SUMMARY_COLUMNS])
    out = {
        c: np.array([np.nan if r[c] is None else float(r[c]) for r in rows], dtype=np.float64) for c in SUMMARY_COLUMNS
    }
    kinds, lengths = [], []
    for item in items:
        for kind, values in bond_lengths(scored_molecule(item, bonds)).items():
            kinds.extend([kind] * len(values))
            lengths.extend(values)
    out["bond_kinds"] = np.array(kinds, dtype=str)
    out["bond_lengths"] = np.array(lengths, dtype=np.float64)
    return out


def _subset(count: int, size: int, seed: int) -> np.ndarray:
    if count <= size:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, size, replace=False))


def reference_summary(
    reference: str | os.PathLike | None = None,
    size: int = 2000,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[dict[str, np.ndarray], str]:
    """The summary (:func:`summary_of`) of the reference molecules, and their description.

    Args:
        reference: ``None`` or ``"qm9"`` (QM9's training split from ``qm9pack``, with derived bonds; the
            summary is cached), or an SDF file (its own bonds).
        size: molecules at most (a fixed random subset, ``default_rng(seed)``).
        seed: the subset's seed.
        cache_dir: the cache folder (default: :func:`moldiff.hub.cache_dir`).
    """
    import rdkit

    if size < 1:
        raise InputError(f"the reference size must be at least 1, got {size}")
    if reference is None or str(reference).lower() == "qm9":
        cache = _cache_dir(cache_dir) / (
            f"report_reference_qm9_{size}_seed{seed}_v{REFERENCE_VERSION}_rdkit-{rdkit.__version__}.npz"
        )
        if cache.is_file():
            with np.load(cache) as f:
                summary = {k: f[k] for k in f.files}
        else:
            data = load_qm9("qm9pack", cache_dir=cache_dir)
            train = edm_split_indices(len(data["num_atoms"]))["train"]
            rows = train[_subset(len(train), size, seed)]
            dataset = BondedQM9Dataset("all", arrays=derive_bonded_arrays(data, rows))
            summary = summary_of([dataset[i] for i in range(len(dataset))], "file")
            save_npz_atomic(cache, summary)
        count = len(summary["num_atoms"])
        return summary, f"QM9 training split, {count:,} random molecules (seed {seed}), bonds derived from their SMILES"
    path = Path(reference)
    mols = read_bonded_sdf(path)
    chosen = _subset(len(mols), size, seed)
    described = f"{path.name}, {len(chosen):,} of its {len(mols):,} molecules, their own bonds"
    return summary_of([mols[i] for i in chosen], "file"), described


# ------------------------------------------------------------------------------------------------
# plots


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _figure_png(fig) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _finite(x: np.ndarray) -> np.ndarray:
    return x[np.isfinite(x)]


def _histogram_png(sample: np.ndarray, reference: np.ndarray, title: str, xlabel: str, discrete: bool) -> bytes:
    from matplotlib.figure import Figure

    s, r = _finite(sample), _finite(reference)
    fig = Figure(figsize=(5.0, 3.4))
    ax = fig.add_subplot()
    both = np.concatenate([s, r]) if len(s) + len(r) else np.zeros(1)
    if discrete:
        lo, hi = int(np.floor(both.min())), int(np.ceil(both.max()))
        edges = np.arange(lo, hi + 2) - 0.5
    else:
        lo, hi = float(both.min()), float(both.max())
        edges = np.linspace(lo, hi if hi > lo else lo + 1.0, 31)
    for values, label, color in ((r, f"reference ({len(r):,})", "#9aa7b8"), (s, f"samples ({len(s):,})", "#d9534f")):
        if len(values):
            weights = np.full(len(values), 1.0 / len(values))
            kind = "stepfilled" if color == "#9aa7b8" else "step"
            ax.hist(
                values, bins=edges, weights=weights, histtype=kind, color=color, label=label, linewidth=1.8, alpha=0.9
            )
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction of molecules")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return _figure_png(fig)


def _bond_lengths_png(sample: dict, reference: dict, kinds: Sequence[str]) -> bytes:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8.0, 5.6))
    for k, kind in enumerate(kinds):
        ax = fig.add_subplot(2, 2, k + 1)
        r = reference["bond_lengths"][reference["bond_kinds"] == kind]
        s = sample["bond_lengths"][sample["bond_kinds"] == kind]
        both = np.concatenate([r, s])
        edges = np.linspace(both.min() - 0.02, both.max() + 0.02, 41)
        if len(r):
            ax.hist(
                r, bins=edges, density=True, histtype="stepfilled", color="#9aa7b8", label=f"reference ({len(r):,})"
            )
        if len(s):
            ax.hist(
                s,
                bins=edges,
                density=True,
                histtype="step",
                color="#d9534f",
                linewidth=1.8,
                label=f"samples ({len(s):,})",
            )
        ax.set_title(f"{kind} bonds")
        ax.set_xlabel("length (Å)")
        ax.set_ylabel("density")
        ax.legend(frameon=False, fontsize=7)
    fig.tight_layout()
    return _figure_png(fig)


# ------------------------------------------------------------------------------------------------
# HTML


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], css: str, text_columns: Sequence[int] = (0,)) -> str:
    def cell(tag: str, k: int, value: Any) -> str:
        cls = ' class="text"' if k in text_columns else ""
        return f"<{tag}{cls}>{html.escape(str(value))}</{tag}>"

    head = "".join(cell("th", k, h) for k, h in enumerate(header))
    body = "\n".join("<tr>" + "".join(cell("td", k, v) for k, v in enumerate(row)) + "</tr>" for row in rows)
    return f'<table class="{css}">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>'


def _metric_rows(result: dict[str, Any]) -> list[tuple[str, str]]:
    keys = BOND_METRIC_KEYS if result.get("bonds") == "file" else METRIC_KEYS
    rows = []
    for key in keys:
        value = result.get(key)
        if key == "num_molecules":
            rows.append((key, f"{value:,}"))
        else:
            rows.append((key, "-" if value is None else f"{100 * value:.2f} %"))
    return rows


def _median(x: np.ndarray) -> str:
    x = _finite(x)
    return f"{np.median(x):.3g}" if len(x) else "-"


def _fraction(x: np.ndarray) -> str:
    x = _finite(x)
    return f"{100 * np.mean(x > 0):.1f} %" if len(x) else "-"


def _summary_rows(sample: dict, reference: dict) -> list[tuple[str, str, str]]:
    rows = []
    for key, what in (
        ("qed", "QED, median"),
        ("sa", "SA score, median"),
        ("logp", "logP, median"),
        ("mw", "molecular weight, median (g/mol)"),
        ("num_atoms", "atoms, median"),
        ("rings", "rings, median"),
    ):
        rows.append((what, _median(sample[key]), _median(reference[key])))
    rows.append(("valid", _fraction(sample["valid"]), _fraction(reference["valid"])))
    rows.append(("with a PAINS alert (of the valid)", _fraction(sample["pains"]), _fraction(reference["pains"])))
    rows.append(("with a Brenk alert (of the valid)", _fraction(sample["brenk"]), _fraction(reference["brenk"])))
    return rows


def build_report(
    path: str | os.PathLike,
    *,
    bonds: Literal["edm", "rdkit", "file"] = "edm",
    reference: str | os.PathLike | None = None,
    reference_size: int = 2000,
    seed: int = 0,
    training_smiles: Any = None,
    legend: str | Sequence[str] | None = None,
    max_draw: int = 30,
    per_row: int = 6,
    max_rows: int = 200,
    on_error: Literal["raise", "skip"] = "raise",
    cache_dir: str | os.PathLike | None = None,
) -> str:
    """The HTML text of the report of a samples file (see the module docstring).

    Args:
        path: the samples (SDF, XYZ or a folder, as ``moldiff evaluate`` reads them).
        bonds: the protocol of the metrics, properties, drawings and sample bond lengths.
        reference: ``None`` / ``"qm9"`` or an SDF file (:func:`reference_summary`).
        reference_size, seed: the reference subset.
        training_smiles: reference SMILES for novelty (as ``moldiff evaluate --training-smiles``).
        legend: the depictions' legends (property names; default the SMILES).
        max_draw, per_row: molecules drawn and drawings per row.
        max_rows: rows of the per-molecule table shown.
        on_error: skip bad SDF records or stop.
        cache_dir: the cache of the QM9 reference.

    Raises:
        MissingPackageError: matplotlib is not installed.
    """
    require("matplotlib", extra="report", purpose="moldiff report")
    start = time.perf_counter()
    names = parse_legend(legend)
    result = evaluate_file(path, training_smiles=training_smiles, bonds=bonds, on_error=on_error)
    items = read_scored_items(path, bonds, on_error)
    rows = molecule_table(items, bonds)
    sample = summary_of(items, bonds, rows)
    ref, ref_text = reference_summary(reference, reference_size, seed, cache_dir)

    drawn = items[:max_draw]
    grid = depiction_grid(
        [scored_molecule(m, bonds) for m in drawn], legend_texts(rows[: len(drawn)], names), per_row=per_row, size=220
    )
    kinds_ref, counts = np.unique(ref["bond_kinds"], return_counts=True)
    kinds = [str(k) for k in kinds_ref[np.argsort(-counts, kind="stable")][:4]]
    plots = [
        (
            _histogram_png(sample["num_atoms"], ref["num_atoms"], "Atoms per molecule", "atoms (with H)", True),
            "atom count",
        ),
        (_histogram_png(sample["rings"], ref["rings"], "Rings per valid molecule", "rings (SSSR)", True), "ring count"),
        (_histogram_png(sample["qed"], ref["qed"], "QED of the valid molecules", "QED", False), "QED"),
    ]
    if kinds:
        plots.append((_bond_lengths_png(sample, ref, kinds), "bond lengths of the four most common bond kinds"))

    notes = []
    reason = sa_unavailable_reason()
    if reason:
        notes.append(f"SA score missing: {reason}.")
    if result.get("skipped"):
        notes.append(f"skipped records: {result['skipped']}.")
    source = html.escape(str(path))
    shown = rows[:max_rows]
    table_rows = [[format_value(n, r[n]) for n in PROPERTY_NAMES] for r in shown]
    text_columns = [PROPERTY_NAMES.index(n) for n in ("smiles", "pains_alerts", "brenk_alerts")]
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>moldiff report: {html.escape(Path(path).name)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        "<h1>moldiff report</h1>",
        f'<p class="meta">{source}: {len(items):,} molecules; protocol: {html.escape(result["protocol"])}; '
        f"reference: {html.escape(ref_text)}; moldiff {html.escape(__version__)}</p>",
        *[f'<p class="note">{html.escape(n)}</p>' for n in notes],
        "<h2>Metrics</h2>",
        _table(["metric", "samples"], _metric_rows(result), "metrics"),
        "<h2>Properties</h2>",
        _table(["property", "samples", "reference"], _summary_rows(sample, ref), "summary"),
        f"<h2>Molecules (the first {len(drawn)})</h2>",
        f'<img class="grid" src="{_png_uri(grid)}" alt="2D depictions of the first {len(drawn)} molecules">',
        "<h2>Distributions: samples against the reference</h2>",
        *[
            f'<figure><img class="plot" src="{_png_uri(png)}" alt="{html.escape(what)}">'
            f"<figcaption>{html.escape(what)}</figcaption></figure>"
            for png, what in plots
        ],
        f"<h2>Per molecule (the first {len(shown)} of {len(rows):,})</h2>",
        '<div class="scroll">',
        _table(list(PROPERTY_NAMES), table_rows, "molecules", text_columns),
        "</div>",
        f'<p class="meta">written in {time.perf_counter() - start:.1f} s</p>',
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"


def write_report(path: str | os.PathLike, out: str | os.PathLike, **options) -> Path:
    """Write :func:`build_report` of ``path`` to ``out`` atomically (the command checks ``--overwrite``
    before). ``options`` are :func:`build_report`'s."""
    text = build_report(path, **options)
    return atomic_write(out, lambda tmp: tmp.write_text(text, encoding="utf-8"))
