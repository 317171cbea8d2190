"""AGAD, analog gradient accumulation with dynamic reference (paper Eqs. 12-13, Supp. Alg. 3;
aihwkit ``DynamicTransferCompound``).

Choppers as in c-TTv2, but regular by default: column k flips after every ``N = max(ceil(1 /
in_chop_prob), 2)`` reads (plus randomly with ``in_chop_random``). Instead of a reference array the
read of column k is compared with a digital reference ``p_ref``:

    if column k flipped since its last read:  p_ref[:, k] <- p[:, k]
    H[:, k] += lr_scale c_k (v - p_ref[:, k])
    p[:, k] <- (1 - beta) p[:, k] + beta v,      beta = min(tail_weightening / N, 1)

``p`` is a leaky mean of the raw reads, so ``p_ref`` is A's value at the end of the previous chopper
period: after a flip A accumulates in the opposite direction from there, and device offsets and the
SP drop out. Writes to C start after one full chopper period (N passes over the columns); before
that ``p_ref`` is still 0. ``v`` is the read of A as the other algorithms see it (``A - R``, as in
the paper's simulations); any static R cancels in ``v - p_ref``.
"""

from __future__ import annotations

from typing import Any

import torch
from numba import njit

from analog_train.algorithms import transfer_kernel
from analog_train.algorithms.transfer import TransferCompound, chopper_period
from analog_train.devices.kernels import FASTMATH


@transfer_kernel.buffer_rule
def buffer_rule(v, sign, lr_scale, mean, past, switched, beta):
    """Eqs. 12-13 for one read ``v`` of column k: ``mean`` is p, ``past`` is p_ref, ``switched`` 1.0 when
    the column's chopper flipped since its last read (arithmetic only: the torch path calls it on tensors)."""
    past = switched * mean + (1.0 - switched) * past
    mean = (1.0 - beta) * mean + beta * v
    return lr_scale * sign * (v - past), mean, past


@njit(parallel=True, cache=True, error_model="numpy", fastmath=FASTMATH)
def transfer_step(raw, reads, buffers, settings, c_state, seed):
    """:func:`.transfer_kernel.transfer_rounds` with this module's rule (compiled once, cached)."""
    return transfer_kernel.transfer_rounds(buffer_rule, raw, reads, buffers, settings, c_state, seed)


class AGAD(TransferCompound):
    """AGAD: regular choppers, running mean ``p`` and past mean ``p_ref`` per element."""

    rule = staticmethod(buffer_rule)
    compiled_step = staticmethod(transfer_step)
    state_tensors = (*TransferCompound.state_tensors, "p", "p_ref", "switched")

    def __init__(self, algo: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(algo, *args, **kwargs)
        self.period = chopper_period(algo.in_chop_prob)
        self.flip_period = self.period
        self.flip_prob = algo.in_chop_prob if algo.in_chop_random else 0.0
        self.first_write_pass = self.period  # writes start after one full chopper period
        self.beta = min(algo.tail_weightening / self.period, 1.0)
        self.p = torch.zeros_like(self.H)  # running mean of the reads (aihwkit running_mean)
        self.p_ref = torch.zeros_like(self.H)  # reference of the current chopper period (past_mean)
        self.switched = torch.zeros_like(self.c_in, dtype=torch.bool)  # flipped since the last read
