"""Speed of moldiff's QM9 model: today's fp32 path against the fast path, side by side, one run.

Every measurement interleaves the variants round by round in one process (the machine may be
shared and noisy: CPU time of the process is the figure to read, ratios are medians of per-round
ratios) at two sizes of EDM's architecture inside :class:`MoleculeDiffusion` (eps-prediction,
``polynomial_2`` schedule, ``T = 1000``): ``4x64`` (the shipped ``qm9`` model,
``configs/qm9_small.yaml``) and ``9x256`` (EDM's QM9 network, 5.34 M parameters), on a batch of 64
molecules whose sizes are drawn with a fixed seed from QM9's training histogram (1,166 atoms,
largest 27; random coordinates: with full graphs the cost does not depend on them).

Variants (``--variants``):

* ``fp32``: today's path, fp32 on the edge list (``EGNNDenoiser(pair_layout="edges")``);
* ``fast``: ``train.precision: bf16`` / ``sample_states(precision="bf16")``: bf16 autocast, which
  on the CPU runs the EGNN's dense per-size pair path in bf16 (:mod:`moldiff.nn.egnn_dense`);
* ablations: ``bf16-edges`` (plain bf16 autocast on the edge list, what the engine could do
  before) and ``fp32-dense`` (the dense layout in fp32).

Sections (``--sections``, default ``train denoiser sampling``):

* ``train``: one optimiser step of the training engine (:meth:`moldiff.train.Trainer.train_step`:
  EDM's loss, backward, gradient norm, adaptive clipping, AdamW, EMA), and the training throughput
  in molecules per CPU-second (and QM9 epochs of 100,000 molecules per CPU-hour);
* ``denoiser``: one call of the model's denoiser under ``torch.no_grad``;
* ``sampling``: ``--measure-steps`` steps of ``--sampler`` on the 64 molecules, timed step by step,
  with the time spent inside the network (a wrapper around the EGNN's ``forward``) so that the
  sampler's overhead outside the network is a share of the step;
* ``ddp``: training items per second (wall clock) with one process and with two data-parallel
  processes (gloo, one thread each, the engine's DDP), ``--ddp-steps`` steps each, at
  ``--ddp-size``; on a shared machine the second process competes with whatever else runs;
* ``profile``: ``torch.profiler`` tables (one thread, ops by self CPU time) of a training step and
  a sampling step of each variant, written as Markdown to ``--profile-out``;
* ``large``: one system of 250 ... 2,000 atoms with full, radius and kNN graphs, each in its own
  subprocess, time and peak memory (``--large-pass forward`` or ``train``).

EDM's own code is not on this machine. ``shared/reference.md`` holds EDM's unmodified modules
measured side by side with moldiff's (turn-2 code) on the project's *Xeon* machine type (one
thread): the ratios printed against them are (a) EDM's Xeon time over our time here (two CPUs:
not side by side), and (b) EDM's side-by-side ratio on the Xeon times our fast path's speed-up over
today's fp32 path here (an estimate of the side-by-side ratio on this machine, assuming EDM's code
and ours at fp32 scale alike between the two CPUs).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/speed.py --threads 1                  # the tables (CPU)
    OMP_NUM_THREADS=1 python benchmarks/speed.py --threads 1 --sections profile --profile-out benchmarks/profiles.md
    OMP_NUM_THREADS=1 python benchmarks/speed.py --threads 1 --sections ddp
    python benchmarks/speed.py --sections large --atoms 250 500 1000 2000
    python benchmarks/speed.py --device cuda --variants fp32 fast          # on a GPU (fast = bf16 autocast)

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
    3: 1,
    4: 4,
    5: 5,
    6: 9,
    7: 16,
    8: 49,
    9: 124,
    10: 362,
    11: 807,
    12: 1689,
    13: 3060,
    14: 5136,
    15: 7796,
    16: 10644,
    17: 13025,
    18: 13364,
    19: 13832,
    20: 9482,
    21: 9970,
    22: 3393,
    23: 4848,
    24: 539,
    25: 1506,
    26: 48,
    27: 266,
    29: 25,
}
QM9_ATOM_TYPES = ["H", "C", "N", "O", "F"]
QM9_ATOMIC_NUMBERS = [1, 6, 7, 8, 9]
QM9_ATOM_COUNTS = [923099, 635559, 101476, 140202, 2323]
QM9_TRAIN_MOLECULES = 100_000

# shared/reference.md: EDM's unmodified modules and moldiff's turn-2 code side by side on the project's
# Xeon machine type (AMX-BF16, AVX512-BF16), one process, one thread, 9 x 256, batch 64 of QM9 sizes;
# CPU seconds, median of 5.
EDM_XEON_REFERENCE = {
    "train_step": {"edm": 20.9, "moldiff_fp32": 3.57},
    "denoiser_call": {"edm": 5.18, "moldiff_fp32": 1.08},
    "sampling_step": {"edm": 7.46, "moldiff_fp32": 1.47},
}

VARIANTS = {  # name: (precision, EGNNDenoiser.pair_layout)
    "fp32": ("fp32", "edges"),
    "fast": ("bf16", "auto"),
    "bf16-edges": ("bf16", "edges"),
    "fp32-dense": ("fp32", "dense"),
}
SECTIONS = ("train", "denoiser", "sampling", "ddp", "profile", "large")


# ------------------------------------------------------------------------------------------------
# inputs and timing
# ------------------------------------------------------------------------------------------------
def qm9_stats() -> dict:
    """The dataset statistics :class:`MoleculeDiffusion` needs, for QM9 with hydrogens."""
    return {
        "atom_types": QM9_ATOM_TYPES,
        "atomic_numbers": QM9_ATOMIC_NUMBERS,
        "num_atoms_histogram": dict(QM9_NUM_ATOMS_HISTOGRAM),
    }


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


def build_model(hidden: int, layers: int, device: str, pair_layout: str = "auto", seed: int = 0):
    """EDM's QM9 model at ``layers x hidden`` (the same weights for every variant: seeded)."""
    from moldiff.molecules.model import MoleculeDiffusion, MoleculeModelConfig

    torch.manual_seed(seed)
    model = MoleculeDiffusion(MoleculeModelConfig(hidden=hidden, layers=layers), qm9_stats()).to(device)
    model.network.net.pair_layout = pair_layout
    return model


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


def interleaved(fns: dict, repeats: int, warmup: int, device: str) -> dict:
    """Each of ``fns`` (name -> callable) once per round, ``warmup`` + ``repeats`` rounds; medians of
    wall and CPU time, and per-round CPU ratios of every variant to the first."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    runs = {name: [] for name in names}
    for _ in range(repeats):
        for name in names:
            runs[name].append(timed(fns[name], device))
    out = {}
    for name in names:
        r = runs[name]
        out[name] = {
            "wall_s": statistics.median(x[0] for x in r),
            "cpu_s": statistics.median(x[1] for x in r),
            "cpu_all_s": [round(x[1], 4) for x in r],
            "repeats": repeats,
            "warmup": warmup,
        }
        out[name]["speedup_cpu"] = statistics.median(a[1] / b[1] for a, b in zip(runs[names[0]], r))
    return out


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


def _sizes(args) -> list[tuple[int, int]]:
    """``["4x64", "9x256"]`` -> ``[(layers, hidden), ...]``."""
    out = []
    for s in args.sizes:
        layers, hidden = s.lower().split("x")
        out.append((int(layers), int(hidden)))
    return out


def _precision_ctx(precision: str, device: str):
    from moldiff.train.precision import precision_autocast

    return precision_autocast(precision, device)


# ------------------------------------------------------------------------------------------------
# sections
# ------------------------------------------------------------------------------------------------
def _trainer(args, model, molecules, precision: str, out_dir: str):
    from moldiff.molecules.graph import collate_molecules
    from moldiff.molecules.training_data import MoleculeDataConfig
    from moldiff.train.config import ExperimentConfig, TrainConfig
    from moldiff.train.loop import Trainer
    from moldiff.train.tasks import TaskBundle

    tc = TrainConfig(
        steps=1_000_000,
        batch_size=len(molecules),
        lr=1e-4,
        ema_decay=0.9999,
        clip="adaptive",
        clip_value=1.0,
        precision=precision,
        device="cuda" if args.device.startswith("cuda") else "cpu",
        out_dir=out_dir,
        progress=False,
        seed=args.seed,
    )
    config = ExperimentConfig(task="molecules", model=model.config, data=MoleculeDataConfig(), train=tc)
    bundle = TaskBundle(model=model, train_dataset=molecules, collate_fn=collate_molecules, dataset_stats=model.stats)
    return Trainer(config, bundle=bundle, out_dir=out_dir)


def bench_train(args, layers: int, hidden: int, molecules, variants: list[str]) -> dict:
    """One optimiser step of :class:`Trainer` per variant, interleaved (EDM's optimiser settings)."""
    from moldiff.molecules.graph import collate_molecules

    batch = collate_molecules(molecules)
    with tempfile.TemporaryDirectory() as tmp:
        fns = {}
        for name in variants:
            precision, layout = VARIANTS[name]
            model = build_model(hidden, layers, args.device, layout, args.seed)
            trainer = _trainer(args, model, molecules, precision, os.path.join(tmp, name))
            fns[name] = (lambda t: lambda: t.train_step([batch]))(trainer)
        out = interleaved(fns, args.repeats, args.warmup, args.device)
    for r in out.values():
        r["molecules_per_cpu_s"] = len(molecules) / r["cpu_s"]
        r["molecules_per_s"] = len(molecules) / r["wall_s"]
        r["qm9_epochs_per_cpu_hour"] = 3600 * r["molecules_per_cpu_s"] / QM9_TRAIN_MOLECULES
    return out


def _noisy_state(args, model, molecules):
    from moldiff.core import molecule_space
    from moldiff.molecules.graph import collate_molecules

    b = collate_molecules(molecules).to(args.device)
    g = torch.Generator(args.device).manual_seed(args.seed)
    x0 = model.encode(b.pos, b.atom_types, b.batch, b.num_graphs)
    space = molecule_space(b.batch, model.feature_width, b.num_graphs, dtype=x0.dtype)
    sigma = torch.rand(b.num_graphs, generator=g, device=args.device, dtype=x0.dtype) * 2 + 0.05
    x = x0 + sigma[b.batch, None] * space.randn(generator=g)
    return x, sigma, {"batch": b.batch, "num_graphs": b.num_graphs}


def bench_denoiser(args, layers: int, hidden: int, molecules, variants: list[str]) -> dict:
    """One call ``D(x, sigma)`` under ``torch.no_grad`` per variant, interleaved."""
    fns = {}
    for name in variants:
        precision, layout = VARIANTS[name]
        model = build_model(hidden, layers, args.device, layout, args.seed).eval()
        x, sigma, extra = _noisy_state(args, model, molecules)

        def call(model=model, x=x, sigma=sigma, extra=extra, precision=precision):
            with torch.no_grad(), _precision_ctx(precision, args.device):
                model.denoiser(x, sigma, **extra)

        fns[name] = call
    return interleaved(fns, args.repeats, args.warmup, args.device)


class _NetworkTimer:
    """Wraps the EGNN's ``forward`` and sums the CPU time spent inside it."""

    def __init__(self, net) -> None:
        self.net, self.inner, self.total = net, net.forward, 0.0

    def __enter__(self):
        def forward(*a, **k):
            c = time.process_time()
            try:
                return self.inner(*a, **k)
            finally:
                self.total += time.process_time() - c

        self.net.forward = forward
        return self

    def __exit__(self, *exc) -> None:
        del self.net.forward


def bench_sampling(args, layers: int, hidden: int, molecules, variants: list[str]) -> dict:
    """``--measure-steps`` steps of ``--sampler`` per variant, timed step by step, interleaved
    (``--sampling-rounds`` rounds), with the share of each step spent outside the network."""
    from moldiff.core import count_denoiser_calls, sampling_sigmas

    sizes = torch.tensor([m.num_atoms for m in molecules])
    models = {name: build_model(hidden, layers, args.device, VARIANTS[name][1], args.seed).eval() for name in variants}
    steps_cpu = {name: [] for name in variants}
    net_cpu = {name: [] for name in variants}
    steps_wall = {name: [] for name in variants}
    any_model = next(iter(models.values()))
    _, _, grid = any_model.sampling_defaults(args.sampler, grid=args.grid)
    for r in range(args.sampling_rounds + int(args.device.startswith("cuda"))):
        for name in variants:
            model = models[name]
            marks = []
            per_step_net = []
            with _NetworkTimer(model.network.net) as timer:

                def callback(_info, timer=timer, marks=marks, per_step_net=per_step_net):
                    _sync(args.device)
                    marks.append((time.perf_counter(), time.process_time()))
                    per_step_net.append(timer.total)

                marks.append((time.perf_counter(), time.process_time()))
                per_step_net.append(0.0)
                g = torch.Generator(args.device).manual_seed(args.seed)
                model.sample_states(
                    sizes,
                    sampler=args.sampler,
                    steps=args.measure_steps,
                    grid=grid,
                    generator=g,
                    callback=callback,
                    device=args.device,
                    precision=VARIANTS[name][0],
                )
            if args.device.startswith("cuda") and r == 0:
                continue  # CUDA warm-up round
            # the first step includes the layout / space building of the run: report the others
            for a, b, na, nb in list(zip(marks, marks[1:], per_step_net, per_step_net[1:]))[1:]:
                steps_wall[name].append(b[0] - a[0])
                steps_cpu[name].append(b[1] - a[1])
                net_cpu[name].append(nb - na)
    out = {}
    nfe = count_denoiser_calls(args.sampler, sampling_sigmas(any_model.schedule, args.steps, grid))
    base = variants[0]
    for name in variants:
        step = statistics.median(steps_cpu[name])
        outside = [(s - n) / s for s, n in zip(steps_cpu[name], net_cpu[name])]
        out[name] = {
            "sampler": args.sampler,
            "grid": grid,
            "num_molecules": len(molecules),
            "atoms": int(sizes.sum()),
            "measured_steps_per_round": args.measure_steps,
            "rounds": args.sampling_rounds,
            "step_cpu_s": step,
            "step_wall_s": statistics.median(steps_wall[name]),
            "step_cpu_all_s": [round(v, 4) for v in steps_cpu[name]],
            "network_cpu_s": statistics.median(net_cpu[name]),
            "outside_network_share": statistics.median(outside),
            "speedup_cpu": statistics.median(steps_cpu[base]) / step,
            "steps": args.steps,
            "nfe": nfe,
            "per_molecule_cpu_s": step * args.steps / len(molecules),
        }
    return out


def profile_tables(args, layers: int, hidden: int, molecules, variants: list[str], rows: int = 22) -> str:
    """Markdown: ``torch.profiler`` tables of a training step and a sampling step per variant."""
    from torch.profiler import ProfilerActivity, profile

    from moldiff.molecules.graph import collate_molecules

    batch = collate_molecules(molecules)
    sizes = torch.tensor([m.num_atoms for m in molecules])
    parts = []
    for name in variants:
        precision, layout = VARIANTS[name]
        with tempfile.TemporaryDirectory() as tmp:
            model = build_model(hidden, layers, args.device, layout, args.seed)
            trainer = _trainer(args, model, molecules, precision, tmp)
            trainer.train_step([batch])
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                trainer.train_step([batch])
            train_table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)
        model.eval()

        def sample(model=model, precision=precision):
            model.sample_states(
                sizes,
                sampler=args.sampler,
                steps=2,
                generator=torch.Generator().manual_seed(0),
                device=args.device,
                precision=precision,
            )

        sample()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            sample()
        sample_table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)
        parts.append(
            f"### {layers} x {hidden}, `{name}` (precision {precision}, pair layout {layout})\n\n"
            f"One training step (`Trainer.train_step`, batch {len(molecules)}):\n\n```\n{train_table}\n```\n\n"
            f"Two `{args.sampler}` sampling steps ({len(molecules)} molecules):\n\n```\n{sample_table}\n```\n"
        )
    return "\n".join(parts)


def ddp_child(cfg: dict) -> dict:
    """One rank of the ``ddp`` section (``--child-ddp``): ``cfg['steps']`` training steps, wall time."""
    os.environ.update(
        {
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(cfg["port"]),
            "RANK": str(cfg["rank"]),
            "LOCAL_RANK": str(cfg["rank"]),
            "WORLD_SIZE": str(cfg["world_size"]),
        }
    )
    torch.set_num_threads(1)
    from moldiff.molecules.graph import collate_molecules
    from moldiff.train.distributed import cleanup_distributed, init_distributed

    info = init_distributed("cpu")
    molecules = qm9_like_molecules(cfg["batch_size"], cfg["seed"] + cfg["rank"])
    batch = collate_molecules(molecules)
    model = build_model(cfg["hidden"], cfg["layers"], "cpu", VARIANTS[cfg["variant"]][1], cfg["seed"])
    with tempfile.TemporaryDirectory() as tmp:
        from moldiff.molecules.training_data import MoleculeDataConfig
        from moldiff.train.config import ExperimentConfig, TrainConfig
        from moldiff.train.loop import Trainer
        from moldiff.train.tasks import TaskBundle

        tc = TrainConfig(
            steps=10**6,
            batch_size=len(molecules),
            lr=1e-4,
            clip="adaptive",
            clip_value=1.0,
            precision=VARIANTS[cfg["variant"]][0],
            device="cpu",
            out_dir=tmp,
            progress=False,
        )
        config = ExperimentConfig(task="molecules", model=model.config, data=MoleculeDataConfig(), train=tc)
        bundle = TaskBundle(
            model=model, train_dataset=molecules, collate_fn=collate_molecules, dataset_stats=model.stats
        )
        trainer = Trainer(config, bundle=bundle, dist_info=info, out_dir=tmp)
        for _ in range(cfg["warmup"]):
            trainer.train_step([batch])
        if info.distributed:
            torch.distributed.barrier()
        w, c = time.perf_counter(), time.process_time()
        for _ in range(cfg["steps"]):
            trainer.train_step([batch])
        wall, cpu = time.perf_counter() - w, time.process_time() - c
    cleanup_distributed(info)
    return {"rank": cfg["rank"], "wall_s": wall, "cpu_s": cpu, "steps": cfg["steps"]}


def bench_ddp(args, layers: int, hidden: int, variants: list[str]) -> dict:
    """Training items per second (wall) with one process and with two DDP processes."""
    out = {}
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for name in variants:
        out[name] = {}
        for world in (1, 2):
            port = 29500 + (os.getpid() % 1000) + world
            procs = []
            for rank in range(world):
                cfg = {
                    "rank": rank,
                    "world_size": world,
                    "port": port,
                    "variant": name,
                    "layers": layers,
                    "hidden": hidden,
                    "batch_size": args.batch_size,
                    "seed": args.seed,
                    "steps": args.ddp_steps,
                    "warmup": 2,
                }
                cmd = [sys.executable, os.path.abspath(__file__), "--child-ddp", json.dumps(cfg)]
                procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
            results = []
            for p in procs:
                stdout, stderr = p.communicate(timeout=args.large_timeout)
                if p.returncode != 0:
                    raise RuntimeError(f"ddp child failed: {stderr[-500:]}")
                results.append(json.loads(stdout.strip().splitlines()[-1]))
            wall = max(r["wall_s"] for r in results)
            items = world * args.batch_size * args.ddp_steps
            out[name][f"{world}_process"] = {
                "items_per_s": items / wall,
                "wall_s": wall,
                "steps": args.ddp_steps,
                "cpu_s_per_rank": [round(r["cpu_s"], 3) for r in results],
            }
        out[name]["two_over_one"] = out[name]["2_process"]["items_per_s"] / out[name]["1_process"]["items_per_s"]
    return out


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
    model = EGNNDenoiser(
        7,
        6,
        hidden=cfg["hidden"],
        layers=cfg["layers"],
        edges=cfg["edges"],
        cutoff=cfg.get("cutoff"),
        knn=cfg.get("knn"),
    ).to(device)
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
    out = {
        "edges_kind": cfg["edges"],
        "atoms": cfg["atoms"],
        "edges": int(model.build_edges(pos, batch, 1).shape[1]),
        "wall_s": statistics.median(r[0] for r in runs),
        "cpu_s": statistics.median(r[1] for r in runs),
        "wall_all_s": [round(r[0], 4) for r in runs],
        "peak_rss_mb": peak_rss,
        "baseline_rss_mb": base_rss,
        "memory_method": method,
    }
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
            cfg = {
                "atoms": n,
                "edges": kind,
                **opts,
                "hidden": args.hidden,
                "layers": args.layers,
                "density": args.density,
                "seed": args.seed,
                "repeats": args.large_repeats,
                "pass": args.large_pass,
                "threads": torch.get_num_threads(),
                "device": args.device,
            }
            cmd = [sys.executable, os.path.abspath(__file__), "--child-large", json.dumps(cfg)]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.large_timeout, env=env)
                row = (
                    json.loads(proc.stdout.strip().splitlines()[-1])
                    if proc.returncode == 0
                    else {
                        "edges_kind": kind,
                        "atoms": n,
                        "error": f"exit {proc.returncode}: {proc.stderr.strip()[-300:]}",
                    }
                )
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
                r.update(
                    {
                        "estimated_from_atoms": ref["atoms"],
                        "wall_s_est": ref["wall_s"] * f,
                        "cpu_s_est": ref["cpu_s"] * f,
                        "peak_rss_mb_est": ref["peak_rss_mb"] * f,
                    }
                )
                _print_large_row(r)
    return rows


def _print_large_row(r: dict) -> None:
    extra = f", cutoff {r['cutoff']} A" if "cutoff" in r else f", k = {r['knn']}" if "knn" in r else ""
    head = f"  {r['edges_kind']:>6} {r['atoms']:>5} atoms{extra}:"
    if "error" in r:
        print(f"{head} failed ({r['error']})")
    elif r.get("skipped"):
        if "wall_s_est" in r:
            print(
                f"{head} not run ({r['edges']:,} edges); est. from {r['estimated_from_atoms']} atoms x edges: "
                f"wall ~{r['wall_s_est']:.1f} s, CPU ~{r['cpu_s_est']:.1f} s, peak ~{r['peak_rss_mb_est']:.0f} MiB"
            )
    else:
        gpu = f", GPU peak {r['peak_gpu_memory_mb']:.0f} MiB" if "peak_gpu_memory_mb" in r else ""
        print(
            f"{head} {r['edges']:>9,} edges, wall {r['wall_s']:.3f} s, CPU {r['cpu_s']:.3f} s, "
            f"peak RSS +{r['peak_rss_mb']:.0f} MiB{gpu}"
        )


# ------------------------------------------------------------------------------------------------
def _edm_rows(base: dict, fast: dict, key: str, threads: int) -> dict:
    ref = EDM_XEON_REFERENCE[key]
    return {
        "edm_xeon_s": ref["edm"],
        "moldiff_fp32_xeon_s": ref["moldiff_fp32"],
        "fast_here_s": fast,
        "fp32_here_s": base,
        "edm_xeon_over_fast_here": ref["edm"] / fast,
        "edm_side_by_side_on_xeon": ref["edm"] / ref["moldiff_fp32"],
        "estimated_side_by_side_here": ref["edm"] / ref["moldiff_fp32"] * base / fast,
    }


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=["train", "denoiser", "sampling"])
    p.add_argument("--sizes", nargs="+", default=["4x64", "9x256"], help="LAYERSxHIDDEN of the EGNN")
    p.add_argument(
        "--variants",
        nargs="+",
        choices=list(VARIANTS),
        default=["fp32", "fast"],
        help="the first is the reference of the speed-ups (default: fp32 fast)",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--batch-size", type=int, default=64, help="molecules per training step / denoiser call / sampling")
    p.add_argument("--repeats", type=int, default=7, help="interleaved rounds (train, denoiser)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sampler", default="ddpm", help="sampler timed by the sampling section (EDM: ddpm)")
    p.add_argument("--grid", default=None, help="sampler time grid (default: uniform for ddpm, karras otherwise)")
    p.add_argument("--steps", type=int, default=1000, help="steps the per-molecule sampling cost is reported at")
    p.add_argument("--measure-steps", type=int, default=6, help="steps run per sampling round")
    p.add_argument("--sampling-rounds", type=int, default=3, help="interleaved sampling rounds")
    p.add_argument("--ddp-steps", type=int, default=20)
    p.add_argument("--ddp-size", default="4x64")
    p.add_argument("--profile-out", default=None, help="write the profile section's Markdown here")
    p.add_argument("--atoms", type=int, nargs="+", default=[250, 500, 1000, 2000], help="large-system sizes")
    p.add_argument("--large-edges", nargs="+", choices=["full", "radius", "knn"], default=["full", "radius", "knn"])
    p.add_argument("--cutoff", type=float, default=5.0, help="radius graph cutoff (A)")
    p.add_argument("--knn", type=int, default=16, help="neighbours of the kNN graph")
    p.add_argument("--density", type=float, default=0.1, help="atoms per A^3 of the large systems")
    p.add_argument(
        "--large-pass",
        choices=["forward", "train"],
        default="forward",
        help="forward: no_grad call (sampling); train: forward + backward",
    )
    p.add_argument("--large-repeats", type=int, default=3)
    p.add_argument("--full-max-atoms", type=int, default=1000, help="largest system run with a full graph")
    p.add_argument("--large-timeout", type=float, default=900, help="seconds per subprocess")
    p.add_argument("--hidden", type=int, default=256, help="large section: EGNN width")
    p.add_argument("--layers", type=int, default=9, help="large section: EGNN depth")
    p.add_argument("--out", default=None, help="also write the JSON record here")
    p.add_argument("--child-large", default=None, help=argparse.SUPPRESS)
    p.add_argument("--child-ddp", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child_large is not None:
        print(json.dumps(large_child(json.loads(args.child_large))))
        return {}
    if args.child_ddp is not None:
        print(json.dumps(ddp_child(json.loads(args.child_ddp))))
        return {}
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    from moldiff.train.precision import cpu_bf16_flags, resolve_precision

    molecules = qm9_like_molecules(args.batch_size, args.seed)
    sizes = [m.num_atoms for m in molecules]
    record = {
        "benchmark": "speed",
        "device": args.device,
        "device_name": torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else _cpu_name(),
        "cpu_bf16_flags": list(cpu_bf16_flags()),
        "auto_precision": resolve_precision("auto", args.device),
        "threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
        "loadavg_start": _loadavg(),
        "batch_size": args.batch_size,
        "batch_atoms": sum(sizes),
        "batch_max_atoms": max(sizes),
        "batch_edges": sum(n * (n - 1) for n in sizes),
        "seed": args.seed,
        "variants": args.variants,
        "edm_xeon_reference": EDM_XEON_REFERENCE,
        "sizes": {},
    }
    print(
        f"device {record['device_name']} ({args.device}; bf16 flags {record['cpu_bf16_flags']}, auto -> "
        f"{record['auto_precision']}), threads {record['threads']}, torch {torch.__version__}, "
        f"load average {record['loadavg_start']}"
    )
    print(
        f"batch: {args.batch_size} molecules, {sum(sizes)} atoms (max {max(sizes)}), {record['batch_edges']:,} edges; "
        f"variants {args.variants} (speed-ups: CPU time of {args.variants[0]} / variant, median of per-round ratios)"
    )
    base, fast = args.variants[0], args.variants[-1]
    for layers, hidden in _sizes(args) if set(args.sections) & {"train", "denoiser", "sampling", "profile"} else []:
        tag = f"{layers}x{hidden}"
        entry: dict = {}
        record["sizes"][tag] = entry
        if "train" in args.sections:
            entry["train_step"] = r = bench_train(args, layers, hidden, molecules, args.variants)
            for name in args.variants:
                print(
                    f"[{tag}] training step, {name:>10}: CPU {r[name]['cpu_s']:.4f} s ({r[name]['speedup_cpu']:.2f}x), "
                    f"{r[name]['molecules_per_cpu_s']:.0f} molecules per CPU-second, "
                    f"{r[name]['qm9_epochs_per_cpu_hour']:.2f} QM9 epochs per CPU-hour"
                )
        if "denoiser" in args.sections:
            entry["denoiser_call"] = r = bench_denoiser(args, layers, hidden, molecules, args.variants)
            for name in args.variants:
                print(
                    f"[{tag}] denoiser call, {name:>10}: CPU {r[name]['cpu_s']:.4f} s ({r[name]['speedup_cpu']:.2f}x)"
                )
        if "sampling" in args.sections:
            entry["sampling"] = r = bench_sampling(args, layers, hidden, molecules, args.variants)
            for name in args.variants:
                s = r[name]
                print(
                    f"[{tag}] {s['sampler']} step ({s['num_molecules']} molecules), {name:>10}: CPU {s['step_cpu_s']:.4f} s "
                    f"({s['speedup_cpu']:.2f}x), network {s['network_cpu_s']:.4f} s, outside the network "
                    f"{100 * s['outside_network_share']:.1f}% of the step; {s['per_molecule_cpu_s']:.2f} CPU-s per "
                    f"molecule at {s['steps']} steps"
                )
        if "profile" in args.sections:
            md = profile_tables(args, layers, hidden, molecules, args.variants)
            entry["profile_markdown_chars"] = len(md)
            if args.profile_out:
                mode = "a" if os.path.exists(args.profile_out) and tag != args.sizes[0] else "w"
                with open(args.profile_out, mode) as f:
                    if mode == "w":
                        f.write(
                            f"# Profiles ({record['date_utc']} UTC, {record['device_name']}, one thread, "
                            f"load average {record['loadavg_start']})\n\n"
                            "Written by `benchmarks/speed.py --sections profile` (ops by self CPU time; "
                            "the profiler's own overhead inflates the totals, read the shares).\n\n"
                        )
                    f.write(md + "\n")
            else:
                print(md)
        if tag == "9x256" and base == "fp32" and args.batch_size == 64 and not args.device.startswith("cuda"):
            edm = {}
            if "train_step" in entry:
                edm["train_step"] = _edm_rows(
                    entry["train_step"][base]["cpu_s"],
                    entry["train_step"][fast]["cpu_s"],
                    "train_step",
                    record["threads"],
                )
            if "denoiser_call" in entry:
                edm["denoiser_call"] = _edm_rows(
                    entry["denoiser_call"][base]["cpu_s"],
                    entry["denoiser_call"][fast]["cpu_s"],
                    "denoiser_call",
                    record["threads"],
                )
            if "sampling" in entry and args.sampler in ("ddpm", "ancestral"):
                edm["sampling_step"] = _edm_rows(
                    entry["sampling"][base]["step_cpu_s"],
                    entry["sampling"][fast]["step_cpu_s"],
                    "sampling_step",
                    record["threads"],
                )
            entry["edm"] = edm
            for k, v in edm.items():
                print(
                    f"[{tag}] EDM vs {fast}, {k}: EDM on the Xeon {v['edm_xeon_s']:.2f} s / {fast} here "
                    f"{v['fast_here_s']:.3f} s = {v['edm_xeon_over_fast_here']:.1f}x (two CPUs, not side by side); "
                    f"estimated side by side here: {v['edm_side_by_side_on_xeon']:.2f}x (Xeon, EDM / moldiff fp32) x "
                    f"{v['fp32_here_s'] / v['fast_here_s']:.2f}x (fp32 / {fast} here) = "
                    f"{v['estimated_side_by_side_here']:.1f}x"
                )
    if "ddp" in args.sections:
        layers, hidden = (int(v) for v in args.ddp_size.lower().split("x"))
        record["ddp"] = r = bench_ddp(args, layers, hidden, args.variants)
        for name in args.variants:
            print(
                f"[{args.ddp_size}] training throughput, {name:>10}: one process "
                f"{r[name]['1_process']['items_per_s']:.0f} items/s, two processes "
                f"{r[name]['2_process']['items_per_s']:.0f} items/s ({r[name]['two_over_one']:.2f}x; wall clock, "
                f"{args.ddp_steps} steps)"
            )
    if "large" in args.sections:
        print(
            f"large systems ({args.large_pass}, {args.layers}x{args.hidden}, density {args.density} atoms/A^3, "
            f"one subprocess each):"
        )
        record["large_systems"] = {
            "pass": args.large_pass,
            "density": args.density,
            "cutoff": args.cutoff,
            "knn": args.knn,
            "rows": bench_large(args),
        }
    record["loadavg_end"] = _loadavg()
    print(f"load average at the end: {record['loadavg_end']}")
    print_record(record, args.out)
    return record


if __name__ == "__main__":
    main()
