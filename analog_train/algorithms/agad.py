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

import numpy as np
import torch
from torch import Tensor

from analog_train.algorithms import transfer_kernel
from analog_train.algorithms.transfer import TransferCompound, chopper_period


class AGAD(TransferCompound):
    """AGAD: regular choppers, running mean ``p`` and past mean ``p_ref`` per element."""

    kernel_rule = transfer_kernel.RULE_AGAD
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

    def accumulate(self, cols: Tensor, v: Tensor, sign: Tensor, lr_scale: Tensor, flips: Tensor | None) -> Tensor:
        # index_select / index_copy_: several times cheaper than advanced indexing on the CPU.
        p = self.p.index_select(2, cols)
        p_ref = torch.where(self.switched.index_select(1, cols).unsqueeze(1), p, self.p_ref.index_select(2, cols))
        self.p_ref.index_copy_(2, cols, p_ref)
        self.p.index_copy_(2, cols, p.mul_(1.0 - self.beta).add_(v, alpha=self.beta))
        if flips is None:
            self.switched.index_fill_(1, cols, False)
        else:
            self.switched.index_copy_(1, cols, flips)
        return lr_scale * sign * (v - p_ref)

    def _kernel_means(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        views = self._numpy_views
        return views(self.p), views(self.p_ref), views(self.switched), self.beta
