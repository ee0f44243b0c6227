"""The image generator: what :func:`moldiff.load_pretrained` returns for an image model.

Example::

    gen = moldiff.load_pretrained("fashion_mnist")
    x = gen.sample(100, seed=0, labels=[k % 10 for k in range(100)])   # [100, 1, 28, 28] in [-1, 1]
    pictures = gen.sample(4, seed=0, labels="Sneaker", output="pil")    # list of PIL images
"""

from __future__ import annotations

import sys
import time
from typing import Callable, Sequence

import torch

from moldiff.errors import SamplingError
from moldiff.files import check_output_file
from moldiff.hub import Generator
from moldiff.train.logs import step_progress

from .data import to_uint8
from .grid import save_grid

__all__ = ["ImageGenerator"]


class ImageGenerator(Generator):
    """Samples images from a trained :class:`~moldiff.images.model.ImageDiffusion`.

    Args:
        model: the trained model.
        source: where it came from (a pretrained name or a path).
    """

    @property
    def num_classes(self) -> int:
        return self.model.num_classes

    def sample(
        self,
        num: int,
        *,
        seed: int = 0,
        sampler: str | None = None,
        steps: int | None = None,
        batch_size: int = 256,
        progress: bool = False,
        device: str | torch.device | None = None,
        labels: int | str | Sequence | torch.Tensor | None = None,
        guidance_scale: float | None = None,
        output: str = "tensor",
        callback: Callable | None = None,
        **options,
    ):
        """Sample ``num`` images.

        Args:
            num: number of images.
            seed: random seed; the same seed gives the same images.
            sampler: a :data:`moldiff.core.SAMPLERS` name (default: the model's configured one).
            steps: sampler steps (default: the model's configured number).
            batch_size: images per sampler call.
            progress: show a progress bar (one tick per sampler step of each batch).
            device: run on this device (default: where the model is).
            labels: class-conditional models: one class (index or name) for all, one per image, or
                ``None`` for the unconditional (null-label) model.
            guidance_scale: classifier-free guidance weight (default: the model's; 1 = none).
            output: ``"tensor"`` (``[num, C, H, W]`` floats in ``[-1, 1]``) or ``"pil"`` (a list of PIL images).
            callback: called after each sampler step.
            options: passed to the sampler.
        """
        if output not in ("tensor", "pil"):
            raise ValueError(f"output must be 'tensor' or 'pil', got {output!r}")
        if device is not None:
            self.to(device)
        total = (len(self.model.sigmas(steps)) - 1) * -(-num // batch_size)
        with step_progress(total, f"sampling {num} images", progress, callback) as step_callback:
            images = self.model.sample(
                num,
                seed=seed,
                sampler=sampler,
                steps=steps,
                labels=labels,
                guidance_scale=guidance_scale,
                batch_size=batch_size,
                callback=step_callback,
                **options,
            )
        if output == "tensor":
            return images
        from PIL import Image

        arrays = to_uint8(images.cpu()).permute(0, 2, 3, 1).numpy()
        return [Image.fromarray(a[..., 0] if a.shape[-1] == 1 else a) for a in arrays]

    def sample_command(self, args, info) -> int:
        """``moldiff sample`` for image models: one PNG grid, written by rank 0."""

        def fail(message: str) -> int:
            print(f"moldiff sample: {message}", file=sys.stderr)
            return 2

        out = args.out or "samples.png"
        if not out.lower().endswith(".png"):
            return fail(f"image models write a PNG grid; got --out {out}")
        # a destination that cannot be written, or an existing file not to be replaced, stops here
        replaces = check_output_file(out, overwrite=getattr(args, "overwrite", False))
        labels = args.labels
        if labels == "cycle":
            labels = [k % max(self.num_classes, 1) for k in range(args.num)]
        elif labels is not None:
            labels = [int(v) if v.strip().lstrip("-").isdigit() else v.strip() for v in labels.split(",")]
        if not info.is_main:
            return 0
        tick = time.perf_counter()
        try:
            images = self.sample(
                args.num,
                seed=args.seed,
                sampler=args.sampler,
                steps=args.steps,
                labels=labels,
                guidance_scale=args.guidance_scale,
                batch_size=args.batch_size,
                progress=not args.no_progress,
            )
        except ValueError as err:  # unknown sampler or class name, labels for an unconditional model, ...
            return fail(str(err))
        elapsed = time.perf_counter() - tick
        bad = [i for i in range(len(images)) if not bool(torch.isfinite(images[i]).all())]
        if bad:
            shown = ", ".join(f"#{i}" for i in bad[:8]) + (f" and {len(bad) - 8} more" if len(bad) > 8 else "")
            what = f"{len(bad)} of {len(images)} image(s) diverged to non-finite pixels ({shown})"
            if not getattr(args, "skip_diverged", False) or len(bad) == len(images):
                flag = "" if len(bad) == len(images) else "; pass --skip-diverged to write the others"
                raise SamplingError(f"{what}: lower --guidance-scale{flag}; nothing written to {out}")
            print(f"moldiff sample: {what}: left out of the grid", file=sys.stderr)
            images = images[[i for i in range(len(images)) if i not in set(bad)]]
        save_grid(images.cpu(), out, nrow=args.nrow or (self.num_classes if args.labels == "cycle" else None))
        nfe = self.model.nfe(args.sampler, args.steps, args.guidance_scale, guided=labels is not None)
        print(
            f"wrote {len(images)} images to {out}{' (replaced the earlier file)' if replaces else ''} "
            f"({elapsed / args.num:.3f} s per image, {nfe} network evaluations per image, device {info.device})",
            file=sys.stderr,
        )
        return 0
