"""Machinery shared by the transfer algorithms TTv2, c-TTv2 and AGAD (SPEC 4; aihwkit 3.4, 3.5).

Two analog arrays of the same shape: **A** (fast; receives the chopped pulsed update of every
sample) and **C** (slow; its visible weight is the layer's weight W), a digital buffer **H** with
threshold 1, input choppers ``c_in`` and output choppers ``c_out``, and a transfer schedule: every
``transfer_every`` samples each input tile reads its next column of A through the transfer
periphery, the algorithm's buffer rule (``buffer_rule`` in its module) turns the read into a buffer
increment, and where ``|H| >= 1`` C gets ``clamp(trunc(H), -BLT, BLT)`` single pulses and H is
forgotten.

Per-sample semantics, vectorised per mini-batch (aihwkit's GPU "chopped weight output" order):

* ``transfer_every`` counts samples (aihwkit ``units_in_mbatch=False``, the default of the
  Chopped/Dynamic compounds and of every TTv2/c-TTv2/AGAD preset); a sample is one tile input: a
  convolution's patch, an LSTM's time step. A mini-batch may read a column many times (LeNet-5's
  first layer: 5,760 samples over 25 columns).
* The chopper flips of a mini-batch do not depend on the data, so they are drawn first; every
  sample is pulsed with the chopper signs it would see in a sample-by-sample loop (a flip after
  the read at sample b applies from sample b+1 on).
* A read at sample b must see A after sample b's update. A device only changes through its own
  pulses, so the fast engine applies a device's pulses run by run (a run: consecutive samples'
  pulses of one sign, one closed form each; see :mod:`analog_train.crossbar.pulsed_update`), cut at
  its column's reads, and takes each read between two runs; the exact engine runs the samples
  between reads one after another. Both give every read exactly as a per-sample loop.
* Reads of a column are processed in time order; C writes happen at each read (they touch C
  only, which no read of the batch looks at).
* The batch goes in chunks of :data:`.transfer_kernel.CHUNK_SAMPLES` samples, so that the pulse
  trains and reads held at once do not grow with the batch.

Large layers are split into input tiles of at most ``transfer_forward.max_input_size`` columns, as
aihwkit splits them into separate compounds: each tile has its own column pointer, and a
transfer event reads one column of every tile. Output choppers are one vector per layer and flip
(with probability ``out_chop_prob`` per element) when the first tile completes a pass.
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from analog_train.algorithms import transfer_kernel
from analog_train.algorithms.base import AnalogAlgorithm
from analog_train.algorithms.transfer_kernel import TransferBuffers, TransferReads, TransferSettings
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
    """The column reads of a mini-batch (or a chunk of it) in time order (transfer event, then input tile).

    Kept as the table of :func:`.transfer_kernel.schedule`, which the compiled CPU path reads as it
    is; the torch fields are made on first use (the steps in torch, the traces).
    """

    sample = _field(0, "index in the batch after whose update the column is read")
    col = _field(1, "global column index")
    passes = _field(2, "completed passes of the column's tile before this read (aihwkit's P)")
    size = _field(3, "in-size of the column's tile (enters lr_scale)")
    pass_end = _field(4, "last column of the first tile: where the output choppers may flip", torch.bool)

    def __init__(self, table: np.ndarray, events: int, device: torch.device) -> None:
        self.table = table  # (5, R) int64: the fields above, in that order
        self.events = events  # transfer events in the batch
        self.device = device

    def __len__(self) -> int:
        return self.table.shape[1]

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The reads ``r0:r1`` that happen after samples ``start .. end - 1``."""
        sample = self.table[0]
        return int(np.searchsorted(sample, start)), int(np.searchsorted(sample, end))

    def chunk(self, start: int, r0: int, r1: int) -> Reads:
        """Reads ``r0:r1`` with samples counted from ``start`` (a chunk of the batch)."""
        table = self.table[:, r0:r1].copy()
        table[0] -= start
        return Reads(table, 0, self.device)

    @cached_property
    def rank(self) -> np.ndarray:
        """How many earlier reads of the same column there are, per read (its round)."""
        col = self.table[1]
        rank = np.zeros(len(col), dtype=np.int64)
        seen: dict[int, int] = {}
        for r, k in enumerate(col.tolist()):
            rank[r] = seen.get(k, 0)
            seen[k] = rank[r] + 1
        return rank


class TransferCompound(AnalogAlgorithm):
    """A, C, H, choppers and the column-transfer schedule; subclasses give the buffer rule."""

    choppers = True  # False: in_chop_prob and out_chop_prob are ignored (TTv2)
    # Input chopper flips after a read (set by the subclass): every flip_period passes over the
    # columns (0: never) and / or with probability flip_prob.
    flip_period = 0
    flip_prob = 0.0
    first_write_pass = 0  # threshold crossings write to C from this pass over the columns on (AGAD warms up)
    state_arrays = ("A", "C")
    state_tensors = ("H", "c_in", "c_out", "m_x", "m_d", "eta_a")
    state_counters = ("samples", "events")
    # The subclass's buffer rule, rule(v, sign, lr_scale, mean, past, switched, beta) -> (increment, mean,
    # past) (see transfer_kernel.transfer_rounds), and its compiled transfer pass built on that rule.
    rule: Callable[..., Any]
    compiled_step: Callable[..., Any]
    # AGAD's per-element running mean, past mean and per-column "flipped since the last read" flags
    # (None: the rule keeps no means), and its mean's weight beta.
    p: Tensor | None = None
    p_ref: Tensor | None = None
    switched: Tensor | None = None
    beta = 0.0

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
        sizes = split_sizes(n_in, algo.transfer_forward.max_input_size)
        self._tile_sizes = np.array(sizes, dtype=np.int64)  # input tiles: sizes and first columns
        self._tile_starts = np.cumsum(self._tile_sizes) - self._tile_sizes
        self.samples = 0  # samples seen (aihwkit's mat-vec counter)
        self.events = 0  # transfer events so far: every tile's pointer is events % size
        self.m_x = torch.zeros(n_p, dtype=dt, device=dev)  # auto_scale running max|x|
        self.m_d = torch.zeros(n_p, dtype=dt, device=dev)  # auto_scale running max|d|
        self.eta_a = torch.zeros(n_p, dtype=dt, device=dev)  # last fast-array learning rate
        # Compiled CPU kernels: for the learning rate always, for whole chunks when A and C update
        # through the device kernels too (affine families, fast engine).
        self._kernels = self.H.device.type == "cpu" and kernels.enabled()
        self._compiled = (self._kernels and update_cfg.engine != "exact" and self.A.kernel_ready
                          and self.C.kernel_ready)
        self._column_read = ColumnRead.of(algo.transfer_forward)
        self._numpy_views = kernels.NumpyViews()  # of the state the compiled transfer takes
        self._update_settings = kernels.UpdateSettings.of(update_cfg)
        self.last_reads: Reads | None = None  # for traces: the reads of the last update ...
        self.record_reads = False  # ... and, when set, their values through the periphery (P, out, R)
        self.last_values: Tensor | None = None

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
        n_b = x.shape[1]
        reads = self._schedule(n_b)
        flips_in = self._in_chopper_flips(reads)
        flips_out = self._out_chopper_flips(reads)
        self._fast_lr(x, d)
        chunk_step = self._chunk_compiled if self._compiled else self._chunk_torch
        values = []
        for start in range(0, n_b, transfer_kernel.CHUNK_SAMPLES):
            end = min(n_b, start + transfer_kernel.CHUNK_SAMPLES)
            r0, r1 = reads.span(start, end)
            v = chunk_step(x[:, start:end], d[:, start:end], lr, reads.chunk(start, r0, r1), flips_in[:, r0:r1],
                           None if flips_out is None else flips_out[:, r0:r1])
            if self.record_reads:
                values.append(v)
        self.samples += n_b
        self.events += reads.events
        self.last_reads = reads
        self.last_values = torch.cat(values, dim=2) if values else None

    def _transfer_scale(self, lr: float) -> float:
        """The buffer increment per unit read and tile size, before dividing by A's granularity."""
        return lr * self.cfg.transfer_every / (self.cfg.auto_granularity * self.cfg.buffer_granularity)

    # -- the compiled chunk (CPU) ------------------------------------------------------------------
    def _chunk_compiled(self, x: Tensor, d: Tensor, lr: float, reads: Reads, flips_in: Tensor,
                        flips_out: Tensor | None) -> Tensor:
        """One chunk in two compiled calls: A (:func:`.transfer_kernel.fast_array_chunk`), then the
        transfer with the subclass's rule (its ``transfer_step``). Returns the reads."""
        views = self._numpy_views
        sample, col, passes, size = reads.table[:4]
        flips = np.ascontiguousarray(flips_in.numpy())
        raw, sign_in, sign_out = transfer_kernel.fast_array_chunk(
            x.contiguous().numpy(), d.contiguous().numpy(), views(self.c_in), views(self.c_out), sample, col, flips,
            _NO_FLIPS_OUT if flips_out is None else np.ascontiguousarray(flips_out.numpy()), views(self.eta_a),
            views(self.A.eps), self._update_settings, self.A.kernel_state(), kernels.draw_seed(self.generator))
        empty3, empty2 = _EMPTY_MEANS
        buffers = TransferBuffers(views(self.H), empty3 if self.p is None else views(self.p),
                                  empty3 if self.p_ref is None else views(self.p_ref),
                                  empty2 if self.switched is None else views(self.switched))
        v = self.compiled_step(raw, TransferReads(col, passes, size, flips, sign_in, sign_out), buffers,
                               self._transfer_settings(lr), self.C.kernel_state(keep_visible=True),
                               kernels.draw_seed(self.generator))
        return torch.from_numpy(v)

    def _transfer_settings(self, lr: float) -> TransferSettings:
        cfg = self.cfg
        return TransferSettings(self._transfer_scale(lr), self._numpy_views(self.A.eps), int(self.first_write_pass),
                                float(self.beta), float(cfg.transfer_desired_bl), bool(cfg.forget_buffer),
                                float(cfg.momentum), self._column_read)

    # -- the chunk in torch (the reference; GPUs, other device families, the exact engine) ----------
    def _chunk_torch(self, x: Tensor, d: Tensor, lr: float, reads: Reads, flips_in: Tensor,
                     flips_out: Tensor | None) -> Tensor:
        x, sign_in = self._chop_inputs(x, reads, flips_in)
        d, sign_out = self._chop_outputs(d, reads, flips_out)
        raw = self._update_fast_array(x, d, self.eta_a.view(-1, 1), reads)
        if not len(reads):
            return raw
        v = read_columns(raw, self.cfg.transfer_forward, self.generator)
        self._transfer(v, reads, sign_in, sign_out, flips_in, lr)
        return v

    def _transfer(self, v: Tensor, reads: Reads, sign_in: Tensor, sign_out: Tensor, flips: Tensor, lr: float) -> None:
        """Reads ``v (P, out, R)`` into H by the subclass's rule, thresholds and C writes, round by round
        (round m: every column's m-th read, so its columns are distinct)."""
        lr_scale = (self._transfer_scale(lr) * reads.size.to(v.dtype).view(1, -1) / self.A.eps.view(-1, 1)).unsqueeze(1)
        sign = sign_in.unsqueeze(1) * sign_out.transpose(1, 2)  # (P, out, R)
        rank = torch.from_numpy(reads.rank).to(v.device)
        for m in range(int(reads.rank.max()) + 1):
            idx = (rank == m).nonzero().squeeze(1)
            cols = reads.col[idx]
            steps = self._buffer_step(cols, reads.passes[idx], v[:, :, idx], sign[:, :, idx], lr_scale[:, :, idx],
                                      flips[:, idx])
            self._write_slow_array(steps, cols)

    def _buffer_step(self, cols: Tensor, passes: Tensor, v: Tensor, sign: Tensor, lr_scale: Tensor,
                     flips: Tensor) -> Tensor:
        """Reads of distinct columns into H by the rule; threshold transfer; returns the C steps ``(P, out, R)``.

        Where ``|H| >= 1``: ``n = clamp(trunc(H), -BLT, BLT)`` and H is forgotten (``H <- momentum H``)
        or, with ``forget_buffer=false``, reduced by ``(1 - momentum) n``.
        """
        cfg = self.cfg
        rule = self.rule.py_func
        if self.p is None:
            increment, _, _ = rule(v, sign, lr_scale, 0.0, 0.0, 0.0, self.beta)
        else:  # index_select / index_copy_: several times cheaper than advanced indexing on the CPU
            switched = self.switched.index_select(1, cols).unsqueeze(1).to(v.dtype)
            increment, mean, past = rule(v, sign, lr_scale, self.p.index_select(2, cols),
                                         self.p_ref.index_select(2, cols), switched, self.beta)
            self.p.index_copy_(2, cols, mean)
            self.p_ref.index_copy_(2, cols, past)
            self.switched.index_copy_(1, cols, flips)
        h = self.H.index_select(2, cols).add_(increment)
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
        return Reads(table, table.shape[1] // len(self._tile_sizes), self.H.device)

    def _in_chopper_flips(self, reads: Reads) -> Tensor:
        """Whether each replica flips the input chopper of the column just read, ``(P, R)`` bool: in the
        last of every ``flip_period`` passes, or-ed with random flips of probability ``flip_prob``."""
        n_p = self.c_in.shape[0]
        if self._kernels:
            return torch.from_numpy(transfer_kernel.chopper_flips(reads.table[2], n_p, self.flip_period,
                                                                  self.flip_prob, kernels.draw_seed(self.generator)))
        flips = torch.zeros((n_p, len(reads)), dtype=torch.bool, device=self.c_in.device)
        if self.flip_period and len(reads):
            flips |= (reads.passes % self.flip_period == self.flip_period - 1).view(1, -1)
        if self.flip_prob > 0 and len(reads):
            flips |= torch.rand((n_p, len(reads)), generator=self.generator, device=self.c_in.device) < self.flip_prob
        return flips

    def _out_chopper_flips(self, reads: Reads) -> Tensor | None:
        """Per read and output, whether ``c_out`` flips after it, ``(P, R, out)``; None if never."""
        if not self.choppers or self.cfg.out_chop_prob <= 0 or not bool(reads.pass_end.any()):
            return None
        p = self.cfg.out_chop_prob
        n_p, n_out = self.c_out.shape
        draw = torch.rand((n_p, len(reads), n_out), generator=self.generator, device=self.c_out.device) < p
        return draw & reads.pass_end.view(1, -1, 1)

    def _chop_inputs(self, x: Tensor, reads: Reads, flips: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` with each sample's input chopper signs, and ``c_in[k]`` at every read ``(P, R)``."""
        n_p = x.shape[0]
        if not bool(flips.any()):
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
        if self._kernels:
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
        """Pulse A with every sample; return each read's column of A right after its sample, ``(P, out, R)``."""
        a = self.A
        cols = reads.col
        if not len(reads):
            pulsed_update(a, x, d, eta, self.update_cfg, self.generator)
            return x.new_zeros((x.shape[0], a.shape[1], 0))
        if self.update_cfg.engine == "exact":  # sample after sample, the columns read in between
            columns = x.new_empty((x.shape[0], a.shape[1], len(reads)))
            start = 0
            for b in torch.unique(reads.sample).tolist():
                pulsed_update(a, x[:, start:b + 1], d[:, start:b + 1], eta, self.update_cfg, self.generator)
                at = (reads.sample == b).nonzero().squeeze(1)
                columns[:, :, at] = a.weight_at(cols[at])
                start = b + 1
            if start < x.shape[1]:
                pulsed_update(a, x[:, start:], d[:, start:], eta, self.update_cfg, self.generator)
            return columns
        if uses_masks(a, self.update_cfg):  # compiled kernels: runs and reads in one pass
            return a.apply_masks(pulse_masks(x, d, eta, a.eps, self.update_cfg, self.generator), self.generator,
                                 cols, reads.sample)
        trains = pulse_trains(x, d, eta, a.eps, self.update_cfg, self.generator)
        columns = x.new_empty((x.shape[0], a.shape[1], len(reads)))
        rank = torch.from_numpy(reads.rank).to(x.device)
        n_b, n_in = x.shape[1], x.shape[2]
        batch = torch.arange(n_b, device=x.device).view(-1, 1)
        lo = torch.full((n_in,), -1, dtype=torch.int64, device=x.device)  # the window of each column:
        for m in range(int(reads.rank.max()) + 2):  # samples lo < b <= hi
            at = (rank == m).nonzero().squeeze(1)
            hi = torch.full((n_in,), n_b - 1, dtype=torch.int64, device=x.device)
            hi[cols[at]] = reads.sample[at]
            done = lo >= hi  # a column with fewer reads: its last window is behind it
            window = ((batch > lo) & (batch <= hi) & ~done).to(x.dtype)  # (B, in)
            if trains.bx.shape[2] and bool(window.any()):
                for n_up, n_dn in trains.runs(window):
                    a.apply_counts(n_up, n_dn, self.generator)
            columns[:, :, at] = a.weight_at(cols[at])
            lo = torch.where(done, lo, hi)
        return columns

    def _write_slow_array(self, steps: Tensor, cols: Tensor) -> None:
        """``|n|`` single pulses of sign(n) on C at the distinct columns ``cols``, ``steps (P, out, R)``."""
        c = self.C
        if self.update_cfg.engine != "exact" and c.kernel_ready:  # compiled: skips the zeros itself
            c.apply_column_steps(cols, steps, self.generator)
            return
        if not bool((steps != 0).any()):
            return
        if self.update_cfg.engine != "exact":  # few pulses on known columns
            c.apply_counts_at(cols, steps.clamp(min=0), (-steps).clamp(min=0), self.generator, sparse=True)
            return
        up = torch.zeros_like(c.g).index_add_(2, cols, steps.clamp(min=0))
        dn = torch.zeros_like(c.g).index_add_(2, cols, (-steps).clamp(min=0))
        for r in range(1, int(torch.maximum(up, dn).max()) + 1):
            for sign, count in ((1.0, up), (-1.0, dn)):
                if bool((count >= r).any()):
                    c.pulse_once(sign * (count >= r).to(count.dtype), self.generator)


_NO_FLIPS_OUT = np.zeros((0, 0, 0), dtype=np.bool_)
_EMPTY_MEANS = (np.zeros((0, 0, 0), dtype=np.float32), np.zeros((0, 0), dtype=np.bool_))


def chopper_period(in_chop_prob: float) -> int:
    """``N = max(ceil(1 / in_chop_prob), 2)`` reads (aihwkit ``getNumInChopSamples``)."""
    return max(math.ceil(1.0 / in_chop_prob), 2) if in_chop_prob > 0 else 2
