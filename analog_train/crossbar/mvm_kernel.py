"""Compiled CPU version of one analog read through the periphery (numba).

:func:`~analog_train.crossbar.io.analog_mvm` is about twenty tensor operations per call; at the
FC network's mini-batch sizes they cost several times the product itself. :func:`read` does the
same per sample and input tile (noise management, DAC, product, output noise, ADC, scales) and
then the iterative bound management of the (sample, input tile, output tile) reads that clipped,
as :func:`~analog_train.crossbar.io._bound_management` does in torch.

Noise comes from the counter-based generator of :mod:`analog_train.devices.kernels`, seeded from
the run's generator, as for the pulse trains.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from analog_train.devices.kernels import FASTMATH, central_quantile, in_tail, key, normal, quantile, uniform

_TINY = float(np.finfo(np.float32).tiny)


OUT_CHUNKS = 16  # outputs go to the threads in up to this many chunks ...
CHUNK_MIN = 64  # ... of at least this many outputs (the transposed product vectorises along them)
SAMPLE_BLOCK_MIN = 256  # a small layer's samples go to the threads in blocks of at least this many


@njit(error_model="numpy", fastmath=FASTMATH)
def _dac_levels(x, p, b, start, end, step_in, quant_in, l_in, inp_noise, seed, first, out):
    """DAC levels of one sample's input tile, ``x / step_in`` quantised, clipped and with input noise."""
    f32 = np.float32
    for j in range(start, end):
        u = x[p, b, j] / step_in
        if quant_in:
            u = np.round(u)
        u = min(max(u, f32(-l_in)), f32(l_in))
        if inp_noise > 0.0:
            u += f32(inp_noise * normal(key(seed, first + j, 0)))
        out[j - start] = u


@njit(error_model="numpy", fastmath=FASTMATH)
def _reread(weight, x, transposed, p, b, start, end, o0, o1, step_in, periphery, seed, v, lv, k):
    """Bound management of one (sample, input tile, output tile) read: again with the input scaled down
    by ``s_bm = 2, 4, ...`` while an output clips and ``s_bm`` stays within the limit; leaves the
    last read's levels times ``s_bm`` in ``lv[p, b, k, o0:o1]`` (aihwkit's iterative BM)."""
    _, quant_in, quant_out, l_in, l_out, _, _, gain, inp_noise, out_noise, _, bm_limit = periphery
    f32 = np.float32
    s_bm = 1.0
    rounds = 0
    while s_bm <= bm_limit:
        s_bm *= 2.0
        rounds += 1
        round_seed = key(seed, rounds, 13)
        _dac_levels(x, p, b, start, end, step_in * f32(s_bm), quant_in, l_in, inp_noise, round_seed, k * x.shape[2],
                    v)
        again = False
        for o in range(o0, o1):
            acc = f32(0.0)
            for j in range(start, end):
                acc += (weight[p, j, o] if transposed else weight[p, o, j]) * v[j - start]
            level = f32(gain) * acc
            if out_noise > 0.0:
                level += f32(out_noise * normal(key(round_seed, k * lv.shape[3] + o, 1)))
            if quant_out:
                level = np.round(level)
            if abs(level) >= l_out:
                again = True
                level = min(max(level, f32(-l_out)), f32(l_out))
            lv[p, b, k, o] = level * f32(s_bm)
        if not again:
            return


@njit(parallel=True, cache=True, error_model="numpy", fastmath=FASTMATH)
def read(weight, x, transposed, tiles, out_tiles, periphery, bound_management, seed):
    """``y (P, B, out)`` of ``y = W x`` through the periphery.

    ``weight (P, out, in)`` (or, with ``transposed``, ``(P, in, out)`` read as its transpose, for
    the backward pass); ``x (P, B, in)``; ``tiles (T, 2)`` and ``out_tiles (U, 2)`` start and end of
    each input and output tile; ``periphery``: the fields of ``io._Periphery`` (abs_max_nm,
    quant_in, quant_out, l_in, l_out, res_out, res_in, gain, inp_noise, out_noise, noise_free_zero,
    bm_limit); ``bound_management``: re-read what clipped (:func:`_reread`).

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
    n_u = out_tiles.shape[0]
    n_out = weight.shape[1] if not transposed else weight.shape[2]
    v = np.empty((n_p, n_b, n_in), dtype=np.float32)  # DAC levels
    step_in = np.empty((n_p, n_b, n_t), dtype=np.float32)
    step_out = np.empty((n_p, n_b, n_t), dtype=np.float32)
    for row in prange(n_p * n_b):
        p = row // n_b
        b = row - p * n_b
        for k in range(n_t):
            start, end = tiles[k, 0], tiles[k, 1]
            step_in[p, b, k], step_out[p, b, k] = res_in32, res_out32
            if abs_max_nm:
                s_nm = f32(0.0)
                for j in range(start, end):
                    s_nm = max(s_nm, abs(x[p, b, j]))
                step_in[p, b, k] = max(s_nm * res_in32, f32(_TINY))
                step_out[p, b, k] = (s_nm if noise_free_zero or s_nm > 0.0 else f32(1.0)) * res_out32
            _dac_levels(x, p, b, start, end, step_in[p, b, k], quant_in, l_in, inp_noise, seed,
                        (row * n_t + k) * n_in, v[p, b, start:end])
    levels = np.empty((n_p, n_b, n_t, n_out), dtype=np.float32)  # ADC levels of every tile read
    # Work items: chunks of outputs, and for small layers read by many samples (a convolution's
    # patches) also blocks of samples, so that every thread has a share.
    n_o = max(1, min(n_out // CHUNK_MIN, OUT_CHUNKS))
    n_s = max(1, min(OUT_CHUNKS // n_o, n_b // SAMPLE_BLOCK_MIN))
    clipped = np.zeros((n_p, n_b, n_t, n_u), dtype=np.bool_)
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
                for b in range(b0, b1):  # output noise and ADC
                    row = p * n_b + b
                    if out_noise > 0.0:  # the normals of a sample's outputs, in vectorised loops
                        first = (row * n_t + k) * n_out + o0
                        for o in range(width):
                            u[o] = uniform(key(seed, first + o, 1))
                        for o in range(width):
                            z[o] = central_quantile(u[o])
                        for o in range(width):  # the few in the tails need a logarithm
                            if in_tail(u[o]):
                                z[o] = quantile(u[o])
                    t = 0
                    for o in range(width):
                        level = gain32 * q[b - b0, o]
                        if out_noise > 0.0:
                            level += f32(out_noise * z[o])
                        if quant_out:
                            level = np.round(level)
                        if abs(level) >= l_out:
                            while out_tiles[t, 1] <= o0 + o:
                                t += 1
                            clipped[p, b, k, t] = True
                            level = min(max(level, f32(-l_out)), f32(l_out))
                        levels[p, b, k, o0 + o] = level
    y = np.zeros((n_p, n_b, n_out), dtype=np.float32)
    for row in prange(n_p * n_b):  # bound management of what clipped, then the scales
        p = row // n_b
        b = row - p * n_b
        for k in range(n_t):
            if bound_management:
                v_k = np.empty(tiles[k, 1] - tiles[k, 0], dtype=np.float32)
                for t in range(n_u):
                    if clipped[p, b, k, t]:
                        _reread(weight, x, transposed, p, b, tiles[k, 0], tiles[k, 1], out_tiles[t, 0],
                                out_tiles[t, 1], step_in[p, b, k], periphery, key(seed, row, 12), v_k, levels, k)
            for o in range(n_out):
                y[p, b, o] += levels[p, b, k, o] * step_out[p, b, k]
    return y


def warm_up() -> None:
    """Compile (or load from numba's cache) :func:`read` for float32 arrays, both orientations."""
    periphery = (True, True, True, 63.0, 255.0, 0.08, 0.016, 0.2, 0.0, 1.275, True, 16.0)
    tiles = np.array([[0, 2]], dtype=np.int64)
    x = np.ones((1, 1, 2), dtype=np.float32)
    for transposed in (False, True):
        read(np.ones((1, 2, 2), dtype=np.float32), x, transposed, tiles, tiles, periphery, True, np.uint64(0))
