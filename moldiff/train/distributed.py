"""Process groups, per-rank data sharding and rank-0-only side effects.

Launch with ``torchrun``, which sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``::

    torchrun --nproc_per_node=4 -m moldiff.cli train configs/x.yaml                    # one machine
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d \\
             --rdzv_endpoint=HOST:29500 --rdzv_id=JOB -m moldiff.cli train configs/x.yaml  # several

Without those variables everything runs in one process and every helper here is a no-op. The
backend is NCCL when the processes use CUDA devices and gloo on CPU.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, Iterator

import torch
import torch.distributed as dist

from moldiff.errors import InputError


class DeviceError(InputError, RuntimeError):
    """The device asked for is not there (``cuda`` without a GPU) or not a device name."""


__all__ = [
    "DistInfo",
    "init_distributed",
    "cleanup_distributed",
    "resolve_device",
    "barrier",
    "all_reduce_sum",
    "all_reduce_max",
    "gather_objects",
    "broadcast_object",
    "ShardedBatchSampler",
]


@dataclass
class DistInfo:
    """Where this process sits in the job.

    Attributes:
        rank: global rank, ``0 .. world_size - 1``.
        world_size: number of processes.
        local_rank: rank on this machine (selects the GPU).
        device: the torch device this process computes on.
        backend: ``"nccl"``, ``"gloo"`` or ``None`` for a single process.
        owns_group: whether :func:`init_distributed` created the process group (and should destroy it).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None
    owns_group: bool = False

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only rank that writes logs and checkpoints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(preference: str, local_rank: int = 0) -> torch.device:
    """``"auto"`` -> ``cuda:LOCAL_RANK`` when CUDA is available, else CPU; ``"cuda"`` fails without CUDA."""
    if preference == "cpu":
        return torch.device("cpu")
    if preference == "cuda" or (preference == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise DeviceError(
                "device 'cuda' (train.device, or --device) was asked for, but torch.cuda.is_available() is false: "
                "no GPU here, or a CPU-only torch; use cpu or auto"
            )
        return torch.device("cuda", local_rank % max(1, torch.cuda.device_count()))
    if preference != "auto":
        raise DeviceError(f"unknown device {preference!r}; expected 'auto', 'cpu' or 'cuda'")
    return torch.device("cpu")


def init_distributed(device: str = "auto") -> DistInfo:
    """Join the process group described by torchrun's environment variables, if any.

    Args:
        device: ``"auto"``, ``"cpu"`` or ``"cuda"`` (see :func:`resolve_device`).

    Returns:
        The :class:`DistInfo` of this process. A single process (no ``WORLD_SIZE`` or
        ``WORLD_SIZE=1``) gets rank 0 of 1 and no process group.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    dev = resolve_device(device, local_rank)
    if world_size <= 1:
        return DistInfo(device=dev)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    backend = "nccl" if dev.type == "cuda" else "gloo"
    owns = False
    if not dist.is_initialized():
        kwargs = {"device_id": dev} if dev.type == "cuda" else {}
        dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world_size, **kwargs)
        owns = True
    return DistInfo(
        rank=dist.get_rank(),
        world_size=dist.get_world_size(),
        local_rank=local_rank,
        device=dev,
        backend=dist.get_backend(),
        owns_group=owns,
    )


def cleanup_distributed(info: DistInfo) -> None:
    """Destroy the process group if :func:`init_distributed` created it.

    On a normal exit every rank first waits at a barrier, so that no rank tears down its gloo
    connections while a peer still has traffic on them (seen as ``terminate called without an active
    exception`` on the slower rank). Called while an exception propagates (from a ``finally``), it
    skips the barrier: a failed peer would never arrive.
    """
    if info.owns_group and dist.is_initialized():
        if sys.exc_info()[0] is None:
            barrier(info)
        dist.destroy_process_group()


def _active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def barrier(info: DistInfo | None = None) -> None:
    """Wait for every rank (no-op in a single process)."""
    if _active():
        if info is not None and info.device.type == "cuda":
            dist.barrier(device_ids=[info.device.index])
        else:
            dist.barrier()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over ranks in place and return it (identity in a single process)."""
    if _active():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_max(tensor: torch.Tensor) -> torch.Tensor:
    """Element-wise maximum over ranks in place (identity in a single process)."""
    if _active():
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (picklable), in rank order, on every rank (``[obj]`` in a single process)."""
    if not _active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank ``src``'s ``obj`` (picklable) on every rank (``obj`` itself in a single process)."""
    if not _active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


class ShardedBatchSampler:
    """Endless, seeded, resumable batches of dataset indices, sharded over ranks.

    Each epoch draws one permutation of ``range(num_items)`` from a generator seeded by
    ``(seed, epoch)`` (the same on every rank), cuts it into *global* batches of
    ``batch_size * world_size`` indices (dropping the incomplete tail) and gives rank ``r`` the
    entries ``r, r + W, r + 2W, ...`` of each global batch. So ``W`` ranks with batch ``b`` see
    together exactly the items one process with batch ``W b`` would see, and the order depends only
    on the seed, not on how the run was interrupted.

    Args:
        num_items: dataset length.
        batch_size: indices per batch on this rank.
        rank, world_size: this process's place in the job (default: 0 of 1).
        seed: data-order seed (default: 0).
        shuffle: permute each epoch (default: true); otherwise sequential order.
        start_batch: number of batches this rank already consumed (to resume mid-epoch).
    """

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        rank: int = 0,
        world_size: int = 1,
        seed: int = 0,
        shuffle: bool = True,
        start_batch: int = 0,
    ) -> None:
        self.num_items = int(num_items)
        self.batch_size = int(batch_size)
        self.rank, self.world_size = int(rank), int(world_size)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.start_batch = int(start_batch)
        global_batch = self.batch_size * self.world_size
        self.batches_per_epoch = self.num_items // global_batch
        if self.batches_per_epoch < 1:
            raise ValueError(
                f"the dataset has {self.num_items} items, fewer than one global batch of "
                f"{self.batch_size} x {self.world_size} ranks = {global_batch}"
            )

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """The permutation of epoch ``epoch`` (identical on every rank)."""
        if not self.shuffle:
            return torch.arange(self.num_items)
        g = torch.Generator().manual_seed((self.seed * 1_000_003 + epoch) % (2**63))
        return torch.randperm(self.num_items, generator=g)

    def __iter__(self) -> Iterator[list[int]]:
        epoch, offset = divmod(self.start_batch, self.batches_per_epoch)
        global_batch = self.batch_size * self.world_size
        while True:
            order = self.epoch_order(epoch)
            for b in range(offset, self.batches_per_epoch):
                chunk = order[b * global_batch : (b + 1) * global_batch]
                yield chunk[self.rank :: self.world_size].tolist()
            epoch, offset = epoch + 1, 0

    def state_dict(self, batches_consumed: int) -> dict:
        """What a checkpoint needs to continue the stream after ``batches_consumed`` batches."""
        return {
            "batches_consumed": int(batches_consumed),
            "seed": self.seed,
            "world_size": self.world_size,
            "batch_size": self.batch_size,
            "epoch": int(batches_consumed) // self.batches_per_epoch,
        }
