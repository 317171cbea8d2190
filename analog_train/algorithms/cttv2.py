"""Chopped TTv2, c-TTv2 (paper Eq. 11, Supp. Alg. 2; aihwkit ``ChoppedTransferCompound``).

TTv2 with a sign ``c_k`` per input line: A is updated with ``c * x`` and the read of column k is
de-chopped, ``H[:, k] += lr_scale c_k (A - R) e_k``. After each read of column k its chopper flips
with probability ``in_chop_prob`` (``in_chop_random``, the default) or regularly every
``N = max(ceil(1 / in_chop_prob), 2)`` reads. Offsets of A from R and slow drifts are not
modulated by c, so they cancel over chopper periods.
"""

from __future__ import annotations

from typing import Any

from numba import njit

from analog_train.algorithms import transfer_kernel
from analog_train.algorithms.transfer import TransferCompound, chopper_period
from analog_train.devices.kernels import FASTMATH


@transfer_kernel.buffer_rule
def buffer_rule(v, sign, lr_scale, mean, past, switched, beta):
    """``H[:, k] += lr_scale c_k c_i v``: the read de-chopped (``sign``: input and output choppers at the read)."""
    return lr_scale * sign * v, mean, past


@njit(parallel=True, cache=True, error_model="numpy", fastmath=FASTMATH)
def transfer_step(raw, reads, buffers, settings, c_state, seed):
    """:func:`.transfer_kernel.transfer_rounds` with this module's rule (compiled once, cached)."""
    return transfer_kernel.transfer_rounds(buffer_rule, raw, reads, buffers, settings, c_state, seed)


class ChoppedTTv2(TransferCompound):
    """c-TTv2: random (or regular) input choppers, static reference R."""

    rule = staticmethod(buffer_rule)
    compiled_step = staticmethod(transfer_step)

    def __init__(self, algo: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(algo, *args, **kwargs)
        if algo.in_chop_prob > 0 and algo.in_chop_random:
            self.flip_prob = algo.in_chop_prob
        elif algo.in_chop_prob > 0:
            self.flip_period = chopper_period(algo.in_chop_prob)
