"""moldiff.core: the torch-only diffusion core, one implementation for every modality.

It imports nothing else from moldiff and no chemistry. See the module docstrings for the maths:

* :mod:`~moldiff.core.schedules` — noise schedules and sampling time grids;
* :mod:`~moldiff.core.spaces` — dense, zero-CoM packed-graph and product state spaces;
* :mod:`~moldiff.core.parameterisation` — eps / x0 / v / score / EDM preconditioning, the denoiser;
* :mod:`~moldiff.core.losses` — denoising objectives, noise-level sampling, variational-bound terms;
* :mod:`~moldiff.core.samplers` — DDPM, DDIM, Euler, Heun, DPM-Solver++(2M), Euler-Maruyama, PC, PF-ODE;
* :mod:`~moldiff.core.guidance` — classifier-free, gradient and inpainting guidance;
* :mod:`~moldiff.core.likelihood` — PF-ODE log-likelihood.
"""

from .guidance import classifier_free_guidance, gradient_guidance, inpainting
from .likelihood import bits_per_dim, pf_ode_log_likelihood
from .losses import (denoising_loss, diffusion_vlb_estimate, gaussian_nll, loss_weight, prior_kl, sample_times,
                     vlb_diffusion_term)
from .parameterisation import (PREDICTIONS, DiffusionDenoiser, convert_prediction, edm_preconditioning,
                               prediction_from_x0, x0_from_prediction)
from .samplers import (SAMPLERS, count_denoiser_calls, get_sampler, initial_noise, langevin_correct, sample_ddim,
                       sample_ddpm, sample_dpmpp_2m, sample_euler, sample_euler_maruyama, sample_heun, sample_pc,
                       sample_pf_ode)
from .schedules import (SCHEDULES, TIME_GRIDS, DiscreteVPSchedule, EDMSchedule, FlowSchedule, NoiseSchedule,
                        VESchedule, VPSchedule, karras_sigmas, karras_times, log_snr_times, make_schedule,
                        quadratic_times, sampling_sigmas, uniform_times)
from .settings import DiffusionSettings
from .spaces import EuclideanSpace, GraphSpace, ProductSpace, StateSpace, molecule_space, zero_com_space

__all__ = [
    "classifier_free_guidance", "gradient_guidance", "inpainting",
    "bits_per_dim", "pf_ode_log_likelihood",
    "denoising_loss", "diffusion_vlb_estimate", "gaussian_nll", "loss_weight", "prior_kl", "sample_times",
    "vlb_diffusion_term",
    "PREDICTIONS", "DiffusionDenoiser", "convert_prediction", "edm_preconditioning", "prediction_from_x0",
    "x0_from_prediction",
    "SAMPLERS", "count_denoiser_calls", "get_sampler", "initial_noise", "langevin_correct", "sample_ddim",
    "sample_ddpm", "sample_dpmpp_2m", "sample_euler", "sample_euler_maruyama", "sample_heun", "sample_pc",
    "sample_pf_ode",
    "SCHEDULES", "TIME_GRIDS", "DiscreteVPSchedule", "EDMSchedule", "FlowSchedule", "NoiseSchedule", "VESchedule",
    "VPSchedule", "karras_sigmas", "karras_times", "log_snr_times", "make_schedule", "quadratic_times",
    "sampling_sigmas", "uniform_times",
    "DiffusionSettings",
    "EuclideanSpace", "GraphSpace", "ProductSpace", "StateSpace", "molecule_space", "zero_com_space",
]
