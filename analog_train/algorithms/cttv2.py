"""Chopped TTv2, c-TTv2 (paper Eq. 11, Supp. Alg. 2; aihwkit ``ChoppedTransferCompound``).

TTv2 with a sign ``c_k`` per input line: A is updated with ``c * x`` and the read of column k is
de-chopped, ``H[:, k] += lr_scale c_k (A - R) e_k``. After each read of column k its chopper flips
with probability ``in_chop_prob`` (``in_chop_random``, the default) or regularly every
``N = max(ceil(1 / in_chop_prob), 2)`` reads. Offsets of A from R and slow drifts are not
modulated by c, so they cancel over chopper periods.
"""

from __future__ import annotations

import torch
from torch import Tensor

from analog_train.algorithms import transfer_kernel
from analog_train.algorithms.transfer import TransferCompound, chopper_period, regular_flips


class ChoppedTTv2(TransferCompound):
    """c-TTv2: random (or regular) input choppers, static reference R."""

    kernel_rule = transfer_kernel.RULE_CHOPPED

    def in_chopper_flips(self, passes: Tensor) -> Tensor | None:
        p, n_p = self.cfg.in_chop_prob, self.c_in.shape[0]
        if p <= 0:
            return None
        if self.cfg.in_chop_random:
            return torch.rand((n_p, passes.numel()), generator=self.generator, device=passes.device) < p
        return regular_flips(passes, chopper_period(p), n_p)

    def accumulate(self, cols: Tensor, v: Tensor, sign: Tensor, lr_scale: Tensor, flips: Tensor | None) -> Tensor:
        return lr_scale * sign * v
