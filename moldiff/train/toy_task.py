"""The engine's self-test task: diffusion on a low-dimensional Gaussian mixture.

``task: gaussian_mixture`` trains a small MLP denoiser with :func:`moldiff.core.losses.denoising_loss`
on a fixed mixture of ``num_components`` isotropic Gaussians in ``dim`` dimensions (centres on a
circle for ``dim = 2``, on a sphere of radius ``radius`` otherwise). It trains in seconds on a CPU,
so the engine's tests and the quick-start example use it; its evaluation hook samples the EMA
model with a fixed seed and reports how close the samples fall to the mixture's modes. It shows
everything a real task provides: config dataclasses, a dataset, dataset statistics (used to
normalise the data and saved in checkpoints), ``state_for_sampling``, ``eval_fn`` and ``model_fn``.

Run it with ``moldiff train configs/toy_gaussian_mixture.yaml``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from moldiff.core.losses import denoising_loss
from moldiff.core.parameterisation import DiffusionDenoiser
from moldiff.core.samplers import get_sampler, initial_noise
from moldiff.core.schedules import make_schedule, sampling_sigmas
from moldiff.core.settings import require_positive
from moldiff.core.spaces import EuclideanSpace

from .tasks import TaskBundle, register_task

__all__ = [
    "ToyModelConfig",
    "ToyDataConfig",
    "GaussianMixtureDataset",
    "collate_vectors",
    "MLPDenoiserNet",
    "GaussianMixtureModel",
    "build_gaussian_mixture",
    "register",
]

TASK_NAME = "gaussian_mixture"


@dataclass
class ToyModelConfig:
    """The ``model:`` section of the toy task.

    Attributes:
        hidden: width of the MLP (default: 128).
        depth: number of hidden layers (default: 3).
        time_features: size of the sinusoidal time embedding (default: 32).
        schedule: noise schedule name for :func:`moldiff.core.schedules.make_schedule` (default: ``"vp_cosine"``).
        prediction: what the network predicts: ``"eps"``, ``"x0"``, ``"v"`` or ``"edm"`` (default: ``"eps"``).
        weighting: loss weighting of :func:`moldiff.core.losses.loss_weight` (default: ``"eps"``).
        noise_sampler: training-time sampler of :func:`moldiff.core.losses.sample_times` (default: ``"uniform"``).
        sampler: sampler for the evaluation hook (a :func:`moldiff.core.samplers.get_sampler` name; default: ``"heun"``).
        sample_steps: sampler steps for evaluation (default: 24).
        eval_samples: number of samples drawn per evaluation (default: 1024).
    """

    hidden: int = 128
    depth: int = 3
    time_features: int = 32
    schedule: str = "vp_cosine"
    prediction: Literal["eps", "x0", "v", "edm"] = "eps"
    weighting: str = "eps"
    noise_sampler: str = "uniform"
    sampler: str = "heun"
    sample_steps: int = 24
    eval_samples: int = 1024

    def __post_init__(self) -> None:
        require_positive(self, "hidden", "depth", "time_features", "sample_steps", "eval_samples")


@dataclass
class ToyDataConfig:
    """The ``data:`` section of the toy task.

    Attributes:
        dim: dimension of the vectors (default: 2).
        num_components: number of mixture components (default: 8).
        radius: distance of the component centres from the origin (default: 2.0).
        component_std: standard deviation of each component (default: 0.15).
        num_train: training set size (default: 8192).
        num_valid: validation set size (default: 1024).
        seed: seed of the centres and the samples, independent of ``train.seed`` (default: 0).
    """

    dim: int = 2
    num_components: int = 8
    radius: float = 2.0
    component_std: float = 0.15
    num_train: int = 8192
    num_valid: int = 1024
    seed: int = 0


def mixture_centres(cfg: ToyDataConfig) -> torch.Tensor:
    """Component centres ``[K, dim]``: evenly on a circle in 2-D, seeded random directions otherwise."""
    k = cfg.num_components
    if cfg.dim == 2:
        angle = 2 * math.pi * torch.arange(k, dtype=torch.float64) / k
        return cfg.radius * torch.stack([angle.cos(), angle.sin()], dim=1).float()
    g = torch.Generator().manual_seed(cfg.seed)
    directions = torch.randn(k, cfg.dim, generator=g, dtype=torch.float64)
    return (cfg.radius * directions / directions.norm(dim=1, keepdim=True)).float()


class GaussianMixtureDataset(torch.utils.data.Dataset):
    """A fixed sample of the mixture: ``dataset[i]`` is a ``[dim]`` float tensor.

    Args:
        centres: ``[K, dim]`` component centres.
        std: component standard deviation.
        num_items: number of vectors.
        seed: sampling seed.
    """

    def __init__(self, centres: torch.Tensor, std: float, num_items: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        component = torch.randint(0, centres.shape[0], (num_items,), generator=g)
        self.data = centres[component] + std * torch.randn(num_items, centres.shape[1], generator=g)

    def __len__(self) -> int:
        return self.data.shape[0]

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.data[index]

    def __getitems__(self, indices: list[int]) -> torch.Tensor:
        """A whole batch ``[len(indices), dim]`` in one indexing operation (used by the DataLoader)."""
        return self.data[torch.as_tensor(indices)]


def collate_vectors(batch: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
    """Collate for :class:`GaussianMixtureDataset`: a batch fetched whole is already ``[B, dim]``."""
    return batch if isinstance(batch, torch.Tensor) else torch.stack(list(batch))


class MLPDenoiserNet(nn.Module):
    """``network(x_t, t) -> prediction``: an MLP on ``[x_t, sin/cos features of t]``.

    Args:
        dim: data dimension.
        hidden: hidden width.
        depth: number of hidden layers.
        time_features: size of the time embedding (even).

    Shapes:
        ``x_t``: ``[B, dim]``; ``t``: ``[B]``; output ``[B, dim]``.
    """

    def __init__(self, dim: int, hidden: int = 128, depth: int = 3, time_features: int = 32) -> None:
        super().__init__()
        half = time_features // 2
        self.register_buffer("freqs", torch.exp(torch.linspace(0.0, math.log(1000.0), half)), persistent=False)
        layers: list[nn.Module] = []
        width = dim + 2 * half
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, dim))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        angles = t.to(x.dtype)[:, None] * self.freqs.to(x.dtype)
        return self.mlp(torch.cat([x, angles.sin(), angles.cos()], dim=1))


class GaussianMixtureModel(nn.Module):
    """The trainable toy model: data normalisation + a :class:`DiffusionDenoiser` around the MLP.

    Args:
        cfg: model config.
        data_mean: ``[dim]`` mean of the training data.
        data_std: ``[dim]`` standard deviation of the training data.
    """

    def __init__(self, cfg: ToyModelConfig, data_mean: torch.Tensor, data_std: torch.Tensor) -> None:
        super().__init__()
        self.cfg = cfg
        dim = int(data_mean.numel())
        self.register_buffer("data_mean", torch.as_tensor(data_mean, dtype=torch.float32).reshape(dim))
        self.register_buffer("data_std", torch.as_tensor(data_std, dtype=torch.float32).reshape(dim))
        net = MLPDenoiserNet(dim, cfg.hidden, cfg.depth, cfg.time_features)
        self.denoiser = DiffusionDenoiser(net, make_schedule(cfg.schedule), prediction=cfg.prediction, sigma_data=1.0)

    @property
    def network(self) -> nn.Module:
        """The neural network (what ``train.compile`` compiles)."""
        return self.denoiser.network

    def training_loss(self, batch: torch.Tensor, generator: torch.Generator | None = None):
        """Mean denoising loss of a batch ``[B, dim]`` of raw vectors; metrics: the per-item spread."""
        x0 = (batch - self.data_mean) / self.data_std
        per_item = denoising_loss(
            self.denoiser,
            x0,
            EuclideanSpace.like(x0),
            generator=generator,
            weighting=self.cfg.weighting,
            noise_sampler=self.cfg.noise_sampler,
        )
        return per_item.mean(), {"loss_std": per_item.detach().std()}

    @torch.no_grad()
    def sample(
        self, num: int, generator: torch.Generator | None = None, steps: int | None = None, sampler: str | None = None
    ) -> torch.Tensor:
        """Draw ``num`` vectors ``[num, dim]`` in data units with a :mod:`moldiff.core` sampler."""
        device = self.data_mean.device
        schedule = self.denoiser.schedule
        space = EuclideanSpace((num, self.data_mean.numel()), device=device)
        sigmas = sampling_sigmas(schedule, steps or self.cfg.sample_steps, "karras")
        x = initial_noise(space, float(sigmas[0]), generator=generator, schedule=schedule)
        x = get_sampler(sampler or self.cfg.sampler)(self.denoiser, x, sigmas, space, generator=generator)
        return x * self.data_std + self.data_mean

    def state_for_sampling(self) -> dict:
        return {"dim": int(self.data_mean.numel()), "schedule": self.cfg.schedule, "prediction": self.cfg.prediction}


def _mean_chi(dim: int) -> float:
    """``E ||z||`` for ``z ~ N(0, I_dim)``."""
    return math.sqrt(2.0) * math.exp(math.lgamma((dim + 1) / 2) - math.lgamma(dim / 2))


def mixture_metrics(samples: torch.Tensor, centres: torch.Tensor, std: float) -> dict[str, float]:
    """How well ``samples`` ``[N, dim]`` match the mixture.

    Returns:
        ``mode_distance``: mean distance to the nearest centre divided by its expected value for
        exact samples, ``std * sqrt(2) Gamma((dim + 1) / 2) / Gamma(dim / 2)`` (so about 1 when the
        model is perfect, larger when samples fall between modes); ``mode_coverage``: fraction of components that receive at
        least a quarter of their expected share of samples; ``mean_error``: distance between the
        sample mean and the mixture's mean.
    """
    samples = samples.float().cpu()
    dist = torch.cdist(samples, centres)
    nearest, which = dist.min(dim=1)
    k = centres.shape[0]
    counts = torch.bincount(which, minlength=k).float()
    return {
        "mode_distance": float(nearest.mean() / (std * _mean_chi(samples.shape[1]))),
        "mode_coverage": float((counts >= 0.25 * samples.shape[0] / k).float().mean()),
        "mean_error": float((samples.mean(0) - centres.mean(0)).norm()),
    }


def _model_from_stats(model_cfg: ToyModelConfig, stats: dict) -> GaussianMixtureModel:
    return GaussianMixtureModel(model_cfg, torch.tensor(stats["mean"]), torch.tensor(stats["std"]))


def build_gaussian_mixture(
    model_cfg: ToyModelConfig, data_cfg: ToyDataConfig, *, rank: int = 0, world_size: int = 1, seed: int = 0
) -> TaskBundle:
    """Build the toy task's model, datasets, statistics and evaluation hook (the task's ``build_fn``)."""
    centres = mixture_centres(data_cfg)
    train_set = GaussianMixtureDataset(centres, data_cfg.component_std, data_cfg.num_train, data_cfg.seed)
    valid_set = GaussianMixtureDataset(centres, data_cfg.component_std, data_cfg.num_valid, data_cfg.seed + 1)
    stats = {
        "dim": data_cfg.dim,
        "mean": train_set.data.mean(0).tolist(),
        "std": train_set.data.std(0).tolist(),
        "centres": centres.tolist(),
        "component_std": data_cfg.component_std,
    }
    model = _model_from_stats(model_cfg, stats)

    def eval_fn(ema_model: GaussianMixtureModel, step: int, out_dir: str) -> dict:
        generator = torch.Generator(ema_model.data_mean.device).manual_seed(1234)
        samples = ema_model.sample(model_cfg.eval_samples, generator=generator)
        return mixture_metrics(samples, centres, data_cfg.component_std)

    return TaskBundle(
        model=model,
        train_dataset=train_set,
        collate_fn=collate_vectors,
        dataset_stats=stats,
        eval_fn=eval_fn,
        valid_dataset=valid_set,
    )


def register() -> None:
    """Register ``gaussian_mixture`` (called by :func:`moldiff.train.tasks.get_task` through the entry point)."""
    register_task(TASK_NAME, ToyModelConfig, ToyDataConfig, build_gaussian_mixture, model_fn=_model_from_stats)
