"""Mean device parameters resolved from a config, and the device-to-device draw (SPEC 2).

A config describes the *mean* device. At construction every crossbar element gets its own hidden
parameters (bounds, step sizes, asymmetry, ...) drawn once from the construction generator, using
aihwkit's conventions so that presets mean the same thing here as there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from analog_train.config import DeviceConfig, to_object


def resolve(cfg: Any) -> DeviceConfig:
    """A plain device config (its family's schema) with the paper's ``n_states`` applied to ``dw_min``."""
    cfg = to_object(cfg)
    if cfg.states() is not None:
        cfg = replace(cfg, dw_min=(cfg.w_max - cfg.w_min) / cfg.states())
    return cfg


def multiplicative_noise(cfg: DeviceConfig) -> bool:
    """Whether c2c noise scales with the step (``s |step|``) rather than with ``a`` (``s a``).

    Only linear_step and soft_bounds have the switch (``mult_noise``); the other families are
    multiplicative in aihwkit (for constant_step both forms are the same).
    """
    return getattr(cfg, "mult_noise", True)


def resolve_replicas(cfgs: Any | Sequence[Any], population: int | None) -> list[DeviceConfig]:
    """One resolved config per replica: a single config is shared by all ``population`` replicas."""
    if not isinstance(cfgs, Sequence):
        cfgs = [cfgs] * (population or 1)
    resolved = [resolve(c) for c in cfgs]
    if population is not None and len(resolved) != population:
        raise ValueError(f"got {len(resolved)} device configs for a population of {population}")
    return resolved


def granularity(cfg: Any) -> float:
    """Weight granularity ``eps`` of the mean device (SPEC 2, 'Number of states')."""
    cfg = resolve(cfg)
    if cfg.family == "pow_step":
        return cfg.dw_min * 0.5 ** cfg.pow_gamma
    if cfg.family == "piecewise_step":
        return cfg.dw_min * cfg.piecewise_up[len(cfg.piecewise_up) // 2]
    if cfg.family == "exp_step":
        # Mean of the up and down step at w = 0 (SPEC fixes aihwkit's down-step-twice typo).
        z = cfg.b
        up = max(1.0 - cfg.A_up * math.exp(cfg.gamma_up * z), 0.0)
        down = max(1.0 - cfg.A_down * math.exp(-cfg.gamma_down * z), 0.0)
        a_up, a_dn = _mean_steps(cfg)
        eps = 0.5 * (a_up * up + a_dn * down)
        return eps if eps > 0 else cfg.dw_min
    return cfg.dw_min


def number_of_states(cfg: Any) -> float:
    """``(w_max - w_min) / eps`` of the mean device."""
    cfg = resolve(cfg)
    return (cfg.w_max - cfg.w_min) / granularity(cfg)


def _mean_steps(cfg: DeviceConfig) -> tuple[float, float]:
    """Mean up and down step sizes with aihwkit's one-sided ``up_down`` convention."""
    up_bias = min(cfg.up_down, 0.0)
    down_bias = -max(cfg.up_down, 0.0)
    return (1.0 + up_bias) * cfg.dw_min, (1.0 + down_bias) * cfg.dw_min


def draw_common(cfg: DeviceConfig, shape: tuple[int, ...], gen: torch.Generator) -> dict[str, Tensor]:
    """Bounds, step sizes, stuck devices, decay, diffusion and reset bias of every element.

    Follows aihwkit ``PulsedRPUDevice::populate``: relative bound spread around the signed mean,
    gain ``1 + dw_min_dtod xi`` (or log-normal), asymmetry ``r = up_down_dtod xi`` with the
    one-sided ``up_down`` bias, then ``enforce_consistency``.
    """

    def randn() -> Tensor:
        return torch.randn(shape, generator=gen, dtype=torch.float64)

    bmax = cfg.w_max * (1.0 + cfg.w_max_dtod * randn())
    bmin = cfg.w_min * (1.0 + cfg.w_min_dtod * randn())
    xi_gain = randn()
    gain = torch.exp(cfg.dw_min_dtod * xi_gain) if cfg.dw_min_dtod_log_normal else 1.0 + cfg.dw_min_dtod * xi_gain
    r = cfg.up_down_dtod * randn()
    up_bias = min(cfg.up_down, 0.0)
    down_bias = -max(cfg.up_down, 0.0)
    a_up = (up_bias + gain + r) * cfg.dw_min
    a_dn = (down_bias + gain - r) * cfg.dw_min

    if cfg.enforce_consistency:
        a_up, a_dn = a_up.abs(), a_dn.abs()
        swap = bmin > bmax
        bmax, bmin = torch.where(swap, bmin, bmax), torch.where(swap, bmax, bmin)
        bmax, bmin = bmax.abs(), -bmin.abs()
    else:
        dead = bmin > bmax
        mid = 0.5 * (bmin + bmax)
        bmax, bmin = torch.where(dead, mid, bmax), torch.where(dead, mid, bmin)

    if cfg.corrupt_devices_prob > 0:
        stuck = torch.rand(shape, generator=gen, dtype=torch.float64) < cfg.corrupt_devices_prob
        lo = torch.clamp(torch.minimum(bmin, bmax), min=-cfg.corrupt_devices_range)
        hi = torch.clamp(torch.maximum(bmin, bmax), max=cfg.corrupt_devices_range)
        value = lo + (hi - lo) * torch.rand(shape, generator=gen, dtype=torch.float64)
        bmax, bmin = torch.where(stuck, value, bmax), torch.where(stuck, value, bmin)
        a_up, a_dn = torch.where(stuck, 0.0, a_up), torch.where(stuck, 0.0, a_dn)

    lifetime = cfg.lifetime * (1.0 + cfg.lifetime_dtod * randn())
    decay = torch.where(lifetime > 1.0, 1.0 - 1.0 / lifetime, torch.zeros_like(lifetime))
    if cfg.lifetime == 0:
        decay = torch.ones(shape, dtype=torch.float64)
    return {
        "bmax": bmax,
        "bmin": bmin,
        "a_up": a_up,
        "a_dn": a_dn,
        "decay": decay,
        "diffusion": (cfg.diffusion * (1.0 + cfg.diffusion_dtod * randn())).abs(),
        "reset_bias": cfg.reset + cfg.reset_dtod * randn(),
        "ref_offset": cfg.reference_mean + cfg.reference_std * randn(),
        "c2c": torch.full(shape, cfg.dw_min_std, dtype=torch.float64),
        "write_noise": torch.full(shape, cfg.write_noise_std * cfg.dw_min, dtype=torch.float64),
        "reset_std": torch.full(shape, cfg.reset_std, dtype=torch.float64),
    }
