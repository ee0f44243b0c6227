"""Time EDM's 9 x 256 EGNN denoiser on a QM9-like packed batch (CPU or GPU).

Measures one forward pass (``torch.no_grad``, as in sampling) and one forward + backward pass (as
in a training step, without the optimiser), and prints the median wall-clock and process CPU
time over ``--repeats`` runs after ``--warmup`` runs, then one JSON line with everything.

Graph sizes are drawn with a fixed seed from a rounded normal around QM9's mean of 18 atoms
(standard deviation 3), clipped to QM9's range 3..29; atom types from QM9's H/C/N/O/F frequencies;
input features ``[one-hot / 4, Z / 10, t]`` as in EDM. Reference on the same machine type (2 CPU
cores, ``shared/reference.md``): EDM's own padded code takes 7.29 s wall / 13.9 s CPU for one
denoiser call at batch 64.

Usage::

    python benchmarks/egnn_forward.py                  # 9 x 256, batch 64, fp32
    python benchmarks/egnn_forward.py --autocast bf16  # the network under bf16 autocast
    python benchmarks/egnn_forward.py --threads 1 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from moldiff.nn import EGNNDenoiser
from moldiff.nn.graph import fully_connected_edges

QM9_Z = torch.tensor([1, 6, 7, 8, 9])
QM9_TYPE_FREQ = torch.tensor([0.513, 0.351, 0.056, 0.078, 0.002])


def qm9_like_batch(batch_size: int, seed: int = 0, device: str = "cpu"):
    """A packed batch with QM9-like sizes and features: ``pos [N, 3]``, ``h [N, 7]``, ``batch``."""
    g = torch.Generator().manual_seed(seed)
    sizes = (torch.randn(batch_size, generator=g) * 3 + 18).round().clamp(3, 29).long()
    batch = torch.repeat_interleave(torch.arange(batch_size), sizes)
    n = int(sizes.sum())
    types = torch.multinomial(QM9_TYPE_FREQ, n, replacement=True, generator=g)
    one_hot = torch.nn.functional.one_hot(types, 5).float()
    t = torch.rand(batch_size, generator=g)[batch, None]
    h = torch.cat([one_hot / 4, QM9_Z[types, None].float() / 10, t], dim=1)
    pos = torch.randn(n, 3, generator=g) * 1.5
    return pos.to(device), h.to(device), batch.to(device), sizes


def timed(fn, device: str) -> tuple[float, float]:
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    w, c = time.perf_counter(), time.process_time()
    fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - w, time.process_time() - c


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=9)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    p.add_argument("--autocast", choices=["none", "bf16"], default="none")
    p.add_argument("--device", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device = args.device
    model = EGNNDenoiser(7, 6, hidden=args.hidden, layers=args.layers).to(device)
    pos, h, batch, sizes = qm9_like_batch(args.batch_size, args.seed, device)
    num_edges = fully_connected_edges(batch, args.batch_size).shape[1]
    amp = torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16, enabled=args.autocast == "bf16")

    def forward():
        with torch.no_grad(), amp:
            model(pos, h, batch, args.batch_size)

    def forward_backward():
        model.zero_grad(set_to_none=True)
        with amp:
            eps_x, eps_h = model(pos, h, batch, args.batch_size)
        (eps_x.float().pow(2).mean() + eps_h.float().pow(2).mean()).backward()

    results = {}
    for name, fn in (("forward", forward), ("forward_backward", forward_backward)):
        for _ in range(args.warmup):
            fn()
        runs = [timed(fn, device) for _ in range(args.repeats)]
        results[name] = {
            "wall_s": statistics.median(r[0] for r in runs),
            "cpu_s": statistics.median(r[1] for r in runs),
            "wall_all_s": [round(r[0], 4) for r in runs],
        }
        print(f"{name:>17}: wall {results[name]['wall_s']:.3f} s, CPU {results[name]['cpu_s']:.3f} s "
              f"(median of {args.repeats})")

    record = {
        "benchmark": "egnn_forward",
        "model": f"EGNN {args.layers}x{args.hidden}",
        "parameters": sum(q.numel() for q in model.parameters()),
        "batch_size": args.batch_size,
        "atoms": int(sizes.sum()),
        "mean_atoms": round(float(sizes.float().mean()), 2),
        "edges": num_edges,
        "autocast": args.autocast,
        "device": device,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        **{f"{k}_{m}": round(v[m], 4) for k, v in results.items() for m in ("wall_s", "cpu_s")},
        "repeats": args.repeats,
    }
    print(f"threads: {record['threads']}, atoms {record['atoms']}, edges {record['edges']}, "
          f"parameters {record['parameters']:,}")
    print(json.dumps(record))


if __name__ == "__main__":
    main()
