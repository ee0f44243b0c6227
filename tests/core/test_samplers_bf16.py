"""The samplers in the bf16 fast path's precision: an fp32 state, a denoiser whose output is rounded
to bf16 (as a bf16 network's is), projections in fp32. The targets of test_samplers.py hold with
the same tolerances, and zero centre of mass holds after every step to fp32 rounding."""

import pytest
import torch

from moldiff.core import EDMSchedule, get_sampler, initial_noise, sampling_sigmas

from .helpers import com, graph_problem

SCHEDULE = EDMSchedule(sigma_min=0.002, sigma_max=80.0)
CASES = [("ddpm", {}, 400), ("dpmpp_2m", {}, 30), ("heun", {}, 30), ("euler", {}, 200)]
# |com| of an fp32 state of scale sigma_max = 80: a few ulps of 80 (6e-6) per step, far below any
# physical scale; the fp64 tests use 1e-5 on fp64 states
COM_ATOL_FP32 = 1e-4


@pytest.mark.parametrize("name,options,steps", CASES, ids=[c[0] for c in CASES])
def test_graph_samples_match_the_target_with_a_bf16_denoiser_and_an_fp32_state(name, options, steps):
    g = torch.Generator().manual_seed(5)
    sizes = torch.randint(3, 9, (1000,), generator=g).tolist()
    space64, oracle = graph_problem(sizes, seed=1)
    pos64, _ = space64.blocks
    space, _ = graph_problem(sizes, seed=1)
    for block in space.blocks:
        block.dtype = torch.float32
    space.dtype = torch.float32

    def bf16_denoiser(x, sigma, **kw):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = oracle(x.double(), sigma.double(), **kw)
        return out.to(torch.bfloat16).to(x.dtype)

    sigmas = sampling_sigmas(SCHEDULE, steps, "karras")
    worst = []
    x = initial_noise(space, float(sigmas[0]), generator=g, dtype=torch.float32)
    out = get_sampler(name)(
        bf16_denoiser,
        x,
        sigmas,
        space,
        generator=g,
        callback=lambda info: worst.append(float(com(info["x"], space).abs().max())),
        **options,
    )
    assert out.dtype == torch.float32
    assert len(worst) == steps and max(worst) < COM_ATOL_FP32, f"centre of mass drifted to {max(worst):.2e}"

    resid = out.double() - oracle.mean
    pos, feat = resid[:, :3], resid[:, 3:]
    pos_space, feat_space = space64.blocks
    pos_var = float(pos_space.sum_per_item(pos**2).sum() / pos_space.dof.sum())
    feat_var = float(feat_space.sum_per_item(feat**2).sum() / feat_space.dof.sum())
    assert abs(pos_var - 0.5) < 0.06 * 0.5, pos_var
    assert abs(feat_var - 2.0) < 0.06 * 2.0, feat_var
    assert float(feat.mean(0).abs().max()) < 0.05
