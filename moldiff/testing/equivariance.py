"""Property assertions for denoisers of packed 3D graphs: rotations, reflections, translations,
permutations.

A denoiser under test is any callable ``fn(pos, h, batch, num_graphs) -> (pos_out, h_out)`` with
``pos [N, 3]``, ``h [N, F]``, ``batch [N]`` sorted graph indices. For a zero-CoM noise (eps)
prediction the expected symmetries are, for any orthogonal ``Q`` (``det Q = +1``: SE(3)/E(3)
rotations; ``det Q = -1`` as well: O(3)/E(3) with reflections), any per-graph translation ``t``
and any permutation ``P`` of the nodes within each graph:

* ``pos_out(pos Q^T) = pos_out(pos) Q^T`` and ``h_out(pos Q^T) = h_out(pos)``   (rotation / reflection)
* ``pos_out(pos + t) = pos_out(pos)``, ``h_out(pos + t) = h_out(pos)``        (translation invariance)
* ``pos_out(P pos, P h) = P pos_out(pos, h)``, same for ``h_out``               (permutation)

Use them in your own tests::

    from moldiff.testing import assert_equivariant
    assert_equivariant(lambda p, h, b, n: net(p, h, b, n), pos, h, batch, num_graphs)

Tolerances: float64 inputs make the checks tight; in float32 use ``atol`` around ``1e-4`` times
the output scale. Note that every configuration of at most three points is mirror-symmetric, so
reflection checks need graphs with four or more non-coplanar nodes.
"""

from __future__ import annotations

from typing import Callable

import torch

Tensor = torch.Tensor
DenoiserFn = Callable[[Tensor, Tensor, Tensor, int], "tuple[Tensor, Tensor | None] | Tensor"]

__all__ = [
    "random_rotation",
    "random_permutation_within_graphs",
    "assert_equivariant",
    "assert_not_reflection_equivariant",
    "assert_zero_com",
]


def random_rotation(
    generator: torch.Generator | None = None, dtype: torch.dtype = torch.float64, reflection: bool = False
) -> Tensor:
    """A Haar-random orthogonal ``3 x 3`` matrix.

    Drawn as the QR decomposition of a Gaussian matrix with the signs of ``R``'s diagonal moved
    into ``Q`` (Mezzadri 2007), then one column negated if needed to fix the determinant.

    Args:
        generator: random source (default: torch's global one).
        dtype: dtype of the result; computed in float64 (default: float64).
        reflection: return an improper rotation (``det = -1``, a rotation times a reflection)
            instead of a proper one (``det = +1``) (default: False).

    Returns:
        ``Q [3, 3]``, ``Q Q^T = I``, ``det Q = -1 if reflection else +1``; apply to row vectors
        as ``pos @ Q.T``.
    """
    a = torch.randn(3, 3, generator=generator, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.where(torch.diagonal(r) < 0, -1.0, 1.0).to(torch.float64)
    want = -1.0 if reflection else 1.0
    if torch.linalg.det(q) * want < 0:
        q[:, 0] = -q[:, 0]
    return q.to(dtype)


def random_permutation_within_graphs(batch: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """A random permutation ``perm [N]`` that maps every graph's nodes onto themselves.

    ``batch[perm] == batch`` for sorted ``batch``, so ``(pos[perm], h[perm], batch)`` is the same
    packed batch with the nodes of each graph shuffled.
    """
    keys = torch.rand(batch.numel(), generator=generator, dtype=torch.float64).to(batch.device)
    order = torch.argsort(keys)
    return order[torch.argsort(batch[order], stable=True)]


def _as_pair(out) -> tuple[Tensor, Tensor | None]:
    if isinstance(out, Tensor):
        return out.detach(), None
    if isinstance(out, (tuple, list)) and len(out) == 2:
        p, h = out
        return p.detach(), None if h is None else h.detach()
    raise TypeError("fn must return pos_out or a pair (pos_out, h_out)")


def _compare(name: str, actual: Tensor | None, expected: Tensor | None, atol: float, rtol: float) -> str | None:
    """Return a failure message, or None when ``|actual - expected| <= atol + rtol |expected|``."""
    if expected is None and actual is None:
        return None
    if expected is None or actual is None:
        return f"{name}: output present in one call and missing in the other"
    if actual.shape != expected.shape:
        return f"{name}: shape {tuple(actual.shape)} != expected {tuple(expected.shape)}"
    a, e = actual.to(torch.float64), expected.to(torch.float64)
    if not torch.isfinite(a).all() or not torch.isfinite(e).all():
        return f"{name}: non-finite values"
    err = (a - e).abs()
    bound = atol + rtol * e.abs()
    if bool((err <= bound).all()):
        return None
    worst = int(torch.argmax(err - bound))
    idx = tuple(int(i) for i in torch.unravel_index(torch.tensor(worst), err.shape))
    scale = float(e.abs().max())
    return (
        f"{name}: max abs error {float(err.max()):.3e} (output scale {scale:.3e}, "
        f"max rel error {float(err.max()) / max(scale, 1e-300):.3e}); worst at index {idx}: "
        f"{float(a[idx]):.6g} vs expected {float(e[idx]):.6g} (atol={atol:g}, rtol={rtol:g})"
    )


def _fail(prop: str, trial: int, messages: list[str]) -> None:
    raise AssertionError(f"{prop} check failed (trial {trial}):\n  " + "\n  ".join(messages))


def assert_equivariant(
    fn: DenoiserFn,
    pos: Tensor,
    h: Tensor,
    batch: Tensor,
    num_graphs: int,
    *,
    generator: torch.Generator | None = None,
    reflections: bool = False,
    permutation: bool = True,
    translation: bool | str = True,
    atol: float = 1e-4,
    rtol: float = 1e-4,
    trials: int = 3,
) -> None:
    """Assert that ``fn`` is equivariant as a denoiser of packed 3D graphs should be.

    Checks, ``trials`` times each with fresh random transforms:

    * **rotation** (SE(3)): ``pos_out`` rotates with the input, ``h_out`` is invariant;
    * **reflection** (O(3), only with ``reflections=True``): the same for an improper rotation;
    * **translation**: a different random translation per graph leaves both outputs unchanged
      (``translation=True`` or ``"invariant"``: eps / zero-CoM predictions), or shifts ``pos_out``
      by the same vector (``"equivariant"``: x0 / position predictions); ``False`` skips it;
    * **permutation**: shuffling the nodes within each graph shuffles the outputs the same way.

    Args:
        fn: ``fn(pos, h, batch, num_graphs) -> (pos_out [N, 3], h_out [N, K] or None)`` (or just
            ``pos_out``).
        pos: ``[N, 3]`` coordinates; use float64 for tight tolerances.
        h: ``[N, F]`` invariant node features.
        batch: ``[N]`` sorted graph index.
        num_graphs: ``B``.
        generator: random source for the transforms (default: a fixed seed, reproducible).
        reflections: also check improper rotations (default: False).
        permutation: check node permutations within graphs (default: True).
        translation: ``True`` / ``"invariant"``, ``"equivariant"`` or ``False`` (default: True).
        atol, rtol: elementwise tolerance ``|actual - expected| <= atol + rtol |expected|``.
        trials: number of random transforms per property (default: 3).

    Raises:
        AssertionError: naming the property (rotation, reflection, translation or permutation),
            the output (coordinates or features), the trial and the size of the violation.
    """
    if translation is True:
        translation = "invariant"
    if translation not in (False, "invariant", "equivariant"):
        raise ValueError(f"translation must be True, False, 'invariant' or 'equivariant', got {translation!r}")
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    dtype, device = pos.dtype, pos.device
    scale = pos.detach().std().clamp_min(1.0) if pos.numel() > 1 else torch.tensor(1.0)

    base_pos, base_h = _as_pair(fn(pos, h, batch, num_graphs))
    if base_pos.shape != pos.shape:
        raise AssertionError(f"coordinate output has shape {tuple(base_pos.shape)}, expected {tuple(pos.shape)}")

    def check(prop: str, trial: int, out, exp_pos: Tensor, exp_h: Tensor | None) -> None:
        out_pos, out_h = _as_pair(out)
        msgs = [
            m
            for m in (
                _compare("coordinate output", out_pos, exp_pos, atol, rtol),
                _compare("feature output", out_h, exp_h, atol, rtol),
            )
            if m is not None
        ]
        if msgs:
            _fail(prop, trial, msgs)

    for trial in range(trials):
        rot = random_rotation(generator, dtype=dtype).to(device)
        check("rotation (SE(3))", trial, fn(pos @ rot.T, h, batch, num_graphs), base_pos @ rot.T, base_h)

        if reflections:
            ref = random_rotation(generator, dtype=dtype, reflection=True).to(device)
            check("reflection (O(3), det = -1)", trial, fn(pos @ ref.T, h, batch, num_graphs), base_pos @ ref.T, base_h)

        if translation:
            shift = (torch.randn(num_graphs, 3, generator=generator, dtype=torch.float64) * 3 * float(scale)).to(
                device=device, dtype=dtype
            )
            out = fn(pos + shift[batch], h, batch, num_graphs)
            exp_pos = base_pos if translation == "invariant" else base_pos + shift[batch]
            check(f"translation ({translation})", trial, out, exp_pos, base_h)

        if permutation:
            perm = random_permutation_within_graphs(batch.cpu(), generator).to(device)
            out = fn(pos[perm], h[perm], batch, num_graphs)
            check("permutation", trial, out, base_pos[perm], None if base_h is None else base_h[perm])


def assert_not_reflection_equivariant(
    fn: DenoiserFn,
    pos: Tensor,
    h: Tensor,
    batch: Tensor,
    num_graphs: int,
    *,
    generator: torch.Generator | None = None,
    atol: float = 1e-4,
    rtol: float = 1e-4,
    trials: int = 3,
) -> None:
    """Assert that ``fn`` can tell a structure from its mirror image (it is *not* O(3)-equivariant).

    A chirality-aware model (e.g. a protein backbone denoiser, where left- and right-handed helices
    differ) must give outputs on ``pos Q^T``, ``det Q = -1``, that differ from the mirrored
    outputs ``pos_out Q^T`` (or from ``h_out``) by more than the tolerance, in every trial.
    Use graphs of four or more non-coplanar nodes (smaller ones are mirror-symmetric).

    Raises:
        AssertionError: when a reflection leaves the outputs equivariant within tolerance.
    """
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    base_pos, base_h = _as_pair(fn(pos, h, batch, num_graphs))
    for trial in range(trials):
        ref = random_rotation(generator, dtype=pos.dtype, reflection=True).to(pos.device)
        out_pos, out_h = _as_pair(fn(pos @ ref.T, h, batch, num_graphs))
        differs = _compare("coordinate output", out_pos, base_pos @ ref.T, atol, rtol) is not None
        if not differs and base_h is not None:
            differs = _compare("feature output", out_h, base_h, atol, rtol) is not None
        if not differs:
            err = float((out_pos.double() - (base_pos @ ref.T).double()).abs().max())
            raise AssertionError(
                f"reflection-breaking check failed (trial {trial}): the outputs transform equivariantly "
                f"under a reflection (max coordinate deviation {err:.3e} <= tolerance atol={atol:g}, "
                f"rtol={rtol:g}), so the model cannot tell this structure from its mirror image"
            )


def assert_zero_com(x: Tensor, batch: Tensor, num_graphs: int, atol: float = 1e-5) -> None:
    """Assert that ``x [N, 3]`` has zero mean within every graph (up to ``atol`` times its scale).

    Raises:
        AssertionError: naming the worst graph and its centre of mass.
    """
    x64 = x.detach().to(torch.float64)
    counts = torch.bincount(batch, minlength=num_graphs).clamp_min(1).to(torch.float64)
    mean = torch.zeros(num_graphs, x.shape[1], dtype=torch.float64, device=x.device).index_add_(0, batch, x64)
    mean = mean / counts[:, None]
    tol = atol * max(float(x64.abs().max()) if x64.numel() else 0.0, 1.0)
    worst = float(mean.abs().max()) if mean.numel() else 0.0
    if worst > tol:
        g = int(mean.abs().max(dim=1).values.argmax())
        raise AssertionError(
            f"zero centre of mass violated: graph {g} has mean {mean[g].tolist()} (|max| {worst:.3e} > {tol:.3e})"
        )
