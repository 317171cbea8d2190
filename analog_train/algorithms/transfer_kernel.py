"""Compiled CPU version of a TTv2 / c-TTv2 / AGAD mini-batch (numba).

A mini-batch (:meth:`TransferCompound.update`) is cut into chunks of at most ``CHUNK_SAMPLES``
samples, so that the temporaries stay bounded whatever the batch (a LeNet-5 batch of 10 images is
5,760 samples of its first layer). Per chunk, two steps:

* :func:`fast_array_chunk` (the same for every algorithm): the chunk's chopper signs
  (:func:`chop_inputs`, :func:`chop_outputs`), A's pulse trains, their coincidences and the column
  reads (:func:`analog_train.devices.kernels.apply_trains`: each device gets its pulses run by run
  with its column's reads in between, so a column may be read any number of times, each read
  seeing A right after its sample);
* the algorithm's ``transfer_step``, which runs :func:`transfer_rounds` with the algorithm's own
  buffer rule (``buffer_rule`` in ``ttv2.py``, ``cttv2.py``, ``agad.py``, the function the torch path
  calls too): reads through the transfer periphery, buffer H, threshold, C writes.

:func:`auto_scale_lr` sets A's learning rate once per mini-batch, :func:`chopper_flips` draws the
input choppers' flips. The torch implementation in :mod:`.transfer` stays the reference (and the
path for GPUs and for devices without compiled kernels); ``tests/test_transfer_kernel.py`` holds
the two equal. The read (:class:`~analog_train.crossbar.io.ColumnRead`) draws its noise from the
kernels' counter-based generator instead of the run's ``torch.Generator``, as the pulse trains do.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from analog_train.crossbar.io import ColumnRead
from analog_train.devices import kernels
from analog_train.devices.kernels import FASTMATH, key, normal

# Samples of a mini-batch processed together: bounds the pulse masks and reads (about 2 KB per sample
# for a 64x32 layer) while taking a LeNet-5 mini-batch's first layer (5,760 samples) in two chunks and an
# LSTM's (3,200) in one: each chunk costs a round of calls and thread starts (at 1,024, LeNet-5's six
# chunks cost 3 % of its mini-batch's time).
CHUNK_SAMPLES = 4096

# A buffer rule as the kernels call it: numba inlines it into the algorithm's transfer_step, the torch
# path calls the same Python function on tensors (``rule.py_func``).
buffer_rule = njit(inline="always", error_model="numpy")


class TransferReads(NamedTuple):
    """The column reads of one chunk, in time order, as the transfer pass takes them."""

    col: np.ndarray  # (R,) column
    passes: np.ndarray  # (R,) completed passes of the column's tile before the read
    size: np.ndarray  # (R,) in-size of the column's tile (enters lr_scale)
    flips: np.ndarray  # (P, R) bool: the input chopper of the column flips after the read
    sign_in: np.ndarray  # (P, R) input chopper of the column at the read
    sign_out: np.ndarray  # (P, R, out) output choppers at the read


class TransferBuffers(NamedTuple):
    """The algorithm's per-element state, updated in place: H, and AGAD's running mean ``p``, past
    mean ``p_ref`` and per-column ``switched`` flags (empty arrays for the other algorithms)."""

    h: np.ndarray  # (P, out, in)
    mean: np.ndarray  # (P, out, in) or (0, 0, 0)
    past: np.ndarray  # (P, out, in) or (0, 0, 0)
    switched: np.ndarray  # (P, in) bool or (0, 0)


class TransferSettings(NamedTuple):
    """Numbers of the transfer pass: ``scale = lr n_s / (gamma_0 buffer_granularity)`` (times the tile
    size over eps_A it is the buffer's learning rate), A's granularity per replica, the first pass
    that may write C, AGAD's beta, the threshold transfer (BLT, forget_buffer, momentum) and the read."""

    scale: float
    eps: np.ndarray
    first_write_pass: int
    beta: float
    blt: float
    forget: bool
    momentum: float
    read: ColumnRead


@njit(cache=True)
def schedule(samples, events, batch, transfer_every, starts, sizes):
    """The column reads of a mini-batch, ``(5, R)``: sample, column, passes, tile size, pass end.

    Sample b ends with a transfer event when ``samples + b + 1`` (samples seen, counting this one)
    is a multiple of ``transfer_every``; the batch's i-th event, the run's ``events + i``-th, reads the
    column ``e % size`` of every input tile (``starts``, ``sizes``), which has ``e // size`` passes
    behind it. ``pass end``: the read of the first tile's last column. In time order: event, then
    tile (see ``transfer.Reads``).
    """
    first = (-(samples + 1)) % transfer_every
    n_events = (batch - first + transfer_every - 1) // transfer_every if batch > first else 0
    n_tiles = sizes.shape[0]
    table = np.empty((5, n_events * n_tiles), dtype=np.int64)
    for i in range(n_events):
        e = events + i
        for t in range(n_tiles):
            r = i * n_tiles + t
            local = e % sizes[t]
            table[0, r] = first + i * transfer_every
            table[1, r] = starts[t] + local
            table[2, r] = e // sizes[t]
            table[3, r] = sizes[t]
            table[4, r] = t == 0 and local == sizes[t] - 1
    return table


@njit(cache=True, error_model="numpy")
def auto_scale_lr(x, d, m_x, m_d, keep, eta_max):
    """``eta_A (P,)`` of ``auto_scale``: ``eta_max / (m_x m_d)``, after updating the running abs-maxima in place.

    As ``TransferCompound._fast_lr``: ``m <- m + keep (mean_b max|v_b| - m)`` (the first non-zero
    value initialises ``m``; a zero batch leaves it), ``eta_max = fast_lr BL eps_A``.
    """
    n_p, n_b = x.shape[0], x.shape[1]
    eta = np.empty(n_p, dtype=x.dtype)
    for p in range(n_p):
        for v, m in ((x, m_x), (d, m_d)):
            total = 0.0
            for b in range(n_b):
                total += kernels.abs_max(v[p, b])
            mean = total / n_b
            if mean > 0.0:
                m[p] = m[p] + keep * (mean - m[p]) if m[p] > 0.0 else mean
        scale = m_x[p] * m_d[p]
        eta[p] = eta_max[p] / scale if scale > 0.0 else eta_max[p]
    return eta


@njit(cache=True, error_model="numpy")
def chop_inputs(x, c_in, sample, col, flips):
    """``x`` with each sample's input chopper signs, and ``c_in[col[r]]`` at each read, ``(P, R)``.

    As ``TransferCompound._chop_inputs``: column ``col[r]`` flips (``flips[p, r]``, or never if
    ``flips`` is empty) after the read at sample ``sample[r]`` (sorted), i.e. from the next
    sample on. ``c_in`` ends the batch flipped in place.
    """
    n_p, n_b, n_in = x.shape
    n_r = sample.shape[0]
    out = np.empty_like(x)
    sign = np.empty((n_p, n_r), dtype=x.dtype)
    for p in range(n_p):
        r0 = 0
        for b in range(n_b):
            for j in range(n_in):
                out[p, b, j] = x[p, b, j] * c_in[p, j]
            r1 = r0
            while r1 < n_r and sample[r1] == b:
                sign[p, r1] = c_in[p, col[r1]]
                r1 += 1
            if flips.shape[0] > 0:
                for r in range(r0, r1):
                    if flips[p, r]:
                        c_in[p, col[r]] = -c_in[p, col[r]]
            r0 = r1
    return out, sign


@njit(cache=True, error_model="numpy")
def chop_outputs(d, c_out, sample, flips):
    """``d`` with each sample's output chopper signs, and ``c_out`` at each read, ``(P, R, out)``.

    As ``TransferCompound._chop_outputs``: output i flips (``flips[p, r, i]``, or never if
    ``flips`` is empty) after the read at ``sample[r]``; ``c_out`` ends the batch flipped in place.
    """
    n_p, n_b, n_out = d.shape
    n_r = sample.shape[0]
    out = np.empty_like(d)
    sign = np.empty((n_p, n_r, n_out), dtype=d.dtype)
    for p in range(n_p):
        r0 = 0
        for b in range(n_b):
            for i in range(n_out):
                out[p, b, i] = d[p, b, i] * c_out[p, i]
            r1 = r0
            while r1 < n_r and sample[r1] == b:
                sign[p, r1] = c_out[p]
                r1 += 1
            if flips.shape[0] > 0:
                for r in range(r0, r1):
                    for i in range(n_out):
                        if flips[p, r, i]:
                            c_out[p, i] = -c_out[p, i]
            r0 = r1
    return out, sign


@njit(cache=True, error_model="numpy")
def chopper_flips(passes, n_p, flip_period, flip_prob, seed):
    """Whether the input chopper of each read's column flips after it, ``(P, R)``: in the last of every
    ``flip_period`` passes over the columns (0: never) and / or with probability ``flip_prob``."""
    n_r = passes.shape[0]
    flips = np.zeros((n_p, n_r), dtype=np.bool_)
    for p in range(n_p):
        for r in range(n_r):
            regular = flip_period > 0 and passes[r] % flip_period == flip_period - 1
            drawn = flip_prob > 0.0 and kernels.uniform(key(seed, p * n_r + r, 0)) < flip_prob
            flips[p, r] = regular or drawn
    return flips


@njit(cache=True, error_model="numpy")
def fast_array_trains(x, d, c_in, c_out, sample, col, flips_in, flips_out, eta_a, eps, update, seed):
    """The chunk's chopper signs and A's pulse trains: ``(xpos, xneg, dpos, dneg, off)`` (see
    :func:`~analog_train.devices.kernels.pulse_masks`), ``sign_in (P, R)``, ``sign_out (P, R, out)``
    and the seed of the pulses (arguments as :func:`fast_array_chunk`)."""
    n_p, n_b, n_in = x.shape
    xc, sign_in = chop_inputs(x, c_in, sample, col, flips_in)
    dc, sign_out = chop_outputs(d, c_out, sample, flips_out)
    eta = np.empty((n_p, n_b), dtype=x.dtype)
    for p in range(n_p):
        eta[p, :] = eta_a[p]
    masks = kernels.pulse_masks(xc, dc, eta, eps, update, key(seed, 0, 1))
    return masks, sign_in, sign_out, key(seed, 0, 2)


def fast_array_chunk(x, d, c_in, c_out, sample, col, flips_in, flips_out, eta_a, eps, update, state, seed):
    """A's part of one chunk: choppers, pulse trains, pulses and reads; returns ``(raw reads (P, out, R),
    sign_in (P, R), sign_out (P, R, out))``.

    ``x (P, Bc, in)``, ``d (P, Bc, out)``: the chunk's samples; reads r at chunk sample ``sample[r]``
    of column ``col[r]``, in time order; ``flips_in (P, R)`` and ``flips_out (P, R, out)`` (empty:
    never) flip the choppers ``c_in``, ``c_out`` (in place) after a read; ``eta_a (P,)`` A's learning
    rate and ``eps (P,)`` its granularity; ``update`` the pulse-train settings (:class:`~analog_train.devices.kernels.UpdateSettings`);
    ``state`` A's :class:`~analog_train.devices.kernels.DeviceState`. The raw reads are A's visible
    weight right after each read's sample, as :meth:`TransferCompound._update_fast_array` returns them.

    Two compiled calls from Python: :func:`fast_array_trains`, then the parallel
    :func:`~analog_train.devices.kernels.apply_trains`. A compiled caller of a parallel kernel is
    not safe in numba's cache: compiled in a process that loaded the callee from the cache, the
    cached caller crashes the next process that loads it.
    """
    (xpos, xneg, dpos, dneg, off), sign_in, sign_out, trains_seed = fast_array_trains(
        x, d, c_in, c_out, sample, col, flips_in, flips_out, eta_a, eps, update, seed)
    raw = np.empty((x.shape[0], d.shape[2], col.shape[0]), dtype=x.dtype)
    kernels.match_torch_threads()
    kernels.apply_trains(state, dpos, dneg, xpos, xneg, off, sample, col, np.uint64(trains_seed), raw)
    return raw, sign_in, sign_out


@njit(inline="always")
def transfer_rounds(rule, raw, reads, buffers, settings, c_state, seed):
    """Reads ``raw (P, out, R)`` of one chunk through the periphery, into the buffer by ``rule``, thresholds
    and C writes, as :meth:`TransferCompound._transfer` does in torch; returns the reads ``v``.

    ``rule(v, sign, lr_scale, mean, past, switched, beta) -> (increment, mean, past)`` is the
    algorithm's buffer rule, inlined into its ``transfer_step``. A read of column k adds
    ``rule(...)`` to ``H[:, k]`` with ``lr_scale = scale size / eps_A``; where ``|H| >= 1``,
    ``n = clamp(trunc(H), -BLT, BLT)`` pulses go to C (from pass ``first_write_pass`` on) and H is
    forgotten (``H <- momentum H``) or reduced by ``(1 - momentum) n``. Reads of one column are
    processed in time order: round m holds every column's m-th read, so the columns of a round are
    distinct and their C writes go through the vectorised update together (a seed per round).
    Rows (replica, output) are independent and spread over the threads.
    """
    n_p, n_out, n_r = raw.shape
    h, mean, past, switched = buffers.h, buffers.mean, buffers.past, buffers.switched
    n_in = h.shape[2]
    means = mean.shape[0] > 0
    col, passes, size, flips = reads.col, reads.passes, reads.size, reads.flips
    # Rounds: read r is the rank-th read of its column in the chunk.
    seen = np.zeros(n_in, dtype=np.int64)
    rank = np.empty(n_r, dtype=np.int64)
    for r in range(n_r):
        rank[r] = seen[col[r]]
        seen[col[r]] += 1
    n_rounds = seen.max() if n_r > 0 else 0
    round_start = np.zeros(n_rounds + 1, dtype=np.int64)
    for r in range(n_r):
        round_start[rank[r] + 1] += 1
    for m in range(n_rounds):
        round_start[m + 1] += round_start[m]
    by_round = np.empty(n_r, dtype=np.int64)
    filled = round_start.copy()
    for r in range(n_r):
        by_round[filled[rank[r]]] = r
        filled[rank[r]] += 1
    # AGAD: whether the column's chopper flipped since its previous read, at every read.
    was_switched = np.zeros((n_p, n_r), dtype=np.float64)
    if means:
        for p in range(n_p):
            for r in range(n_r):
                was_switched[p, r] = 1.0 if switched[p, col[r]] else 0.0
                switched[p, col[r]] = flips[p, r]
    read = settings.read
    perfect, out_noise, quantise, l_out, res_out = read.perfect, read.out_noise, read.quantise, read.l_out, read.res_out
    gain = np.full((n_p, n_r), read.level_gain)
    if not perfect and read.inp_noise_gain > 0.0:  # one input-noise draw per read
        for p in range(n_p):
            for r in range(n_r):
                gain[p, r] = read.level_gain + read.inp_noise_gain * normal(key(seed, p * n_r + r, 0))
    # Plain arrays and numbers inside the parallel loop (numba's parfors mishandle tuples of arrays there).
    scale, eps, beta, blt = settings.scale, settings.eps, settings.beta, settings.blt
    forget, momentum, first_write_pass = settings.forget, settings.momentum, settings.first_write_pass
    sign_in, sign_out = reads.sign_in, reads.sign_out
    cg, cw, cp, crows, cref, cvisible = c_state.g, c_state.w_noise, c_state.pulse_count, c_state.rows, c_state.ref, \
        c_state.visible
    c_mult, c_write_noise = c_state.mult, c_state.write_noise
    write_seed = key(seed, 0, 2)
    v = np.empty_like(raw)
    n_rows = n_p * n_out
    n_chunks = min(n_rows, kernels.ROW_CHUNKS)
    for chunk in prange(n_chunks):
        lane = kernels.lane_buffers(max(n_in, 1))
        index, n_up, n_dn = lane[0], lane[1], lane[2]
        u, z = np.empty(n_r), np.zeros(n_r)
        for row in range(chunk, n_rows, n_chunks):  # strided: neighbouring rows (an LSTM gate) differ in load
            p = row // n_out
            i = row - p * n_out
            base = row * n_in
            if not perfect and out_noise > 0.0:  # the row's read noise
                kernels.fill_normals(z, u, n_r, seed, row * n_r, 1)
            for m in range(n_rounds):
                writes = 0
                for t in range(round_start[m], round_start[m + 1]):
                    r = by_round[t]
                    k = col[r]
                    value = raw[p, i, r]
                    if not perfect:
                        q = value * gain[p, r] + out_noise * z[r]
                        if quantise:
                            q = np.round(q)
                        value = min(max(q, -l_out), l_out) * res_out
                    v[p, i, r] = value
                    lr_scale = scale * size[r] / eps[p]
                    sign = sign_in[p, r] * sign_out[p, r, i]
                    if means:
                        increment, mean_k, past_k = rule(value, sign, lr_scale, mean[p, i, k], past[p, i, k],
                                                         was_switched[p, r], beta)
                        mean[p, i, k] = mean_k
                        past[p, i, k] = past_k
                    else:
                        increment, _, _ = rule(value, sign, lr_scale, 0.0, 0.0, 0.0, beta)
                    hk = h[p, i, k] + increment
                    n = 0.0
                    if abs(hk) >= 1.0:
                        n = min(max(np.trunc(hk), -blt), blt)
                        hk = momentum * hk if forget else hk - (1.0 - momentum) * n
                    h[p, i, k] = hk
                    if n != 0.0 and passes[r] >= first_write_pass:
                        index[writes] = base + k
                        n_up[writes] = max(n, 0.0)
                        n_dn[writes] = max(-n, 0.0)
                        writes += 1
                if writes > 0:
                    kernels.apply_gathered(writes, lane, cg, cw, cp, crows, kernels.round_seed(write_seed, m), c_mult,
                                           c_write_noise, 0)
                    kernels.refresh_visible_at(cvisible, cg, cref, cw, c_write_noise, index, writes)
    return v


def warm_up() -> None:
    """Compile (or load from numba's cache) the generic step kernels for float32 state (an algorithm's
    ``transfer_step`` compiles, or loads, at its first call)."""
    f32 = np.float32
    x = np.zeros((1, 1, 2), dtype=f32)
    vector = np.ones(1, dtype=f32)
    auto_scale_lr(x, x, vector, vector.copy(), 0.5, vector.copy())
    index = np.zeros(1, dtype=np.int64)
    chopper_flips(index, 1, 2, 0.5, np.uint64(0))
