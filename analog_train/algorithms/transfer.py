"""Machinery shared by the transfer algorithms TTv2, c-TTv2 and AGAD (SPEC 4; aihwkit 3.4, 3.5).

Two analog arrays of the same shape: **A** (fast; receives the chopped pulsed update of every
sample) and **C** (slow; its visible weight is the layer's weight W), a digital buffer **H** with
threshold 1, input choppers ``c_in`` and output choppers ``c_out``, and a transfer schedule: every
``transfer_every`` samples each input tile reads its next column of A through the transfer
periphery, the algorithm turns the read into buffer increments (:meth:`accumulate`), and where
``|H| >= 1`` C gets ``clamp(trunc(H), -BLT, BLT)`` single pulses and H is forgotten.

Per-sample semantics, vectorised per mini-batch (aihwkit's GPU "chopped weight output" order):

* ``transfer_every`` counts samples (aihwkit ``units_in_mbatch=False``, the default of the
  Chopped/Dynamic compounds and of every TTv2/c-TTv2/AGAD preset). With batch 10 and
  ``transfer_every=1`` a mini-batch therefore reads 10 columns per input tile.
* The chopper flips of a mini-batch do not depend on the data, so they are drawn first; every
  sample is pulsed with the chopper signs it would see in a sample-by-sample loop (a flip after
  the read at sample b applies from sample b+1 on).
* A read at sample b must see A after sample b's update. A device only changes through its own
  pulses, so the fast engine applies the batch's counts of a read column up to sample b, takes
  the column, and then applies all remaining counts of the batch; the exact engine runs the
  samples between reads one after another. Both give the column exactly as a per-sample loop.
* Reads are processed in time order; the C writes of a mini-batch are applied together at its end
  (they touch C only, which no read of the batch looks at).

Large layers are split into input tiles of at most ``transfer_io.max_input_size`` columns, as
aihwkit splits them into separate compounds: each tile has its own column pointer, and a
transfer event reads one column of every tile. Output choppers are one vector per layer and flip
(with probability ``out_chop_prob`` per element) when the first tile completes a pass.
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import Any

import numpy as np
import torch
from torch import Tensor

from analog_train.algorithms import transfer_kernel
from analog_train.algorithms.base import AnalogAlgorithm
from analog_train.crossbar.io import ColumnRead, read_columns, split_sizes
from analog_train.crossbar.pulsed_update import pulse_masks, pulse_trains, pulsed_update, uses_masks
from analog_train.devices import kernels
from analog_train.devices.array import DeviceArray


def _field(k: int, doc: str, dtype: torch.dtype = torch.int64) -> cached_property:
    """Row ``k`` of the reads table as a tensor on the algorithm's device, made on first use."""
    def get(self: "Reads") -> Tensor:
        return torch.from_numpy(self.table[k]).to(self.device, dtype)
    get.__doc__ = doc
    return cached_property(get)


class Reads:
    """The column reads of one mini-batch in time order (transfer event, then input tile); each ``(R,)``.

    Kept as the table of :func:`.transfer_kernel.schedule`, which the compiled CPU path reads as it
    is; the torch fields are made on first use (the steps in torch, the traces).
    """

    sample = _field(0, "index in the batch after whose update the column is read")
    col = _field(1, "global column index")
    passes = _field(2, "completed passes of the column's tile before this read (aihwkit's P)")
    size = _field(3, "in-size of the column's tile (enters lr_scale)")
    phase = _field(4, "earlier reads of the same column in this batch (0 unless a tile is short)")
    pass_end = _field(5, "last column of the first tile: where the output choppers may flip", torch.bool)

    def __init__(self, table: np.ndarray, events: int, n_phases: int, device: torch.device) -> None:
        self.table = table  # (6, R) int64: the fields above, in that order
        self.events = events  # transfer events in the batch
        self.n_phases = n_phases  # 1 + the largest phase: 1 when every column is read at most once
        self.device = device

    def __len__(self) -> int:
        return self.table.shape[1]


_NO_FLIPS_OUT = np.zeros((0, 0, 0), dtype=np.bool_)


class TransferCompound(AnalogAlgorithm):
    """A, C, H, choppers and the column-transfer schedule; subclasses define the buffer rule."""

    choppers = True  # False: in_chop_prob and out_chop_prob are ignored (TTv2)
    # Input chopper flips after a read (set by the subclass): every flip_period passes over the
    # columns (0: never) and / or with probability flip_prob.
    flip_period = 0
    flip_prob = 0.0
    kernel_rule: int  # the buffer rule of accumulate for the compiled transfer (transfer_kernel.RULE_*)
    first_write_pass = 0  # threshold crossings write to C from this pass over the columns on (AGAD warms up)
    state_arrays = ("A", "C")
    state_tensors = ("H", "c_in", "c_out", "m_x", "m_d", "eta_a")
    state_counters = ("samples", "events")

    def __init__(
        self,
        algo: Any,
        devices_a: Any,
        devices_c: Any,
        shape: tuple[int, int],
        update_cfg: Any,
        construction_generator: torch.Generator,
        run_generator: torch.Generator,
        population: int = 1,
        device: torch.device | str = "cpu",
    ) -> None:
        self.cfg = algo
        self.update_cfg = update_cfg
        self.generator = run_generator
        self.A = DeviceArray(devices_a, shape, construction_generator, population=population, device=device)
        self.C = DeviceArray(devices_c, shape, construction_generator, population=population, device=device)
        n_p, n_out, n_in = self.A.shape
        dt, dev = self.A.dtype, self.A.device
        self.H = torch.zeros(self.A.shape, dtype=dt, device=dev)
        self.c_in = torch.ones((n_p, n_in), dtype=dt, device=dev)
        self.c_out = torch.ones((n_p, n_out), dtype=dt, device=dev)
        sizes = split_sizes(n_in, algo.transfer_io.max_input_size)
        self._min_tile = min(sizes)
        self._tile_sizes = np.array(sizes, dtype=np.int64)  # input tiles: sizes and first columns
        self._tile_starts = np.cumsum(self._tile_sizes) - self._tile_sizes
        self.samples = 0  # samples seen (aihwkit's mat-vec counter)
        self.events = 0  # transfer events so far: every tile's pointer is events % size
        self.m_x = torch.zeros(n_p, dtype=dt, device=dev)  # auto_scale running max|x|
        self.m_d = torch.zeros(n_p, dtype=dt, device=dev)  # auto_scale running max|d|
        self.eta_a = torch.zeros(n_p, dtype=dt, device=dev)  # last fast-array learning rate
        # The compiled transfer (CPU): the subclass's accumulate as transfer_kernel.RULE_*.
        self._compiled = self.H.device.type == "cpu" and kernels.enabled()
        # ... and the whole mini-batch in one call when A and C are on the device kernels too.
        self._fused = self._compiled and update_cfg.engine != "exact" and self.A.kernel_ready and self.C.kernel_ready
        self._column_read = ColumnRead.of(algo.transfer_io)
        self._numpy_views = kernels.NumpyViews()  # of the state the compiled transfer takes
        # _update_fused's arguments that stay the same from batch to batch (CPU only: numpy)
        self._fused_settings = (
            bool(algo.auto_scale), 1.0 - algo.auto_momentum,
            (algo.fast_lr * update_cfg.desired_bl * self.A.eps).numpy(),
            (float(update_cfg.desired_bl), float(update_cfg.um_grad_scale), bool(update_cfg.update_management),
             bool(update_cfg.update_bl_management)),
        ) if self._fused else None
        self.last_reads: Reads | None = None  # hooks for traces: the reads of the last update ...
        self.last_values: Tensor | None = None  # ... and their values through the periphery (P, out, R)

    # -- what a subclass defines -----------------------------------------------------------------
    def accumulate(self, cols: Tensor, v: Tensor, sign: Tensor, lr_scale: Tensor, flips: Tensor | None) -> Tensor:
        """Buffer increments of distinct columns ``cols`` from their reads ``v (P, out, R)``.

        ``sign`` is ``c_in[k] c_out[i]`` at the read, ``lr_scale (P, 1, R)``, ``flips`` whether the
        chopper of the column flips after this read.
        """
        raise NotImplementedError

    # -- AnalogAlgorithm -------------------------------------------------------------------------
    @property
    def weight(self) -> Tensor:
        return self.C.weight

    def read_weight(self) -> Tensor:
        return self.C.read_weight()

    @property
    def fast_weight(self) -> Tensor:
        """A as the transfer reads it, (A - R) without read noise, ``(P, out, in)``."""
        return self.A.weight

    def set_weights(self, w: Tensor) -> None:
        """aihwkit ``set_weights``: C = W, A = 0 (at its reference), buffers and counters untouched."""
        self.C.set_weights(w, self.generator)
        self.A.set_weights(torch.zeros_like(self.A.g), self.generator)

    def post_step(self) -> None:
        self.A.post_step(self.generator)
        self.C.post_step(self.generator)

    def pulse_counts(self) -> dict[str, Tensor]:
        return {"A": self.A.pulse_count, "C": self.C.pulse_count}

    def update(self, x: Tensor, d: Tensor, lr: float) -> None:
        reads = self._schedule(x.shape[1])
        fused = self._fused and len(reads) and reads.n_phases == 1
        random_in = None if fused else self._random_in_flips(len(reads))  # the fused kernel draws its own
        flips_out = self._out_chopper_flips(reads)
        if fused:
            values = self._update_fused(x, d, lr, reads, flips_out)
        else:
            values = self._update_steps(x, d, lr, reads, self._in_chopper_flips(reads, random_in), flips_out)
        self.samples += x.shape[1]
        self.events += reads.events
        self.last_reads, self.last_values = reads, values

    def _update_steps(self, x: Tensor, d: Tensor, lr: float, reads: Reads, flips_in: Tensor | None,
                      flips_out: Tensor | None) -> Tensor | None:
        """The mini-batch step by step (torch; compiled pieces where the arrays allow): returns the reads."""
        x, sign_in = self._chop_inputs(x, reads, flips_in)
        d, sign_out = self._chop_outputs(d, reads, flips_out)
        eta = self._fast_lr(x, d)
        columns = self._update_fast_array(x, d, eta, reads)
        if not len(reads):
            return None
        scale = self._transfer_scale(lr)
        if self._compiled and reads.n_phases == 1:
            return self._transfer_compiled(columns, reads, sign_in, sign_out, flips_in, scale)
        v = self._transfer_read(columns)
        lr_scale = (scale * reads.size.to(v.dtype).view(1, -1) / self.A.eps.view(-1, 1)).unsqueeze(1)  # (P, 1, R)
        sign = sign_in.unsqueeze(1) * sign_out.transpose(1, 2)  # (P, out, R)
        n_phases = reads.n_phases
        if n_phases == 1:  # the common case: every column read once, no gathering needed
            steps = self._buffer_step(reads.col, reads.passes, v, sign, lr_scale, flips_in)
        else:  # a tile shorter than the batch's reads: its columns' reads go in phases
            steps = torch.empty_like(v)
            for phase in range(n_phases):
                idx = (reads.phase == phase).nonzero().squeeze(1)
                steps[:, :, idx] = self._buffer_step(
                    reads.col[idx], reads.passes[idx], v[:, :, idx], sign[:, :, idx], lr_scale[:, :, idx],
                    None if flips_in is None else flips_in[:, idx])
        self._write_slow_array(steps, reads.col, distinct=reads.n_phases == 1)
        return v

    def _transfer_scale(self, lr: float) -> float:
        """The buffer increment per unit read and tile size, before dividing by A's granularity."""
        return lr * self.cfg.transfer_every / (self.cfg.auto_granularity * self.cfg.buffer_granularity)

    def _update_fused(self, x: Tensor, d: Tensor, lr: float, reads: Reads, flips_out: Tensor | None) -> Tensor:
        """The whole mini-batch in one compiled call (CPU, A and C on the kernels, distinct reads).

        :func:`.transfer_kernel.fused_update` runs the steps of :meth:`_update_steps` in the same
        order, the input chopper flips included (the random ones from its own generator); on this
        path their ~100 small tensor and numpy operations per layer and batch cost more than the
        device updates. Returns the reads.
        """
        cfg = self.cfg
        if not cfg.auto_scale:
            self.eta_a = torch.full_like(self.m_x, cfg.fast_lr)
        auto_scale, keep, eta_max, update = self._fused_settings
        views = self._numpy_views
        kernels.match_torch_threads()
        sample, col, passes, size = reads.table[:4]
        v = transfer_kernel.fused_update(
            x.contiguous().numpy(), d.contiguous().numpy(), views(self.c_in), views(self.c_out),
            sample, col, passes, size, self.flip_period, self.flip_prob,
            _NO_FLIPS_OUT if flips_out is None else np.ascontiguousarray(flips_out.numpy()),
            auto_scale, views(self.m_x), views(self.m_d), keep, eta_max, views(self.eta_a), views(self.A.eps), update,
            self.A.kernel_state(), (self.A.mult_noise, self.A.has_write_noise), self._transfer_scale(lr),
            *self._transfer_state(), self.C.column_write_state(), (self.C.mult_noise, self.C.has_write_noise),
            kernels.draw_seed(self.generator))
        return torch.from_numpy(v)

    def _transfer_compiled(self, columns: Tensor, reads: Reads, sign_in: Tensor, sign_out: Tensor,
                           flips: Tensor | None, scale: float) -> Tensor:
        """Read, buffer and C steps of distinct columns in one compiled pass (CPU; see :mod:`.transfer_kernel`).

        The same as :meth:`_transfer_read`, :meth:`_buffer_step` and :meth:`accumulate`, without
        their thirty-odd small tensor operations. Returns the reads.
        """
        n_p, n_r = sign_in.shape
        flips_np = np.zeros((n_p, n_r), dtype=np.bool_) if flips is None else np.ascontiguousarray(flips.numpy())
        v, steps = transfer_kernel.transfer_columns(
            columns.contiguous().numpy(), reads.col.numpy(), reads.passes.numpy(), reads.size.numpy(),
            sign_in.contiguous().numpy(), sign_out.contiguous().numpy(), flips_np, scale, self.A.eps.numpy(),
            *self._transfer_state(), kernels.draw_seed(self.generator))
        self._write_slow_array(torch.from_numpy(steps), reads.col, distinct=True)
        return torch.from_numpy(v)

    def _transfer_state(self) -> tuple[Any, ...]:
        """What both compiled transfer kernels take from ``first_write_pass`` to ``read``: rule, buffer,
        AGAD's means, the threshold settings and the read's periphery."""
        cfg = self.cfg
        return (self.first_write_pass, self._numpy_views(self.H), self.kernel_rule, *self._kernel_means(),
                float(cfg.transfer_desired_bl), bool(cfg.forget_buffer), float(cfg.momentum), self._column_read)

    def _kernel_means(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """AGAD's running mean, past mean, switched flags and beta for the compiled transfer (unused: empty)."""
        empty = np.zeros((0, 0, 0), dtype=np.float32)
        return empty, empty, np.zeros((0, 0), dtype=np.bool_), 0.0

    def _buffer_step(self, cols: Tensor, passes: Tensor, v: Tensor, sign: Tensor, lr_scale: Tensor,
                     flips: Tensor | None) -> Tensor:
        """Reads of distinct columns into H; threshold transfer; returns the C steps ``(P, out, R)``.

        Where ``|H| >= 1``: ``n = clamp(trunc(H), -BLT, BLT)`` and H is forgotten (``H <- momentum H``)
        or, with ``forget_buffer=false``, reduced by ``(1 - momentum) n``.
        """
        cfg = self.cfg
        h = self.H.index_select(2, cols).add_(self.accumulate(cols, v, sign, lr_scale, flips))
        blt = float(cfg.transfer_desired_bl)
        n = torch.where(h.abs() >= 1, torch.clamp(torch.trunc(h), -blt, blt), torch.zeros_like(h))
        if cfg.forget_buffer:
            h = torch.where(n != 0, cfg.momentum * h, h)
        else:
            h = h - (1.0 - cfg.momentum) * n
        self.H.index_copy_(2, cols, h)
        return n * (passes >= self.first_write_pass)

    # -- the steps of one mini-batch -------------------------------------------------------------
    def _schedule(self, batch: int) -> Reads:
        """Which samples of the batch end with a transfer event, and which column each tile reads."""
        table = transfer_kernel.schedule(self.samples, self.events, batch, self.cfg.transfer_every, self._tile_starts,
                                         self._tile_sizes)
        events = table.shape[1] // len(self._tile_sizes)
        return Reads(table, events, (events - 1) // self._min_tile + 1 if events else 1, self.H.device)

    def _random_in_flips(self, n_reads: int) -> Tensor | None:
        """Random input chopper flips after each read, ``(P, R)`` bool (probability ``flip_prob``); None: never."""
        if self.flip_prob <= 0 or not n_reads:
            return None
        draw = torch.rand((self.c_in.shape[0], n_reads), generator=self.generator, device=self.c_in.device)
        return draw < self.flip_prob

    def _in_chopper_flips(self, reads: Reads, random: Tensor | None) -> Tensor | None:
        """Whether each replica flips the input chopper of the column just read, ``(P, R)`` bool; None: never.

        The regular flips (the last pass of every ``flip_period``) or-ed with the ``random`` ones.
        """
        if not self.flip_period or not len(reads):
            return random
        regular = (reads.passes % self.flip_period == self.flip_period - 1).view(1, -1).expand(self.c_in.shape[0], -1)
        return regular if random is None else regular | random

    def _out_chopper_flips(self, reads: Reads) -> Tensor | None:
        """Per read and output, whether ``c_out`` flips after it, ``(P, R, out)``; None if never."""
        p = self.cfg.out_chop_prob
        if not self.choppers or p <= 0 or not bool(reads.pass_end.any()):
            return None
        n_p, n_out = self.c_out.shape
        draw = torch.rand((n_p, len(reads), n_out), generator=self.generator, device=self.c_out.device) < p
        return draw & reads.pass_end.view(1, -1, 1)

    def _chop_inputs(self, x: Tensor, reads: Reads, flips: Tensor | None) -> tuple[Tensor, Tensor]:
        """``x`` with each sample's input chopper signs, and ``c_in[k]`` at every read ``(P, R)``."""
        n_p = x.shape[0]
        if flips is None or not bool(flips.any()):
            if bool((self.c_in == 1).all()):
                return x, x.new_ones((n_p, len(reads)))
            return x * self.c_in.unsqueeze(1), self.c_in[:, reads.col]
        toggles = torch.zeros_like(x)
        toggles.index_put_((torch.arange(n_p, device=x.device).view(-1, 1), reads.sample.view(1, -1),
                            reads.col.view(1, -1)), flips.to(x.dtype), accumulate=True)
        signs = self._signs(self.c_in, toggles)
        self.c_in = self.c_in * (1 - 2 * (toggles.sum(1) % 2))
        return x * signs, signs[:, reads.sample, reads.col]

    def _chop_outputs(self, d: Tensor, reads: Reads, flips: Tensor | None) -> tuple[Tensor, Tensor]:
        """``d`` with each sample's output chopper signs, and ``c_out`` at every read ``(P, R, out)``."""
        n_p, _, n_out = d.shape
        if flips is None or not bool(flips.any()):
            if bool((self.c_out == 1).all()):
                return d, d.new_ones((n_p, len(reads), n_out))
            return d * self.c_out.unsqueeze(1), self.c_out.unsqueeze(1).expand(-1, len(reads), -1)
        toggles = torch.zeros_like(d)
        toggles.index_add_(1, reads.sample, flips.to(d.dtype))
        signs = self._signs(self.c_out, toggles)
        self.c_out = self.c_out * (1 - 2 * (toggles.sum(1) % 2))
        return d * signs, signs[:, reads.sample]

    @staticmethod
    def _signs(start: Tensor, toggles: Tensor) -> Tensor:
        """Chopper sign of every sample ``(P, B, n)``: flips at sample b act from sample b + 1 on."""
        before = toggles.cumsum(1) - toggles
        return start.unsqueeze(1) * (1 - 2 * (before % 2))

    def _fast_lr(self, x: Tensor, d: Tensor) -> Tensor:
        """``eta_A (P, 1)``: ``fast_lr`` or, with ``auto_scale``, ``fast_lr BL eps_A / (m_x m_d)`` (paper Eq. 15).

        The running averages are updated once per mini-batch from the batch mean of the per-sample
        abs-max (aihwkit GPU), before use (aihwkit CPU order); the first non-zero value initialises
        them. The optimizer's lr does not scale ``eta_A`` (aihwkit ``scale_fast_lr=False``).
        """
        cfg = self.cfg
        if not cfg.auto_scale:
            self.eta_a = torch.full_like(self.m_x, cfg.fast_lr)
            return self.eta_a.view(-1, 1)
        keep = 1.0 - cfg.auto_momentum
        eta = cfg.fast_lr * self.update_cfg.desired_bl * self.A.eps
        if self._compiled:
            eta_np = transfer_kernel.auto_scale_lr(x.contiguous().numpy(), d.contiguous().numpy(), self.m_x.numpy(),
                                                   self.m_d.numpy(), keep, eta.numpy())
            self.eta_a = torch.from_numpy(eta_np)
            return self.eta_a.view(-1, 1)
        for name, v in (("m_x", x), ("m_d", d)):
            m = getattr(self, name)
            mx = v.abs().amax(-1).mean(1)
            new = torch.where(m > 0, m + keep * (mx - m), mx)
            setattr(self, name, torch.where(mx > 0, new, m))
        scale = self.m_x * self.m_d
        self.eta_a = torch.where(scale > 0, eta / torch.where(scale > 0, scale, 1.0), eta)
        return self.eta_a.view(-1, 1)

    def _update_fast_array(self, x: Tensor, d: Tensor, eta: Tensor, reads: Reads) -> Tensor:
        """Pulse A with every sample; return each read's column of A after its sample, ``(P, out, R)``."""
        a = self.A
        if not len(reads):
            pulsed_update(a, x, d, eta, self.update_cfg, self.generator)
            return x.new_zeros((x.shape[0], a.shape[1], 0))
        columns = x.new_empty((x.shape[0], a.shape[1], len(reads)))
        if self.update_cfg.engine == "exact":
            start = 0
            for b in torch.unique(reads.sample).tolist():
                pulsed_update(a, x[:, start:b + 1], d[:, start:b + 1], eta, self.update_cfg, self.generator)
                at = (reads.sample == b).nonzero().squeeze(1)
                columns[:, :, at] = a.weight[:, :, reads.col[at]]
                start = b + 1
            if start < x.shape[1]:
                pulsed_update(a, x[:, start:], d[:, start:], eta, self.update_cfg, self.generator)
            return columns

        if uses_masks(a, self.update_cfg) and reads.n_phases == 1:  # compiled kernels: one pass
            masks = pulse_masks(x, d, eta, a.eps, self.update_cfg, self.generator)
            if masks.empty:
                return a.weight_at(reads.col)
            return a.apply_masks(masks, self.generator, reads.col, reads.sample)
        trains = pulse_trains(x, d, eta, a.eps, self.update_cfg, self.generator)
        if trains.bx.shape[2] == 0:
            return a.weight_at(reads.col)
        n_up, n_dn = trains.up_down_counts()
        # Counts of each read column up to (and including) the read's sample, (P, out, R): the bit
        # slots of later samples are masked out of one product per count kind.
        n_p, n_b, n_t, n_out = trains.bd.shape
        upto = (torch.arange(n_b, device=x.device).view(-1, 1) <= reads.sample.view(1, -1)).to(x.dtype)  # (B, R)
        bx = trains.bx[..., reads.col] * upto.view(1, n_b, 1, -1)
        sx = bx * trains.sign_x[..., reads.col].unsqueeze(2)
        sd = trains.bd * trains.sign_d.unsqueeze(2)
        total = torch.bmm(trains.bd.reshape(n_p, n_b * n_t, n_out).transpose(1, 2), bx.reshape(n_p, n_b * n_t, -1))
        signed = torch.bmm(sd.reshape(n_p, n_b * n_t, n_out).transpose(1, 2), sx.reshape(n_p, n_b * n_t, -1))
        cum_dn = 0.5 * (total + signed)
        cum_up = total - cum_dn
        n_phases = reads.n_phases
        done_up = done_dn = None
        for phase in range(n_phases):  # one pass unless a tile is shorter than the batch's reads
            if n_phases == 1:  # every column read once: all reads at once, no gathering
                idx, cols, up, dn = slice(None), reads.col, cum_up, cum_dn
            else:
                idx = (reads.phase == phase).nonzero().squeeze(1)
                cols = reads.col[idx]
                up, dn = cum_up[:, :, idx], cum_dn[:, :, idx]
            if done_up is not None:  # a column read again: only the counts since its last read
                up, dn = up - done_up.index_select(2, cols), dn - done_dn.index_select(2, cols)
            a.apply_counts_at(cols, up, dn, self.generator)
            n_up.index_add_(2, cols, up, alpha=-1)
            n_dn.index_add_(2, cols, dn, alpha=-1)
            if n_phases > 1:
                if done_up is None:
                    done_up, done_dn = torch.zeros_like(n_up), torch.zeros_like(n_dn)
                done_up[:, :, cols], done_dn[:, :, cols] = cum_up[:, :, idx], cum_dn[:, :, idx]
            columns[:, :, idx] = a.weight_at(cols)
        a.apply_counts(n_up, n_dn, self.generator)
        return columns

    def _transfer_read(self, columns: Tensor) -> Tensor:
        """Read columns ``(P, out, R)`` of A through the transfer periphery (noise + ADC, no NM/BM)."""
        return read_columns(columns, self.cfg.transfer_io, self.generator)

    def _write_slow_array(self, steps: Tensor, cols: Tensor, distinct: bool = False) -> None:
        """``|n|`` single pulses of sign(n) on C at each read column, ``steps (P, out, R)``."""
        c = self.C
        fast_distinct = distinct and self.update_cfg.engine != "exact"
        if fast_distinct and c.kernel_ready:  # compiled: skips the zeros itself
            c.apply_column_steps(cols, steps, self.generator)
            return
        if not bool((steps != 0).any()):
            return
        if fast_distinct:  # few pulses on known columns
            c.apply_counts_at(cols, steps.clamp(min=0), (-steps).clamp(min=0), self.generator, sparse=True)
            return
        up = torch.zeros_like(c.g).index_add_(2, cols, steps.clamp(min=0))
        dn = torch.zeros_like(c.g).index_add_(2, cols, (-steps).clamp(min=0))
        if self.update_cfg.engine == "exact":
            for r in range(1, int(torch.maximum(up, dn).max()) + 1):
                for sign, count in ((1.0, up), (-1.0, dn)):
                    if bool((count >= r).any()):
                        c.pulse_once(sign * (count >= r).to(count.dtype), self.generator)
        else:
            c.apply_counts(up, dn, self.generator)


def chopper_period(in_chop_prob: float) -> int:
    """``N = max(ceil(1 / in_chop_prob), 2)`` reads (aihwkit ``getNumInChopSamples``)."""
    return max(math.ceil(1.0 / in_chop_prob), 2) if in_chop_prob > 0 else 2
