"""Analog matrix-vector products through the crossbar periphery (SPEC 5; aihwkit ``AnalogMVM``).

Per sample and per physical tile: noise management (scale the input by its abs-max), a DAC
(quantise and clip the input), ``y = W u``, Gaussian output noise, an ADC (quantise and clip the
output), iterative bound management (re-read a sample whose output clipped with the input halved,
then halved again, ...) and finally the scales are undone. Layers larger than the tile size are
split the way aihwkit's ``TileModuleArray`` splits them; every tile does its own NM and BM, outputs
of input splits are summed digitally and output splits are concatenated.

The work is vectorised over the population ``P`` and the batch ``B``; the only Python loops are
over tiles and bound-management rounds, and a round re-reads only the samples that clipped.
Inputs and outputs are handled in units of the DAC / ADC steps, which lets a single ``baddbmm``
do the product, the output noise and the step scaling at once.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from analog_train.crossbar import mvm_kernel
from analog_train.devices import kernels

__all__ = ["AnalogMVM", "ColumnRead", "analog_mvm", "read_columns", "split_sizes"]


def split_sizes(size: int, max_size: int) -> list[int]:
    """Tile sizes of one weight dimension, as aihwkit's ``TileModuleArray.get_split_sizes``.

    As few tiles as possible, of (nearly) equal size: 784 with at most 512 gives 392 + 392.
    """
    n = -(-size // max_size)
    base, extra = divmod(size, n)
    return [base + (i < extra) for i in range(n)]


@lru_cache(maxsize=256)
def _tile_bounds(size: int, max_size: int) -> tuple[tuple[int, int], ...]:
    """``(start, end)`` of every tile along a dimension; cached because layer shapes repeat."""
    bounds, start = [], 0
    for n in split_sizes(size, max_size):
        bounds.append((start, start + n))
        start += n
    return tuple(bounds)


def _levels(res: float) -> float:
    """Number of steps from 0 to the bound, ``bound / (res * 2 * bound) = 1 / (2 res)``.

    Snapped to the nearest integer when it is one up to rounding (1/126 -> 63, 1/510 -> 255), so
    that a converter value at the bound compares equal to it in the bound-management test.
    """
    levels = 0.5 / res
    nearest = round(levels)
    return float(nearest) if abs(levels - nearest) <= 1e-9 * levels else levels


class _Periphery(NamedTuple):
    """IOConfig turned into step units: inputs are counted in DAC steps, outputs in ADC steps."""

    abs_max_nm: bool
    quant_in: bool
    quant_out: bool
    l_in: float  # input clip in DAC steps
    l_out: float  # output clip in ADC steps
    res_out: float  # ADC step (1 when the ADC does not quantise)
    res_in: float  # DAC step (1 when the DAC does not quantise)
    gain: float  # DAC step / ADC step: converts W @ (DAC levels) into ADC steps
    inp_noise: float  # in DAC steps
    out_noise: float  # in ADC steps
    noise_free_zero: bool  # an all-zero sample reads exactly 0 (aihwkit: only without input noise)
    bm_limit: float  # another BM round starts only while the last factor s_bm <= bm_limit

    @classmethod
    def of(cls, io: Any) -> _Periphery:
        res_in = io.inp_res * 2.0 * io.inp_bound if io.inp_res > 0 else 1.0
        res_out = io.out_res * 2.0 * io.out_bound if io.out_res > 0 else 1.0
        bm_limit = float(io.max_bm_factor)
        if io.inp_res > 0:
            bm_limit = min(bm_limit, io.max_bm_res / res_in)
        return cls(
            abs_max_nm=io.noise_management == "abs_max",
            quant_in=io.inp_res > 0,
            quant_out=io.out_res > 0,
            l_in=_levels(io.inp_res) if io.inp_res > 0 else float(io.inp_bound),
            l_out=_levels(io.out_res) if io.out_res > 0 else float(io.out_bound),
            res_out=res_out,
            res_in=res_in,
            gain=res_in / res_out,
            inp_noise=io.inp_noise / res_in,
            out_noise=io.out_noise / res_out,
            noise_free_zero=io.inp_noise <= 0,
            bm_limit=bm_limit,
        )


def analog_mvm(
    weight: Tensor, x: Tensor, io: Any, generator: torch.Generator | None, bound_management: bool = True
) -> Tensor:
    """Noisy, quantised ``y = W x`` of every sample as the analog crossbar computes it.

    ``weight (P, out, in)``, ``x (P, B, in)`` -> ``(P, B, out)``. For the backward pass pass
    ``weight.transpose(-1, -2)``, ``d (P, B, out)`` and ``bound_management=False`` (aihwkit never
    uses BM backward). Bound management runs only if both this flag and ``io.bound_management ==
    'iterative'`` ask for it. All noise comes from ``generator``. Call it without autograd (inside
    an ``autograd.Function``): the pipeline is not differentiable. Callers that read through the same
    periphery again and again (a layer) keep an :class:`AnalogMVM` instead.
    """
    return AnalogMVM(io)(weight, x, generator, bound_management)


class AnalogMVM:
    """:func:`analog_mvm` through one periphery, with what the reads derive from the IOConfig worked out once.

    Working it out (converter steps, tiles, whether BM can run, whether the kernels are on) costs
    tens of microseconds of Python, more than the compiled read of a small layer; a layer keeps one
    of these for its whole life, so its IOConfig is read when the layer is built.
    """

    def __init__(self, io: Any) -> None:
        self.io = io
        self.periphery = None if io.is_perfect else _Periphery.of(io)
        self._kernel_args = None if self.periphery is None else tuple(self.periphery)
        self._bm = self.periphery is not None and io.bound_management == "iterative" and self.periphery.bm_limit >= 1.0
        self._kernels = kernels.enabled()
        self._tiles: dict[int, tuple[tuple[tuple[int, int], ...], np.ndarray]] = {}  # input size -> bounds, array

    def __call__(self, weight: Tensor, x: Tensor, generator: torch.Generator | None,
                 bound_management: bool = True) -> Tensor:
        """``y = W x`` as :func:`analog_mvm` (same arguments but the IOConfig)."""
        c = self.periphery
        if c is None:
            return torch.matmul(x, weight.transpose(-1, -2))
        n_in = x.shape[-1]
        tiles = self._tiles.get(n_in)
        if tiles is None:
            bounds = _tile_bounds(n_in, self.io.max_input_size)
            tiles = self._tiles[n_in] = (bounds, np.array(bounds, dtype=np.int64).reshape(-1, 2))
        in_tiles = tiles[0]
        bound_management = bound_management and self._bm
        if (self._kernels and generator is not None and x.device.type == "cpu"
                and x.dtype == weight.dtype == torch.float32):
            n_out = weight.shape[-2]
            out_tiles = self._tiles.get(-n_out)  # output tiles, keyed by minus the size
            if out_tiles is None:
                bounds = _tile_bounds(n_out, self.io.max_output_size)
                out_tiles = self._tiles[-n_out] = (bounds, np.array(bounds, dtype=np.int64).reshape(-1, 2))
            return _compiled_read(weight, x, tiles[1], out_tiles[1], self._kernel_args, generator, bound_management)
        return _torch_read(weight, x, in_tiles, c, self.io, generator, bound_management)


def _torch_read(weight: Tensor, x: Tensor, in_tiles: tuple[tuple[int, int], ...], c: _Periphery, io: Any,
                generator: torch.Generator | None, bound_management: bool) -> Tensor:
    """:func:`analog_mvm` in torch, iterative bound management included."""
    n_p, n_b, n_in = x.shape
    n_out = weight.shape[-2]
    out_tiles = _tile_bounds(n_out, io.max_output_size)
    n_t = len(in_tiles)
    width = in_tiles[0][1]  # split_sizes puts the largest tile first

    # All input tiles side by side, (P, B, n_t, width): a view when the tiles are equal, otherwise
    # the shorter tiles are zero-padded, which changes neither their abs-max nor their product
    # (the padding meets no weight).
    if n_t * width == n_in:
        xt = x.reshape(n_p, n_b, n_t, width)
    else:
        xt = x.new_zeros((n_p, n_b, n_t, width))
        for k, (start, end) in enumerate(in_tiles):
            xt[:, :, k, : end - start] = x[..., start:end]

    if c.abs_max_nm:
        s_nm = xt.abs().amax(-1, keepdim=True)
        # An all-zero sample has nothing to scale; aihwkit reads it with scale 1, and its output is
        # 0 unless input noise makes it nonzero. The clamp keeps 0 / step finite for it.
        step_in: Tensor | float = (s_nm * c.res_in).clamp_min_(torch.finfo(x.dtype).tiny)
        s_out = s_nm if c.noise_free_zero else torch.where(s_nm > 0, s_nm, 1.0)
        step_out: Tensor | float = (s_out * c.res_out).permute(2, 0, 1, 3)
    else:
        step_in, step_out = c.res_in, c.res_out

    v = _dac(xt, step_in, c, generator)
    if c.out_noise > 0:
        q = torch.randn((n_t, n_p, n_b, n_out), generator=generator, dtype=x.dtype, device=x.device)
        for k, (start, end) in enumerate(in_tiles):
            wt = _tile_weight(weight, start, end)
            q[k].baddbmm_(v[:, :, k, : end - start], wt, beta=c.out_noise, alpha=c.gain)
    else:
        q = torch.empty((n_t, n_p, n_b, n_out), dtype=x.dtype, device=x.device)
        for k, (start, end) in enumerate(in_tiles):
            torch.bmm(v[:, :, k, : end - start], _tile_weight(weight, start, end), out=q[k])
        q.mul_(c.gain)
    _adc(q, c)

    if bound_management and _any_clipped(q, c.l_out):
        for k, (start, end) in enumerate(in_tiles):
            step_k = step_in[:, :, k] if isinstance(step_in, Tensor) else step_in
            wt = _tile_weight(weight, start, end)
            _bound_management(q[k], xt[:, :, k, : end - start], wt, step_k, c, generator, out_tiles)

    # undo the scales of every tile (ADC step, NM) and sum the input tiles digitally
    q.mul_(step_out)
    return q[0] if n_t == 1 else q.sum(0)


class ColumnRead(NamedTuple):
    """The transfer's one-hot column read as plain numbers: ``v = ADC((level + inp_noise z) gain w + out_noise z')``.

    With ``|x|max = 1`` the DAC and ADC steps are the bare ``res_in`` and ``res_out`` whether or not
    noise management is on, and the other inputs of the tile are exact zeros, so a read is a
    handful of element-wise operations (:func:`read_columns`, and the compiled transfer of
    :mod:`analog_train.algorithms.transfer_kernel`).
    """

    perfect: bool  # no periphery: the read is the column
    level_gain: float  # DAC level of the input 1, times DAC step / ADC step
    inp_noise_gain: float  # input noise in DAC steps, times DAC step / ADC step
    out_noise: float  # in ADC steps
    quantise: bool  # the ADC rounds to its steps
    l_out: float  # ADC clip, in steps
    res_out: float  # ADC step

    @classmethod
    def of(cls, io: Any) -> ColumnRead:
        if io.is_perfect:
            return cls(True, 1.0, 0.0, 0.0, False, math.inf, 1.0)
        c = _Periphery.of(io)
        level = 1.0 / c.res_in
        if c.quant_in:
            level = float(round(level))
        level = min(max(level, -c.l_in), c.l_in)
        return cls(False, level * c.gain, c.inp_noise * c.gain, c.out_noise, c.quant_out, c.l_out, c.res_out)


def read_columns(columns: Tensor, io: Any, generator: torch.Generator | None) -> Tensor:
    """Columns ``(P, out, R)`` read through the periphery with a one-hot input of 1, ``(P, out, R)``.

    What :func:`analog_mvm` returns for ``x = e_k`` without bound management (aihwkit's
    ``transfer_forward``); see :class:`ColumnRead`.
    """
    r = ColumnRead.of(io)
    if r.perfect:
        return columns
    n_p, _, n_r = columns.shape
    if r.inp_noise_gain > 0:  # one input-noise draw per read
        v = torch.randn((n_p, 1, n_r), generator=generator, dtype=columns.dtype, device=columns.device)
        q = columns * v.mul_(r.inp_noise_gain).add_(r.level_gain)
    else:
        q = columns * r.level_gain
    if r.out_noise > 0:  # drawn (P, R, out) as analog_mvm draws (P, B, out): same numbers for one seed
        noise = torch.randn((n_p, n_r, q.shape[1]), generator=generator, dtype=q.dtype, device=q.device)
        q.add_(noise.transpose(1, 2), alpha=r.out_noise)
    if r.quantise:
        q.round_()
    return q.clamp_(-r.l_out, r.l_out).mul_(r.res_out)


def _compiled_read(weight: Tensor, x: Tensor, tiles: np.ndarray, out_tiles: np.ndarray, periphery: tuple,
                   generator: torch.Generator, bound_management: bool) -> Tensor:
    """:func:`analog_mvm` by the compiled kernel (CPU), bound management included.

    The backward pass hands over ``W^T`` as a transposed view; the kernel reads ``W`` itself then.
    """
    w = weight
    transposed = False
    if not weight.is_contiguous():
        w = weight.transpose(-1, -2)
        transposed = w.is_contiguous()
        w = w if transposed else weight.contiguous()
    y = mvm_kernel.read(w.numpy(), x.contiguous().numpy(), transposed, tiles, out_tiles, periphery, bound_management,
                        kernels.draw_seed(generator))
    return torch.from_numpy(y)


def _tile_weight(weight: Tensor, start: int, end: int) -> Tensor:
    """The transposed weight of one input tile, ``(P, in_k, out)``, as a view (no copy)."""
    return weight[..., start:end].transpose(-1, -2)


def _dac(x: Tensor, step: Tensor | float, c: _Periphery, gen: torch.Generator | None) -> Tensor:
    """Input in DAC steps, quantised, clipped at the input bound, plus input noise.

    ``step`` is the DAC step times the NM and BM scales, so ``x / step`` counts DAC steps.
    """
    v = x / step
    if c.quant_in:
        v.round_()
    v.clamp_(-c.l_in, c.l_in)
    if c.inp_noise > 0:
        v.add_(torch.randn(v.shape, generator=gen, dtype=v.dtype, device=v.device), alpha=c.inp_noise)
    return v


def _adc(q: Tensor, c: _Periphery) -> Tensor:
    """Output in ADC steps (noise already added), quantised and clipped at the output bound, in place."""
    if c.quant_out:
        q.round_()
    return q.clamp_(-c.l_out, c.l_out)


def _read(wt: Tensor, x: Tensor, step: Tensor | float, c: _Periphery, gen: torch.Generator | None) -> Tensor:
    """One analog read of a single tile, ``wt (P, in_k, out)``: clipped ADC levels ``(P, B, out)``."""
    v = _dac(x, step, c, gen)
    if c.out_noise > 0:
        noise = torch.randn((*v.shape[:-1], wt.shape[-1]), generator=gen, dtype=v.dtype, device=v.device)
        q = torch.baddbmm(noise, v, wt, beta=c.out_noise, alpha=c.gain)
    else:
        q = torch.bmm(v, wt).mul_(c.gain)
    return _adc(q, c)


def _any_clipped(q: Tensor, l_out: float) -> bool:
    """Whether any ADC value sits at the bound: one reduction for the common all-clear case."""
    lo, hi = torch.aminmax(q)
    return hi.item() >= l_out or lo.item() <= -l_out


def _segment_any(hit: Tensor, out_tiles: tuple[tuple[int, int], ...]) -> Tensor:
    """Per output tile: did any of its outputs clip? ``(P, B, out)`` -> ``(P, B, n_out_tiles)``."""
    if len(out_tiles) == 1:
        return hit.any(-1, keepdim=True)
    return torch.stack([hit[..., a:b].any(-1) for a, b in out_tiles], -1)


def _segment_expand(mask: Tensor, out_tiles: tuple[tuple[int, int], ...]) -> Tensor:
    """Inverse of :func:`_segment_any`: a per-tile flag copied onto every output of the tile."""
    if len(out_tiles) == 1:
        return mask
    sizes = torch.tensor([b - a for a, b in out_tiles], device=mask.device)
    return mask.repeat_interleave(sizes, dim=-1)


def _bound_management(
    q: Tensor,
    x: Tensor,
    wt: Tensor,
    step: Tensor | float,
    c: _Periphery,
    gen: torch.Generator | None,
    out_tiles: tuple[tuple[int, int], ...],
) -> None:
    """Iterative BM of one input tile, in place on its ADC levels ``q (P, B, out)``.

    Every (sample, output tile) whose read clipped is read again with the input divided by
    ``s_bm = 2, 4, ...``; its levels are stored times ``s_bm`` so that the common NM rescaling
    afterwards undoes both. As in aihwkit a round with factor ``s_bm`` is the last once ``s_bm``
    exceeds ``max_bm_factor`` or ``max_bm_res / inp_res`` (5 rounds, up to 16, with the 7-bit DAC).
    Only clipping samples are re-read: those of each replica are packed to the front (argsort),
    so that all replicas re-read in one batched product.
    """
    fail = _segment_any(q.abs() >= c.l_out, out_tiles)
    n_seg = fail.shape[-1]
    s_bm = 1.0
    while s_bm <= c.bm_limit:
        rows = fail.any(-1)
        counts = rows.sum(1)
        m = int(counts.max())
        if m == 0:
            return
        s_bm *= 2.0
        idx = torch.argsort(rows.to(torch.uint8), dim=1, descending=True, stable=True)[:, :m].unsqueeze(-1)
        valid = torch.arange(m, device=idx.device).unsqueeze(-1) < counts.view(-1, 1, 1)
        step_g = step.gather(1, idx) * s_bm if isinstance(step, Tensor) else step * s_bm
        q_g = _read(wt, x.gather(1, idx.expand(-1, -1, x.shape[-1])), step_g, c, gen)
        redo = fail.gather(1, idx.expand(-1, -1, n_seg)) & valid
        idx_out = idx.expand(-1, -1, q.shape[-1])
        merged = torch.where(_segment_expand(redo, out_tiles), q_g * s_bm, q.gather(1, idx_out))
        q.scatter_(1, idx_out, merged)
        still = redo & _segment_any(q_g.abs() >= c.l_out, out_tiles)
        fail = torch.zeros_like(fail).scatter_(1, idx.expand(-1, -1, n_seg), still)
