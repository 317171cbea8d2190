"""Compiled CPU kernels of the fast update engine for the affine families (numba).

The torch version of the closed-form update (:meth:`AffineFamily.counts`) costs about forty passes
over the array per mini-batch, each paying for memory traffic and dispatch; these kernels make one
pass and touch only the devices that receive pulses. They compute the same thing in the same order:

* per device, half the ups, all the downs, the other half of the ups as one affine map with one
  Gaussian draw of the summed variance, or phase by phase with a clip after each phase where the
  noise-free trajectory comes within ``NEAR_BOUND_SD`` standard deviations of a bound;
* the endurance counter and, for devices with write noise, a fresh write-noise draw;
* :func:`apply_trains`: the coincidence counts themselves, from bit masks of the pulse trains, so
  no ``(out, in)`` count tensor is built, and the column reads of the transfer algorithms taken
  between a read sample's pulses and the later samples' pulses.

Gaussian numbers come from a counter-based generator (SplitMix64 hash of a seed drawn from the
run's ``torch.Generator``, the device's flat index and a stream number; Acklam's normal quantile),
so results are reproducible and do not depend on the number of threads.
"""

from __future__ import annotations

import math
import os

import numba
import numpy as np
import torch
from numba import njit, prange, types
from numba.extending import intrinsic

# Order of the per-device parameters in the rows the kernels read (see DeviceArray): 16 floats,
# one cache line per device.
ROW_KEYS: tuple[str, ...] = (
    "a_up", "a_dn", "bmin", "bmax", "c2c", "s_up", "s_dn", "log_q_up", "log_q_dn",
    "inv_qm1_up", "inv_qm1_dn", "flat_up", "flat_dn", "va_up", "va_dn", "write_noise",
)
NEAR_BOUND_SD = 4.0

# Small helpers are inlined at numba's level (``inline="always"``): a call that passes arrays costs
# more than the arithmetic of a device. The per-device update has one call site per kernel (and the
# rare near-bound path is a plain call), which keeps the compile time down.
_inline = njit(inline="always", error_model="numpy")

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2^-53


@_inline
def _hash(z):
    """SplitMix64's finaliser: a 64-bit mix of ``z``."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@_inline
def _key(seed, index, stream):
    """Random bits of number ``stream`` (0-15) of counter ``index`` under ``seed``.

    A device's update uses streams 0 (its Gaussian), 1 (write noise) and 2-4 (near-bound phases);
    the second update of a read column adds 8.
    """
    return _hash(seed ^ (np.uint64(index) * np.uint64(16) + np.uint64(stream)) * _GOLDEN)


# Acklam's rational approximation of the normal quantile (relative error < 1.2e-9): no transcendental
# function in the central 95 %, one log and one sqrt in the tails.
_A = (-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02,
      -3.066479806614716e+01, 2.506628277459239e+00)
_B = (-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01,
      -1.328068155288572e+01)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00,
      4.374664141464968e+00, 2.938163982698783e+00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00)
_P_LOW = 0.02425


@_inline
def _normal(key):
    """One standard normal for the 64-bit ``key``: the quantile of a uniform in (0, 1)."""
    u = ((_hash(key) >> _S11) + 0.5) * _TO_UNIT
    if _P_LOW <= u <= 1.0 - _P_LOW:
        q = u - 0.5
        r = q * q
        num = (((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]) * q
        return num / (((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0)
    t = math.sqrt(-2.0 * math.log(min(u, 1.0 - u)))
    x = (((((_C[0] * t + _C[1]) * t + _C[2]) * t + _C[3]) * t + _C[4]) * t + _C[5]) / \
        ((((_D[0] * t + _D[1]) * t + _D[2]) * t + _D[3]) * t + 1.0)
    return x if u < 0.5 else -x


@njit(error_model="numpy")
def _phases_near_bound(g, rows, i, n1, nd, n3, mult, seed, stream):
    """Half the ups, the downs, the other ups one phase at a time, each with its own noise and clip.

    For a device whose trajectory comes near a bound (rare, so not inlined).
    """
    bmin, bmax, c2c = rows[i, 2], rows[i, 3], rows[i, 4]
    for phase in range(3):
        up = phase != 1
        n = nd if phase == 1 else (n1 if phase == 0 else n3)
        if n == 0.0:
            continue
        side = 0 if up else 1
        a, s, lq, iq, fl, va = rows[i, side], rows[i, 5 + side], rows[i, 7 + side], rows[i, 9 + side], \
            rows[i, 11 + side], rows[i, 13 + side]
        e = math.exp(n * lq) - 1.0  # q^n - 1
        total = e * iq + n * fl  # sum_{j<n} q^j
        f = a + s * g  # |first step|
        if mult:
            sd = c2c * abs(f) * (e + 1.0) / (1.0 + s if up else 1.0 - s) * math.sqrt(n)
        else:
            sd = math.sqrt((e + 2.0) * total * va)
        z = _normal(_key(seed, i, stream + 2 + phase))
        g = g + total * f + sd * z if up else g - total * f + sd * z
        g = min(max(g, bmin), bmax)
    return g


@_inline
def _apply_one(g, rows, i, nu, nd, mult, seed, stream):
    """New conductance of device ``i`` (parameters ``rows[i]``) after ``nu`` up and ``nd`` down pulses.

    The composite affine map of the three phases and one Gaussian of their summed variance (see
    :meth:`AffineFamily.counts`), or phase by phase near a bound.
    """
    a_up, a_dn, bmin, bmax, c2c = rows[i, 0], rows[i, 1], rows[i, 2], rows[i, 3], rows[i, 4]
    s_up, s_dn = rows[i, 5], rows[i, 6]
    n1 = math.floor(0.5 * nu)
    odd = nu - 2.0 * n1
    n3 = nu - n1
    q1 = math.exp(n1 * rows[i, 7]) - 1.0  # Q1 - 1 = q_up^n1 - 1
    qd = math.exp(nd * rows[i, 8]) - 1.0
    t1 = q1 * rows[i, 9] + n1 * rows[i, 11]  # T1 = sum_{j<n1} q_up^j
    td = qd * rows[i, 10] + nd * rows[i, 12]
    q1 += 1.0
    qd += 1.0
    t3 = t1 + odd * q1  # the last phase has n1 + odd pulses
    q3 = q1 * (1.0 + odd * s_up)
    f1 = a_up + s_up * g
    g1 = g + t1 * f1
    f2 = a_dn + s_dn * g1
    g2 = g1 - td * f2
    f3 = a_up + s_up * g2
    g3 = g2 + t3 * f3
    if mult:
        q_up2 = (1.0 + s_up) * (1.0 + s_up)
        var = n1 * (f1 * q1) * (f1 * q1) / q_up2
        var = var * qd * qd + nd * (f2 * qd) * (f2 * qd) / ((1.0 - s_dn) * (1.0 - s_dn))
        var = var * q3 * q3 + n3 * (f3 * q3) * (f3 * q3) / q_up2
        var *= c2c * c2c
    else:
        va_up = rows[i, 13]
        var = t1 * (q1 + 1.0) * va_up
        var = var * qd * qd + td * (qd + 1.0) * rows[i, 14]
        var = var * q3 * q3 + t3 * (q3 + 1.0) * va_up
    sd = math.sqrt(var)
    room = min(bmax - max(g1, g3), min(g, g2) - bmin)
    if room - NEAR_BOUND_SD * sd >= 0.0:
        return min(max(g3 + sd * _normal(_key(seed, i, stream)), bmin), bmax)
    return _phases_near_bound(g, rows, i, n1, nd, n3, mult, seed, stream)


@_inline
def _apply_at(i, nu, nd, g, w_noise, pulse_count, rows, seed, mult, write_noise, stream):
    """``nu`` up and ``nd`` down pulses on flat device ``i``: conductance, endurance count, write noise."""
    g[i] = _apply_one(float(g[i]), rows, i, nu, nd, mult, seed, stream)
    pulse_count[i] += nu + nd
    if write_noise:
        w_noise[i] = rows[i, 15] * _normal(_key(seed, i, stream + 1))


@njit(cache=True, error_model="numpy")
def apply_listed(g, w_noise, pulse_count, rows, index, n_up, n_dn, seed, mult, write_noise):
    """Apply counts ``n_up[k], n_dn[k]`` to the devices ``index[k]`` of the flat arrays (in place)."""
    for k in range(index.shape[0]):
        nu, nd = float(n_up[k]), float(n_dn[k])
        if nu + nd != 0.0:
            _apply_at(index[k], nu, nd, g, w_noise, pulse_count, rows, seed, mult, write_noise, 0)


@njit(parallel=True, cache=True, error_model="numpy")
def _apply_dense(g, w_noise, pulse_count, rows, n_up, n_dn, seed, mult, write_noise):
    for i in prange(g.shape[0]):
        nu, nd = float(n_up[i]), float(n_dn[i])
        if nu + nd != 0.0:
            _apply_at(i, nu, nd, g, w_noise, pulse_count, rows, seed, mult, write_noise, 0)


# -- pulse trains as bit masks -------------------------------------------------------------------
@njit(cache=True, error_model="numpy")
def pulse_masks(prob, sign, bl, t_max, words, seed, stream):
    """Bernoulli pulse trains of one side of the update as bit masks, ``(P, n, words)`` uint64 twice.

    ``prob (P, B, n)`` pulse probability per slot, ``sign (P, B, n)``, ``bl (P, B)`` train lengths.
    Slot ``b t_max + t`` of sample b is a bit; a set bit goes to the positive or the negative mask
    by the sign of the element in that sample.
    """
    n_p, n_b, n = prob.shape
    pos = np.zeros((n_p, n, words), dtype=np.uint64)
    neg = np.zeros((n_p, n, words), dtype=np.uint64)
    for p in range(n_p):
        for b in range(n_b):
            for j in range(n):
                pr = prob[p, b, j]
                if pr <= 0.0:
                    continue
                target = pos if sign[p, b, j] > 0 else neg
                counter = ((p * n_b + b) * t_max) * n + j
                for t in range(bl[p, b]):
                    if (_key(seed, counter + t * n, stream) >> _S11) * _TO_UNIT < pr:
                        slot = b * t_max + t
                        target[p, j, slot >> 6] |= np.uint64(1) << np.uint64(slot & 63)
    return pos, neg


@njit(cache=True)
def prefix_masks(ends, words):
    """``(R, words)`` masks with the slots ``0 .. ends[r] - 1`` set."""
    out = np.zeros((ends.shape[0], words), dtype=np.uint64)
    for r in range(ends.shape[0]):
        for w in range(words):
            n = ends[r] - 64 * w
            if n >= 64:
                out[r, w] = np.uint64(0xFFFFFFFFFFFFFFFF)
            elif n > 0:
                out[r, w] = (np.uint64(1) << np.uint64(n)) - np.uint64(1)
    return out


@intrinsic
def _popcount(typingctx, x):
    """Set bits of a uint64 (LLVM ``ctpop``: one instruction)."""
    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])
    return types.uint64(types.uint64), codegen


@_inline
def _train_row(row, n_out, n_in, cols, n_cols, g, w_noise, pulse_count, rows, ref, dpos, dneg, xpos, xneg,
               read_slot, keep, seed, mult, write_noise, read_out):
    """The devices of one row (replica p, output i): coincidences, pulses, and the column reads."""
    p = row // n_out
    i = row - p * n_out
    words = dpos.shape[2]
    quiet = True  # no d bit in this row: only the reads remain to do
    for w in range(words):
        if dpos[p, i, w] | dneg[p, i, w]:
            quiet = False
    base = row * n_in
    for c in range(n_cols[p]):
        j = cols[p, c]
        k = base + j
        r = read_slot[j]
        if quiet and r < 0:
            continue
        # A read column r: the slots of keep[2r + 1] (its sample and the earlier ones), the read,
        # then the slots of keep[2r + 2]; any other column: all slots, keep[0].
        for part in range(1 if r < 0 else 2):
            kr = 0 if r < 0 else 2 * r + 1 + part
            if not quiet:
                up = 0
                down = 0
                for w in range(words):
                    m = keep[kr, w]
                    a, b, xp, xn = dpos[p, i, w] & m, dneg[p, i, w] & m, xpos[p, j, w], xneg[p, j, w]
                    up += _popcount((a & xn) | (b & xp))  # opposite signs: W grows
                    down += _popcount((a & xp) | (b & xn))
                if up + down != 0:
                    _apply_at(k, float(up), float(down), g, w_noise, pulse_count, rows, seed, mult, write_noise,
                              8 * part)
            if r >= 0 and part == 0:
                read_out[p, i, r] = g[k] - ref[k] + w_noise[k]


@_inline
def _active_columns(xpos, xneg, read_slot):
    """Per replica, the columns with any x bit or a read: the only ones a row has to visit."""
    n_p, n_in, words = xpos.shape
    cols = np.empty((n_p, n_in), dtype=np.int64)
    n_cols = np.zeros(n_p, dtype=np.int64)
    for p in range(n_p):
        for j in range(n_in):
            live = read_slot[j] >= 0
            for w in range(words):
                if xpos[p, j, w] | xneg[p, j, w]:
                    live = True
            if live:
                cols[p, n_cols[p]] = j
                n_cols[p] += 1
    return cols, n_cols


@njit(parallel=True, cache=True, error_model="numpy")
def _apply_trains(g, w_noise, pulse_count, rows, ref, dpos, dneg, xpos, xneg, read_slot, keep, seed, mult, write_noise,
                  read_out):
    n_p, n_out, n_in = dpos.shape[0], dpos.shape[1], xpos.shape[1]
    cols, n_cols = _active_columns(xpos, xneg, read_slot)
    for row in prange(n_p * n_out):
        _train_row(row, n_out, n_in, cols, n_cols, g, w_noise, pulse_count, rows, ref, dpos, dneg, xpos, xneg,
                   read_slot, keep, seed, mult, write_noise, read_out)


def apply_trains(g, w_noise, pulse_count, rows, ref, dpos, dneg, xpos, xneg, read_slot, prefix, read_out, seed, mult,
                 write_noise) -> None:
    """Coincidence counts of every device from the masks, applied in place; column reads into ``read_out``.

    ``dpos/dneg (P, out, W)`` and ``xpos/xneg (P, in, W)``: pulse-train masks of d and x. A device
    gets one up pulse per slot where its row's d bit and its column's x bit have opposite signs and
    one down pulse where they agree. ``read_slot (in,)`` is -1, or the read index r of a column read
    in this batch: such a column gets the pulses of the slots in ``prefix[r]`` (the read sample and
    the ones before it), is read into ``read_out[:, :, r]`` as visible weight, then gets the rest.
    The rows are spread over as many threads as torch uses.
    """
    keep = np.empty((1 + 2 * prefix.shape[0], prefix.shape[1]), dtype=np.uint64)
    keep[0] = np.uint64(0xFFFFFFFFFFFFFFFF)
    keep[1::2] = prefix
    keep[2::2] = ~prefix
    _match_torch_threads()
    _apply_trains(g, w_noise, pulse_count, rows, ref, dpos, dneg, xpos, xneg, read_slot, keep, seed, mult, write_noise,
                  read_out)


def apply_dense(g, w_noise, pulse_count, rows, n_up, n_dn, seed, mult, write_noise) -> None:
    """Apply counts ``n_up, n_dn`` (flat, one per device) to every device (in place), on torch's threads."""
    _match_torch_threads()
    _apply_dense(g, w_noise, pulse_count, rows, n_up, n_dn, seed, mult, write_noise)


def _match_torch_threads() -> None:
    """Run the parallel kernels on as many threads as torch (``threads=1`` in a parallel sweep means 1)."""
    threads = min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)
    if numba.get_num_threads() != threads:
        numba.set_num_threads(threads)


def warm_up() -> None:
    """Compile (or load from numba's cache) every kernel now, on tiny inputs, instead of at first use."""
    g, zeros, counts = np.zeros(4, dtype=np.float32), np.zeros(4, dtype=np.float32), np.ones(4, dtype=np.float32)
    rows = np.zeros((4, len(ROW_KEYS)), dtype=np.float32)
    seed = np.uint64(0)
    apply_dense(g, zeros, zeros, rows, counts, counts, seed, False, False)
    apply_listed(g, zeros, zeros, rows, np.arange(4), counts, counts, seed, False, False)
    prob = np.full((1, 2, 2), 0.5, dtype=np.float32)
    xpos, xneg = pulse_masks(prob, prob, np.ones((1, 2), dtype=np.int64), 1, 1, seed, 0)
    apply_trains(g, zeros, zeros, rows, zeros, xpos, xneg, xpos, xneg, np.array([0, -1]),
                 prefix_masks(np.array([1]), 1), np.zeros((1, 2, 1), dtype=np.float32), seed, False, False)


def enabled() -> bool:
    """Whether arrays use these kernels (``ANALOG_TRAIN_KERNELS=0`` selects the torch implementation)."""
    return os.environ.get("ANALOG_TRAIN_KERNELS", "1") != "0"


def draw_seed(generator: torch.Generator) -> np.uint64:
    """A kernel seed from the run's generator, so that a run's seed fixes its noise."""
    return np.uint64(torch.randint(0, 2**62, (1,), generator=generator).item())
