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

from analog_train.devices.kernels import FASTMATH, key, normal

_TINY = float(np.finfo(np.float32).tiny)


OUT_CHUNKS = 16  # outputs go to the threads in up to this many chunks ...
CHUNK_MIN = 64  # ... of at least this many outputs (the transposed product vectorises along them)


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
    n_chunks = max(1, min(n_out // CHUNK_MIN, OUT_CHUNKS))
    clipped = np.zeros(n_chunks, dtype=np.bool_)
    for chunk in prange(n_chunks):
        o0, o1 = chunk * n_out // n_chunks, (chunk + 1) * n_out // n_chunks
        q = np.empty((n_b, o1 - o0), dtype=np.float32)
        for p in range(n_p):
            for k in range(n_t):
                start, end = tiles[k, 0], tiles[k, 1]
                # The products run over 1-d slices with zero-based loops: LLVM vectorises those, not
                # the same loops over 3-d indices (ten times slower).
                if transposed:  # q_o = sum_j W[j, o] v_j: rows of W^T's input are rows of W
                    q[:, :] = 0.0
                    for j in range(start, end):
                        w_row = weight[p, j, o0:o1]
                        for b in range(n_b):
                            vj = v[p, b, j]
                            q_b = q[b]
                            for o in range(o1 - o0):
                                q_b[o] += w_row[o] * vj
                else:
                    for o in range(o0, o1):
                        w_row = weight[p, o, start:end]
                        for b in range(n_b):
                            v_tile = v[p, b, start:end]
                            acc = f32(0.0)
                            for j in range(end - start):
                                acc += w_row[j] * v_tile[j]
                            q[b, o - o0] = acc
                for b in range(n_b):  # output noise, ADC, scales
                    row = p * n_b + b
                    for o in range(o0, o1):
                        level = gain32 * q[b, o - o0]
                        if out_noise > 0.0:
                            level += f32(out_noise * normal(key(seed, (row * n_t + k) * n_out + o, 1)))
                        if quant_out:
                            level = np.round(level)
                        if abs(level) >= l_out:
                            clipped[chunk] = True
                            level = min(max(level, f32(-l_out)), f32(l_out))
                        y[p, b, o] += level * step_out[p, b, k]
    return y, clipped.any()


def warm_up() -> None:
    """Compile (or load from numba's cache) :func:`read` for float32 arrays, both orientations."""
    periphery = (True, True, True, 63.0, 255.0, 0.08, 0.016, 0.2, 0.0, 1.275, True, 16.0)
    tiles = np.array([[0, 2]], dtype=np.int64)
    x = np.ones((1, 1, 2), dtype=np.float32)
    for transposed in (False, True):
        read(np.ones((1, 2, 2), dtype=np.float32), x, transposed, tiles, periphery, np.uint64(0))
