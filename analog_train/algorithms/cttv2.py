"""Chopped TTv2, c-TTv2 (paper Eq. 11, Supp. Alg. 2; aihwkit ``ChoppedTransferCompound``).

TTv2 with a sign ``c_k`` per input line: A is updated with ``c * x`` and the read of column k is
de-chopped, ``H[:, k] += lr_scale c_k (A - R) e_k``. After each read of column k its chopper flips
with probability ``in_chop_prob`` (``in_chop_random``, the default) or regularly every
``N = max(ceil(1 / in_chop_prob), 2)`` reads. Offsets of A from R and slow drifts are not
modulated by c, so they cancel over chopper periods.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from analog_train.algorithms import transfer_kernel
from analog_train.algorithms.transfer import TransferCompound, chopper_period


class ChoppedTTv2(TransferCompound):
    """c-TTv2: random (or regular) input choppers, static reference R."""

    kernel_rule = transfer_kernel.RULE_CHOPPED

    def __init__(self, algo: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(algo, *args, **kwargs)
        if algo.in_chop_prob > 0 and algo.in_chop_random:
            self.flip_prob = algo.in_chop_prob
        elif algo.in_chop_prob > 0:
            self.flip_period = chopper_period(algo.in_chop_prob)

    def accumulate(self, cols: Tensor, v: Tensor, sign: Tensor, lr_scale: Tensor, flips: Tensor | None) -> Tensor:
        return lr_scale * sign * v
