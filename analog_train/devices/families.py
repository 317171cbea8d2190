"""Device families: the per-pulse update rule of each (SPEC 2) and how n pulses are applied at once.

A family maps the conductance ``g`` of every element to its noise-free up and down step
magnitudes. The shared machinery here turns those into one noisy pulse (the exact engine) or into
n same-direction pulses (the fast engine): a closed form for the affine families, whose step is
``a + s g``, and sub-stepping for the others. All tensors are ``(P, out, in)``; results are
clipped to each element's own bounds.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

Params = dict[str, Tensor]

MAX_SUBSTEPS = 8


Q_MIN = 0.05


class DeviceFamily:
    """Base class of a pulse rule. Subclasses set ``name`` and implement ``steps``."""

    name: ClassVar[str] = ""
    affine: ClassVar[bool] = False
    # Per-device parameters that applying pulses reads (gathered for the touched devices only).
    pulse_keys: ClassVar[tuple[str, ...]] = ("a_up", "a_dn", "bmin", "bmax", "c2c")

    def draw(self, cfg: Any, p: Params, shape: tuple[int, ...], gen: torch.Generator) -> None:
        """Add family-specific per-device parameters to ``p`` (in place)."""

    def steps(self, g: Tensor, p: Params) -> tuple[Tensor, Tensor]:
        """Noise-free (up, down) step magnitudes at conductance ``g``."""
        raise NotImplementedError

    def noise_scale(self, step: Tensor, a: Tensor, p: Params, mult_noise: bool) -> Tensor:
        """Std of one pulse's c2c noise: multiplicative ``s |step|`` or additive ``s a`` (paper Eq. 4)."""
        if mult_noise or not self.affine:
            return p["c2c"] * step.abs()
        return p["c2c"] * a

    def pulse(self, g: Tensor, p: Params, sign: Tensor, mult_noise: bool, gen: torch.Generator) -> Tensor:
        """One pulse where ``sign`` is +1 (up) or -1 (down), none where 0; then clip."""
        up, dn = self.steps(g, p)
        is_up = sign > 0
        step = torch.where(is_up, up, dn)
        a = torch.where(is_up, p["a_up"], p["a_dn"])
        noisy = step + self.noise_scale(step, a, p, mult_noise) * torch.randn(g.shape, generator=gen, dtype=g.dtype, device=g.device)
        return self.clip(g + sign.to(g.dtype) * noisy, p)

    def pulses(self, g: Tensor, p: Params, n: Tensor, up: bool, mult_noise: bool, gen: torch.Generator) -> Tensor:
        """``n`` (per element) same-direction pulses; sub-stepping, each sub-step m pulses at once."""
        n_max = int(n.max().item()) if n.numel() else 0
        if n_max == 0:
            return g
        k_steps = min(n_max, MAX_SUBSTEPS)
        direction = 1.0 if up else -1.0
        for k in range(k_steps):
            m = torch.div(n + k, k_steps, rounding_mode="floor")
            step = self.steps(g, p)[0 if up else 1]
            a = p["a_up"] if up else p["a_dn"]
            std = self.noise_scale(step, a, p, mult_noise) * m.sqrt()
            g = self.clip(g + direction * (m * step + std * torch.randn(g.shape, generator=gen, dtype=g.dtype, device=g.device)), p)
        return g

    @staticmethod
    def clip(g: Tensor, p: Params) -> Tensor:
        return torch.minimum(torch.maximum(g, p["bmin"]), p["bmax"])

    def symmetry_point(self, p: Params, iterations: int = 60) -> Tensor:
        """The weight where up and down steps are equal, by bisection on ``up(g) - down(g)``.

        Devices whose steps never balance inside their range sit at the bound they drift to.
        """
        lo, hi = p["bmin"].clone(), p["bmax"].clone()
        f_lo = self._balance(lo, p)
        f_hi = self._balance(hi, p)
        for _ in range(iterations):
            mid = 0.5 * (lo + hi)
            f_mid = self._balance(mid, p)
            go_up = (f_mid > 0) == (f_lo > 0)
            lo = torch.where(go_up, mid, lo)
            f_lo = torch.where(go_up, f_mid, f_lo)
            hi = torch.where(go_up, hi, mid)
        sp = 0.5 * (lo + hi)
        # No sign change: the net drift pushes the device to one bound.
        same_sign = (f_lo > 0) == (f_hi > 0)
        drift_to = torch.where(f_hi > 0, p["bmax"], p["bmin"])
        return torch.where(same_sign & (f_hi != 0), drift_to, sp)

    def _balance(self, g: Tensor, p: Params) -> Tensor:
        up, dn = self.steps(g, p)
        return up - dn


class AffineFamily(DeviceFamily):
    """Families whose step is affine in g: up ``a_up + s_up g``, down ``a_dn + s_dn g``.

    One pulse is the map ``g -> q g + c`` (up: ``q = 1 + s_up``, ``c = a_up``; down:
    ``q = 1 - s_dn``, ``c = -a_dn``), so n pulses compose in closed form:
    ``g_n = g + S Delta(g)`` with ``S = sum_{j<n} q^j`` and ``Delta(g) = c + (q - 1) g`` the first
    step. The noise of pulse k is propagated by ``q^(n-1-k)``: exact variance
    ``(s a)^2 sum q^2j = (s a)^2 S (1 + q^n)/(1 + q)`` for additive noise, first-order variance
    ``n (s Delta)^2 q^(2n-2)`` for multiplicative noise. ``log q`` and ``1/(q-1)`` are drawn with the
    device, so n pulses cost one ``expm1``. A slope that would overshoot the bound in a single
    pulse is limited to ``q >= Q_MIN``; the clip then lands such a device on its bound in both
    engines alike.
    """

    affine = True
    pulse_keys = DeviceFamily.pulse_keys + (
        "s_up", "s_dn", "log_q_up", "log_q_dn", "inv_qm1_up", "inv_qm1_dn", "flat_up", "flat_dn",
    )

    def draw(self, cfg: Any, p: Params, shape: tuple[int, ...], gen: torch.Generator) -> None:
        s_up, s_dn = self.slopes(cfg, p, shape, gen)
        s_up = torch.clamp(s_up, min=Q_MIN - 1.0)
        s_dn = torch.clamp(s_dn, max=1.0 - Q_MIN)
        p["s_up"], p["s_dn"] = s_up, s_dn
        for key, qm1 in (("up", s_up), ("dn", -s_dn)):
            flat = qm1 == 0
            p[f"log_q_{key}"] = torch.log1p(qm1)
            p[f"inv_qm1_{key}"] = torch.where(flat, torch.zeros_like(qm1), 1.0 / torch.where(flat, torch.ones_like(qm1), qm1))
            p[f"flat_{key}"] = flat.to(qm1.dtype)

    def slopes(self, cfg: Any, p: Params, shape: tuple[int, ...], gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """Per-device slopes ``(s_up, s_dn)``; may also adjust the bounds in ``p``."""
        raise NotImplementedError

    def steps(self, g: Tensor, p: Params) -> tuple[Tensor, Tensor]:
        return p["a_up"] + p["s_up"] * g, p["a_dn"] + p["s_dn"] * g

    def pulses(self, g: Tensor, p: Params, n: Tensor, up: bool, mult_noise: bool, gen: torch.Generator) -> Tensor:
        key = "up" if up else "dn"
        a = p[f"a_{key}"]
        qm1 = p["s_up"] if up else -p["s_dn"]
        c = a if up else -a
        e = torch.expm1(n * p[f"log_q_{key}"])  # q^n - 1
        total = e * p[f"inv_qm1_{key}"] + n * p[f"flat_{key}"]  # sum_{j<n} q^j
        first = c + qm1 * g
        if mult_noise:
            std = p["c2c"] * first.abs() * (1.0 + e) / (1.0 + qm1) * n.sqrt()
        else:
            std = p["c2c"] * a * torch.sqrt(total * (2.0 + e) / (2.0 + qm1))
        noise = torch.randn(g.shape, generator=gen, dtype=g.dtype, device=g.device)
        return self.clip(g + total * first + std * noise, p)

    def symmetry_point(self, p: Params, iterations: int = 60) -> Tensor:
        """Closed form ``(a_dn - a_up) / (s_up - s_dn)``, or the bound a non-balancing device drifts to."""
        denom = p["s_up"] - p["s_dn"]
        has_sp = denom.abs() > 0
        sp = (p["a_dn"] - p["a_up"]) / torch.where(has_sp, denom, torch.ones_like(denom))
        drift = torch.where(p["a_up"] > p["a_dn"], p["bmax"], torch.where(p["a_up"] < p["a_dn"], p["bmin"], 0.0))
        return self.clip(torch.where(has_sp, sp, drift), p)


class ConstantStep(AffineFamily):
    name = "constant_step"

    def slopes(self, cfg: Any, p: Params, shape: tuple[int, ...], gen: torch.Generator) -> tuple[Tensor, Tensor]:
        zero = torch.zeros(shape, dtype=torch.float64)
        return zero, zero.clone()


class LinearStep(AffineFamily):
    """aihwkit LinearStep: slopes ``-|gamma + gamma_dtod xi| a / R`` with R the (mean or own) bound."""

    name = "linear_step"

    def slopes(self, cfg: Any, p: Params, shape: tuple[int, ...], gen: torch.Generator) -> tuple[Tensor, Tensor]:
        g_up = cfg.gamma_up + cfg.gamma_up_dtod * torch.randn(shape, generator=gen, dtype=torch.float64)
        g_dn = cfg.gamma_down + cfg.gamma_down_dtod * torch.randn(shape, generator=gen, dtype=torch.float64)
        if not cfg.allow_increasing:
            g_up, g_dn = g_up.abs(), g_dn.abs()
        r_up = torch.full(shape, cfg.w_max, dtype=torch.float64) if cfg.mean_bound_reference else p["bmax"]
        r_dn = torch.full(shape, cfg.w_min, dtype=torch.float64) if cfg.mean_bound_reference else p["bmin"]
        return _safe_div(-g_up * p["a_up"], r_up), _safe_div(-g_dn * p["a_dn"], r_dn)


class SoftBounds(AffineFamily):
    """Paper Eq. 4: steps ``a_up (1 - g/b_max)`` and ``a_dn (1 - g/b_min)`` (aihwkit SoftBounds)."""

    name = "soft_bounds"

    def slopes(self, cfg: Any, p: Params, shape: tuple[int, ...], gen: torch.Generator) -> tuple[Tensor, Tensor]:
        s_up = _safe_div(-p["a_up"], p["bmax"])
        s_dn = _safe_div(-p["a_dn"], p["bmin"])
        if cfg.slope_up_dtod > 0 or cfg.slope_down_dtod > 0:
            # aihwkit SoftBoundsReference: spread the slopes, moving the bound where the step vanishes.
            s_up = s_up * (1.0 + cfg.slope_up_dtod * torch.randn(shape, generator=gen, dtype=torch.float64)).abs()
            s_dn = s_dn * (1.0 + cfg.slope_down_dtod * torch.randn(shape, generator=gen, dtype=torch.float64)).abs()
            p["bmax"] = torch.where(s_up != 0, -p["a_up"] / torch.where(s_up != 0, s_up, 1.0), p["bmax"])
            p["bmin"] = torch.where(s_dn != 0, -p["a_dn"] / torch.where(s_dn != 0, s_dn, 1.0), p["bmin"])
        return s_up, s_dn


def _safe_div(num: Tensor, den: Tensor) -> Tensor:
    """num/den, and 0 where den is 0 (a device whose reference bound is 0 has no slope)."""
    nonzero = den != 0
    return torch.where(nonzero, num / torch.where(nonzero, den, torch.ones_like(den)), torch.zeros_like(num))


FAMILIES: dict[str, DeviceFamily] = {f.name: f for f in (ConstantStep(), LinearStep(), SoftBounds())}


def get_family(name: str) -> DeviceFamily:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"device.family={name}: must be one of {', '.join(sorted(FAMILIES))}") from None


__all__ = ["DeviceFamily", "AffineFamily", "FAMILIES", "get_family", "Q_MIN"]
