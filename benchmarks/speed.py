"""Speed of EDM's QM9 model in moldiff: training step, denoiser call, sampling, large systems.

Everything runs EDM's architecture (Hoogeboom et al. 2022, App. B; ``shared/reference.md``): a
9 x 256 EGNN with attention and tanh coordinate updates inside :class:`MoleculeDiffusion`
(eps-prediction, ``polynomial_2`` schedule, ``T = 1000``), on a batch of 64 molecules whose sizes
are drawn, with a fixed seed, from QM9's training histogram (atom types from QM9's H/C/N/O/F
frequencies, random coordinates; with fully connected graphs the cost does not depend on them).

Sections (``--sections``, default all):

* ``train``: one optimiser step of the training engine (:meth:`moldiff.train.Trainer.train_step`:
  EDM's loss, backward, gradient norm and adaptive clipping, AdamW, EMA update);
* ``denoiser``: one call of the model's denoiser under ``torch.no_grad`` (what a sampler pays per
  network evaluation);
* ``sampling``: ``--num-molecules`` molecules sampled with ``--sampler`` for ``--measure-steps``
  steps, timed step by step; the cost per molecule at ``--steps`` steps is the median step time x
  steps / molecules (the network's cost does not depend on the step, so this is exact up to the
  one-off initial noise and decoding), printed with its arithmetic;
* ``large``: one system of 250 ... 2,000 atoms (uniform density ``--density``) with full, radius
  and k-nearest-neighbour graphs; each configuration runs in its own subprocess, which reports
  its time and its peak resident memory above the level just before the calls (on Linux the
  high-water mark is reset there and read back, ``VmHWM - VmRSS``; elsewhere the ``ru_maxrss``
  delta; on CUDA also the peak of ``torch.cuda.max_memory_allocated``), with glibc's mmap threshold
  fixed at 1 MiB (``MALLOC_MMAP_THRESHOLD_``) so that the peak follows the live tensors rather
  than the allocator's retained heap. Full graphs above ``--full-max-atoms`` are not
  run; their row is an estimate scaled by the number of edges, and says so.

Times are medians over ``--repeats`` runs after ``--warmup``; wall-clock and process CPU time (all
threads) are both reported, with the number of threads, the device and the load average (the
machine may be shared: CPU time is the robust figure, and one thread keeps it cleanest). On CUDA,
``train`` and ``sampling`` also report molecules per second, for bf16 autocast and
``torch.compile`` on and off (``--bf16`` / ``--compile``; both variants by default there).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/speed.py --threads 1                 # everything, CPU
    python benchmarks/speed.py --sections train denoiser --repeats 5
    python benchmarks/speed.py --sections sampling --num-molecules 64 --measure-steps 10 --steps 100
    python benchmarks/speed.py --sections large --atoms 250 500 1000 2000
    python benchmarks/speed.py --device cuda                                 # + bf16 / compile variants

The last line of output is one JSON object with every figure (also written to ``--out``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from _report import print_record  # benchmarks/_report.py, beside this script

# QM9 training split with hydrogens (EDM split, 100,000 molecules): molecule sizes and atom counts.
QM9_NUM_ATOMS_HISTOGRAM = {
    3: 1, 4: 4, 5: 5, 6: 9, 7: 16, 8: 49, 9: 124, 10: 362, 11: 807, 12: 1689, 13: 3060, 14: 5136,
    15: 7796, 16: 10644, 17: 13025, 18: 13364, 19: 13832, 20: 9482, 21: 9970, 22: 3393, 23: 4848,
    24: 539, 25: 1506, 26: 48, 27: 266, 29: 25,
}
QM9_ATOM_TYPES = ["H", "C", "N", "O", "F"]
QM9_ATOMIC_NUMBERS = [1, 6, 7, 8, 9]
QM9_ATOM_COUNTS = [923099, 635559, 101476, 140202, 2323]

# EDM's reference code on this machine type (2 cores, 2 threads), shared/reference.md.
EDM_CPU_REFERENCE = {
    "train_step": {"wall_s": 15.3, "cpu_s": 29.9},
    "denoiser_call": {"wall_s": 7.29, "cpu_s": 13.9},
    "sampling_per_molecule_100_steps": {"wall_s": 947 / 64, "cpu_s": 1558 / 64},
}

SECTIONS = ("train", "denoiser", "sampling", "large")


# ------------------------------------------------------------------------------------------------
# inputs and timing
# ------------------------------------------------------------------------------------------------
def qm9_stats() -> dict:
    """The dataset statistics :class:`MoleculeDiffusion` needs, for QM9 with hydrogens."""
    return {"atom_types": QM9_ATOM_TYPES, "atomic_numbers": QM9_ATOMIC_NUMBERS,
            "num_atoms_histogram": dict(QM9_NUM_ATOMS_HISTOGRAM)}


def qm9_like_molecules(num: int, seed: int = 0) -> list:
    """``num`` :class:`MoleculeGraph` with QM9's size and atom-type distributions (seeded)."""
    from moldiff.molecules.graph import MoleculeGraph

    g = torch.Generator().manual_seed(seed)
    sizes = list(QM9_NUM_ATOMS_HISTOGRAM)
    size_probs = torch.tensor([QM9_NUM_ATOMS_HISTOGRAM[n] for n in sizes], dtype=torch.float64)
    type_probs = torch.tensor(QM9_ATOM_COUNTS, dtype=torch.float64)
    z = torch.tensor(QM9_ATOMIC_NUMBERS)
    out = []
    for i in torch.multinomial(size_probs, num, replacement=True, generator=g).tolist():
        n = sizes[i]
        types = torch.multinomial(type_probs, n, replacement=True, generator=g)
        pos = torch.randn(n, 3, generator=g) * 1.5
        out.append(MoleculeGraph(pos=pos, atomic_numbers=z[types], atom_types=types))
    return out


def build_model(hidden: int, layers: int, device: str):
    from moldiff.molecules.model import MoleculeDiffusion, MoleculeModelConfig

    return MoleculeDiffusion(MoleculeModelConfig(hidden=hidden, layers=layers), qm9_stats()).to(device)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device: str) -> tuple[float, float]:
    """``(wall, cpu)`` seconds of one call (CPU time of the whole process, all threads)."""
    _sync(device)
    w, c = time.perf_counter(), time.process_time()
    fn()
    _sync(device)
    return time.perf_counter() - w, time.process_time() - c


def measure(fn, repeats: int, warmup: int, device: str) -> dict:
    """Medians of wall and CPU time over ``repeats`` calls after ``warmup`` calls."""
    for _ in range(warmup):
        fn()
    runs = [timed(fn, device) for _ in range(repeats)]
    return {"wall_s": statistics.median(r[0] for r in runs), "cpu_s": statistics.median(r[1] for r in runs),
            "wall_all_s": [round(r[0], 4) for r in runs], "cpu_all_s": [round(r[1], 4) for r in runs],
            "repeats": repeats, "warmup": warmup}


def _autocast(device: str, bf16: bool):
    return torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=bf16)


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _fmt(m: dict) -> str:
    return f"wall {m['wall_s']:.3f} s, CPU {m['cpu_s']:.3f} s"


# ------------------------------------------------------------------------------------------------
# sections
# ------------------------------------------------------------------------------------------------
def bench_train(args, molecules, bf16: bool, compile_: bool) -> dict:
    """One optimiser step of :class:`Trainer` on the benchmark batch (EDM's optimiser settings)."""
    from moldiff.molecules.graph import collate_molecules
    from moldiff.molecules.training_data import MoleculeDataConfig
    from moldiff.train.config import ExperimentConfig, TrainConfig
    from moldiff.train.loop import Trainer
    from moldiff.train.tasks import TaskBundle

    model = build_model(args.hidden, args.layers, args.device)
    with tempfile.TemporaryDirectory() as tmp:
        tc = TrainConfig(steps=1_000_000, batch_size=len(molecules), lr=1e-4, ema_decay=0.9999, clip="adaptive",
                         clip_value=1.0, precision="bf16" if bf16 else "fp32", compile=compile_,
                         device="cuda" if args.device.startswith("cuda") else "cpu", out_dir=tmp, progress=False,
                         seed=args.seed)
        config = ExperimentConfig(task="molecules", model=model.config, data=MoleculeDataConfig(), train=tc)
        bundle = TaskBundle(model=model, train_dataset=molecules, collate_fn=collate_molecules,
                            dataset_stats=model.stats)
        trainer = Trainer(config, bundle=bundle, out_dir=tmp)
        batch = collate_molecules(molecules)
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        result = measure(lambda: trainer.train_step([batch]), args.repeats, args.warmup, args.device)
    result["molecules_per_s"] = len(molecules) / result["wall_s"]
    if args.device.startswith("cuda"):
        result["peak_gpu_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def bench_denoiser(args, model, molecules, bf16: bool) -> dict:
    """One denoiser call ``D(x, sigma)`` under ``torch.no_grad``, as a sampler makes it."""
    from moldiff.core import molecule_space
    from moldiff.molecules.graph import collate_molecules

    b = collate_molecules(molecules).to(args.device)
    g = torch.Generator(args.device).manual_seed(args.seed)
    x0 = model.encode(b.pos, b.atom_types, b.batch, b.num_graphs)
    space = molecule_space(b.batch, model.feature_width, b.num_graphs, dtype=x0.dtype)
    sigma = torch.rand(b.num_graphs, generator=g, device=args.device, dtype=x0.dtype) * 2 + 0.05
    x = x0 + sigma[b.batch, None] * space.randn(generator=g)
    extra = {"batch": b.batch, "num_graphs": b.num_graphs}

    def call():
        with torch.no_grad(), _autocast(args.device, bf16):
            model.denoiser(x, sigma, **extra)

    return measure(call, args.repeats, args.warmup, args.device)


def bench_sampling(args, model, molecules, bf16: bool) -> dict:
    """``--measure-steps`` sampler steps on ``--num-molecules`` molecules, timed per step."""
    from moldiff.core import count_denoiser_calls, sampling_sigmas

    sizes = torch.tensor([m.num_atoms for m in molecules])
    num, steps, measured = len(molecules), args.steps, args.measure_steps or args.steps
    _, _, grid = model.sampling_defaults(args.sampler, grid=args.grid)
    marks = []

    def callback(_info):
        _sync(args.device)
        marks.append((time.perf_counter(), time.process_time()))

    def run():
        marks.clear()
        marks.append((time.perf_counter(), time.process_time()))
        g = torch.Generator(args.device).manual_seed(args.seed)
        with _autocast(args.device, bf16):
            model.sample_states(sizes, sampler=args.sampler, steps=measured, grid=grid, generator=g,
                                callback=callback, device=args.device)

    for _ in range(args.warmup if args.device.startswith("cuda") else 0):  # CUDA / compile warm-up
        run()
    total_wall, total_cpu = timed(run, args.device)
    step_wall = [b[0] - a[0] for a, b in zip(marks, marks[1:])]
    step_cpu = [b[1] - a[1] for a, b in zip(marks, marks[1:])]
    nfe_measured = count_denoiser_calls(args.sampler, sampling_sigmas(model.schedule, measured, grid))
    nfe_target = count_denoiser_calls(args.sampler, sampling_sigmas(model.schedule, steps, grid))
    per_step_wall, per_step_cpu = statistics.median(step_wall), statistics.median(step_cpu)
    per_mol_wall = per_step_wall * steps / num
    per_mol_cpu = per_step_cpu * steps / num
    return {
        "sampler": args.sampler, "grid": grid, "num_molecules": num, "atoms": int(sizes.sum()), "measured_steps": measured,
        "measured_nfe": nfe_measured, "total_wall_s": total_wall, "total_cpu_s": total_cpu,
        "step_wall_s": per_step_wall, "step_cpu_s": per_step_cpu,
        "step_wall_all_s": [round(v, 4) for v in step_wall], "step_cpu_all_s": [round(v, 4) for v in step_cpu],
        "steps": steps, "nfe": nfe_target,
        "per_molecule_wall_s": per_mol_wall, "per_molecule_cpu_s": per_mol_cpu,
        "molecules_per_s": 1.0 / per_mol_wall,
        "extrapolated": measured != steps,
        "arithmetic": (f"median step {per_step_wall:.3f} s wall / {per_step_cpu:.3f} s CPU (of {measured} measured "
                       f"steps, {num} molecules) x {steps} steps / {num} molecules = {per_mol_wall:.3f} s wall / "
                       f"{per_mol_cpu:.3f} s CPU per molecule at {steps} steps"),
    }


def _random_system(n: int, density: float, seed: int):
    """``n`` atoms uniform in a cube at ``density`` atoms / A^3, EGNN features ``[one-hot/4, Z/10, t]``."""
    g = torch.Generator().manual_seed(seed)
    side = (n / density) ** (1 / 3)
    pos = torch.rand(n, 3, generator=g) * side
    types = torch.multinomial(torch.tensor(QM9_ATOM_COUNTS, dtype=torch.float64), n, replacement=True, generator=g)
    z = torch.tensor(QM9_ATOMIC_NUMBERS)[types].float()
    h = torch.cat([torch.nn.functional.one_hot(types, 5).float() / 4, z[:, None] / 10, torch.full((n, 1), 0.5)], 1)
    return pos, h


def _proc_status_mb(key: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024  # kB
    raise KeyError(key)


def _start_peak_rss() -> tuple[str, float]:
    """Start measuring the peak resident memory above the current level: ``(method, baseline MiB)``.

    On Linux the process's high-water mark is reset to the current RSS (``/proc/self/clear_refs``
    ``5``), so the peak is ``VmHWM - VmRSS``; elsewhere it is the ``ru_maxrss`` delta, which misses
    whatever lies below an earlier, higher peak (imports, model construction).
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return "VmHWM", _proc_status_mb("VmRSS")
    except OSError:
        scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
        return "ru_maxrss", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def _peak_rss_above(method: str, baseline: float) -> float:
    if method == "VmHWM":
        return _proc_status_mb("VmHWM") - baseline
    scale = 1 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20 - baseline


def large_child(cfg: dict) -> dict:
    """One large-system configuration, run in a fresh process (``--child-large``)."""
    from moldiff.nn import EGNNDenoiser

    torch.set_num_threads(cfg["threads"])
    device = cfg["device"]
    torch.manual_seed(cfg["seed"])
    model = EGNNDenoiser(7, 6, hidden=cfg["hidden"], layers=cfg["layers"], edges=cfg["edges"],
                         cutoff=cfg.get("cutoff"), knn=cfg.get("knn")).to(device)
    pos, h = _random_system(cfg["atoms"], cfg["density"], cfg["seed"])
    pos, h = pos.to(device), h.to(device)
    batch = torch.zeros(cfg["atoms"], dtype=torch.long, device=device)
    train = cfg["pass"] == "train"

    def call():
        if train:
            model.zero_grad(set_to_none=True)
            eps_x, eps_h = model(pos, h, batch, 1)
            (eps_x.pow(2).mean() + eps_h.pow(2).mean()).backward()
        else:
            with torch.no_grad():
                model(pos, h, batch, 1)

    # initialise the libraries' lazy state (thread pools, kernels) on a small system, outside the peak
    small_pos, small_h = _random_system(32, cfg["density"], cfg["seed"])
    with torch.no_grad():
        model(small_pos.to(device), small_h.to(device), torch.zeros(32, dtype=torch.long, device=device), 1)
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() / 2**20
    method, base_rss = _start_peak_rss()
    runs = [timed(call, device) for _ in range(cfg["repeats"])]
    peak_rss = _peak_rss_above(method, base_rss)
    out = {"edges_kind": cfg["edges"], "atoms": cfg["atoms"],
           "edges": int(model.build_edges(pos, batch, 1).shape[1]),
           "wall_s": statistics.median(r[0] for r in runs), "cpu_s": statistics.median(r[1] for r in runs),
           "wall_all_s": [round(r[0], 4) for r in runs], "peak_rss_mb": peak_rss, "baseline_rss_mb": base_rss,
           "memory_method": method}
    if device.startswith("cuda"):
        out["peak_gpu_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20 - base
    return out


def bench_large(args) -> list[dict]:
    rows = []
    # glibc keeps freed blocks below its (adaptive) mmap threshold in the heap, so the resident peak
    # of a sparse graph's ~10 MB tensors would measure heap retention; a fixed threshold of 1 MiB
    # returns every large block to the system on free and the peak follows the live tensors
    env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": os.environ.get("MALLOC_MMAP_THRESHOLD_", str(2**20))}
    kinds = [("full", {}), ("radius", {"cutoff": args.cutoff}), ("knn", {"knn": args.knn})]
    for n in args.atoms:
        for kind, opts in kinds:
            if kind not in args.large_edges:
                continue
            if kind == "full" and n > args.full_max_atoms:
                rows.append({"edges_kind": kind, "atoms": n, "edges": n * (n - 1), "skipped": True})
                continue
            cfg = {"atoms": n, "edges": kind, **opts, "hidden": args.hidden, "layers": args.layers,
                   "density": args.density, "seed": args.seed, "repeats": args.large_repeats, "pass": args.large_pass,
                   "threads": torch.get_num_threads(), "device": args.device}
            cmd = [sys.executable, os.path.abspath(__file__), "--child-large", json.dumps(cfg)]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.large_timeout, env=env)
                row = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else {
                    "edges_kind": kind, "atoms": n, "error": f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}"}
            except subprocess.TimeoutExpired:
                row = {"edges_kind": kind, "atoms": n, "error": f"timeout after {args.large_timeout} s"}
            row.update(opts, malloc_mmap_threshold=int(env["MALLOC_MMAP_THRESHOLD_"]))
            rows.append(row)
            _print_large_row(row)
    # full graphs not run: scale the largest measured full row by the number of edges (O(N^2))
    done = [r for r in rows if r["edges_kind"] == "full" and "wall_s" in r]
    if done:
        ref = max(done, key=lambda r: r["atoms"])
        for r in rows:
            if r.get("skipped"):
                f = r["edges"] / ref["edges"]
                r.update({"estimated_from_atoms": ref["atoms"], "wall_s_est": ref["wall_s"] * f,
                          "cpu_s_est": ref["cpu_s"] * f, "peak_rss_mb_est": ref["peak_rss_mb"] * f})
                _print_large_row(r)
    return rows


def _print_large_row(r: dict) -> None:
    extra = f", cutoff {r['cutoff']} A" if "cutoff" in r else f", k = {r['knn']}" if "knn" in r else ""
    head = f"  {r['edges_kind']:>6} {r['atoms']:>5} atoms{extra}:"
    if "error" in r:
        print(f"{head} failed ({r['error']})")
    elif r.get("skipped"):
        if "wall_s_est" in r:
            print(f"{head} not run ({r['edges']:,} edges); est. from {r['estimated_from_atoms']} atoms x edges: "
                  f"wall ~{r['wall_s_est']:.1f} s, CPU ~{r['cpu_s_est']:.1f} s, peak ~{r['peak_rss_mb_est']:.0f} MiB")
    else:
        gpu = f", GPU peak {r['peak_gpu_memory_mb']:.0f} MiB" if "peak_gpu_memory_mb" in r else ""
        print(f"{head} {r['edges']:>9,} edges, wall {r['wall_s']:.3f} s, CPU {r['cpu_s']:.3f} s, "
              f"peak RSS +{r['peak_rss_mb']:.0f} MiB{gpu}")


# ------------------------------------------------------------------------------------------------
def _variants(args) -> list[tuple[bool, bool]]:
    cuda = args.device.startswith("cuda")

    def choice(value: str) -> list[bool]:
        if value == "auto":
            return [False, True] if cuda else [False]
        return {"off": [False], "on": [True], "both": [False, True]}[value]

    bf16s = choice(args.bf16)
    if any(bf16s) and not cuda:
        raise SystemExit("bf16 variants need --device cuda (the training engine runs fp32 on CPU)")
    return [(b, c) for b in bf16s for c in choice(args.compile)]


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=9)
    p.add_argument("--batch-size", type=int, default=64, help="molecules per training step / denoiser call")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bf16", choices=["auto", "off", "on", "both"], default="auto",
                   help="bf16 autocast variants (auto: both on CUDA, off on CPU)")
    p.add_argument("--compile", choices=["auto", "off", "on", "both"], default="auto",
                   help="torch.compile variants of the network (auto: both on CUDA, off on CPU)")
    p.add_argument("--sampler", default="ddpm", help="sampler timed by the sampling section (EDM: ddpm)")
    p.add_argument("--grid", default=None, help="sampler time grid (default: uniform for ddpm, karras otherwise)")
    p.add_argument("--num-molecules", type=int, default=64, help="molecules sampled together")
    p.add_argument("--steps", type=int, default=100, help="steps the sampling cost is reported at")
    p.add_argument("--measure-steps", type=int, default=None,
                   help="steps actually run (default: --steps on CUDA, min(10, --steps) on CPU)")
    p.add_argument("--atoms", type=int, nargs="+", default=[250, 500, 1000, 2000], help="large-system sizes")
    p.add_argument("--large-edges", nargs="+", choices=["full", "radius", "knn"], default=["full", "radius", "knn"])
    p.add_argument("--cutoff", type=float, default=5.0, help="radius graph cutoff (A)")
    p.add_argument("--knn", type=int, default=16, help="neighbours of the kNN graph")
    p.add_argument("--density", type=float, default=0.1, help="atoms per A^3 of the large systems")
    p.add_argument("--large-pass", choices=["forward", "train"], default="forward",
                   help="forward: no_grad call (sampling); train: forward + backward")
    p.add_argument("--large-repeats", type=int, default=3)
    p.add_argument("--full-max-atoms", type=int, default=1000, help="largest system run with a full graph")
    p.add_argument("--large-timeout", type=float, default=900, help="seconds per large-system subprocess")
    p.add_argument("--out", default=None, help="also write the JSON record here")
    p.add_argument("--child-large", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child_large is not None:
        print(json.dumps(large_child(json.loads(args.child_large))))
        return {}
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.measure_steps is None:
        args.measure_steps = args.steps if args.device.startswith("cuda") else min(10, args.steps)
    torch.manual_seed(args.seed)

    molecules = qm9_like_molecules(args.batch_size, args.seed)
    sizes = [m.num_atoms for m in molecules]
    num_edges = sum(n * (n - 1) for n in sizes)
    record = {
        "benchmark": "speed", "device": args.device,
        "device_name": torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else _cpu_name(),
        "threads": torch.get_num_threads(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cpu_count": os.cpu_count(), "torch": torch.__version__, "python": platform.python_version(),
        "loadavg_start": _loadavg(),
        "model": f"EGNN {args.layers}x{args.hidden} (MoleculeDiffusion, EDM QM9 settings)",
        "batch_size": args.batch_size, "batch_atoms": sum(sizes), "batch_max_atoms": max(sizes),
        "batch_edges": num_edges, "seed": args.seed, "edm_cpu_reference": EDM_CPU_REFERENCE,
    }
    print(f"device {record['device_name']} ({args.device}), threads {record['threads']}, torch {torch.__version__}, "
          f"load average {record['loadavg_start']}")
    print(f"batch: {args.batch_size} molecules, {sum(sizes)} atoms (max {max(sizes)}), {num_edges:,} edges")

    variants = _variants(args)
    record["variants"] = []
    for bf16, compile_ in variants:
        tag = f"{'bf16' if bf16 else 'fp32'}{', compiled' if compile_ else ''}"
        entry: dict = {"bf16": bf16, "compile": compile_}
        if "train" in args.sections:
            entry["train_step"] = bench_train(args, molecules, bf16, compile_)
            print(f"[{tag}] training step: {_fmt(entry['train_step'])} (median of {args.repeats}), "
                  f"{entry['train_step']['molecules_per_s']:.2f} molecules/s")
        if "denoiser" in args.sections or "sampling" in args.sections:
            model = build_model(args.hidden, args.layers, args.device).eval()
            if compile_:
                model.network.compile()
            if "denoiser" in args.sections:
                entry["denoiser_call"] = bench_denoiser(args, model, molecules, bf16)
                print(f"[{tag}] denoiser call: {_fmt(entry['denoiser_call'])} (median of {args.repeats})")
            if "sampling" in args.sections:
                s = bench_sampling(args, model, qm9_like_molecules(args.num_molecules, args.seed), bf16)
                entry["sampling"] = s
                label = " (extrapolated from the measured steps)" if s["extrapolated"] else ""
                print(f"[{tag}] sampling ({s['sampler']}, {s['num_molecules']} molecules, {s['atoms']} atoms): "
                      f"{s['arithmetic']}{label}; {s['molecules_per_s']:.3f} molecules/s")
            del model
        record["variants"].append(entry)

    if "large" in args.sections:
        print(f"large systems ({args.large_pass}, {args.layers}x{args.hidden}, density {args.density} atoms/A^3, "
              f"one subprocess each):")
        record["large_systems"] = {"pass": args.large_pass, "density": args.density, "cutoff": args.cutoff,
                                   "knn": args.knn, "rows": bench_large(args)}

    base = next((v for v in record["variants"] if not v["bf16"] and not v["compile"]), None)
    edm_shapes = (args.hidden, args.layers, args.batch_size) == (256, 9, 64)
    if base is not None and edm_shapes and not args.device.startswith("cuda"):
        ratios = {}
        for key, ref_key in (("train_step", "train_step"), ("denoiser_call", "denoiser_call")):
            if key in base:
                ratios[key] = {m: EDM_CPU_REFERENCE[ref_key][m] / base[key][m] for m in ("wall_s", "cpu_s")}
        if "sampling" in base:
            ref = EDM_CPU_REFERENCE["sampling_per_molecule_100_steps"]
            if base["sampling"]["steps"] == 100:
                ratios["sampling_per_molecule_100_steps"] = {
                    "wall_s": ref["wall_s"] / base["sampling"]["per_molecule_wall_s"],
                    "cpu_s": ref["cpu_s"] / base["sampling"]["per_molecule_cpu_s"]}
        record["edm_over_moldiff"] = ratios
        for k, v in ratios.items():
            print(f"EDM / moldiff, {k}: {v['cpu_s']:.1f}x less CPU time, {v['wall_s']:.1f}x less wall time "
                  f"(EDM: 2 threads; moldiff: {record['threads']})")
    record["loadavg_end"] = _loadavg()
    print(f"load average at the end: {record['loadavg_end']}")
    print_record(record, args.out)
    return record


if __name__ == "__main__":
    main()
