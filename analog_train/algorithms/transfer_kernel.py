"""Compiled CPU version of a TTv2 / c-TTv2 / AGAD mini-batch (numba).

:meth:`TransferCompound.update` chops x and d, sets A's learning rate, pulses A, reads the
batch's columns of A through the transfer periphery, turns the reads into buffer increments with
the algorithm's rule, thresholds H and writes C. In torch that is about a hundred tensor and
numpy operations per layer and mini-batch on blocks of a few thousand numbers, so on the CPU
their dispatch, not their arithmetic, was the cost. Here each step is a kernel that computes the
same thing in the same order (:func:`chop_inputs`, :func:`chop_outputs`, :func:`auto_scale_lr`,
:func:`transfer_columns`), and :func:`fused_update` runs them all, with the device kernels of
:mod:`analog_train.devices.kernels`, as one call. The torch implementation stays the reference
(and the path for GPUs, for devices without compiled kernels and for repeated column reads);
``tests/test_transfer_kernel.py`` holds the two equal.

The read (:class:`~analog_train.crossbar.io.ColumnRead`) draws its noise from the kernels'
counter-based generator instead of the run's ``torch.Generator``, as the pulse trains do.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from analog_train.crossbar.io import ColumnRead
from analog_train.devices import kernels
from analog_train.devices.kernels import key, normal

# Buffer rules (the subclasses' ``accumulate``): H[:, k] += lr_scale * ...
RULE_TTV2 = 0  # ... v
RULE_CHOPPED = 1  # ... c_k c_i v
RULE_AGAD = 2  # ... c_k c_i (v - p_ref), with AGAD's running and past means


@njit(cache=True)
def schedule(samples, events, batch, transfer_every, starts, sizes):
    """The column reads of a mini-batch, ``(6, R)``: sample, column, passes, tile size, phase, pass end.

    Sample b ends with a transfer event when ``samples + b + 1`` (samples seen, counting this one)
    is a multiple of ``transfer_every``; the batch's i-th event, the run's ``events + i``-th, reads the
    column ``e % size`` of every input tile (``starts``, ``sizes``), which has ``e // size`` passes
    behind it. ``phase``: earlier reads of the same column in this batch (``i // size``); ``pass end``:
    the read of the first tile's last column. In time order: event, then tile (see ``transfer.Reads``).
    """
    first = (-(samples + 1)) % transfer_every
    n_events = (batch - first + transfer_every - 1) // transfer_every if batch > first else 0
    n_tiles = sizes.shape[0]
    table = np.empty((6, n_events * n_tiles), dtype=np.int64)
    for i in range(n_events):
        e = events + i
        for t in range(n_tiles):
            r = i * n_tiles + t
            local = e % sizes[t]
            table[0, r] = first + i * transfer_every
            table[1, r] = starts[t] + local
            table[2, r] = e // sizes[t]
            table[3, r] = sizes[t]
            table[4, r] = i // sizes[t]
            table[5, r] = t == 0 and local == sizes[t] - 1
    return table


@njit(cache=True, error_model="numpy")
def transfer_columns(columns, cols, passes, sizes, sign_in, sign_out, flips, scale, eps, first_write_pass, h, rule,
                     run_mean, past_mean, switched, beta, blt, forget, momentum, read, seed):
    """Reads, buffer increments and C steps of the distinct columns ``cols`` of one mini-batch.

    ``columns (P, out, R)``: A's visible weight of each read column right after its sample;
    ``passes`` and ``sizes (R,)``: completed passes and size of the column's tile. ``sign_in (P, R)``
    and ``sign_out (P, R, out)``: chopper signs at each read. A read adds ``scale size / eps_A``
    times its rule's value to H, and may write to C from pass ``first_write_pass`` on. Updates ``h (P, out, in)`` and,
    for AGAD, ``run_mean``, ``past_mean (P, out, in)`` and ``switched (P, in)`` in place (``flips
    (P, R)``: the input chopper of the column flips after the read). Returns the reads ``v`` and
    the C steps ``n``, both ``(P, out, R)``, as ``TransferCompound._transfer_read`` and
    ``_buffer_step`` compute them.
    """
    n_p, n_out, n_r = columns.shape
    v = np.empty_like(columns)
    steps = np.zeros_like(columns)
    for p in range(n_p):
        for r in range(n_r):
            k = cols[r]
            lr_scale = scale * sizes[r] / eps[p]
            allowed = passes[r] >= first_write_pass
            gain = read.level_gain
            if not read.perfect and read.inp_noise_gain > 0.0:  # one input-noise draw per read
                gain = read.level_gain + read.inp_noise_gain * normal(key(seed, p * n_r + r, 0))
            was_switched = switched[p, k] if rule == RULE_AGAD else False
            for i in range(n_out):
                value = columns[p, i, r]
                if not read.perfect:
                    q = value * gain
                    if read.out_noise > 0.0:
                        q += read.out_noise * normal(key(seed, (p * n_out + i) * n_r + r, 1))
                    if read.quantise:
                        q = np.round(q)
                    value = min(max(q, -read.l_out), read.l_out) * read.res_out
                v[p, i, r] = value
                if rule == RULE_TTV2:
                    increment = lr_scale * value
                elif rule == RULE_CHOPPED:
                    increment = lr_scale * sign_in[p, r] * sign_out[p, r, i] * value
                else:
                    mean = run_mean[p, i, k]
                    ref = mean if was_switched else past_mean[p, i, k]
                    past_mean[p, i, k] = ref
                    run_mean[p, i, k] = (1.0 - beta) * mean + beta * value
                    increment = lr_scale * sign_in[p, r] * sign_out[p, r, i] * (value - ref)
                hk = h[p, i, k] + increment
                n = 0.0
                if abs(hk) >= 1.0:
                    n = min(max(np.trunc(hk), -blt), blt)
                    hk = momentum * hk if forget else hk - (1.0 - momentum) * n
                h[p, i, k] = hk
                if allowed:
                    steps[p, i, r] = n
            if rule == RULE_AGAD:
                switched[p, k] = flips[p, r]
    return v, steps


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
                top = 0.0
                for j in range(v.shape[2]):
                    top = max(top, abs(v[p, b, j]))
                total += top
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
def fused_update(x, d, c_in, c_out, sample, col, passes, sizes, flip_period, flip_prob, flips_out, auto_scale, m_x,
                 m_d, keep, eta_max, eta_a, eps, update, a_state, a_flags, scale, first_write_pass, h, rule, run_mean,
                 past_mean, switched, beta, blt, forget, momentum, read, c_state, c_flags, seed):
    """One mini-batch of a transfer algorithm on the CPU, start to end, for distinct read columns.

    The steps of ``TransferCompound.update`` in order: choppers (:func:`chop_inputs`,
    :func:`chop_outputs`; an input chopper flips after a read in the last of every ``flip_period``
    passes, 0: never, and with probability ``flip_prob``), ``eta_A``
    (``auto_scale``: :func:`auto_scale_lr` into ``eta_a``; else ``eta_a`` as given), the pulse
    trains of A (``update``: desired BL, um_grad_scale, update and BL management) and their
    application with the column reads after each read's sample (``a_state``: flat g, write noise,
    pulse counts, rows, reference; ``a_flags``: multiplicative noise, write noise), the transfer
    (:func:`transfer_columns`, from ``first_write_pass`` to ``read`` the same arguments) and the C
    steps (``c_state``: as ``a_state`` and C's kept visible weight). Returns the reads ``v (P, out, R)``.
    """
    n_p, n_b = x.shape[0], x.shape[1]
    n_in = x.shape[2]
    n_r = col.shape[0]
    flips = np.zeros((n_p, n_r), dtype=np.bool_)
    flip_seed = kernels.key(seed, 0, 5)
    for p in range(n_p):
        for r in range(n_r):
            regular = flip_period > 0 and passes[r] % flip_period == flip_period - 1
            drawn = flip_prob > 0.0 and kernels.uniform(kernels.key(flip_seed, p * n_r + r, 0)) < flip_prob
            flips[p, r] = regular or drawn
    xc, sign_in = chop_inputs(x, c_in, sample, col, flips)
    dc, sign_out = chop_outputs(d, c_out, sample, flips_out)
    if auto_scale:
        eta_a[:] = auto_scale_lr(xc, dc, m_x, m_d, keep, eta_max)
    eta = np.empty((n_p, n_b), dtype=x.dtype)
    for p in range(n_p):
        eta[p, :] = eta_a[p]
    xpos, xneg, dpos, dneg, t_max = kernels.pulse_masks(xc, dc, eta, eps, update[0], update[1], update[2], update[3],
                                                        kernels.key(seed, 0, 1))
    g, w_noise, pulse_count, rows, ref = a_state
    n_out = dc.shape[2]
    columns = np.empty((n_p, n_out, n_r), dtype=x.dtype)
    if t_max == 0:  # nothing to pulse: the reads see A as it is
        for p in range(n_p):
            for i in range(n_out):
                for r in range(n_r):
                    k = (p * n_out + i) * n_in + col[r]
                    columns[p, i, r] = g[k] - ref[k] + w_noise[k]
    else:
        read_slot = np.full(n_in, -1, dtype=np.int64)
        for r in range(n_r):
            read_slot[col[r]] = r
        kernels.apply_trains_in(g, w_noise, pulse_count, rows, ref, dpos, dneg, xpos, xneg, read_slot,
                                kernels.keep_masks((sample + 1) * t_max, xpos.shape[2]), kernels.key(seed, 0, 2),
                                a_flags[0], a_flags[1], columns)
    v, steps = transfer_columns(columns, col, passes, sizes, sign_in, sign_out, flips, scale, eps, first_write_pass, h,
                                rule, run_mean, past_mean, switched, beta, blt, forget, momentum, read,
                                kernels.key(seed, 0, 3))
    cg, cw, cp, crows, cref, cvisible = c_state
    kernels.apply_column_steps(cg, cw, cp, crows, cref, cvisible, col, steps, n_in, kernels.key(seed, 0, 4), c_flags[0],
                               c_flags[1])
    return v


def warm_up() -> None:
    """Compile (or load from numba's cache) the step kernels for float32 state (``fused_update`` compiles,
    or loads, at its first call: its argument types follow the run's arrays)."""
    f32 = np.float32
    columns = np.zeros((1, 1, 1), dtype=f32)
    state = np.zeros((1, 1, 1), dtype=f32)
    read = ColumnRead(False, 1.0, 0.0, 0.0, True, 1.0, 1.0)
    vector = np.ones(1, dtype=f32)
    auto_scale_lr(columns, columns, vector, vector.copy(), 0.5, vector.copy())
    index = np.zeros(1, dtype=np.int64)
    transfer_columns(columns, index, index, index + 1, np.ones((1, 1), dtype=f32), np.ones((1, 1, 1), dtype=f32),
                     np.zeros((1, 1), dtype=np.bool_), 1.0, vector, 0, state, RULE_AGAD, state.copy(), state.copy(),
                     np.zeros((1, 1), dtype=np.bool_), 0.5, 1.0, True, 0.0, read, np.uint64(0))
