"""moldiff.core: the torch-only diffusion core, one implementation for every modality.

It imports nothing else from moldiff and no chemistry. See the module docstrings for the maths:

* :mod:`~moldiff.core.schedules` — noise schedules and sampling time grids;
* :mod:`~moldiff.core.spaces` — dense, zero-CoM packed-graph and product state spaces;
* :mod:`~moldiff.core.categorical` — categorical variables on nodes and node pairs (masking, uniform
  or marginal prior), their noising and sampling steps, pair indexing of packed graphs;
* :mod:`~moldiff.core.joint` — the joint space of continuous and categorical blocks on one clock;
* :mod:`~moldiff.core.parameterisation` — eps / x0 / v / score / EDM preconditioning, the denoiser;
* :mod:`~moldiff.core.losses` — denoising objectives, noise-level sampling, variational-bound terms,
  the joint (MSE + cross-entropy) loss and its time weightings;
* :mod:`~moldiff.core.samplers` — DDPM, DDIM, Euler, Heun, DPM-Solver++(2M), Euler-Maruyama, PC, PF-ODE;
  joint Euler / Heun / ancestral samplers of continuous and categorical blocks;
* :mod:`~moldiff.core.guidance` — classifier-free, gradient and inpainting guidance;
* :mod:`~moldiff.core.likelihood` — PF-ODE log-likelihood.
"""

from .categorical import (
    CategoricalSchedule,
    CategoricalSpace,
    edge_id,
    edge_permutation,
    sample_categorical,
    upper_triangle_edges,
)
from .guidance import classifier_free_guidance, gradient_guidance, inpainting
from .joint import JointSpace, joint_times, schedule_rates
from .likelihood import bits_per_dim, pf_ode_log_likelihood
from .losses import (
    clipped_snr_weight,
    denoising_loss,
    diffusion_vlb_estimate,
    gaussian_nll,
    joint_loss,
    joint_loss_terms,
    loss_weight,
    masking_elbo_weight,
    prior_kl,
    sample_times,
    velocity_weight,
    vlb_diffusion_term,
)
from .parameterisation import (
    PREDICTIONS,
    DiffusionDenoiser,
    convert_prediction,
    edm_preconditioning,
    prediction_from_x0,
    x0_from_prediction,
)
from .samplers import (
    JOINT_SAMPLERS,
    SAMPLERS,
    count_denoiser_calls,
    get_sampler,
    initial_noise,
    langevin_correct,
    sample_ddim,
    sample_ddpm,
    sample_dpmpp_2m,
    sample_euler,
    sample_euler_maruyama,
    sample_heun,
    sample_joint_ancestral,
    sample_joint_euler,
    sample_joint_heun,
    sample_pc,
    sample_pf_ode,
)
from .schedules import (
    SCHEDULES,
    TIME_GRIDS,
    DiscreteVPSchedule,
    EDMSchedule,
    FlowSchedule,
    NoiseSchedule,
    VESchedule,
    VPSchedule,
    karras_sigmas,
    karras_times,
    log_snr_times,
    make_schedule,
    quadratic_times,
    sampling_sigmas,
    uniform_times,
)
from .settings import DiffusionSettings
from .spaces import (
    EuclideanSpace,
    Generators,
    GraphSpace,
    ProductSpace,
    StateSpace,
    item_generators,
    item_seed,
    molecule_space,
    per_item_randn,
    zero_com_space,
)

__all__ = [
    "CategoricalSchedule",
    "CategoricalSpace",
    "edge_id",
    "edge_permutation",
    "sample_categorical",
    "upper_triangle_edges",
    "JointSpace",
    "joint_times",
    "schedule_rates",
    "classifier_free_guidance",
    "gradient_guidance",
    "inpainting",
    "bits_per_dim",
    "pf_ode_log_likelihood",
    "clipped_snr_weight",
    "denoising_loss",
    "diffusion_vlb_estimate",
    "gaussian_nll",
    "joint_loss",
    "joint_loss_terms",
    "loss_weight",
    "masking_elbo_weight",
    "prior_kl",
    "sample_times",
    "velocity_weight",
    "vlb_diffusion_term",
    "PREDICTIONS",
    "DiffusionDenoiser",
    "convert_prediction",
    "edm_preconditioning",
    "prediction_from_x0",
    "x0_from_prediction",
    "JOINT_SAMPLERS",
    "SAMPLERS",
    "count_denoiser_calls",
    "get_sampler",
    "initial_noise",
    "langevin_correct",
    "sample_ddim",
    "sample_ddpm",
    "sample_dpmpp_2m",
    "sample_euler",
    "sample_euler_maruyama",
    "sample_heun",
    "sample_joint_ancestral",
    "sample_joint_euler",
    "sample_joint_heun",
    "sample_pc",
    "sample_pf_ode",
    "SCHEDULES",
    "TIME_GRIDS",
    "DiscreteVPSchedule",
    "EDMSchedule",
    "FlowSchedule",
    "NoiseSchedule",
    "VESchedule",
    "VPSchedule",
    "karras_sigmas",
    "karras_times",
    "log_snr_times",
    "make_schedule",
    "quadratic_times",
    "sampling_sigmas",
    "uniform_times",
    "DiffusionSettings",
    "EuclideanSpace",
    "GraphSpace",
    "ProductSpace",
    "StateSpace",
    "molecule_space",
    "zero_com_space",
    "Generators",
    "item_generators",
    "item_seed",
    "per_item_randn",
]
