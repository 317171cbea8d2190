"""SPEC 7 ``toy_mechanism`` (paper Fig. 3): how TTv2, c-TTv2 and AGAD handle a reference offset.

A 5x5 tile sees single-sample updates with a constant expected gradient on the diagonal: the
paper's ``x = -X``, ``d = alpha X + (1 - alpha) Y`` with ``X, Y ~ N(0, 1)``. The paper writes the
update as ``W <- W + lr d x^T`` (its d is the negative gradient), so its W decreases; here updates are
``W <- W - lr d x^T`` (aihwkit), so the layer is handed ``-d`` and W decreases as in the paper.
The paper's device (soft bounds, 40 states, all sigmas 0.3), its hyper-parameters
(``gamma_0 = 200``, ``lr = 0.1``, ``n_s = 5``, ``beta = 0.5``, regular choppers with ``rho = 0.1``,
``l_max = 5``, ``eta_A = 1`` fixed) and A's reference ``R = SP + offset`` with offset 0 and -0.8.
Element (0, 0) is traced after every sample.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import pandas as pd
import torch

from analog_train.algorithms import build_algorithm
from analog_train.config import DeviceConfig, UpdateConfig, make_device, variant_algo
from analog_train.runner import signals

TOY_DEVICE = make_device(
    "soft_bounds", n_states=40, w_max=1.0, w_min=-1.0, w_max_dtod=0.3, w_min_dtod=0.3, dw_min_dtod=0.3,
    dw_min_dtod_log_normal=True, up_down=0.0, up_down_dtod=0.3, dw_min_std=0.3, mult_noise=False,
    reference_std=0.0, subtract_symmetry_point=True,
)
# Paper Fig. 3: gamma_0 = 200, n_s = 5, rho = 0.1 regular, beta = tail_weightening / N = 5 / 10,
# eta_A = fast_lr = 1 without auto-scaling.
TOY_ALGO = dict(auto_scale=False, fast_lr=1.0, auto_granularity=200.0, transfer_every=5, in_chop_prob=0.1,
                in_chop_random=False, tail_weightening=5.0)
COLUMNS = ["algo", "reference_offset", "sample", "A", "H", "W", "p", "p_ref", "chopper", "read", "flip"]


def toy_mechanism(
    samples: int = 5000,
    alpha: float = 0.4,
    reference_offsets: Sequence[float] = (0.0, -0.8),
    algos: Sequence[str] = ("ttv2", "cttv2", "agad"),
    lr: float = 0.1,
    size: int = 5,
    seed: int = 0,
    construction_seed: int = 0,
    device: DeviceConfig | None = None,
    update: UpdateConfig | None = None,
    algo_overrides: Mapping[str, Any] | None = None,
    variants: Mapping[str, Mapping[str, Any]] | None = None,
    a_start: str = "reference",
) -> pd.DataFrame:
    """Traces of element (0, 0), one row per algorithm, offset and sample (tidy).

    Columns: ``A`` (A - R, what the transfer reads), ``H`` (buffer), ``W`` (the weight C), ``p`` and
    ``p_ref`` (AGAD only, else NaN), ``chopper`` (input chopper of column 0), ``read`` (column 0 was
    read after this sample) and ``flip`` (its chopper flipped at that read). Every run uses the
    same construction seed (same devices) and the same input sequence. ``a_start="reference"`` is
    aihwkit's ``set_weights`` (A at R, so reads start at 0 and A relaxes toward its SP); ``"sp"``
    starts A at its symmetry point (paper Fig. 2B), so the offset is purely one of R. Both give the
    paper's outcome (4 replicas x 5 diagonal elements, 4000 samples, mean diagonal W without / with
    offset -0.8: TTv2 -0.59 / +0.38 (wrong way), c-TTv2 -0.55 / -0.54, AGAD -0.77 / -0.79).
    A SIGINT or SIGTERM (:mod:`.signals`) ends it early with the rows traced so far.
    """
    device = device or TOY_DEVICE
    update = update or UpdateConfig(desired_bl=5)
    data = torch.Generator().manual_seed(seed)
    big_x = torch.randn(samples, size, generator=data)
    x_all = -big_x
    d_all = alpha * big_x + (1.0 - alpha) * torch.randn(samples, size, generator=data)
    rows: list[dict[str, Any]] = []
    for name in algos:  # an algorithm, or a label of ``variants`` ({name: <algorithm>, <key>: ...})
        algo = variant_algo(name, variants or {}, {**TOY_ALGO, **dict(algo_overrides or {})})
        for offset in reference_offsets:
            alg = build_algorithm(algo, replace(device, reference_mean=offset), (size, size), update,
                                  torch.Generator().manual_seed(construction_seed),
                                  torch.Generator().manual_seed(seed + 1))
            alg.set_weights(torch.zeros(1, size, size))
            if a_start == "sp":  # A at its symmetry point: the reads start at SP - R = -offset
                alg.A.set_weights(alg.A.symmetry_point(), alg.generator)
            for t in range(samples):
                if signals.requested():  # stopped: keep the traces so far
                    return pd.DataFrame(rows, columns=COLUMNS)
                chop = float(alg.c_in[0, 0])
                alg.update(x_all[t].view(1, 1, -1), -d_all[t].view(1, 1, -1), lr)
                alg.post_step()
                reads = alg.last_reads
                read = reads is not None and bool((reads.col == 0).any())
                rows.append({
                    "algo": name, "reference_offset": offset, "sample": t + 1,
                    "A": float(alg.fast_weight[0, 0, 0]), "H": float(alg.H[0, 0, 0]), "W": float(alg.weight[0, 0, 0]),
                    "p": float(alg.p[0, 0, 0]) if alg.p is not None else float("nan"),
                    "p_ref": float(alg.p_ref[0, 0, 0]) if alg.p_ref is not None else float("nan"),
                    "chopper": float(alg.c_in[0, 0]), "read": read, "flip": float(alg.c_in[0, 0]) != chop,
                })
    return pd.DataFrame(rows, columns=COLUMNS)
