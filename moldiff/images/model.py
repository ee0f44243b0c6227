"""Image diffusion: a :class:`~moldiff.nn.unet.UNet` + a dense state space + a noise schedule.

Images are ``[B, C, H, W]`` floats in ``[-1, 1]`` (:mod:`moldiff.images.data`). Everything that is
not image-specific comes from :mod:`moldiff.core`: the schedule (:func:`~moldiff.core.make_schedule`),
the parameterisation and its network wrapper (:class:`~moldiff.core.DiffusionDenoiser`), the loss
(:func:`~moldiff.core.denoising_loss`), every sampler (:data:`~moldiff.core.SAMPLERS`, including the
few-step ``dpmpp_2m``, ``heun`` and ``ddim``), classifier-free guidance
(:func:`~moldiff.core.classifier_free_guidance`) and the PF-ODE likelihood.

Class conditioning follows Ho & Salimans 2022 ("Classifier-Free Diffusion Guidance", Alg. 1-2): in
training each label is replaced by the null label with probability ``label_dropout``, so one network
learns ``D(x, sigma, y)`` and ``D(x, sigma, null)``; in sampling
``D_w = D(null) + w (D(y) - D(null))`` (``w = 1``: plain conditional sampling).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable, Optional, Sequence

import torch
from torch import nn

from moldiff.core import (
    DiffusionSettings,
    EuclideanSpace,
    classifier_free_guidance,
    count_denoiser_calls,
    denoising_loss,
    get_sampler,
    initial_noise,
    item_generators,
)
from moldiff.core.settings import require_positive
from moldiff.errors import ConfigError, InputError
from moldiff.nn.unet import UNet

from .metrics import image_bits_per_dim

Tensor = torch.Tensor

__all__ = ["ImageModelConfig", "ImageDiffusion"]


@dataclass
class ImageModelConfig(DiffusionSettings):
    """The ``model:`` section of an image config: the U-Net's keys below, plus the diffusion keys of
    :class:`~moldiff.core.DiffusionSettings` (``schedule``, ``prediction``, ``sigma_data``,
    ``weighting``, ``noise_sampler``, ``sampler``, ``sample_steps``, ... with its defaults: EDM's
    schedule, preconditioning and weighting, DPM-Solver++(2M) in 20 steps on Karras' grid).

    Attributes:
        base_channels: channels of the U-Net's first level (default: 64).
        channel_mults: channel multiplier per level (default: ``[1, 2, 2]``: 28 -> 14 -> 7).
        num_res_blocks: residual blocks per encoder level (default: 2).
        attention_levels: levels with self-attention (default: ``None``, the lowest resolution only).
        heads: attention heads (default: 4).
        dropout: dropout in the residual blocks (default: 0.1).
        groups: maximum group-normalisation groups (default: 32).
        time_scale: the network embeds ``time_scale * t`` (default: 1000).
        class_conditional: condition on the dataset's labels (default: false).
        label_dropout: probability of training with the null label, for classifier-free guidance
            (default: 0.1).
        guidance_scale: default classifier-free guidance weight ``w`` (default: 1, no guidance).
    """

    base_channels: int = 64
    channel_mults: list[int] = field(default_factory=lambda: [1, 2, 2])
    num_res_blocks: int = 2
    attention_levels: Optional[list[int]] = None
    heads: int = 4
    dropout: float = 0.1
    groups: int = 32
    time_scale: float = 1000.0
    class_conditional: bool = False
    label_dropout: float = 0.1
    guidance_scale: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        require_positive(self, "base_channels", "num_res_blocks", "heads", "groups", "time_scale")
        if not self.channel_mults or min(self.channel_mults) < 1:
            raise ConfigError(
                f"channel_mults: must be a non-empty list of positive integers, got {self.channel_mults!r}"
            )


class ImageDiffusion(nn.Module):
    """A diffusion model of images.

    Args:
        config: the model configuration.
        stats: dataset statistics saved with the weights: ``image_shape`` (``[C, H, W]``),
            ``num_classes`` and ``class_names`` (labelled data), optionally ``dataset`` and
            ``num_images``.

    Example:
        >>> model = ImageDiffusion(ImageModelConfig(base_channels=16, channel_mults=[1, 2], num_res_blocks=1),
        ...                        {"image_shape": [1, 28, 28]})
        >>> model.sample(4, seed=0, steps=2).shape
        torch.Size([4, 1, 28, 28])
    """

    def __init__(self, config: ImageModelConfig, stats: dict) -> None:
        super().__init__()
        self.config = config
        self.stats = dict(stats)
        self.image_shape: tuple[int, int, int] = tuple(int(s) for s in stats["image_shape"])
        self.class_names: list[str] = list(stats.get("class_names", []))
        self.num_classes = int(stats.get("num_classes", len(self.class_names))) if config.class_conditional else 0
        if config.class_conditional and self.num_classes == 0:
            raise ValueError("class_conditional: true needs a labelled dataset (num_classes > 0)")
        self.network = UNet(
            self.image_shape[0],
            base_channels=config.base_channels,
            channel_mults=tuple(config.channel_mults),
            num_res_blocks=config.num_res_blocks,
            attention_levels=config.attention_levels,
            heads=config.heads,
            dropout=config.dropout,
            num_classes=self.num_classes,
            groups=config.groups,
            time_scale=config.time_scale,
        )
        self.schedule = config.build_schedule()
        self.denoiser = config.build_denoiser(self.network, self.schedule)

    @property
    def conditional(self) -> bool:
        """Whether the model takes class labels."""
        return self.num_classes > 0

    # ------------------------------------------------------------------ training
    def training_loss(self, batch, generator: torch.Generator | None = None):
        """Mean denoising loss of an :class:`~moldiff.images.data.ImageBatch` (images in ``[-1, 1]``).

        Conditional models replace each label by the null label (``-1``) with probability
        ``label_dropout``. Metrics: ``loss_std``, the spread of the per-image losses.
        """
        x0 = batch.images
        extra = {}
        if self.conditional:
            if batch.labels is None:
                raise ValueError("a class-conditional model needs labelled batches")
            labels = batch.labels
            if self.config.label_dropout > 0:
                drop = torch.rand(labels.shape, generator=generator, device=labels.device) < self.config.label_dropout
                labels = labels.masked_fill(drop, -1)
            extra["labels"] = labels
        per_item = denoising_loss(
            self.denoiser,
            x0,
            EuclideanSpace.like(x0),
            generator=generator,
            extra_args=extra,
            **self.config.loss_options(),
        )
        return per_item.mean(), {"loss_std": per_item.detach().std()}

    def state_for_sampling(self) -> dict:
        return {"stats": self.stats, "config": asdict(self.config)}

    # ------------------------------------------------------------------ sampling
    def _labels(self, labels, num: int, device) -> Tensor | None:
        if labels is None:
            return None
        if not self.conditional:
            raise ValueError("this model is unconditional: it takes no labels")
        if isinstance(labels, str):
            labels = [labels]
        if isinstance(labels, Sequence):  # class names or indices
            unknown = [v for v in labels if isinstance(v, str) and v not in self.class_names]
            if unknown:
                raise ValueError(f"unknown class names {unknown}; the classes are {self.class_names}")
            labels = [self.class_names.index(v) if isinstance(v, str) else int(v) for v in labels]
        y = torch.as_tensor(labels, dtype=torch.long).reshape(-1)
        if y.numel() == 1:
            y = y.expand(num)
        if y.numel() != num:
            raise ValueError(f"{y.numel()} labels for {num} images")
        if bool(((y < -1) | (y >= self.num_classes)).any()):
            raise ValueError(f"labels must lie in 0..{self.num_classes - 1} (or -1 for none)")
        return y.to(device)

    def sigmas(self, steps: int | None = None, grid: str | None = None) -> Tensor:
        """The sampler's noise levels, ``[steps + 1]`` (see :func:`moldiff.core.sampling_sigmas`)."""
        return self.config.sigmas(self.schedule, steps, grid)

    def nfe(
        self,
        sampler: str | None = None,
        steps: int | None = None,
        guidance_scale: float | None = None,
        grid: str | None = None,
        guided: bool = True,
    ) -> int:
        """Network evaluations per image for a sampler setting (twice the denoiser calls under guidance)."""
        calls = count_denoiser_calls(sampler or self.config.sampler, self.sigmas(steps, grid))
        scale = self.config.guidance_scale if guidance_scale is None else guidance_scale
        return calls * (2 if (guided and self.conditional and scale != 1.0) else 1)

    @torch.no_grad()
    def sample(
        self,
        num: int,
        seed: int = 0,
        sampler: str | None = None,
        steps: int | None = None,
        labels: int | str | Sequence | Tensor | None = None,
        guidance_scale: float | None = None,
        *,
        grid: str | None = None,
        batch_size: int = 256,
        generator: torch.Generator | None = None,
        callback: Callable | None = None,
        **sampler_options,
    ) -> Tensor:
        """Sample images.

        Args:
            num: number of images.
            seed: seed of the noise (ignored when ``generator`` is given): image ``i`` draws its noise
                from its own generator seeded by ``(seed, i)`` (:func:`moldiff.core.item_generators`),
                so the images do not depend on ``batch_size``.
            sampler: any :data:`moldiff.core.SAMPLERS` name (default: the config's, ``dpmpp_2m``).
            steps: sampler steps (default: the config's ``sample_steps``).
            labels: conditional models: one class (index or name) for every image, or one per image;
                ``None`` or ``-1`` samples the unconditional model (the null label).
            guidance_scale: classifier-free guidance weight ``w`` (default: the config's; only with
                labels; ``w = 1`` is plain conditional sampling, ``w > 1`` strengthens the class).
            grid: time grid (default: the config's, ``karras``).
            batch_size: images per sampler call.
            generator: one random generator for all the noise, or one per image (default: per image,
                from ``seed``).
            callback: called after each sampler step (see :mod:`moldiff.core.samplers`).
            sampler_options: passed to the sampler (``eta`` for DDIM, ``s_churn`` for Heun, ...).

        Returns:
            ``[num, C, H, W]`` floats clipped to ``[-1, 1]`` (:func:`moldiff.images.data.to_uint8`
            gives 8-bit images).
        """
        if num < 1 or batch_size < 1:
            raise InputError(f"num and batch_size must be at least 1, got {num} and {batch_size}")
        device = next(self.parameters()).device
        y = self._labels(labels, num, device)
        scale = self.config.guidance_scale if guidance_scale is None else float(guidance_scale)
        sigmas = self.sigmas(steps, grid)
        sample_fn = get_sampler(sampler or self.config.sampler)
        out = []
        for start in range(0, num, batch_size):
            n = min(batch_size, num - start)
            space = EuclideanSpace((n, *self.image_shape), device=device)
            denoiser, extra = self.denoiser, {}
            if y is not None:
                chunk = y[start : start + n]
                if scale != 1.0:
                    denoiser = classifier_free_guidance(
                        self.denoiser, space, scale, {"labels": chunk}, {"labels": None}
                    )
                else:
                    extra = {"labels": chunk}
            g = generator if generator is not None else item_generators(seed, range(start, start + n), device)
            x = initial_noise(space, float(sigmas[0]), generator=g, schedule=self.schedule)
            x = sample_fn(
                denoiser, x, sigmas, space, generator=g, callback=callback, extra_args=extra, **sampler_options
            )
            out.append(x.clamp(-1.0, 1.0))
        return torch.cat(out)

    # ------------------------------------------------------------------ likelihood
    def bits_per_dim(
        self,
        images: Tensor,
        labels: Tensor | None = None,
        *,
        num_steps: int = 50,
        trace: str = "hutchinson",
        num_probes: int = 1,
        generator: torch.Generator | None = None,
        batch_size: int = 64,
    ) -> Tensor:
        """Bits per dimension of 8-bit images ``[N, C, H, W]`` through the probability-flow ODE, ``[N]``.

        Uses :func:`moldiff.images.metrics.image_bits_per_dim` (uniform dequantisation,
        ``bpd = -log p(y) / (D ln 2) + 7``; see there). Conditional models give ``-log2 p(x | y)``
        per dimension with ``labels``, else the unconditional (null-label) density.
        """
        device = next(self.parameters()).device
        y = self._labels(labels, images.shape[0], device)
        out = []
        for start in range(0, images.shape[0], batch_size):
            chunk = images[start : start + batch_size].to(device)
            extra = {"labels": y[start : start + batch_size]} if y is not None else None
            out.append(
                image_bits_per_dim(
                    self.denoiser,
                    chunk,
                    schedule=self.schedule,
                    num_steps=num_steps,
                    trace=trace,
                    num_probes=num_probes,
                    generator=generator,
                    extra_args=extra,
                )
            )
        return torch.cat(out)
