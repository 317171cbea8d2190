"""Compiled CPU version of the transfer of TTv2, c-TTv2 and AGAD: read, buffer, threshold (numba).

After A's update, :meth:`TransferCompound.update` reads the batch's columns of A through the
transfer periphery, turns them into buffer increments with the algorithm's rule, and thresholds H
into C steps. In torch that is some thirty tensor operations per layer and mini-batch on
``(P, out, R)`` blocks of a few thousand numbers, so dispatch, not arithmetic, is its cost on the
CPU. :func:`transfer_columns` does the same in one pass, in the same order, for the common case
of distinct read columns; the torch implementation stays the reference (and the GPU path).

The read (:class:`~analog_train.crossbar.io.ColumnRead`) draws its noise from the kernels'
counter-based generator instead of the run's ``torch.Generator``, as the pulse trains do.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from analog_train.crossbar.io import ColumnRead
from analog_train.devices.kernels import key, normal

# Buffer rules (the subclasses' ``accumulate``): H[:, k] += lr_scale * ...
RULE_TTV2 = 0  # ... v
RULE_CHOPPED = 1  # ... c_k c_i v
RULE_AGAD = 2  # ... c_k c_i (v - p_ref), with AGAD's running and past means


@njit(cache=True, error_model="numpy")
def transfer_columns(columns, cols, sign_in, sign_out, lr_scale, allowed, h, rule, flips, run_mean, past_mean,
                     switched, beta, blt, forget, momentum, read, seed):
    """Reads, buffer increments and C steps of the distinct columns ``cols`` of one mini-batch.

    ``columns (P, out, R)``: A's visible weight of each read column right after its sample.
    ``sign_in (P, R)`` and ``sign_out (P, R, out)``: chopper signs at each read; ``lr_scale
    (P, R)``; ``allowed (R,)``: whether a read may write to C. Updates ``h (P, out, in)`` and,
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
                    increment = lr_scale[p, r] * value
                elif rule == RULE_CHOPPED:
                    increment = lr_scale[p, r] * sign_in[p, r] * sign_out[p, r, i] * value
                else:
                    mean = run_mean[p, i, k]
                    ref = mean if was_switched else past_mean[p, i, k]
                    past_mean[p, i, k] = ref
                    run_mean[p, i, k] = (1.0 - beta) * mean + beta * value
                    increment = lr_scale[p, r] * sign_in[p, r] * sign_out[p, r, i] * (value - ref)
                hk = h[p, i, k] + increment
                n = 0.0
                if abs(hk) >= 1.0:
                    n = min(max(np.trunc(hk), -blt), blt)
                    hk = momentum * hk if forget else hk - (1.0 - momentum) * n
                h[p, i, k] = hk
                if allowed[r]:
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


def warm_up() -> None:
    """Compile (or load from numba's cache) the kernels of this module for float32 state."""
    f32 = np.float32
    columns = np.zeros((1, 1, 1), dtype=f32)
    state = np.zeros((1, 1, 1), dtype=f32)
    read = ColumnRead(False, 1.0, 0.0, 0.0, True, 1.0, 1.0)
    vector = np.ones(1, dtype=f32)
    auto_scale_lr(columns, columns, vector, vector.copy(), 0.5, vector.copy())
    transfer_columns(columns, np.zeros(1, dtype=np.int64), np.ones((1, 1), dtype=f32), np.ones((1, 1, 1), dtype=f32),
                     np.ones((1, 1), dtype=f32), np.ones(1, dtype=np.bool_), state, RULE_AGAD,
                     np.zeros((1, 1), dtype=np.bool_), state.copy(), state.copy(), np.zeros((1, 1), dtype=np.bool_),
                     0.5, 1.0, True, 0.0, read, np.uint64(0))
