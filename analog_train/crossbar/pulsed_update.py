"""Stochastic pulsed outer-product update (SPEC 3; aihwkit ``StochasticCompressed``).

Each sample turns ``x`` and ``d`` into Bernoulli pulse trains of length BL; a device receives one
pulse per coincidence, so ``E[n_ij] = eta |x_j d_i| / eps``. Coincidence counts are computed as
matrix products of the bit trains, which keeps the correlation between elements that share a row
or a column. Two engines apply them:

* ``exact``: sample after sample, pulse after pulse (at most BL masked passes per sample), each
  pulse with its own noise and clip. The reference.
* ``fast``: the coincidences of the mini-batch, counted exactly and applied per device run by run
  (a run: the pulses of consecutive samples that share a sign), each run in closed form (or
  sub-steps). For the affine families on the CPU the trains are bit masks and the compiled
  kernels of :mod:`analog_train.devices.kernels` count and apply in one pass; other families (and
  GPUs) count per sample with matrix products (:meth:`PulseTrains.runs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import torch
from torch import Tensor

from analog_train.devices import kernels
from analog_train.devices.array import DeviceArray

RUN_BLOCK = 64  # samples whose per-sample counts (P, block, out, in) the torch engine holds at once


@dataclass
class PulseTrains:
    """Bit trains of a batch: ``bx (P, B, T, in)``, ``bd (P, B, T, out)`` and the signs of x and d."""

    bx: Tensor
    bd: Tensor
    sign_x: Tensor
    sign_d: Tensor
    bl: Tensor  # (P, B) pulse-train length of each sample

    def counts_per_sample(self) -> Tensor:
        """Coincidences ``N[p, b] = Bd^T Bx`` of every sample, ``(P, B, out, in)``."""
        return torch.einsum("pbto,pbti->pboi", self.bd, self.bx)

    def runs(self, window: Tensor | None = None) -> Iterator[tuple[Tensor, Tensor]]:
        """Per-device (up, down) counts, one same-sign run of each device per round, in time order.

        Within a sample all pulses of a device have one sign, ``sign(d_i) sign(x_j)``; from one
        sample to a later one it may change. Applying the pulses run by run, one closed form per
        run, gives each device what sample-by-sample processing gives it; summing a mini-batch's ups
        and downs into one map would not (any fixed order of many ups and downs pulls a soft-bounds
        device away from its symmetry point). Round m holds the m-th run of every device (zeros
        where it has fewer). Samples go in blocks of :data:`RUN_BLOCK`: a run across two blocks is
        applied in two parts (the same map without noise, the same distribution with it).
        ``window (B, in)`` (0 or 1) counts only the samples it marks, per column.
        """
        n_b, n_in = self.bx.shape[1], self.bx.shape[3]
        for start in range(0, n_b, RUN_BLOCK):
            block = slice(start, min(n_b, start + RUN_BLOCK))
            bx = self.bx[:, block]
            if window is not None:
                bx = bx * window[block].view(1, -1, 1, n_in)
            counts = torch.einsum("pbto,pbti->pboi", self.bd[:, block], bx)  # (P, b, out, in)
            # A coincidence of equal signs of d and x is a down pulse: + ups, - downs.
            signed = counts * -(self.sign_d[:, block].unsqueeze(-1) * self.sign_x[:, block].unsqueeze(-2))
            sign = torch.sign(signed)
            step = torch.arange(signed.shape[1], device=signed.device).view(1, -1, 1, 1)
            latest = torch.where(sign != 0, step, -1).cummax(dim=1).values  # last sample with pulses, <= b
            before = torch.cat([torch.full_like(latest[:, :1], -1), latest[:, :-1]], dim=1)
            sign_before = torch.gather(sign, 1, before.clamp(min=0)) * (before >= 0)
            run = ((sign != 0) & (sign != sign_before)).cumsum(dim=1) - 1  # each sample's run (-1: none yet)
            n_runs = int(run.max().item()) + 1
            if n_runs == 0:
                continue
            sums = torch.zeros((signed.shape[0], n_runs, *signed.shape[2:]), dtype=signed.dtype, device=signed.device)
            sums.scatter_add_(1, run.clamp(min=0), signed)  # samples before the first run add 0
            for m in range(n_runs):
                yield sums[:, m].clamp(min=0), (-sums[:, m]).clamp(min=0)


@dataclass
class PulseProbabilities:
    """Per-slot pulse probabilities of a batch (SPEC 3 steps 1-3): ``p_x (P, B, in)``, ``p_d (P, B, out)``."""

    p_x: Tensor
    p_d: Tensor
    sign_x: Tensor
    sign_d: Tensor
    bl: Tensor  # (P, B) pulse-train length of each sample

    def trains(self, generator: torch.Generator) -> PulseTrains:
        """Bernoulli bit trains as tensors (SPEC 3 step 4)."""
        t_max = int(self.bl.max().item()) if self.bl.numel() else 0
        x, d = self.p_x, self.p_d
        slots = torch.arange(t_max, device=x.device, dtype=x.dtype).view(1, 1, -1, 1)
        in_train = (slots < self.bl.view(*self.bl.shape, 1, 1)).to(x.dtype)
        bx = torch.rand((*x.shape[:2], t_max, x.shape[-1]), generator=generator, dtype=x.dtype, device=x.device)
        bx = torch.lt(bx, x.unsqueeze(2), out=bx).mul_(in_train)
        bd = torch.rand((*d.shape[:2], t_max, d.shape[-1]), generator=generator, dtype=x.dtype, device=x.device)
        bd = torch.lt(bd, d.unsqueeze(2), out=bd).mul_(in_train)
        return PulseTrains(bx=bx, bd=bd, sign_x=self.sign_x, sign_d=self.sign_d, bl=self.bl)


@dataclass
class PulseMasks:
    """Pulse trains as uint64 bit masks ``(P, n, words)``, split by the sign of the element; the trains
    of replica p's samples lie end to end, sample b from slot ``off[p, b]`` (see :func:`kernels.pulse_masks`)."""

    xpos: np.ndarray
    xneg: np.ndarray
    dpos: np.ndarray
    dneg: np.ndarray
    off: np.ndarray

    @property
    def empty(self) -> bool:
        return not self.off[:, -1].any()


def pulse_probabilities(x: Tensor, d: Tensor, eta: Tensor | float, eps: Tensor, cfg: Any) -> PulseProbabilities:
    """Pulse-train length and per-slot probabilities of each sample (SPEC 3 steps 1-3).

    ``x (P, B, in)``, ``d (P, B, out)``, ``eta`` broadcastable to ``(P, B)``, ``eps (P,)``.
    """
    # Few, in-place tensor ops: at mini-batch sizes every op costs its dispatch, not its arithmetic.
    scalar_eta = not isinstance(eta, Tensor)
    if not scalar_eta:
        eta = eta.to(dtype=x.dtype, device=x.device).expand(x.shape[:2])
    eps = eps.view(-1, 1)
    xa, da = x.abs(), d.abs()
    xm = xa.amax(dim=-1)
    dm = da.amax(dim=-1)
    active = (xm > 0).logical_and_(dm > 0)
    if not scalar_eta:
        active.logical_and_(eta > 0)
    elif not eta > 0:
        active.zero_()
    bl_d = float(cfg.desired_bl)
    dv = dm * cfg.um_grad_scale
    k = xm.mul(eta).mul_(dv).div_(eps) if scalar_eta else (eta * xm).mul_(dv).div_(eps)
    if cfg.update_bl_management:
        bl = torch.ceil(k).clamp_(min=1.0, max=bl_d)
    else:
        bl = torch.full_like(k, bl_d)
    bl = torch.where(active, bl, 0.0)
    den = eps * torch.clamp(bl, min=1.0)
    scale = (torch.full_like(den, eta).div_(den) if scalar_eta else eta / den).sqrt_()
    a_d, b_x = scale, scale
    if cfg.update_management or cfg.update_bl_management:
        dv = torch.where(k > bl_d, dv * bl_d / torch.clamp(k, min=1e-30), dv)
        ratio = torch.clamp(xm, min=1e-30).div_(dv.clamp_(min=1e-30)).sqrt_()
        a_d, b_x = scale * ratio, scale / ratio
    p_x = xa.mul_(b_x.unsqueeze(-1)).clamp_(max=1.0)
    p_d = da.mul_(a_d.unsqueeze(-1)).clamp_(max=1.0)
    return PulseProbabilities(p_x=p_x, p_d=p_d, sign_x=torch.sign(x), sign_d=torch.sign(d), bl=bl)


def pulse_masks(x: Tensor, d: Tensor, eta: Tensor | float, eps: Tensor, cfg: Any, generator: torch.Generator) -> PulseMasks:
    """The Bernoulli trains of :func:`pulse_trains` as bit masks, for the compiled kernels (CPU).

    One compiled pass computes the train lengths and probabilities of :func:`pulse_probabilities`
    and draws the bits: at mini-batch sizes the ~25 tensor ops of the torch version cost more
    than the work.
    """
    n_p, n_b = x.shape[:2]
    eta_pb = np.broadcast_to(np.asarray(eta.cpu() if isinstance(eta, Tensor) else eta, dtype=np.float32), (n_p, n_b))
    xpos, xneg, dpos, dneg, off = kernels.pulse_masks(
        x.contiguous().numpy(), d.contiguous().numpy(), np.ascontiguousarray(eta_pb), eps.contiguous().numpy(),
        kernels.UpdateSettings.of(cfg), kernels.draw_seed(generator))
    return PulseMasks(xpos=xpos, xneg=xneg, dpos=dpos, dneg=dneg, off=off)


def pulse_trains(x: Tensor, d: Tensor, eta: Tensor | float, eps: Tensor, cfg: Any, generator: torch.Generator) -> PulseTrains:
    """Pulse-train length, probabilities and Bernoulli trains of each sample (SPEC 3 steps 1-4)."""
    return pulse_probabilities(x, d, eta, eps, cfg).trains(generator)


def uses_masks(array: Any, cfg: Any) -> bool:
    """Whether the fast engine updates ``array`` through the compiled kernels (affine families on the CPU)."""
    return cfg.engine != "exact" and array.kernel_ready


def pulsed_update(
    array: DeviceArray, x: Tensor, d: Tensor, eta: Tensor | float, cfg: Any, generator: torch.Generator
) -> None:
    """Apply the pulsed update ``W <- W - eta d x^T`` (in expectation) to ``array`` with ``cfg.engine``."""
    if uses_masks(array, cfg):
        masks = pulse_masks(x, d, eta, array.eps, cfg, generator)
        if not masks.empty:
            array.apply_masks(masks, generator)
        return
    trains = pulse_trains(x, d, eta, array.eps, cfg, generator)
    if trains.bx.shape[2] == 0:
        return
    if cfg.engine == "exact":
        _apply_exact(array, trains, generator)
    else:
        for n_up, n_dn in trains.runs():
            array.apply_counts(n_up, n_dn, generator)


def _apply_exact(array: DeviceArray, trains: PulseTrains, generator: torch.Generator) -> None:
    """Samples in order; within a sample, pulse r goes to every element with at least r coincidences."""
    counts = trains.counts_per_sample()
    # A coincidence of equal signs of d and x is a down pulse (sign -1).
    direction = -(trains.sign_d.unsqueeze(-1) * trains.sign_x.unsqueeze(-2))
    for b in range(counts.shape[1]):
        n_b = counts[:, b]
        rounds = int(n_b.max().item())
        for r in range(1, rounds + 1):
            array.pulse_once(torch.where(n_b >= r, direction[:, b], torch.zeros_like(n_b)), generator)
