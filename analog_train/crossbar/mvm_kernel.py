"""Compiled CPU version of one analog read through the periphery (numba).

:func:`~analog_train.crossbar.io.analog_mvm` is about twenty tensor operations per call; at the
FC network's mini-batch sizes they cost several times the product itself. :func:`read` does the
same per sample and input tile in three steps: noise management and DAC (compiled), the product
(torch's BLAS), then output noise, ADC, scales and the iterative bound management of the (sample,
input tile, output tile) reads that clipped (compiled), as
:func:`~analog_train.crossbar.io._bound_management` does in torch.

Noise comes from the counter-based generator of :mod:`analog_train.devices.kernels`, seeded from
the run's generator, as for the pulse trains.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange

from analog_train.devices.kernels import (FASTMATH, ROW_CHUNKS, abs_max, fill_normals, key, match_torch_threads,
                                          normal)

_TINY = float(np.finfo(np.float32).tiny)


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
    last read's levels times ``s_bm`` in the sample's levels ``lv[k, o0:o1]`` (aihwkit's iterative BM)."""
    _, quant_in, quant_out, l_in, l_out, _, _, gain, inp_noise, out_noise, _, bm_limit = periphery
    f32 = np.float32
    acc = np.empty(o1 - o0, dtype=np.float32)
    s_bm = 1.0
    rounds = 0
    while s_bm <= bm_limit:
        s_bm *= 2.0
        rounds += 1
        round_seed = key(seed, rounds, 13)
        _dac_levels(x, p, b, start, end, step_in * f32(s_bm), quant_in, l_in, inp_noise, round_seed, k * x.shape[2],
                    v)
        # The products over 1-d slices with zero-based loops, which LLVM vectorises.
        if transposed:  # acc_o = sum_j W[j, o] v_j: rows of W^T's input are rows of W
            acc[:] = 0.0
            for j in range(start, end):
                w_row, vj = weight[p, j, o0:o1], v[j - start]
                for o in range(o1 - o0):
                    acc[o] += w_row[o] * vj
        else:
            for o in range(o0, o1):
                w_row = weight[p, o, start:end]
                a = f32(0.0)
                for j in range(end - start):
                    a += w_row[j] * v[j]
                acc[o - o0] = a
        again = False
        for o in range(o0, o1):
            level = f32(gain) * acc[o - o0]
            if out_noise > 0.0:
                level += f32(out_noise * normal(key(round_seed, k * lv.shape[1] + o, 1)))
            if quant_out:
                level = np.round(level)
            if abs(level) >= l_out:
                again = True
                level = min(max(level, f32(-l_out)), f32(l_out))
            lv[k, o] = level * f32(s_bm)
        if not again:
            return


@njit(parallel=True, cache=True, error_model="numpy", fastmath=FASTMATH)
def converter_inputs(x, tiles, periphery, seed):
    """The DAC levels ``v (P, B, in)`` of every sample and input tile (noise management, DAC, input
    noise), and the tiles' input and output steps ``(P, B, T)``."""
    abs_max_nm, quant_in, _, l_in, _, res_out, res_in, _, inp_noise, _, noise_free_zero, _ = periphery
    # The converters work in float32 like the torch version, so that values on a rounding tie
    # (exact grid inputs) round the same way.
    f32 = np.float32
    res_in32, res_out32 = f32(res_in), f32(res_out)
    n_p, n_b, n_in = x.shape
    n_t = tiles.shape[0]
    v = np.empty((n_p, n_b, n_in), dtype=np.float32)
    step_in = np.empty((n_p, n_b, n_t), dtype=np.float32)
    step_out = np.empty((n_p, n_b, n_t), dtype=np.float32)
    for row in prange(n_p * n_b):
        p = row // n_b
        b = row - p * n_b
        for k in range(n_t):
            start, end = tiles[k, 0], tiles[k, 1]
            step_in[p, b, k], step_out[p, b, k] = res_in32, res_out32
            if abs_max_nm:
                s_nm = f32(abs_max(x[p, b, start:end]))
                step_in[p, b, k] = max(s_nm * res_in32, f32(_TINY))
                step_out[p, b, k] = (s_nm if noise_free_zero or s_nm > 0.0 else f32(1.0)) * res_out32
            _dac_levels(x, p, b, start, end, step_in[p, b, k], quant_in, l_in, inp_noise, seed,
                        (row * n_t + k) * n_in, v[p, b, start:end])
    return v, step_in, step_out


@njit(parallel=True, cache=True, error_model="numpy", fastmath=FASTMATH)
def converter_outputs(q, weight, x, transposed, tiles, out_tiles, periphery, bound_management, seed, step_in,
                      step_out):
    """``y (P, B, out)`` from the tiles' products ``q (P, B, T, out)`` of the DAC levels: output noise
    and ADC, bound management of the (sample, input tile, output tile) reads that clipped (which
    reads ``weight`` and ``x`` again, see :func:`read`), and the output steps."""
    _, _, quant_out, _, l_out, _, _, gain, _, out_noise, _, _ = periphery
    f32 = np.float32
    gain32 = f32(gain)
    n_p, n_b, n_t, n_out = q.shape
    n_u = out_tiles.shape[0]
    y = np.zeros((n_p, n_b, n_out), dtype=np.float32)
    n_rows = n_p * n_b
    n_chunks = min(n_rows, ROW_CHUNKS)
    widest = 0
    for k in range(n_t):
        widest = max(widest, tiles[k, 1] - tiles[k, 0])
    for chunk in prange(n_chunks):  # chunks of samples, each with its own scratch
        u, z = np.empty(n_out), np.empty(n_out)
        levels = np.empty((n_t, n_out), dtype=np.float32)
        clipped = np.empty((n_t, n_u), dtype=np.bool_)
        v_k = np.empty(widest, dtype=np.float32)
        for row in range(chunk * n_rows // n_chunks, (chunk + 1) * n_rows // n_chunks):
            p = row // n_b
            b = row - p * n_b
            clipped[:, :] = False
            for k in range(n_t):
                if out_noise > 0.0:  # the normals of the sample's outputs
                    fill_normals(z, u, n_out, seed, (row * n_t + k) * n_out, 1)
                t = 0
                for o in range(n_out):
                    level = gain32 * q[p, b, k, o]
                    if out_noise > 0.0:
                        level += f32(out_noise * z[o])
                    if quant_out:
                        level = np.round(level)
                    if abs(level) >= l_out:
                        while out_tiles[t, 1] <= o:
                            t += 1
                        clipped[k, t] = True
                        level = min(max(level, f32(-l_out)), f32(l_out))
                    levels[k, o] = level
                if bound_management:
                    for t in range(n_u):
                        if clipped[k, t]:
                            _reread(weight, x, transposed, p, b, tiles[k, 0], tiles[k, 1], out_tiles[t, 0],
                                    out_tiles[t, 1], step_in[p, b, k], periphery, key(seed, row, 12), v_k, levels, k)
                for o in range(n_out):
                    y[p, b, o] += levels[k, o] * step_out[p, b, k]
    return y


def products(weight: np.ndarray, v: np.ndarray, transposed: bool, tiles: np.ndarray) -> np.ndarray:
    """``q (P, B, T, out)``: each input tile's part of ``W v``, by torch's matrix product (BLAS, on torch's
    threads; a loop of ours reaches a fraction of its speed on a convolution's thousands of patches)."""
    w = torch.from_numpy(weight)
    levels = torch.from_numpy(v).to(w.dtype)
    n_p, n_b, _ = v.shape
    n_out = w.shape[2] if transposed else w.shape[1]
    q = torch.empty((n_p, n_b, tiles.shape[0], n_out), dtype=w.dtype)
    for k, (start, end) in enumerate(tiles.tolist()):
        w_k = w[:, start:end, :] if transposed else w[:, :, start:end].transpose(1, 2)  # (P, in_k, out)
        torch.bmm(levels[:, :, start:end], w_k, out=q[:, :, k, :])  # written in place (one tile: no copy)
    return q.to(torch.float32).numpy()


def read(weight: np.ndarray, x: np.ndarray, transposed: bool, tiles: np.ndarray, out_tiles: np.ndarray,
         periphery: tuple, bound_management: bool, seed: np.uint64) -> np.ndarray:
    """``y (P, B, out)`` of ``y = W x`` through the periphery.

    ``weight (P, out, in)`` (or, with ``transposed``, ``(P, in, out)`` read as its transpose, for
    the backward pass); ``x (P, B, in)``; ``tiles (T, 2)`` and ``out_tiles (U, 2)`` start and end of
    each input and output tile; ``periphery``: the fields of ``io._Periphery`` (abs_max_nm,
    quant_in, quant_out, l_in, l_out, res_out, res_in, gain, inp_noise, out_noise, noise_free_zero,
    bm_limit); ``bound_management``: re-read what clipped (:func:`_reread`).

    Three steps: the converters' inputs of every sample (:func:`converter_inputs`), the products
    (:func:`products`), then output noise, ADC and bound management (:func:`converter_outputs`).
    """
    match_torch_threads()
    v, step_in, step_out = converter_inputs(x, tiles, periphery, seed)
    q = products(weight, v, transposed, tiles)
    return converter_outputs(q, weight, x, transposed, tiles, out_tiles, periphery, bound_management, seed, step_in,
                             step_out)


def warm_up() -> None:
    """Compile (or load from numba's cache) :func:`read` for float32 arrays, both orientations."""
    periphery = (True, True, True, 63.0, 255.0, 0.08, 0.016, 0.2, 0.0, 1.275, True, 16.0)
    tiles = np.array([[0, 2]], dtype=np.int64)
    x = np.ones((1, 1, 2), dtype=np.float32)
    for transposed in (False, True):
        read(np.ones((1, 2, 2), dtype=np.float32), x, transposed, tiles, tiles, periphery, True, np.uint64(0))
