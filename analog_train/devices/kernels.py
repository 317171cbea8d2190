"""Compiled CPU kernels of the fast update engine for the affine families (numba).

The torch version of the closed-form update (:meth:`AffineFamily.counts`) costs about forty passes
over the array per mini-batch, each paying for memory traffic and dispatch; these kernels make one
pass and touch only the devices that receive pulses. They compute the same thing in the same order:

* per device, ``nu`` ups and ``nd`` downs (half the ups, all the downs, the other half of the ups)
  as one affine map with one Gaussian draw of the summed variance, or phase by phase with a clip
  after each phase where the noise-free trajectory comes within ``NEAR_BOUND_SD`` standard
  deviations of a bound; :func:`apply_trains` hands it one same-sign run at a time;
* the endurance counter and, for devices with write noise, a fresh write-noise draw;
* :func:`apply_trains`: the coincidence counts themselves, from bit masks of the pulse trains, so
  no ``(out, in)`` count tensor is built, and the column reads of the transfer algorithms: a
  device gets its pulses run by run (the pulses of consecutive samples that share a sign, in
  time order), each read taken between the pulses of its sample and those of the later samples
  (any number of reads per column).

A device's update is one long chain of dependent arithmetic, so the devices of a row are
updated together: gathered into contiguous arrays (lanes) and run through branch-free loops that
the compiler vectorises (:func:`_lanes`, :func:`_lanes_near`); the few that need a logarithm (a
Gaussian in the tails) or more pulses than the branch-free powers cover are finished by the
scalar code (:func:`_apply_one`) with the same random numbers, and a test holds both equal.
:func:`apply_trains` gathers the devices of a few rows once and keeps them in the lanes through all
of their runs (a device gets hundreds in an LSTM mini-batch), writing them back at the end.

Gaussian numbers come from a counter-based generator (SplitMix64 hash of a seed drawn from the
run's ``torch.Generator``, the device's flat index and a stream number; Acklam's normal quantile),
so results are reproducible and do not depend on the number of threads.

The compiled kernels are cached where :mod:`analog_train.kernel_cache` says (registered below, before
the first kernel is defined; the other kernel modules import this one first), stamped with the sources
of every kernel module: an edit here also recompiles ``transfer_kernel.fast_array_chunk``, which calls
:func:`apply_trains`, and an edit of an algorithm's buffer rule its ``transfer_step``.
"""

from __future__ import annotations

import math
import os
import threading
import weakref
from typing import Any, NamedTuple

import numba
import numpy as np
import torch
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from analog_train import kernel_cache

kernel_cache.register()


def _start_threads() -> None:
    """Start numba's threads now, as the kernels load, and leave torch's thread count as it was.

    numba's OpenMP layer shares the OpenMP runtime with torch, and starting its threads can set the
    runtime to all of them: started later by whichever kernel came first, that undid a run's
    ``threads`` (a parallel sweep's jobs ran at every core's count). Started here, before a run sets
    its count, and with torch's put back for a count set before this import.
    """
    threads = torch.get_num_threads()
    numba.get_num_threads()  # starts the threads
    torch.set_num_threads(threads)


_start_threads()

# Order of the per-device parameters in the rows the kernels read (see DeviceArray): 8 floats, half
# a cache line per device; the rest of what an update needs follows from them. (Reading these rows
# is about half the cost of an update in the first layer of the FC network.)
ROW_KEYS: tuple[str, ...] = ("a_up", "a_dn", "bmin", "bmax", "c2c", "s_up", "s_dn", "write_noise")
NEAR_BOUND_SD = 4.0
ROW_CHUNKS = 16  # rows go to the threads in up to this many chunks, each with its own scratch
ROW_GROUP = 4  # apply_trains: rows whose devices share the rounds of run updates
BINARY_TRAIN = 64.0  # below this many pulses, q^n and sum q^j by binary powers (6 bits)
STEEP_Q = 0.05  # q below this either way: pulse by pulse (families.STEEP_Q; the closed form assumes no clip)

# Small helpers are inlined at numba's level (``inline="always"``): a call that passes arrays costs
# more than the arithmetic of a device. The per-device update has one call site per kernel (and the
# rare near-bound path is a plain call), which keeps the compile time down.
# Floating-point licences of every kernel: fused multiply-adds, reciprocals and reordered sums (no
# assumptions about NaN or infinity). The same flags everywhere, so that a device update gives the
# same numbers whichever kernel applies it.
FASTMATH = {"contract", "arcp", "reassoc"}
_inline = njit(inline="always", error_model="numpy", fastmath=FASTMATH)

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = np.uint64(30), np.uint64(27), np.uint64(31), np.uint64(11)
_TWO_53 = 9007199254740992.0
_TO_UNIT = 1.0 / _TWO_53


@_inline
def _hash(z):
    """SplitMix64's finaliser: a 64-bit mix of ``z``."""
    z = (z ^ (z >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@_inline
def key(seed, index, stream):
    """Random bits of number ``stream`` (0-15) of counter ``index`` under ``seed``.

    A device's update uses streams 0 (its Gaussian), 1 (write noise) and 2-4 (near-bound phases);
    the second update of a read column adds 8. Each kernel call draws a fresh seed, so the
    streams only need to be distinct within one call.
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
def uniform(bits):
    """A uniform in (0, 1) from the 64 random ``bits`` of :func:`key` (53 of them)."""
    return ((bits >> _S11) + 0.5) * _TO_UNIT


@_inline
def central_quantile(u):
    """The normal quantile of ``u`` in the central region ``[P_LOW, 1 - P_LOW]`` (a rational function)."""
    q = u - 0.5
    r = q * q
    num = (((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]) * q
    return num / (((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0)


@_inline
def in_tail(u):
    """Whether the Gaussian of uniform ``u`` lies outside :func:`central_quantile`'s region (``|`` for no branch)."""
    return (u < _P_LOW) | (u > 1.0 - _P_LOW)


_UINT_OF = {types.float32: types.uint32, types.float64: types.uint64}
_FLOAT_OF = {types.uint32: types.float32, types.uint64: types.float64}


@intrinsic
def _bits_of(typingctx, x):
    """The bits of a float32 or float64 as an unsigned integer of the same width (a bit cast)."""
    if x not in _UINT_OF:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(signature.return_type))
    return _UINT_OF[x](x), codegen


@intrinsic
def _float_of(typingctx, bits):
    """The float32 or float64 of the bits of a uint32 or uint64 (a bit cast)."""
    if bits not in _FLOAT_OF:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(signature.return_type))
    return _FLOAT_OF[bits](bits), codegen


def abs_max(row):
    """``max |row|`` of a 1-d float array (0 if empty), in compiled code; see its implementation below."""
    return np.abs(row).max(initial=0.0)


@overload(abs_max)
def _abs_max(row):
    """The maximum is taken over the bits without the sign as unsigned integers, whose order is the
    floats' order: a loop the compiler vectorises (a float maximum it may not, without licence to
    ignore NaN), and the same value."""
    if row.dtype not in _UINT_OF:
        return None
    uint = np.uint32 if row.dtype == types.float32 else np.uint64

    def impl(row):
        magnitude = ~uint(0) >> uint(1)  # all bits but the sign
        top = uint(0)
        for k in range(row.shape[0]):
            top = max(top, _bits_of(row[k]) & magnitude)
        return _float_of(uint(top))  # (numba widens integer arithmetic to 64 bits)
    return impl


_MANTISSA = np.uint64((1 << 52) - 1)
_ONE_BITS = np.uint64(1023 << 52)
_LN2 = math.log(2.0)
_SQRT2 = math.sqrt(2.0)


@_inline
def log_unit(u):
    """``log(u)`` of a normal float64 ``u > 0``, inline and without a call (relative error below 1e-13).

    ``u = 2^e m`` with ``m`` in ``[sqrt(1/2), sqrt(2))``; ``log m = 2 atanh(s)``, ``s = (m - 1) / (m + 1)``,
    ``|s| < 0.172``, by its series to ``s^15``. Cheaper than the library's ``log`` in the normal
    quantile's tails, where every twentieth Gaussian lands.
    """
    bits = _bits_of(u)
    e = np.float64(np.int64(bits >> np.uint64(52)) - 1023)
    m = _float_of((bits & _MANTISSA) | _ONE_BITS)  # [1, 2)
    high = m >= _SQRT2
    m = m * 0.5 if high else m
    e = e + 1.0 if high else e
    s = (m - 1.0) / (m + 1.0)
    s2 = s * s
    series = 1.0 + s2 * (1.0 / 3 + s2 * (1.0 / 5 + s2 * (1.0 / 7 + s2 * (1.0 / 9 + s2 * (1.0 / 11 + s2 * (
        1.0 / 13 + s2 * (1.0 / 15)))))))
    return e * _LN2 + 2.0 * s * series


@_inline
def quantile(u):
    """Acklam's standard normal quantile of ``u`` in (0, 1)."""
    if _P_LOW <= u <= 1.0 - _P_LOW:
        return central_quantile(u)
    t = math.sqrt(-2.0 * log_unit(min(u, 1.0 - u)))
    x = (((((_C[0] * t + _C[1]) * t + _C[2]) * t + _C[3]) * t + _C[4]) * t + _C[5]) / \
        ((((_D[0] * t + _D[1]) * t + _D[2]) * t + _D[3]) * t + 1.0)
    return x if u < 0.5 else -x


@_inline
def normal(bits):
    """One standard normal for the 64 random ``bits`` of :func:`key`: the quantile of a uniform in (0, 1)."""
    return quantile(uniform(bits))


@_inline
def fill_normals(z, u, n, seed, first, stream):
    """``z[k] = normal(key(seed, first + k, stream))`` for ``k < n`` (``u``: scratch), in loops that
    vectorise: the uniforms, their central quantiles, then the few in the tails (a logarithm)."""
    for k in range(n):
        u[k] = uniform(key(seed, first + k, stream))
    for k in range(n):
        z[k] = central_quantile(u[k])
    for k in range(n):
        if in_tail(u[k]):
            z[k] = quantile(u[k])


@_inline
def _binary_geometric(n, qm1):
    """``(q^n, sum_{j<n} q^j)`` for ``q = 1 + qm1`` and a whole number ``0 <= n < BINARY_TRAIN``, without a branch.

    From the bits of n (in floating point, as vector units have no 64-bit integer conversions):
    ``(q^(2^k), T_(2^k))`` by squaring, combined as ``T_(a+b) = T_a + q^a T_b``; a fixed loop of
    arithmetic, so that a loop over devices vectorises (see :func:`_lanes`).
    """
    power = 1.0
    total = 0.0
    qk = 1.0 + qm1
    tk = 1.0
    rest = n
    for _ in range(6):
        half = np.floor(0.5 * rest)
        bit = rest - 2.0 * half
        rest = half
        total = total + power * (bit * tk)
        power = power * (bit * qk + (1.0 - bit))
        tk = tk * (1.0 + qk)
        qk = qk * qk
    return power, total


@_inline
def _geometric(n, qm1):
    """``(q^n, sum_{j<n} q^j)`` for ``q = 1 + qm1``: by binary powers for the short trains most devices
    get (exact, and cheaper than a transcendental function), else with one ``expm1``."""
    if n < BINARY_TRAIN:
        return _binary_geometric(n, qm1)
    if qm1 == 0.0:  # a constant step
        return 1.0, n
    e = math.expm1(n * math.log1p(qm1))
    return e + 1.0, e / qm1


@_inline
def _additive_variance(c2c, a, qm1):
    """Variance factor of additive noise, ``(c2c a)^2 / (1 + q)``: n pulses add ``va T (1 + q^n)``."""
    return (c2c * a) * (c2c * a) / (2.0 + qm1)


@_inline
def _phase(g, a, s, qm1, n, power, total, c2c, bmin, bmax, mult, z, up):
    """``g`` after one phase of ``n`` pulses of one sign (``power, total``: q^n and sum_{j<n} q^j), with
    the phase's Gaussian ``z``, clipped. ``n = 0`` leaves ``g`` as it is."""
    f = a + s * g  # |first step|
    if mult:
        sd = c2c * abs(f) * power / (1.0 + qm1) * math.sqrt(n)
    else:
        sd = math.sqrt((power + 1.0) * total * _additive_variance(c2c, a, qm1))
    step = total * f if up else -(total * f)
    return min(max(g + step + sd * z, bmin), bmax)


@_inline
def _steep(s_up, s_dn):
    """Whether a pulse of the device can reach (or overshoot) the point where its step vanishes:
    ``q = 1 + s_up`` or ``1 - s_dn`` below STEEP_Q (``|`` for no branch)."""
    return (s_up < STEEP_Q - 1.0) | (-s_dn < STEEP_Q - 1.0)


@njit(error_model="numpy", fastmath=FASTMATH)
def _pulse_by_pulse(g, rows, i, n1, nd, n3, mult, seed, stream):
    """Half the ups, the downs, the other ups one pulse at a time, each with its own noise and clip
    (aihwkit's rule as written), for a steep device. Pulse j of phase k draws from stream
    ``stream + 2 + k``, mixed with j."""
    a_up, a_dn, bmin, bmax, c2c = rows[i, 0], rows[i, 1], rows[i, 2], rows[i, 3], rows[i, 4]
    s_up, s_dn = rows[i, 5], rows[i, 6]
    for phase in range(3):
        up = phase != 1
        n = nd if phase == 1 else (n1 if phase == 0 else n3)
        bits = key(seed, i, stream + 2 + phase)
        for j in range(int(n)):
            z = normal(bits ^ (np.uint64(j + 1) * _GOLDEN))
            a, s = (a_up, s_up) if up else (a_dn, s_dn)
            f = a + s * g
            step = f + c2c * (abs(f) if mult else a) * z
            g = min(max(g + step if up else g - step, bmin), bmax)
    return g


@njit(error_model="numpy", fastmath=FASTMATH)
def _phases_near_bound(g, rows, i, n1, nd, n3, mult, seed, stream):
    """Half the ups, the downs, the other ups one phase at a time, each with its own noise and clip.

    For a device whose trajectory comes near a bound (rare, so not inlined). Phase k draws from
    stream ``stream + 2 + k``.
    """
    bmin, bmax, c2c = rows[i, 2], rows[i, 3], rows[i, 4]
    for phase in range(3):
        up = phase != 1
        n = nd if phase == 1 else (n1 if phase == 0 else n3)
        if n == 0.0:
            continue
        a, s = (rows[i, 0], rows[i, 5]) if up else (rows[i, 1], rows[i, 6])
        qm1 = s if up else -s
        power, total = _geometric(n, qm1)
        g = _phase(g, a, s, qm1, n, power, total, c2c, bmin, bmax, mult, normal(key(seed, i, stream + 2 + phase)), up)
    return g


@_inline
def _composite(g, a_up, a_dn, s_up, s_dn, c2c, n1, nd, n3, odd, q1, t1, qd, td, mult):
    """Trajectory ``g1, g2, g3`` and noise sd of the three phases (see :meth:`AffineFamily.counts`).

    ``n1`` ups (``q1, t1`` their geometric factors), ``nd`` downs (``qd, td``), ``n3 = n1 + odd``
    ups. Shared by the scalar (:func:`_apply_one`) and the vectorised (:func:`_lanes`) update.
    """
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
        va_up = _additive_variance(c2c, a_up, s_up)
        var = t1 * (q1 + 1.0) * va_up
        var = var * qd * qd + td * (qd + 1.0) * _additive_variance(c2c, a_dn, -s_dn)
        var = var * q3 * q3 + t3 * (q3 + 1.0) * va_up
    return g1, g2, g3, math.sqrt(var)


@_inline
def _far_from_bounds(g, g1, g2, g3, sd, bmin, bmax):
    """Whether the noise-free trajectory stays ``NEAR_BOUND_SD`` sd inside the bounds (one affine map suffices)."""
    return min(bmax - max(g1, g3), min(g, g2) - bmin) - NEAR_BOUND_SD * sd >= 0.0


@_inline
def _apply_one(g, rows, i, nu, nd, mult, seed, stream):
    """New conductance of device ``i`` (parameters ``rows[i]``) after ``nu`` up and ``nd`` down pulses.

    Half the ups, all the downs, the other ups as one affine map with one Gaussian of their
    summed variance (see :meth:`AffineFamily.counts`), or phase by phase near a bound.
    """
    a_up, a_dn, bmin, bmax, c2c = rows[i, 0], rows[i, 1], rows[i, 2], rows[i, 3], rows[i, 4]
    s_up, s_dn = rows[i, 5], rows[i, 6]
    n1 = math.floor(0.5 * nu)
    if _steep(s_up, s_dn):
        return _pulse_by_pulse(g, rows, i, n1, nd, nu - n1, mult, seed, stream)
    odd = nu - 2.0 * n1
    q1, t1 = _geometric(n1, s_up)  # Q1 = q_up^n1, T1 = sum_{j<n1} q_up^j
    qd, td = _geometric(nd, -s_dn)
    g1, g2, g3, sd = _composite(g, a_up, a_dn, s_up, s_dn, c2c, n1, nd, nu - n1, odd, q1, t1, qd, td, mult)
    if _far_from_bounds(g, g1, g2, g3, sd, bmin, bmax):
        return min(max(g3 + sd * normal(key(seed, i, stream)), bmin), bmax)
    return _phases_near_bound(g, rows, i, n1, nd, nu - n1, mult, seed, stream)


@_inline
def _count_and_rewrite(i, pulses, w_noise, pulse_count, rows, seed, write_noise, stream):
    """After an update of device ``i``: its endurance count and, with write noise, a fresh write-noise draw."""
    pulse_count[i] += pulses
    if write_noise:
        w_noise[i] = rows[i, 7] * normal(key(seed, i, stream + 1))


@_inline
def _apply_at(i, nu, nd, g, w_noise, pulse_count, rows, seed, mult, write_noise, stream):
    """``nu`` up and ``nd`` down pulses on flat device ``i``: conductance, endurance count, write noise."""
    g[i] = _apply_one(float(g[i]), rows, i, nu, nd, mult, seed, stream)
    _count_and_rewrite(i, nu + nd, w_noise, pulse_count, rows, seed, write_noise, stream)


@njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def apply_listed(g, w_noise, pulse_count, rows, index, n_up, n_dn, seed, mult, write_noise):
    """Apply counts ``n_up[k], n_dn[k]`` to the devices ``index[k]`` of the flat arrays (in place)."""
    for k in range(index.shape[0]):
        nu, nd = float(n_up[k]), float(n_dn[k])
        if nu + nd != 0.0:
            _apply_at(index[k], nu, nd, g, w_noise, pulse_count, rows, seed, mult, write_noise, 0)


@njit(parallel=True, cache=True, error_model="numpy", fastmath=FASTMATH)
def _apply_dense(g, w_noise, pulse_count, rows, n_up, n_dn, seed, mult, write_noise):
    for i in prange(g.shape[0]):
        nu, nd = float(n_up[i]), float(n_dn[i])
        if nu + nd != 0.0:
            _apply_at(i, nu, nd, g, w_noise, pulse_count, rows, seed, mult, write_noise, 0)


# -- many devices at once: a vectorised update -------------------------------------------------------
LANE_PARAMS = 7  # a_up .. s_dn: the part of a device's row that the vectorised update reads


# What _lanes leaves to the scalar code, per device.
LANE_DONE = 0  # nothing: out holds the new conductance
LANE_TAIL = 1  # its Gaussian is in the tails (a log): the new conductance is mean + sd z, clipped
LANE_EXACT = 2  # near a bound (_lanes_near), or a train of BINARY_TRAIN pulses or more: the scalar update


@njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def _lanes(n, g, params, n_up, n_dn, uniforms, mult, out, mean, sd, status):
    """:func:`_apply_one` for ``n`` gathered devices with pulses of one sign each (a run, a write of C),
    with no branch, call or integer conversion in the loop, so that the compiler vectorises it (4
    devices per AVX2 instruction). One phase of ``n_up + n_dn`` pulses is the three phases of
    :func:`_composite` when one count is zero; a device with both is left to the scalar code.

    Reads contiguous copies of the devices' conductances ``g``, parameters ``params (LANE_PARAMS, n)``,
    counts and the uniforms of their Gaussians. Writes the new conductances to ``out``, the
    noise-free ones and the noise sd to ``mean`` and ``sd``, and in ``status`` what is left to
    :func:`update_lanes` (``LANE_*``).
    """
    for t in range(n):
        nu, nd, g0, u = n_up[t], n_dn[t], g[t], uniforms[t]
        a_up, a_dn, bmin, bmax = params[0, t], params[1, t], params[2, t], params[3, t]
        c2c, s_up, s_dn = params[4, t], params[5, t], params[6, t]
        up = nu > 0.0
        pulses = nu + nd
        a = a_up if up else a_dn
        s = s_up if up else s_dn
        qm1 = s_up if up else -s_dn
        power, total = _binary_geometric(pulses, qm1)
        f = a + s * g0  # |first step|
        g1 = g0 + total * f if up else g0 - total * f
        if mult:
            var = pulses * (c2c * f * power) * (c2c * f * power) / ((1.0 + qm1) * (1.0 + qm1))
        else:
            var = total * (power + 1.0) * _additive_variance(c2c, a, qm1)
        sigma = math.sqrt(var)
        out[t] = min(max(g1 + sigma * central_quantile(u), bmin), bmax)
        mean[t] = g1
        sd[t] = sigma
        # | rather than `or`: no branch
        exact = (not _far_from_bounds(g0, g0, g1, g1, sigma, bmin, bmax)) | (pulses >= BINARY_TRAIN) | \
            _steep(s_up, s_dn) | ((nu > 0.0) & (nd > 0.0))
        status[t] = LANE_EXACT if exact else (LANE_TAIL if in_tail(u) else LANE_DONE)


@njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def _lanes_near(n, g, params, n_up, n_dn, uniforms, mult, out, redo):
    """:func:`_phases_near_bound` for ``n`` gathered devices, vectorised as :func:`_lanes`.

    ``uniforms (3, n)``: the uniforms of the three phases' Gaussians. Marks in ``redo`` the devices
    whose result does not hold (a phase with pulses and its Gaussian in the tails, or a train of
    ``BINARY_TRAIN`` pulses or more).
    """
    for t in range(n):
        nu, nd, gg = n_up[t], n_dn[t], g[t]
        a_up, a_dn, bmin, bmax = params[0, t], params[1, t], params[2, t], params[3, t]
        c2c, s_up, s_dn = params[4, t], params[5, t], params[6, t]
        n1 = np.floor(0.5 * nu)
        n3 = nu - n1
        power, total = _binary_geometric(n1, s_up)
        gg = _phase(gg, a_up, s_up, s_up, n1, power, total, c2c, bmin, bmax, mult, central_quantile(uniforms[0, t]),
                    True)
        power, total = _binary_geometric(nd, -s_dn)
        gg = _phase(gg, a_dn, s_dn, -s_dn, nd, power, total, c2c, bmin, bmax, mult, central_quantile(uniforms[1, t]),
                    False)
        power, total = _binary_geometric(n3, s_up)
        gg = _phase(gg, a_up, s_up, s_up, n3, power, total, c2c, bmin, bmax, mult, central_quantile(uniforms[2, t]),
                    True)
        out[t] = gg
        redo[t] = ((n1 > 0.0) & in_tail(uniforms[0, t])) | ((nd > 0.0) & in_tail(uniforms[1, t])) | \
            ((n3 > 0.0) & in_tail(uniforms[2, t])) | (nu >= BINARY_TRAIN) | (nd >= BINARY_TRAIN) | _steep(s_up, s_dn)


PREFETCH_AHEAD = 16  # devices: how far ahead apply_gathered asks for the parameter rows it will read


@intrinsic
def _prefetch_row(typingctx, rows, i):
    """Ask the memory system for ``rows[i]`` (LLVM ``prefetch``, for reading, kept in all caches).

    The parameters of the first layer of the FC network (6 MB) do not stay in cache between
    mini-batches, and a row's listed devices are too irregular for the hardware prefetcher.
    """
    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, signature.args[0], ary,
                                       [args[1], context.get_constant(types.intp, 0)], wraparound=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                            "llvm.prefetch.p0i8")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()
    return types.void(rows, i), codegen


@_inline
def lane_buffers(n):
    """Scratch of :func:`apply_gathered` for up to ``n`` devices: the list (index, counts), the lanes'
    inputs (g, params, uniforms) and outputs (out, mean, sd, status), then the near-bound list and
    the inputs (g, params, counts, uniforms (3, n)) and outputs (out, redo) of :func:`_lanes_near`."""
    return (np.empty(n, dtype=np.int64), np.empty(n), np.empty(n), np.empty(n), np.empty((LANE_PARAMS, n)),
            np.empty(n), np.empty(n), np.empty(n), np.empty(n), np.empty(n, dtype=np.int8),
            np.empty(n, dtype=np.int64), np.empty(n), np.empty((LANE_PARAMS, n)), np.empty(n), np.empty(n),
            np.empty((3, n)), np.empty(n), np.empty(n, dtype=np.bool_))


@_inline
def update_lanes(m, lane, rows, seed, mult, stream):
    """The counts ``n_up, n_dn`` of the first ``m`` lanes applied to their conductances ``lg`` (in place).

    The lanes hold contiguous copies of the devices (``lane``: flat index, counts, conductance,
    parameters). Updates them with :func:`_lanes`, those near a bound with :func:`_lanes_near`,
    and finishes what is left with :func:`_apply_one`, with the same random numbers as
    :func:`_apply_at` (streams ``stream`` to ``stream + 4``).
    """
    index, n_up, n_dn, lg, params, uniforms, out, mean, sd, status = lane[:10]
    near, near_g, near_params, near_up, near_dn, near_uniforms, near_out, redo = lane[10:]
    for t in range(m):
        uniforms[t] = uniform(key(seed, index[t], stream))
    _lanes(m, lg, params, n_up, n_dn, uniforms, mult, out, mean, sd, status)
    n_near = 0
    for t in range(m):  # every device is written, the count advances past those near a bound
        near[n_near] = t
        n_near += status[t] == LANE_EXACT
    if n_near > 0:
        for k in range(n_near):
            t = near[k]
            near_g[k], near_up[k], near_dn[k] = lg[t], n_up[t], n_dn[t]
            for phase in range(3):
                near_uniforms[phase, k] = uniform(key(seed, index[t], stream + 2 + phase))
        for f in range(LANE_PARAMS):
            for k in range(n_near):
                near_params[f, k] = params[f, near[k]]
        _lanes_near(n_near, near_g, near_params, near_up, near_dn, near_uniforms, mult, near_out, redo)
        for k in range(n_near):
            if not redo[k]:
                out[near[k]] = near_out[k]
                status[near[k]] = LANE_DONE
    for t in range(m):
        if status[t] == LANE_DONE:
            lg[t] = out[t]
        elif status[t] == LANE_TAIL:
            lg[t] = min(max(mean[t] + sd[t] * quantile(uniforms[t]), params[2, t]), params[3, t])
        else:
            lg[t] = _apply_one(lg[t], rows, index[t], n_up[t], n_dn[t], mult, seed, stream)


@_inline
def gather_lane(t, i, lane, g, rows):
    """Copy device ``i`` (flat index) into lane ``t``: its index, conductance and parameters."""
    lane[0][t] = i
    lane[3][t] = g[i]
    params = lane[4]
    for f in range(LANE_PARAMS):
        params[f, t] = rows[i, f]


@_inline
def apply_gathered(m, lane, g, w_noise, pulse_count, rows, seed, mult, write_noise, stream):
    """Apply the counts of the first ``m`` devices listed in ``lane`` (index, n_up, n_dn) in place.

    Gathers them (:func:`gather_lane`), updates them together (:func:`update_lanes`) and scatters
    the results, with each device's endurance count and write noise.
    """
    index, n_up, n_dn = lane[0], lane[1], lane[2]
    for t in range(m):  # one device at a time: its row of parameters is half a cache line
        _prefetch_row(rows, index[min(t + PREFETCH_AHEAD, m - 1)])
        gather_lane(t, index[t], lane, g, rows)
    update_lanes(m, lane, rows, seed, mult, stream)
    lg = lane[3]
    for t in range(m):
        i = index[t]
        g[i] = lg[t]
        _count_and_rewrite(i, n_up[t] + n_dn[t], w_noise, pulse_count, rows, seed, write_noise, stream)


@njit(cache=True, error_model="numpy", fastmath=FASTMATH)
def apply_column_steps(state, cols, steps, n_in, seed):
    """``|steps[p, i, r]|`` pulses, up where positive, on device ``(p, i, cols[r])`` of the flat arrays (in place).

    Writes to C on distinct columns: single pulses, listed without a branch and updated together
    (:func:`apply_gathered`; as :func:`_apply_at`, stream 0). The kept visible weight of every
    written device is brought up to date (:func:`refresh_visible_at`).
    """
    g, w_noise, pulse_count, rows = state.g, state.w_noise, state.pulse_count, state.rows
    n_p, n_out, n_r = steps.shape
    lane = lane_buffers(n_p * n_out * n_r)
    index, n_up, n_dn = lane[0], lane[1], lane[2]
    m = 0
    for p in range(n_p):
        for i in range(n_out):
            base = (p * n_out + i) * n_in
            for r in range(n_r):
                s = float(steps[p, i, r])
                index[m] = base + cols[r]
                n_up[m] = max(s, 0.0)
                n_dn[m] = max(-s, 0.0)
                m += s != 0.0
    if m > 0:
        apply_gathered(m, lane, g, w_noise, pulse_count, rows, seed, state.mult, state.write_noise, 0)
        refresh_visible_at(state.visible, g, state.ref, w_noise, state.write_noise, index, m)


@njit(cache=True, error_model="numpy")
def refresh_visible_at(visible, g, ref, w_noise, write_noise, index, m):
    """The kept visible weight ``g - ref (+ w_noise)`` at the first ``m`` flat indices (none kept: nothing),
    rounded as torch rounds it (no fast-math: the same two float32 operations as :attr:`DeviceArray.weight`)."""
    if visible.shape[0] == 0:
        return
    for t in range(m):
        i = index[t]
        w = g[i] - ref[i]
        visible[i] = w + w_noise[i] if write_noise else w


# -- pulse trains as bit masks -------------------------------------------------------------------
@_inline
def _train_scales(x, d, eta, eps, desired_bl, um_grad_scale, management, bl_management):
    """SPEC 3 steps 1-3 per sample, as :func:`~analog_train.crossbar.pulsed_update.pulse_probabilities`.

    Returns the train lengths ``bl (P, B)`` and the factors ``b_x, a_d (P, B)`` with which
    ``min(|x| b_x, 1)`` and ``min(|d| a_d, 1)`` are the slot probabilities.
    """
    n_p, n_b = x.shape[0], x.shape[1]
    bl = np.zeros((n_p, n_b), dtype=np.int64)
    b_x = np.zeros((n_p, n_b))
    a_d = np.zeros((n_p, n_b))
    for p in range(n_p):
        for b in range(n_b):
            xm, dm = float(abs_max(x[p, b])), float(abs_max(d[p, b]))
            e = eta[p, b]
            if not (xm > 0.0 and dm > 0.0 and e > 0.0):
                continue
            dv = dm * um_grad_scale
            k = e * xm * dv / eps[p]
            n = min(max(math.ceil(k), 1.0), desired_bl) if bl_management else desired_bl
            bl[p, b] = int(n)
            scale = math.sqrt(e / (eps[p] * max(n, 1.0)))
            ratio = 1.0
            if management or bl_management:
                if k > desired_bl:
                    dv = dv * desired_bl / max(k, 1e-30)
                ratio = math.sqrt(max(xm, 1e-30) / max(dv, 1e-30))
            b_x[p, b] = scale / ratio
            a_d[p, b] = scale * ratio
    return bl, b_x, a_d


@_inline
def _draw_masks(v, factor, bl, off, words, seed, stream):
    """Bernoulli trains of one side, slot probability ``min(|v| factor, 1)``, as sign-split bit masks.

    Sample b of replica p owns the slots ``off[p, b] .. off[p, b + 1] - 1`` (its train, ``bl[p, b]``
    long); a set bit goes to the positive or the negative mask by the sign of the element. Slot t
    of element j is a hit where 53 random bits (:func:`key` of counter ``(b n + j) 1024 + t``) lie
    below the probability in units of 2^-53.

    A sample's elements go together through loops without a branch (the compiler vectorises them),
    up to 64 slots at a time. Their bits are OR-ed into per-element copies of the word being filled
    and of the next one (a train may spill into it), which go to the masks when the slots move on
    to a later word: each mask word is written once, instead of every sample writing into every
    element's row of the masks.
    """
    n_p, n_b, n = v.shape
    pos = np.zeros((n_p, n, words), dtype=np.uint64)
    neg = np.zeros((n_p, n, words), dtype=np.uint64)
    threshold = np.empty(n, dtype=np.uint64)
    up = np.empty(n, dtype=np.uint64)
    bits = np.empty(n, dtype=np.uint64)
    now_pos, now_neg = np.empty(n, dtype=np.uint64), np.empty(n, dtype=np.uint64)  # the word being filled
    next_pos, next_neg = np.empty(n, dtype=np.uint64), np.empty(n, dtype=np.uint64)  # the word after it
    for p in range(n_p):
        now_pos[:], now_neg[:], next_pos[:], next_neg[:] = 0, 0, 0, 0
        current = 0
        for b in range(n_b):
            length = bl[p, b]
            if length == 0:
                continue
            f = factor[p, b]
            for j in range(n):
                pr = min(abs(v[p, b, j]) * f, 1.0)
                threshold[j] = np.uint64(np.int64(pr * _TWO_53))  # (pr <= 1: the cheap signed conversion)
                up[j] = np.uint64(0) - np.uint64(v[p, b, j] > 0)  # all ones for a positive element
            first = (p * n_b + b) * n
            for t0 in range(0, length, 64):
                bits[:] = 0
                for t in range(t0, min(length, t0 + 64)):
                    for j in range(n):
                        hit = np.uint64((key(seed, (first + j) * 1024 + t, stream) >> _S11) < threshold[j])
                        bits[j] |= hit << np.uint64(t - t0)
                start = off[p, b] + t0
                word, offset = start >> 6, np.uint64(start & 63)
                if word != current:  # the slots moved on to the next word (pieces are <= 64 slots, end to end)
                    _store_word(pos, neg, p, current, now_pos, now_neg)
                    now_pos[:], now_neg[:] = next_pos, next_neg
                    next_pos[:], next_neg[:] = 0, 0
                    current = word
                for j in range(n):
                    low = bits[j] << offset
                    now_pos[j] |= low & up[j]
                    now_neg[j] |= low & ~up[j]
                if offset != 0:  # the bits that spill into the next word
                    for j in range(n):
                        high = bits[j] >> (np.uint64(64) - offset)
                        next_pos[j] |= high & up[j]
                        next_neg[j] |= high & ~up[j]
        _store_word(pos, neg, p, current, now_pos, now_neg)
        if current + 1 < words:
            _store_word(pos, neg, p, current + 1, next_pos, next_neg)
    return pos, neg


@_inline
def _store_word(pos, neg, p, word, word_pos, word_neg):
    """Word ``word`` of every element's masks of replica ``p``."""
    for j in range(word_pos.shape[0]):
        pos[p, j, word] = word_pos[j]
        neg[p, j, word] = word_neg[j]


@njit(cache=True, error_model="numpy")
def train_scales(x, d, eta, eps, desired_bl, um_grad_scale, management, bl_management):
    """:func:`_train_scales` on its own, for tests."""
    return _train_scales(x, d, eta, eps, desired_bl, um_grad_scale, management, bl_management)


class UpdateSettings(NamedTuple):
    """SPEC 3's pulse-train settings as the kernels take them (aihwkit ``UpdateParameters`` names)."""

    desired_bl: float
    um_grad_scale: float
    update_management: bool
    update_bl_management: bool

    @classmethod
    def of(cls, cfg: Any) -> UpdateSettings:
        return cls(float(cfg.desired_bl), float(cfg.um_grad_scale), bool(cfg.update_management),
                   bool(cfg.update_bl_management))


@njit(cache=True, error_model="numpy")
def pulse_masks(x, d, eta, eps, settings, seed):
    """The pulse trains of a batch as bit masks, from ``x (P, B, in)``, ``d (P, B, out)`` and ``eta (P, B)``.

    SPEC 3 steps 1-4 in one pass: train lengths and slot probabilities (:func:`_train_scales`),
    then the Bernoulli bits. The trains lie end to end: ``off (P, B + 1)`` are the first slots of
    each sample's train (and the total). Returns ``xpos, xneg (P, in, W)``, ``dpos, dneg (P, out, W)``
    and ``off``; ``W`` 64-bit words hold the longest replica's slots.
    """
    bl, b_x, a_d = _train_scales(x, d, eta, eps, settings.desired_bl, settings.um_grad_scale,
                                 settings.update_management, settings.update_bl_management)
    n_p, n_b = bl.shape
    off = np.zeros((n_p, n_b + 1), dtype=np.int64)
    for p in range(n_p):
        for b in range(n_b):
            off[p, b + 1] = off[p, b] + bl[p, b]
    words = max(1, (off[:, n_b].max() + 63) // 64)
    xpos, xneg = _draw_masks(x, b_x, bl, off, words, seed, 0)
    dpos, dneg = _draw_masks(d, a_d, bl, off, words, seed, 1)
    return xpos, xneg, dpos, dneg, off


@intrinsic
def _popcount(typingctx, x):
    """Set bits of a uint64 (LLVM ``ctpop``: one instruction)."""
    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])
    return types.uint64(types.uint64), codegen


@_inline
def round_seed(seed, m):
    """The seed of a device's ``m``-th update within one kernel call (each update draws streams 0-4):
    the call's seed for the first, so that a single update draws what :func:`_apply_at` draws."""
    return seed if m == 0 else key(seed, m, 15)


@_inline
def _coincidences(dp, dn, xp, xn):
    """The up and down coincidence bits of one 64-slot word of a row's d bits (``dp``, ``dn`` by sign) and
    a column's x bits: opposite signs make W grow, equal signs shrink it."""
    return (dp & xn) | (dn & xp), (dp & xp) | (dn & xn)


@_inline
def _slots_from(s):
    """The bits of a word at slot ``s`` (0..64) and after."""
    return (~np.uint64(0)) << np.uint64(s) if s < 64 else np.uint64(0)


@_inline
def _lowest(bits):
    """The lowest set bit of ``bits`` (0 if none)."""
    return bits & (~bits + np.uint64(1))


@_inline
def _close(c, pend, ev_n, count, first):
    """Close column ``c``'s pending run as its next event."""
    ev_n[first[c] + count[c]] = pend[c]
    count[c] += 1
    pend[c] = 0


@_inline
def _take_runs(up, dn, c, pend, ev_n, count, first):
    """Add a column's coincidence bits of one word (bit order is time order) to its pending run.

    A device's pulses within one sample all have one sign, ``sign(d_i) sign(x_j)``; where the sign
    changes from one sample to a later one, the pending run (``pend[c]``: + ups, - downs) closes as
    the column's next event. The pending run and the count stay in registers through the loop, and
    the signs are selected without a branch: the bits' signs are as good as random.
    """
    run, n_ev, at = pend[c], count[c], first[c]
    while (up | dn) != np.uint64(0):
        now_up = (_lowest(up | dn) & up) != np.uint64(0)
        same = up if now_up else dn
        other = dn if now_up else up
        before = same & (_lowest(other) - np.uint64(1))  # all of `same` when `other` is empty
        n = np.int64(_popcount(before))
        n = n if now_up else -n
        # Written whether or not it closes: a later event or the final close overwrites it otherwise.
        ev_n[at + n_ev] = run
        closes = run * n < 0  # a pending run of the other sign
        n_ev += closes
        run = (0 if closes else run) + n
        up &= ~before
        dn &= ~before
    pend[c] = run
    count[c] = n_ev


@_inline
def _read_taken(c, r, pend, ev_n, count, first, after):
    """Read ``r`` of column ``c``: its pending run closes, and the read follows the column's events so far."""
    if pend[c] != 0:
        _close(c, pend, ev_n, count, first)
    after[r] = count[c]


@_inline
def _row_events(p, i, n_active, slot_of, xpos, xneg, dpos, dneg, off, sample, col, row_scratch, ev_n, after,
                count, first):
    """The pulses of every device of row ``(p, i)`` as same-sign runs in time order, and when its columns are read.

    Column ``c``'s events lie at ``first[c] .. first[c] + count[c]`` in time order: event ``e``
    gives the device ``|ev_n[e]|`` pulses of sign ``ev_n[e]`` (+ up, - down). Read ``r`` of an
    active column is taken after the first ``after[r]`` events of its column (a read closes the
    pending run, so that it sees the pulses of its sample; reads between two runs add no event).
    One pass over the row's words: a read ending inside a word cuts its column there (``cut[c]``:
    the slot its column is consumed up to), every other bit goes to its column's pending run.
    ``xpos, xneg (P, W, in)``: the x masks word-major, the active columns first (in their order), so
    that a word's coincidences with every column come from one vectorised loop; the columns with
    any are listed without a branch (whether a column has any is as good as random) and only
    those are cut into runs.
    """
    pend, cut, ups, downs, hit = row_scratch
    n_c = n_active[p]
    pend[:n_c] = 0
    cut[:n_c] = 0
    count[:n_c] = 0
    n_r = col.shape[0]
    r = 0
    for w in range(dpos.shape[2]):
        a, b = dpos[p, i, w], dneg[p, i, w]
        word = 64 * w
        while r < n_r and off[p, sample[r] + 1] < word + 64:  # reads ending inside this word
            c = slot_of[p, col[r]]
            if c >= 0:
                end = off[p, sample[r] + 1]
                if a | b:
                    inside = _slots_from(max(cut[c] - word, 0)) & ~_slots_from(max(end - word, 0))
                    up, dn = _coincidences(a, b, xpos[p, w, c], xneg[p, w, c])
                    _take_runs(up & inside, dn & inside, c, pend, ev_n, count, first)
                _read_taken(c, r, pend, ev_n, count, first, after)
                cut[c] = end
            r += 1
        if a | b:
            for c in range(n_c):
                rest = _slots_from(max(cut[c] - word, 0))  # after the column's last read
                ups[c], downs[c] = _coincidences(a, b, xpos[p, w, c] & rest, xneg[p, w, c] & rest)
            n_hit = 0
            for c in range(n_c):
                hit[n_hit] = c
                n_hit += (ups[c] | downs[c]) != np.uint64(0)
            for q in range(n_hit):
                c = hit[q]
                _take_runs(ups[c], downs[c], c, pend, ev_n, count, first)
    while r < n_r:  # reads at the very end of the chunk's slots
        c = slot_of[p, col[r]]
        if c >= 0:
            _read_taken(c, r, pend, ev_n, count, first, after)
        r += 1
    for c in range(n_c):
        if pend[c] != 0:
            _close(c, pend, ev_n, count, first)


@_inline
def _order_by_count(count, n_c, tally, order):
    """Fill ``order`` with the columns ``0 .. n_c - 1`` that have events, the most first (a counting
    sort: counts are small integers, ``tally`` has room for the largest plus two); returns how many."""
    top = 0
    for c in range(n_c):
        top = max(top, count[c])
    tally[:top + 2] = 0
    for c in range(n_c):  # tally[top - k + 1]: columns with count k, for k >= 1
        if count[c] > 0:
            tally[top - count[c] + 1] += 1
    for k in range(top + 1):  # now tally[j]: where the j-th place's columns start
        tally[k + 1] += tally[k]
    for c in range(n_c):
        if count[c] > 0:
            j = top - count[c]
            order[tally[j]] = c
            tally[j] += 1
    return tally[top]


@_inline
def _reads_by_round(n_g, n_r, after, rounds, read_at, by_round):
    """The reads of ``n_g`` rows that follow a run (``after[k n_r + r] > 0``: read ``r`` of the group's
    row ``k``), sorted by the round they follow (a counting sort): ``by_round[read_at[m]:read_at[m + 1]]``
    are those after the ``m``-th runs, as ``k n_r + r``. ``read_at`` has room for ``rounds + 2``;
    returns it."""
    read_at[:rounds + 2] = 0
    for e in range(n_g * n_r):
        read_at[after[e] + 1] += after[e] > 0
    for k in range(rounds + 1):
        read_at[k + 1] += read_at[k]
    for e in range(n_g * n_r):
        if after[e] > 0:
            by_round[read_at[after[e]]] = e
            read_at[after[e]] += 1
    return read_at


@_inline
def _train_rows(row0, n_g, n_out, n_in, columns, xpos, xneg, state, dpos, dneg, off, sample, col, seed, read_out,
                row_scratch, scratch, events, capacity, lane):
    """The devices of rows ``row0 .. row0 + n_g - 1`` (row: replica p, output i): coincidences, pulses, reads.

    Each row's events (:func:`_row_events`) come per column in time order. The devices with events
    are copied into the lanes once, the busiest first, so that the devices with an ``m``-th event
    are the first lanes; round ``m`` applies the ``m``-th run of each of them together
    (:func:`update_lanes`, with the round's own seed), then takes the reads that follow those runs
    (the reads sorted by the round they follow, so that a round visits its own only). So every
    device gets its pulses run by run, as sample-by-sample processing gives them (one closed form
    per same-sign run), and every read sees A right after its sample. Reads before a column's
    first run, and of columns without pulses, are taken as the devices are. A few rows share the
    rounds, so that each round's fixed costs are paid for more devices; a device's random numbers
    depend on its round and flat index only, not on the rows it shares them with. Row ``k`` of the
    group writes its events at ``ev_n[k capacity:(k + 1) capacity]`` and its reads' places at
    ``after[k n_r:(k + 1) n_r]``.
    """
    active, n_active, slot_of, first = columns
    g, w_noise, pulse_count, rows, ref = state.g, state.w_noise, state.pulse_count, state.rows, state.ref
    write_noise = state.write_noise
    index, n_up, n_dn, lg = lane[0], lane[1], lane[2], lane[3]
    count, by_count, at, pulses, noise, tally, lane_of = scratch
    ev_n, after, by_round = events
    n_r = col.shape[0]
    count[:n_g * n_in] = 0
    for k in range(n_g):
        row = row0 + k
        p = row // n_out
        i = row - p * n_out
        quiet = True  # no d bit in this row: its devices stay as they are
        for w in range(dpos.shape[2]):
            if dpos[p, i, w] | dneg[p, i, w]:
                quiet = False
        after_k = after[k * n_r:(k + 1) * n_r]
        if quiet:
            after_k[:] = 0
        else:
            _row_events(p, i, n_active, slot_of, xpos, xneg, dpos, dneg, off, sample, col, row_scratch,
                        ev_n[k * capacity:(k + 1) * capacity], after_k, count[k * n_in:(k + 1) * n_in], first[p])
        for r in range(n_r):
            if slot_of[p, col[r]] < 0:
                after_k[r] = 0
            if after_k[r] == 0:
                kk = row * n_in + col[r]
                read_out[p, i, r] = g[kk] - ref[kk] + w_noise[kk]
    n_lanes = _order_by_count(count, n_g * n_in, tally, by_count)  # (row, column) with events, the most first
    for t in range(n_lanes):
        e = by_count[t]
        k = e // n_in
        c = e - k * n_in
        row = row0 + k
        p = row // n_out
        kk = row * n_in + active[p, c]
        gather_lane(t, kk, lane, g, rows)
        at[t] = k * capacity + first[p, c]  # where the lane's events start
        pulses[t] = 0.0
        noise[t] = w_noise[kk]
        lane_of[e] = t
    rounds = count[by_count[0]] if n_lanes > 0 else 0
    read_at = _reads_by_round(n_g, n_r, after, rounds, tally, by_round)
    live = n_lanes  # lanes with an m-th event: a prefix, shrinking with m
    for m in range(rounds):
        while live > 0 and count[by_count[live - 1]] <= m:
            live -= 1
        seed_m = round_seed(seed, m)
        for t in range(live):
            n = ev_n[at[t] + m]
            n_up[t] = max(n, 0)
            n_dn[t] = max(-n, 0)
            pulses[t] += abs(n)
        update_lanes(live, lane, rows, seed_m, state.mult, 0)
        if write_noise:  # a fresh write-noise draw after each update, as _count_and_rewrite makes
            for t in range(live):
                noise[t] = rows[index[t], 7] * normal(key(seed_m, index[t], 1))
        for q in range(read_at[m], read_at[m + 1]):  # the reads that follow the m-th runs
            e = by_round[q]
            k = e // n_r
            r = e - k * n_r
            row = row0 + k
            p = row // n_out
            t = lane_of[k * n_in + slot_of[p, col[r]]]
            read_out[p, row - p * n_out, r] = lg[t] - ref[index[t]] + noise[t]
    for t in range(n_lanes):  # the lanes back to their devices
        kk = index[t]
        g[kk] = lg[t]
        pulse_count[kk] += pulses[t]
        w_noise[kk] = noise[t]


@_inline
def _active_columns(xpos, xneg, off, col):
    """Per replica, the columns with any x bit (the only ones a row's pulses can reach), each column's
    place among them (-1: none) and where its events start in a row's event arrays (``first (P,
    in + 1)``); their x masks word-major (``(P, W, in)`` each, in that order); the room a row's
    events need and the most one column's can. A column has at most a run per x bit and per
    sample, a run cut by each of its reads and a last run; the bound is kept tight because a row
    writes each column's events at its own place, and pages it touches stay resident."""
    n_p, n_in, words = xpos.shape
    n_b = off.shape[1] - 1
    active = np.empty((n_p, n_in), dtype=np.int64)
    n_active = np.zeros(n_p, dtype=np.int64)
    slot_of = np.full((n_p, n_in), -1, dtype=np.int64)
    first = np.zeros((n_p, n_in + 1), dtype=np.int64)
    by_word_pos = np.zeros((n_p, words, n_in), dtype=np.uint64)
    by_word_neg = np.zeros((n_p, words, n_in), dtype=np.uint64)
    for p in range(n_p):
        for j in range(n_in):
            bits = 0
            for w in range(words):
                bits += _popcount(xpos[p, j, w] | xneg[p, j, w])
            if bits > 0:
                c = n_active[p]
                active[p, c] = j
                slot_of[p, j] = c
                first[p, c + 1] = min(bits, n_b) + 1
                n_active[p] += 1
                for w in range(words):
                    by_word_pos[p, w, c] = xpos[p, j, w]
                    by_word_neg[p, w, c] = xneg[p, j, w]
    for r in range(col.shape[0]):
        for p in range(n_p):
            if slot_of[p, col[r]] >= 0:
                first[p, slot_of[p, col[r]] + 1] += 1
    span = 0  # the most events one column can have
    for p in range(n_p):
        for c in range(n_in):
            span = max(span, first[p, c + 1])
            first[p, c + 1] += first[p, c]
    return (active, n_active, slot_of, first), (by_word_pos, by_word_neg), first[:, n_in].max(), span


class DeviceState(NamedTuple):
    """What the kernels update and read of a :class:`~analog_train.devices.array.DeviceArray`: flat
    conductance, write noise and pulse counts (numpy views, updated in place), the device rows,
    the flat reference, the kept visible weight (flat; empty: none kept) and the noise flags."""

    g: np.ndarray
    w_noise: np.ndarray
    pulse_count: np.ndarray
    rows: np.ndarray
    ref: np.ndarray
    visible: np.ndarray
    mult: bool
    write_noise: bool


@njit(parallel=True, cache=True, error_model="numpy", fastmath=FASTMATH)
def apply_trains(state, dpos, dneg, xpos, xneg, off, sample, col, seed, read_out):
    """Coincidence counts of every device from the masks, applied in place; column reads into ``read_out``.

    ``dpos/dneg (P, out, W)`` and ``xpos/xneg (P, in, W)``: pulse-train masks of d and x (slots
    ``off``, see :func:`pulse_masks`). A device gets one up pulse per slot where its row's d bit and
    its column's x bit have opposite signs and one down pulse where they agree, applied run by run
    (see :func:`_train_rows`). Read r, of column ``col[r]`` after sample ``sample[r]`` (time order),
    takes the visible weight of its column right after the pulses of its sample into
    ``read_out[:, :, r]``. The rows are spread over as many threads as :func:`match_torch_threads` set.
    """
    n_p, n_out, n_in = dpos.shape[0], dpos.shape[1], xpos.shape[1]
    columns, (xpos_w, xneg_w), capacity, span = _active_columns(xpos, xneg, off, col)
    n_rows = n_p * n_out
    n_groups = (n_rows + ROW_GROUP - 1) // ROW_GROUP
    n_chunks = min(n_groups, ROW_CHUNKS)
    n_r = max(col.shape[0], 1)
    lanes = ROW_GROUP * n_in
    for chunk in prange(n_chunks):  # chunks of row groups, each with its own scratch
        row_scratch = (np.empty(n_in, dtype=np.int64), np.empty(n_in, dtype=np.int64), np.empty(n_in, dtype=np.uint64),
                       np.empty(n_in, dtype=np.uint64), np.empty(n_in, dtype=np.int64))
        scratch = (np.empty(lanes, dtype=np.int64), np.empty(lanes, dtype=np.int64),
                   np.empty(lanes, dtype=np.int64), np.empty(lanes), np.empty(lanes), np.empty(span + 2, dtype=np.int64),
                   np.empty(lanes, dtype=np.int64))
        events = (np.empty(ROW_GROUP * capacity, dtype=np.int64), np.empty(ROW_GROUP * n_r, dtype=np.int64),
                  np.empty(ROW_GROUP * n_r, dtype=np.int64))
        lane = lane_buffers(lanes)
        for group in range(chunk, n_groups, n_chunks):  # strided: neighbouring rows (an LSTM gate) differ in load
            row0 = group * ROW_GROUP
            _train_rows(row0, min(ROW_GROUP, n_rows - row0), n_out, n_in, columns, xpos_w, xneg_w, state, dpos, dneg,
                        off, sample, col, seed, read_out, row_scratch, scratch, events, capacity, lane)


def apply_dense(g, w_noise, pulse_count, rows, n_up, n_dn, seed, mult, write_noise) -> None:
    """Apply counts ``n_up, n_dn`` (flat, one per device) to every device (in place), on torch's threads."""
    match_torch_threads()
    _apply_dense(g, w_noise, pulse_count, rows, n_up, n_dn, seed, mult, write_noise)


def match_torch_threads() -> None:
    """Run the parallel kernels on as many threads as torch (``threads=1`` in a parallel sweep means 1).

    Sets numba's count (per thread, as numba keeps it) only when torch's changed since the last call
    (numba's threads are already started: :func:`_start_threads`).
    """
    threads = torch.get_num_threads()
    if getattr(_matched, "threads", None) != threads:
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        _matched.threads = threads


def warm_up() -> None:
    """Compile (or load from numba's cache) every kernel now, on tiny inputs, instead of at first use."""
    g, zeros, counts = np.zeros(4, dtype=np.float32), np.zeros(4, dtype=np.float32), np.ones(4, dtype=np.float32)
    rows = np.zeros((4, len(ROW_KEYS)), dtype=np.float32)
    seed = np.uint64(0)
    apply_dense(g, zeros, zeros, rows, counts, counts, seed, False, False)
    apply_listed(g, zeros, zeros, rows, np.arange(4), counts, counts, seed, False, False)
    state = DeviceState(g, zeros, zeros.copy(), rows, zeros.copy(), g.copy(), False, False)
    apply_column_steps(state, np.arange(2), np.ones((1, 2, 2), dtype=np.float32), 2, seed)
    x = np.full((1, 2, 2), 0.5, dtype=np.float32)
    eta, eps = np.ones((1, 2), dtype=np.float32), np.ones(1, dtype=np.float32)
    xpos, xneg, _, _, off = pulse_masks(x, x, eta, eps, UpdateSettings(1.0, 1.0, True, True), seed)
    train_scales(x, x, eta, eps, 1.0, 1.0, True, True)
    apply_trains(state, xpos, xneg, xpos, xneg, off, np.array([0]), np.array([1]), seed,
                 np.zeros((1, 2, 1), dtype=np.float32))


class NumpyViews:
    """numpy views of long-lived CPU tensors, made once per tensor object.

    ``Tensor.numpy()`` costs ~2 us, and a mini-batch of a transfer algorithm hands some twenty-five
    arrays to the kernels, mostly the same tensors every time. A view is reused while its tensor
    is the same object (in-place updates show through it); a tensor replaced by a new one gets a new
    view. The cache forgets everything past ``limit`` entries, so that replaced tensors do not pile up.
    """

    def __init__(self, limit: int = 32) -> None:
        self._views: dict[int, tuple[torch.Tensor, np.ndarray]] = {}
        self._limit = limit

    def __call__(self, tensor: torch.Tensor) -> np.ndarray:
        entry = self._views.get(id(tensor))
        if entry is not None and entry[0] is tensor:
            return entry[1]
        if len(self._views) >= self._limit:
            self._views.clear()
        view = tensor.numpy()
        self._views[id(tensor)] = (tensor, view)
        return view


def enabled() -> bool:
    """Whether arrays use these kernels (``ANALOG_TRAIN_KERNELS=0`` selects the torch implementation)."""
    return os.environ.get("ANALOG_TRAIN_KERNELS", "1") != "0"


SEED_BLOCK = 64  # kernel seeds drawn from a generator per torch call
_seed_blocks: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # generator -> [initial seed, seeds, used]
_matched = threading.local()  # per thread: the torch thread count the kernels were last set to


def draw_seed(generator: torch.Generator) -> np.uint64:
    """A kernel seed from the run's generator, so that a run's seed fixes its noise.

    Drawn ``SEED_BLOCK`` at a time: a mini-batch of the FC network takes eight seeds, and right
    after a kernel has left the caches cold one torch call costs ~60 us. The seeds are those that
    drawing one at a time would give; only their interleaving with the generator's other draws
    differs. A generator reseeded with another seed starts a new block; reseeded with the same
    seed, it continues the block.
    """
    entry = _seed_blocks.get(generator)
    if entry is None or entry[2] == SEED_BLOCK or entry[0] != generator.initial_seed():
        # random_ on int64: 63 random bits at half the cost of torch.randint
        block = torch.empty(SEED_BLOCK, dtype=torch.int64).random_(generator=generator).numpy().astype(np.uint64)
        entry = _seed_blocks[generator] = [generator.initial_seed(), block, 0]
    entry[2] += 1
    return entry[1][entry[2] - 1]


def seed_block_state(generator: torch.Generator) -> dict | None:
    """The block of kernel seeds drawn from ``generator`` and not yet used (None: no block), for checkpoints."""
    entry = _seed_blocks.get(generator)
    if entry is None:
        return None
    return {"seeds": torch.from_numpy(entry[1].view(np.int64).copy()), "used": int(entry[2])}


def load_seed_block_state(generator: torch.Generator, state: dict | None) -> None:
    """Restore :func:`seed_block_state` for ``generator``, after its own state (which fixes its initial seed)."""
    if state is None:
        _seed_blocks.pop(generator, None)
        return
    seeds = state["seeds"].numpy().astype(np.int64).view(np.uint64).copy()
    _seed_blocks[generator] = [generator.initial_seed(), seeds, int(state["used"])]
