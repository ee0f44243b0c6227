"""The diffusion core on its own: sample a 2-D Gaussian with its exact denoiser using every sampler,
on a packed batch of point clouds with zero centre of mass.

    python examples/gaussian_core.py
"""

import torch

from moldiff.core import SAMPLERS, EDMSchedule, initial_noise, sampling_sigmas, zero_com_space
from moldiff.testing import IsotropicGaussianOracle

sizes = torch.randint(3, 10, (500,), generator=torch.Generator().manual_seed(0))
batch = torch.repeat_interleave(torch.arange(len(sizes)), sizes)
space = zero_com_space(batch, len(sizes), dtype=torch.float64)
oracle = IsotropicGaussianOracle(space, torch.randn(space.shape, dtype=torch.float64), variance=0.5)
schedule = EDMSchedule()
for name in sorted(SAMPLERS):
    steps = 40 if name in ("heun", "dpmpp_2m", "pf_ode") else 300
    g = torch.Generator().manual_seed(1)
    sigmas = sampling_sigmas(schedule, steps)
    x = SAMPLERS[name](
        oracle, initial_noise(space, float(sigmas[0]), generator=g, dtype=torch.float64), sigmas, space, generator=g
    )
    var = float(space.sum_per_item((x - oracle.mean) ** 2).sum() / space.dof.sum())
    print(f"{name:15s} {steps:4d} steps  variance per degree of freedom {var:.3f} (target 0.500)")
