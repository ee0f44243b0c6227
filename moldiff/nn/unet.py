"""An image U-Net denoiser: residual blocks, self-attention at low resolution, a time embedding and
optional class conditioning (with a null label for classifier-free guidance).

The layout follows DDPM (Ho et al. 2020, App. B) with the changes of "improved DDPM" / ADM
(Nichol & Dhariwal 2021; Dhariwal & Nichol 2021, Sec. 3):

* the noise level enters every residual block as a per-channel scale and shift of the second
  normalisation, ``h = GN(h) (1 + s(e)) + b(e)`` (ADM's AdaGN, Dhariwal & Nichol 2021, Sec. 3, with
  the scale written as ``1 + s`` so that ``s = 0`` is plain normalisation);
* the class label is an embedding added to the time embedding ``e`` (ADM Sec. 3), with one extra
  *null* embedding used when the label is dropped (Ho & Salimans 2022, "Classifier-Free Diffusion
  Guidance", Alg. 1);
* the last convolution of every residual branch, of every attention block and of the output is
  zero-initialised, so each block starts as the identity and the untrained network outputs 0;
* multi-head self-attention (``softmax(q k^T / sqrt(d)) v``, Vaswani et al. 2017, Eq. 1) runs at the
  chosen levels of the encoder and decoder and always in the middle block.

Any input height and width work (odd sizes too: 28 -> 14 -> 7): downsampling is a stride-2
convolution and upsampling is nearest-neighbour interpolation *to the size of the matching skip
connection*, followed by a 3x3 convolution.

The network follows the core's contract ``network(x_t, t, **cond)`` of
:class:`moldiff.core.parameterisation.DiffusionDenoiser`: ``t`` is one scalar per image (the
schedule time in ``[0, 1]``, or EDM's ``c_noise = ln(sigma) / 4``), multiplied by ``time_scale``
before the sinusoidal embedding.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .embeddings import SinusoidalEmbedding

Tensor = torch.Tensor

__all__ = ["UNet", "ResBlock", "AttentionBlock"]


def _group_norm(channels: int, groups: int) -> nn.GroupNorm:
    """Group normalisation with the largest group count ``<= groups`` that divides ``channels``."""
    return nn.GroupNorm(math.gcd(groups, channels), channels)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """``x + F(x, e)`` with ``F = conv(drop(SiLU(GN(conv(SiLU(GN(x)))) (1 + s) + b)))`` and
    ``(s, b) = Linear(SiLU(e))`` (ADM's residual block with scale-shift conditioning).

    Args:
        in_channels: input channels.
        out_channels: output channels (a 1x1 convolution maps the skip path when they differ).
        emb_dim: size of the conditioning embedding ``e``.
        dropout: dropout probability before the last convolution (default: 0).
        groups: maximum number of normalisation groups (default: 32).

    Shapes:
        ``x [B, in_channels, H, W]``, ``emb [B, emb_dim]`` -> ``[B, out_channels, H, W]``.
    """

    def __init__(
        self, in_channels: int, out_channels: int, emb_dim: int, dropout: float = 0.0, groups: int = 32
    ) -> None:
        super().__init__()
        self.norm1 = _group_norm(in_channels, groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * out_channels)
        self.norm2 = _group_norm(out_channels, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip = nn.Identity() if in_channels == out_channels else nn.Conv2d(in_channels, out_channels, 1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class AttentionBlock(nn.Module):
    """Multi-head self-attention over the ``H * W`` positions, ``x + proj(attn(GN(x)))``.

    Args:
        channels: feature channels (divisible by ``heads``).
        heads: attention heads (default: 4; reduced to 1 when ``channels`` is not divisible).
        groups: maximum number of normalisation groups (default: 32).

    Shapes:
        ``x [B, C, H, W]`` -> ``[B, C, H, W]``.
    """

    def __init__(self, channels: int, heads: int = 4, groups: int = 32) -> None:
        super().__init__()
        self.heads = heads if channels % heads == 0 else 1
        self.norm = _group_norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv2d(channels, channels, 1))

    def forward(self, x: Tensor) -> Tensor:
        b, c, hgt, wid = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, hgt * wid).unbind(1)
        # [B, heads, positions, head_dim]
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, hgt, wid))


class _Level(nn.Module):
    """The residual (and attention) blocks of one resolution level."""

    def __init__(
        self,
        channels_in: Sequence[int],
        out_channels: int,
        emb_dim: int,
        attention: bool,
        dropout: float,
        heads: int,
        groups: int,
    ) -> None:
        super().__init__()
        self.res = nn.ModuleList(ResBlock(c, out_channels, emb_dim, dropout, groups) for c in channels_in)
        self.attn = nn.ModuleList(
            AttentionBlock(out_channels, heads, groups) if attention else nn.Identity() for _ in channels_in
        )


class UNet(nn.Module):
    """U-Net denoiser for image batches ``[B, C, H, W]``.

    Level ``i`` works at resolution ``H / 2^i`` (rounded up) with ``base_channels * channel_mults[i]``
    channels; the encoder has ``num_res_blocks`` residual blocks per level, the decoder
    ``num_res_blocks + 1`` (one per skip connection), and the middle block is
    residual - attention - residual at the lowest resolution.

    Args:
        in_channels: image channels ``C``.
        out_channels: output channels (default: ``in_channels``).
        base_channels: channels of the first level (default: 64).
        channel_mults: channel multiplier per level; its length is the number of levels
            (default: ``(1, 2, 2)``: 28 -> 14 -> 7 for 28 x 28 images).
        num_res_blocks: residual blocks per encoder level (default: 2).
        attention_levels: indices of the levels with self-attention (default: ``(len(mults) - 1,)``,
            the lowest resolution only; the middle block always has attention).
        heads: attention heads (default: 4).
        dropout: dropout in the residual blocks (default: 0).
        num_classes: number of class labels; 0 for an unconditional network (default: 0).
        groups: maximum number of group-normalisation groups (default: 32).
        time_scale: ``t`` is multiplied by this before the sinusoidal embedding, so that ``t`` in
            ``[0, 1]`` spans DDPM's integer range (default: 1000).
        emb_dim: size of the time / class embedding (default: ``4 * base_channels``).

    Shapes:
        ``x [B, C, H, W]``, ``t [B]``, ``labels [B]`` (long, in ``0..num_classes-1``; ``-1`` or
        ``labels=None`` select the null label) -> ``[B, out_channels, H, W]``.

    Example:
        >>> net = UNet(1, base_channels=16, channel_mults=(1, 2), num_res_blocks=1, num_classes=10)
        >>> net(torch.randn(2, 1, 28, 28), torch.rand(2), labels=torch.tensor([3, -1])).shape
        torch.Size([2, 1, 28, 28])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int | None = None,
        *,
        base_channels: int = 64,
        channel_mults: Sequence[int] = (1, 2, 2),
        num_res_blocks: int = 2,
        attention_levels: Sequence[int] | None = None,
        heads: int = 4,
        dropout: float = 0.0,
        num_classes: int = 0,
        groups: int = 32,
        time_scale: float = 1000.0,
        emb_dim: int | None = None,
    ) -> None:
        super().__init__()
        if not channel_mults:
            raise ValueError("channel_mults needs at least one level")
        levels = len(channel_mults)
        attention_levels = (levels - 1,) if attention_levels is None else tuple(attention_levels)
        if any(not 0 <= a < levels for a in attention_levels):
            raise ValueError(f"attention_levels {attention_levels} must lie in 0..{levels - 1}")
        self.in_channels = in_channels
        self.out_channels = out_channels or in_channels
        self.num_classes = int(num_classes)
        emb_dim = emb_dim or 4 * base_channels
        self.time_embed = nn.Sequential(
            SinusoidalEmbedding(base_channels, scale=time_scale),
            nn.Linear(base_channels, emb_dim),
            nn.SiLU(),
            nn.Linear(emb_dim, emb_dim),
        )
        # index num_classes is the null label (classifier-free guidance)
        self.label_embed = nn.Embedding(self.num_classes + 1, emb_dim) if self.num_classes > 0 else None

        widths = [base_channels * m for m in channel_mults]
        self.conv_in = nn.Conv2d(in_channels, base_channels, 3, padding=1)
        skips = [base_channels]
        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        ch = base_channels
        for i, width in enumerate(widths):
            self.down.append(
                _Level(
                    [ch] + [width] * (num_res_blocks - 1), width, emb_dim, i in attention_levels, dropout, heads, groups
                )
            )
            ch = width
            skips += [width] * num_res_blocks
            if i < levels - 1:
                self.downsample.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skips.append(ch)
        self.mid_res1 = ResBlock(ch, ch, emb_dim, dropout, groups)
        self.mid_attn = AttentionBlock(ch, heads, groups)
        self.mid_res2 = ResBlock(ch, ch, emb_dim, dropout, groups)
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(levels)):
            width = widths[i]
            ins = []
            for _ in range(num_res_blocks + 1):
                ins.append(ch + skips.pop())
                ch = width
            self.up.append(_Level(ins, width, emb_dim, i in attention_levels, dropout, heads, groups))
            if i > 0:
                self.upsample.append(nn.Conv2d(ch, ch, 3, padding=1))
        self.norm_out = _group_norm(ch, groups)
        self.conv_out = _zero(nn.Conv2d(ch, self.out_channels, 3, padding=1))

    def embed(self, t: Tensor, labels: Tensor | None, batch: int) -> Tensor:
        """The conditioning embedding ``e = MLP(sinusoid(time_scale t)) [+ label embedding]``, ``[B, emb_dim]``."""
        emb = self.time_embed(t.reshape(-1).expand(batch)[:, None])  # [B, 1]: the embedding squeezes the last axis
        if self.label_embed is not None:
            null = torch.full((batch,), self.num_classes, dtype=torch.long, device=emb.device)
            if labels is None:
                labels = null
            else:
                labels = labels.reshape(-1).long().expand(batch)
                labels = torch.where(labels < 0, null, labels)
            emb = emb + self.label_embed(labels)
        elif labels is not None:
            raise ValueError("this U-Net was built with num_classes=0 and takes no labels")
        return emb.to(self.conv_in.weight.dtype)

    def forward(self, x: Tensor, t: Tensor, labels: Tensor | None = None) -> Tensor:
        emb = self.embed(t, labels, x.shape[0])
        h = self.conv_in(x)
        skips = [h]
        for i, level in enumerate(self.down):
            for res, attn in zip(level.res, level.attn):
                h = attn(res(h, emb))
                skips.append(h)
            if i < len(self.downsample):
                h = self.downsample[i](h)
                skips.append(h)
        h = self.mid_res2(self.mid_attn(self.mid_res1(h, emb)), emb)
        for j, level in enumerate(self.up):
            for res, attn in zip(level.res, level.attn):
                h = attn(res(torch.cat([h, skips.pop()], dim=1), emb))
            if j < len(self.upsample):
                h = F.interpolate(h, size=skips[-1].shape[-2:], mode="nearest")
                h = self.upsample[j](h)
        return self.conv_out(F.silu(self.norm_out(h)))
