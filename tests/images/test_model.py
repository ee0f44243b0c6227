"""ImageDiffusion: training lowers the loss; every core sampler, guidance and the likelihood run on a tiny U-Net."""

import pytest
import torch

from moldiff.core import SAMPLERS, EuclideanSpace, denoising_loss
from moldiff.images.data import ImageBatch
from moldiff.images.model import ImageDiffusion

from .conftest import tiny_config


def _toy_images(n: int = 32) -> ImageBatch:
    """Bars at one of three heights (the label) on 8 x 8 images in [-1, 1]."""
    labels = torch.arange(n) % 3
    images = -torch.ones(n, 1, 8, 8)
    for k in range(n):
        images[k, 0, 2 * int(labels[k]) + 1 : 2 * int(labels[k]) + 3] = 1.0
    return ImageBatch(images, labels)


def _fit(model: ImageDiffusion, batch: ImageBatch, steps: int, lr: float) -> dict:
    """``steps`` Adam steps of the model's own training loss on one batch; the last step's metrics."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        loss, metrics = model.training_loss(batch, g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return metrics


def test_a_few_training_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = ImageDiffusion(tiny_config(class_conditional=True), {"image_shape": [1, 8, 8], "num_classes": 3})
    batch = _toy_images()

    @torch.no_grad()
    def fixed_loss():  # the same noise and noise levels every time
        g = torch.Generator().manual_seed(123)
        t = torch.tensor([0.05, 0.3, 1.0, 4.0]).repeat_interleave(8).double()
        return float(
            denoising_loss(
                model.denoiser,
                batch.images,
                EuclideanSpace.like(batch.images),
                generator=g,
                t=t,
                weighting="edm",
                extra_args={"labels": batch.labels},
            ).mean()
        )

    before = fixed_loss()
    metrics = _fit(model, batch, steps=20, lr=3e-3)
    assert set(metrics) == {"loss_std"}
    assert fixed_loss() < 0.6 * before


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_every_core_sampler_runs(tiny_model, sampler):
    model = tiny_model(conditional=True)
    calls = []
    x = model.sample(3, seed=0, sampler=sampler, steps=3, labels=[0, 1, 2], callback=calls.append)
    assert x.shape == (3, 1, 8, 8) and torch.isfinite(x).all() and float(x.abs().max()) <= 1
    assert len(calls) == 3
    again = model.sample(3, seed=0, sampler=sampler, steps=3, labels=[0, 1, 2])
    assert torch.equal(x, again)  # a seed fixes the samples, stochastic samplers included


def test_labels_guidance_and_nfe(tiny_model):
    model = tiny_model(conditional=True)
    plain = model.sample(4, seed=1, steps=4, labels="b")
    guided = model.sample(4, seed=1, steps=4, labels="b", guidance_scale=3.0)
    unconditional = model.sample(4, seed=1, steps=4)
    assert not torch.allclose(plain, guided) and not torch.allclose(plain, unconditional)
    assert torch.equal(model.sample(4, seed=1, steps=4, labels=1), plain)  # a name or an index
    chunked = model.sample(4, seed=1, steps=4, labels=1, batch_size=3)  # chunks draw from one generator in turn
    assert torch.allclose(chunked[:3], plain[:3], atol=1e-5)
    assert (
        model.nfe("dpmpp_2m", 4) == 4 and model.nfe("heun", 4) == 7 and model.nfe("heun", 4, guidance_scale=2.0) == 14
    )
    with pytest.raises(ValueError, match="unknown class names"):
        model.sample(2, labels="z")
    with pytest.raises(ValueError, match="2 labels for 3 images"):
        model.sample(3, labels=[0, 1])
    with pytest.raises(ValueError, match="unconditional"):
        tiny_model(conditional=False).sample(2, labels=0)


def test_bits_per_dim_runs_and_depends_on_the_label(tiny_model):
    model = tiny_model(conditional=True)
    images = torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8)
    kwargs = dict(num_steps=4, generator=None)
    bpd = model.bits_per_dim(images, **kwargs)
    assert bpd.shape == (2,) and torch.isfinite(bpd).all()
    g = torch.Generator().manual_seed(0)
    a = model.bits_per_dim(images, torch.tensor([0, 0]), num_steps=4, generator=g)
    b = model.bits_per_dim(images, torch.tensor([2, 2]), num_steps=4, generator=torch.Generator().manual_seed(0))
    assert not torch.allclose(a, b)


@pytest.mark.parametrize(
    "schedule, prediction, options",
    [("vp_cosine", "eps", {}), ("ddpm_linear", "v", {"num_steps": 100}), ("flow", "x0", {})],
)
def test_other_schedules_and_predictions(schedule, prediction, options):
    torch.manual_seed(0)
    cfg = tiny_config(
        schedule=schedule, prediction=prediction, schedule_options=options, weighting="eps", noise_sampler="uniform"
    )
    model = ImageDiffusion(cfg, {"image_shape": [1, 8, 8]})
    loss, _ = model.training_loss(_toy_images(4))
    assert torch.isfinite(loss)
    assert model.sample(2, steps=2).shape == (2, 1, 8, 8)


@pytest.mark.slow
def test_a_trained_model_draws_the_requested_class():
    """About 25 s on one core: 300 Adam steps on three 'bar' images; every sampler then draws the asked-for bar."""
    torch.manual_seed(0)
    model = ImageDiffusion(
        tiny_config(class_conditional=True, base_channels=16), {"image_shape": [1, 8, 8], "num_classes": 3}
    )
    _fit(model, _toy_images(48), steps=300, lr=2e-3)
    model.eval()
    labels = torch.arange(30) % 3
    templates = _toy_images(3).images[labels]
    for sampler, steps in [("dpmpp_2m", 10), ("heun", 8), ("ddpm", 30)]:
        x = model.sample(30, seed=0, sampler=sampler, steps=steps, labels=labels)
        assert float((x - templates).abs().mean()) < 0.15, sampler
