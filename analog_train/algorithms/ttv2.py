"""Tiki-Taka v2 (Gokmen 2021; paper Eq. 10, Supp. Alg. 2 with rho = 0; aihwkit TTv2 presets).

Per sample: ``A <- A - eta_A d x^T`` (pulsed). Every ``transfer_every`` samples read column k of A
against its reference array, ``v = (A - R) e_k``, and accumulate ``H[:, k] += lr_scale v``; where
``|H| >= 1`` pulse ``C[:, k]`` and forget H; ``k <- k + 1``. The reference R must sit at A's symmetry
point, because the device asymmetry makes A decay toward its SP: that decay is TTv2's low-pass
filter, and any offset of R from the SP reads as a constant gradient.
"""

from __future__ import annotations

from torch import Tensor

from analog_train.algorithms import transfer_kernel
from analog_train.algorithms.transfer import TransferCompound


class TTv2(TransferCompound):
    """TTv2: aihwkit's ChoppedTransferCompound with the choppers off (``in_chop_prob`` is ignored)."""

    choppers = False
    kernel_rule = transfer_kernel.RULE_TTV2

    def accumulate(self, cols: Tensor, v: Tensor, sign: Tensor, lr_scale: Tensor, flips: Tensor | None) -> Tensor:
        # v is already the differential read (A - R) e_k: the array's visible weight is g - R.
        return lr_scale * v
