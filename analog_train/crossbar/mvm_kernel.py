"""Compiled CPU version of one analog read through the periphery, without bound management (numba).

:func:`~analog_train.crossbar.io.analog_mvm` is about twenty tensor operations per call; at the
FC network's mini-batch sizes they cost several times the product itself. :func:`read` does the
same per sample and input tile in one pass (noise management, DAC, product, output noise, ADC,
scales) and reports whether any output sits at the ADC bound, in which case ``analog_mvm``
reads again with the torch implementation and iterative bound management.

Noise comes from the counter-based generator of :mod:`analog_train.devices.kernels`, seeded from
the run's generator, as for the pulse trains.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from analog_train.devices.kernels import _P_LOW, FASTMATH, _central_quantile, _quantile, key, normal, uniform

_TINY = float(np.finfo(np.float32).tiny)


OUT_CHUNKS = 16  # outputs go to the threads in up to this many chunks ...
CHUNK_MIN = 64  # ... of at least this many outputs (the transposed product vectorises along them)
SAMPLE_BLOCK_MIN = 256  # a small layer's samples go to the threads in blocks of at least this many


@njit(parallel=True, cache=True, error_model="numpy", fastmath=FASTMATH)
def read(weight, x, transposed, tiles, periphery, seed):
    """``y (P, B, out)`` of ``y = W x`` through the periphery, and whether any ADC output clipped.

    ``weight (P, out, in)`` (or, with ``transposed``, ``(P, in, out)`` read as its transpose, for
    the backward pass); ``x (P, B, in)``; ``tiles (T, 2)`` start and end of each input tile;
    ``periphery``: the fields of ``io._Periphery`` (abs_max_nm, quant_in, quant_out, l_in,
    l_out, res_out, res_in, gain, inp_noise, out_noise, noise_free_zero, bm_limit).

    First the converters' inputs of every sample (noise management, DAC), then the products, the
    output noise and the ADC by chunks of outputs: each thread reads its part of the weight once
    for all samples (the weight of the FC network's first layer does not fit a core's cache).
    """
    abs_max_nm, quant_in, quant_out, l_in, l_out, res_out, res_in, gain, inp_noise, out_noise, noise_free_zero, _ = \
        periphery
    # The converters work in float32 like the torch version, so that values on a rounding tie
    # (exact grid inputs) round the same way.
    f32 = np.float32
    res_in32, res_out32, gain32 = f32(res_in), f32(res_out), f32(gain)
    n_p, n_b, n_in = x.shape
    n_t = tiles.shape[0]
    n_out = weight.shape[1] if not transposed else weight.shape[2]
    v = np.empty((n_p, n_b, n_in), dtype=np.float32)  # DAC levels
    step_out = np.empty((n_p, n_b, n_t), dtype=np.float32)
    for row in prange(n_p * n_b):
        p = row // n_b
        b = row - p * n_b
        for k in range(n_t):
            start, end = tiles[k, 0], tiles[k, 1]
            step_in, step_out[p, b, k] = res_in32, res_out32
            if abs_max_nm:
                s_nm = f32(0.0)
                for j in range(start, end):
                    s_nm = max(s_nm, abs(x[p, b, j]))
                step_in = max(s_nm * res_in32, f32(_TINY))
                step_out[p, b, k] = (s_nm if noise_free_zero or s_nm > 0.0 else f32(1.0)) * res_out32
            for j in range(start, end):
                u = x[p, b, j] / step_in
                if quant_in:
                    u = np.round(u)
                u = min(max(u, f32(-l_in)), f32(l_in))
                if inp_noise > 0.0:
                    u += f32(inp_noise * normal(key(seed, (row * n_t + k) * n_in + j, 0)))
                v[p, b, j] = u
    y = np.zeros((n_p, n_b, n_out), dtype=np.float32)
    # Work items: chunks of outputs, and for small layers read by many samples (a convolution's
    # patches) also blocks of samples, so that every thread has a share.
    n_o = max(1, min(n_out // CHUNK_MIN, OUT_CHUNKS))
    n_s = max(1, min(OUT_CHUNKS // n_o, n_b // SAMPLE_BLOCK_MIN))
    clipped = np.zeros(n_o * n_s, dtype=np.bool_)
    for item in prange(n_o * n_s):
        chunk, block = item // n_s, item % n_s
        o0, o1 = chunk * n_out // n_o, (chunk + 1) * n_out // n_o
        b0, b1 = block * n_b // n_s, (block + 1) * n_b // n_s
        width = o1 - o0
        q = np.empty((b1 - b0, width), dtype=np.float32)
        u, z = np.empty(width), np.empty(width)
        for p in range(n_p):
            for k in range(n_t):
                start, end = tiles[k, 0], tiles[k, 1]
                # The products run over 1-d slices with zero-based loops: LLVM vectorises those, not
                # the same loops over 3-d indices (ten times slower).
                if transposed:  # q_o = sum_j W[j, o] v_j: rows of W^T's input are rows of W
                    q[:, :] = 0.0
                    for j in range(start, end):
                        w_row = weight[p, j, o0:o1]
                        for b in range(b0, b1):
                            vj = v[p, b, j]
                            q_b = q[b - b0]
                            for o in range(width):
                                q_b[o] += w_row[o] * vj
                else:
                    for o in range(o0, o1):
                        w_row = weight[p, o, start:end]
                        for b in range(b0, b1):
                            v_tile = v[p, b, start:end]
                            acc = f32(0.0)
                            for j in range(end - start):
                                acc += w_row[j] * v_tile[j]
                            q[b - b0, o - o0] = acc
                for b in range(b0, b1):  # output noise, ADC, scales
                    row = p * n_b + b
                    if out_noise > 0.0:  # the normals of a sample's outputs, in vectorised loops
                        first = (row * n_t + k) * n_out + o0
                        for o in range(width):
                            u[o] = uniform(key(seed, first + o, 1))
                        for o in range(width):
                            z[o] = _central_quantile(u[o])
                        for o in range(width):  # the few in the tails need a logarithm
                            if (u[o] < _P_LOW) | (u[o] > 1.0 - _P_LOW):
                                z[o] = _quantile(u[o])
                    for o in range(width):
                        level = gain32 * q[b - b0, o]
                        if out_noise > 0.0:
                            level += f32(out_noise * z[o])
                        if quant_out:
                            level = np.round(level)
                        if abs(level) >= l_out:
                            clipped[item] = True
                            level = min(max(level, f32(-l_out)), f32(l_out))
                        y[p, b, o0 + o] += level * step_out[p, b, k]
    return y, clipped.any()


def warm_up() -> None:
    """Compile (or load from numba's cache) :func:`read` for float32 arrays, both orientations."""
    periphery = (True, True, True, 63.0, 255.0, 0.08, 0.016, 0.2, 0.0, 1.275, True, 16.0)
    tiles = np.array([[0, 2]], dtype=np.int64)
    x = np.ones((1, 1, 2), dtype=np.float32)
    for transposed in (False, True):
        read(np.ones((1, 2, 2), dtype=np.float32), x, transposed, tiles, periphery, np.uint64(0))
