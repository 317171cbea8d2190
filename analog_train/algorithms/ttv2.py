"""Tiki-Taka v2 (Gokmen 2021; paper Eq. 10, Supp. Alg. 2 with rho = 0; aihwkit TTv2 presets).

Per sample: ``A <- A - eta_A d x^T`` (pulsed). Every ``transfer_every`` samples read column k of A
against its reference array, ``v = (A - R) e_k``, and accumulate ``H[:, k] += lr_scale v``; where
``|H| >= 1`` pulse ``C[:, k]`` and forget H; ``k <- k + 1``. The reference R must sit at A's symmetry
point, because the device asymmetry makes A decay toward its SP: that decay is TTv2's low-pass
filter, and any offset of R from the SP reads as a constant gradient.
"""

from __future__ import annotations

from numba import njit

from analog_train.algorithms import transfer_kernel
from analog_train.algorithms.transfer import TransferCompound
from analog_train.devices.kernels import FASTMATH


@transfer_kernel.buffer_rule
def buffer_rule(v, sign, lr_scale, mean, past, switched, beta):
    """``H[:, k] += lr_scale v``: v is already the differential read ``(A - R) e_k`` (A's visible weight is g - R)."""
    return lr_scale * v, mean, past


@njit(parallel=True, cache=True, error_model="numpy", fastmath=FASTMATH)
def transfer_step(raw, reads, buffers, settings, c_state, seed):
    """:func:`.transfer_kernel.transfer_rounds` with this module's rule (compiled once, cached)."""
    return transfer_kernel.transfer_rounds(buffer_rule, raw, reads, buffers, settings, c_state, seed)


class TTv2(TransferCompound):
    """TTv2: aihwkit's ChoppedTransferCompound with the choppers off (``in_chop_prob`` is ignored)."""

    choppers = False
    rule = staticmethod(buffer_rule)
    compiled_step = staticmethod(transfer_step)
