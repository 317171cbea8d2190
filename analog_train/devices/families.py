"""Device families: the per-pulse update rule of each (SPEC 2) and how n pulses are applied at once.

A family maps the conductance ``g`` of every element to its noise-free up and down step
magnitudes. The shared machinery here turns those into one noisy pulse (the exact engine) or into
n same-direction pulses (the fast engine): a closed form for the affine families, whose step is
``a + s g``, and sub-stepping for the others. All tensors are ``(P, out, in)``; results are
clipped to each element's own bounds.

Non-affine families (``pow_step``, ``exp_step``, ``piecewise_step``) apply n pulses in at most
``MAX_SUBSTEPS`` vectorised sub-steps of m pulses each; a sub-step evaluates the step at the
trajectory's midpoint (``g + (m - 1)/2 step(g)``), which makes it exact for m = 1 and second order
in m otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor

Params = dict[str, Tensor]

MAX_SUBSTEPS = 8
# Affine devices whose pulse map g -> q g + c has q below this (a step of more than 95 % of the way
# to where the step vanishes; soft bounds: dw/bound > 0.95) are pulsed one pulse at a time by the
# fast engine too: the closed form assumes no clip between pulses, and for q <= 0 a single pulse
# overshoots that point and is clipped. Same rule as kernels.STEEP_Q.
STEEP_Q = 0.05


def flat_nonzero(mask: Tensor) -> Tensor:
    """Ascending flat indices where the bool ``mask`` is set, ``(count,)`` int64.

    On CPU through NumPy, whose bool nonzero is several times faster than torch's (hundreds of
    microseconds saved per call on a 784x256 array); same result.
    """
    if mask.device.type == "cpu":
        return torch.from_numpy(np.flatnonzero(mask.numpy()))
    return mask.reshape(-1).nonzero().squeeze(1)


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

    def configure(self, cfgs: list[Any]) -> "DeviceFamily":
        """The family object an array uses; families with per-array tables return a configured copy."""
        return self

    def noise_scale(self, g: Tensor, step: Tensor, a: Tensor, p: Params, mult_noise: bool) -> Tensor:
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
        noisy = step + self.noise_scale(g, step, a, p, mult_noise) * torch.randn(g.shape, generator=gen, dtype=g.dtype, device=g.device)
        return self.clip(g + sign.to(g.dtype) * noisy, p)

    def step(self, g: Tensor, p: Params, up: bool) -> Tensor:
        """Noise-free step magnitude of one direction (families override it to skip the other one)."""
        return self.steps(g, p)[0 if up else 1]

    def pulses(self, g: Tensor, p: Params, n: Tensor, up: bool, mult_noise: bool, gen: torch.Generator) -> Tensor:
        """``n`` (per element) same-direction pulses in at most ``K = MAX_SUBSTEPS`` midpoint sub-steps.

        Sub-step k applies ``m = floor((n + k) / K)`` pulses at once (the m sum to n): mean
        ``m step(g_mid)`` with ``g_mid = g + (m - 1)/2 step(g)`` the average position of the m
        pulses, c2c noise of the m pulses summed (std times ``sqrt(m)``), then the clip. A device
        with ``n <= K`` thus gets exactly its n single pulses. Devices are sorted by
        ``min(n, 2K)`` once, so that the devices active in a sub-step (``n >= K - k``), and those
        that need the midpoint (``m >= 2``, ``n >= 2K - k``), are suffixes: each sub-step costs
        only as much as the devices it moves.
        """
        n_max = int(n.max().item()) if n.numel() else 0
        if n_max == 0:
            return g
        k_steps = min(n_max, MAX_SUBSTEPS)
        shape = g.shape
        g, n = g.reshape(-1), n.reshape(-1)
        p = {k: v.reshape(-1) for k, v in p.items()}
        key, order = torch.sort(torch.clamp(n, max=2 * k_steps).to(torch.uint8))
        bounds = torch.arange(1, 2 * k_steps + 1, dtype=torch.uint8, device=n.device)
        start = [0, *torch.searchsorted(key, bounds).tolist()]  # start[t]: first index with n >= t
        idx = order[start[1]:]
        gs, ns = g[idx], n[idx]
        ps = {k: v[idx] for k, v in p.items()}
        direction = 1.0 if up else -1.0
        a_key = "a_up" if up else "a_dn"
        for k in range(k_steps):
            lo = start[k_steps - k] - start[1]  # devices with n >= K - k get >= 1 pulse
            mid = start[min(2 * k_steps - k, 2 * k_steps)] - start[1]  # n >= 2K - k: >= 2 pulses
            g_k = gs[lo:]
            p_k = {key_: v[lo:] for key_, v in ps.items()}
            m = torch.div(ns[lo:] + k, k_steps, rounding_mode="floor")
            step = self.step(g_k, p_k, up)
            g_eval = g_k
            if mid < gs.numel():  # step at the midpoint of the sub-step's m pulses
                j = mid - lo
                p_m = {key_: v[j:] for key_, v in p_k.items()}
                g_mid = self.clip(g_k[j:] + direction * 0.5 * (m[j:] - 1.0) * step[j:], p_m)
                step = torch.cat([step[:j], self.step(g_mid, p_m, up)])
                g_eval = torch.cat([g_k[:j], g_mid])
            std = self.noise_scale(g_eval, step, p_k[a_key], p_k, mult_noise) * m.sqrt()
            noise = torch.randn(g_k.shape, generator=gen, dtype=g.dtype, device=g.device)
            gs[lo:] = self.clip(g_k + direction * (m * step + std * noise), p_k)
        out = g.clone()
        out[idx] = gs
        return out.view(shape)

    @staticmethod
    def clip(g: Tensor, p: Params) -> Tensor:
        return torch.clamp(g, min=p["bmin"], max=p["bmax"])

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
    device, so n pulses cost one ``expm1``. Steep devices (``q < STEEP_Q`` either way, e.g. soft
    bounds with a step up to or beyond its bound, as in aihwkit's ReRAM array presets) keep their
    slopes as drawn and are pulsed one pulse at a time (:meth:`single_pulses`), so both engines
    apply aihwkit's rule (step, then clip) to them as written.
    """

    affine = True
    pulse_keys = DeviceFamily.pulse_keys + (
        "s_up", "s_dn", "log_q_up", "log_q_dn", "inv_qm1_up", "inv_qm1_dn", "flat_up", "flat_dn", "va_up", "va_dn",
        "steep",
    )

    def draw(self, cfg: Any, p: Params, shape: tuple[int, ...], gen: torch.Generator) -> None:
        s_up, s_dn = self.slopes(cfg, p, shape, gen)
        p["s_up"], p["s_dn"] = s_up, s_dn
        steep = (s_up < STEEP_Q - 1.0) | (-s_dn < STEEP_Q - 1.0)
        p["steep"] = steep.to(s_up.dtype)
        for key, qm1 in (("up", s_up), ("dn", -s_dn)):
            qm1 = torch.where(steep, torch.zeros_like(qm1), qm1)  # closed-form factors: unused for steep devices
            flat = qm1 == 0
            p[f"log_q_{key}"] = torch.log1p(qm1)
            p[f"inv_qm1_{key}"] = torch.where(flat, torch.zeros_like(qm1), 1.0 / torch.where(flat, torch.ones_like(qm1), qm1))
            p[f"flat_{key}"] = flat.to(qm1.dtype)
            # Additive noise of n pulses: variance va * T (1 + q^n), T = sum_{j<n} q^j (see counts).
            p[f"va_{key}"] = (p["c2c"] * p[f"a_{key}"]) ** 2 / (2.0 + qm1)

    def slopes(self, cfg: Any, p: Params, shape: tuple[int, ...], gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """Per-device slopes ``(s_up, s_dn)``; may also adjust the bounds in ``p``."""
        raise NotImplementedError

    def steps(self, g: Tensor, p: Params) -> tuple[Tensor, Tensor]:
        return p["a_up"] + p["s_up"] * g, p["a_dn"] + p["s_dn"] * g

    def pulses(self, g: Tensor, p: Params, n: Tensor, up: bool, mult_noise: bool, gen: torch.Generator) -> Tensor:
        # Written as few (fused, in-place) tensor ops: on the short vectors of devices near a bound
        # the per-op dispatch, not the arithmetic, is the cost. Down pulses subtract the magnitude
        # ``f = a_dn + s_dn g`` of the first step (``c + (q - 1) g`` with ``c = -a_dn``, ``q - 1 = -s_dn``).
        key = "up" if up else "dn"
        a, s = p["a_" + key], p["s_" + key]
        e = torch.mul(n, p["log_q_" + key]).expm1_()  # q^n - 1
        total = torch.mul(e, p["inv_qm1_" + key]).addcmul_(n, p["flat_" + key])  # sum_{j<n} q^j
        f = torch.addcmul(a, s, g)  # |first step|
        if mult_noise:  # 1 + (q - 1) in the denominators below
            std = p["c2c"] * f.abs() * e.add(1.0) / (torch.add(s, 1.0) if up else torch.rsub(s, 1.0)) * n.sqrt()
        else:
            std = e.add(2.0).mul_(total).mul_(p["va_" + key]).sqrt_()  # va T (1 + q^n), as in counts
        noise = torch.randn(g.shape, generator=gen, dtype=g.dtype, device=g.device)
        out = torch.addcmul(g, total, f, value=1.0 if up else -1.0).addcmul_(std, noise).clamp_(min=p["bmin"], max=p["bmax"])
        steep = flat_nonzero(p["steep"].reshape(-1) > 0)
        if steep.numel():
            ps = {k: v.reshape(-1).index_select(0, steep) for k, v in p.items()}
            gs = self.single_pulses(g.reshape(-1).index_select(0, steep), ps, n.reshape(-1).index_select(0, steep), up,
                                    mult_noise, gen)
            out.view(-1).index_copy_(0, steep, gs)
        return out

    def single_pulses(self, g: Tensor, p: Params, n: Tensor, up: bool, mult_noise: bool, gen: torch.Generator) -> Tensor:
        """``n`` (per element) pulses of one direction, one at a time with their own noise and clip."""
        sign = 1.0 if up else -1.0
        for k in range(int(n.max().item()) if n.numel() else 0):
            g = self.pulse(g, p, torch.where(n > k, sign, 0.0).to(g.dtype), mult_noise, gen)
        return g

    # A device whose noise-free trajectory comes closer to a bound than NEAR_BOUND_SD standard
    # deviations of its noise is pulsed phase by phase instead (clip after each phase).
    # At 4 the clip that a phase would have seen changes the mean by < 1e-5 of the noise's std.
    NEAR_BOUND_SD: ClassVar[float] = 4.0

    def counts(self, g: Tensor, p: Params, n_up: Tensor, n_dn: Tensor, mult_noise: bool,
               gen: torch.Generator, any_flat: bool = True, packed: tuple[Tensor, tuple[str, ...]] | None = None
               ) -> Tensor:
        """Half the ups, all the downs, the other half of the ups, as ONE affine map and ONE noise draw.

        Phase maps ``g -> Q g + c T`` (``Q = q^n``, ``T = sum_{j<n} q^j``) compose in closed form. Each
        phase's noise (additive: variance ``(s a)^2 sum_{j<n} q^2j = va T (1 + Q)``; multiplicative:
        ``n (s Delta Q / q)^2`` with ``Delta`` the first step of the phase at its start) is propagated
        by the later phases' ``Q``, so one Gaussian with the summed variance has the mean and variance
        of three separate draws. That is exact in distribution as long as no clip acts between the
        phases: devices whose noise-free trajectory (monotone within a phase, so its extremes are the
        phase ends) comes within ``NEAR_BOUND_SD`` noise standard deviations of a bound, or leaves
        the range, are redone phase by phase with a clip after each phase (:meth:`pulses`), as before.
        The second half of the ups has ``n3 = n1 + odd`` pulses, so ``Q3 = Q1 (1 + odd (q - 1))`` and
        ``T3 = T1 + odd Q1`` need no second exponential. All tensors are flat (1-d); ``any_flat=False``
        promises that no device has ``q = 1`` (skips two products); ``packed = (rows, keys)``, when the
        parameters are the rows of one tensor, lets the devices near a bound be gathered at once.
        """
        # Written with in-place operations where possible: on large arrays a pass that writes a
        # fresh tensor costs several times one that updates a tensor in cache.
        n1 = torch.mul(n_up, 0.5).floor_()
        odd = torch.sub(n_up, n1, alpha=2.0)
        q1 = torch.mul(n1, p["log_q_up"]).expm1_()  # Q1 - 1 for now
        qd = torch.mul(n_dn, p["log_q_dn"]).expm1_()  # Qd - 1 for now
        t1 = q1 * p["inv_qm1_up"]  # T1 = sum_{j<n1} q^j
        td = qd * p["inv_qm1_dn"]
        if any_flat:
            t1.addcmul_(n1, p["flat_up"])
            td.addcmul_(n_dn, p["flat_dn"])
        q1.add_(1.0)
        qd.add_(1.0)
        s_up, s_dn, a_up, a_dn = p["s_up"], p["s_dn"], p["a_up"], p["a_dn"]
        t3 = torch.addcmul(t1, odd, q1)  # T3 = T1 + odd Q1
        q3 = odd.mul_(s_up).mul_(q1).add_(q1)  # Q3 = Q1 (1 + odd (q - 1))

        f1 = torch.addcmul(a_up, s_up, g)  # first up step at g
        g1 = torch.addcmul(g, t1, f1)
        f2 = torch.addcmul(a_dn, s_dn, g1)  # first down step magnitude at g1
        g2 = torch.addcmul(g1, td, f2, value=-1.0)
        f3 = torch.addcmul(a_up, s_up, g2)
        g3 = torch.addcmul(g2, t3, f3)

        if mult_noise:
            inv_q_up2 = 1.0 / ((1.0 + s_up) * (1.0 + s_up))
            var = n1 * (f1 * q1) ** 2 * inv_q_up2  # V1
            var.mul_(qd).mul_(qd).add_(n_dn * (f2 * qd) ** 2 / ((1.0 - s_dn) * (1.0 - s_dn)))  # + V2
            var.mul_(q3).mul_(q3).add_((n_up - n1) * (f3 * q3) ** 2 * inv_q_up2)  # + V3
            var.mul_(p["c2c"]).mul_(p["c2c"])
        else:
            var = t1.mul_(q1.add_(1.0)).mul_(p["va_up"])  # V1 = va T1 (1 + Q1)
            var.mul_(qd).mul_(qd).add_(td.mul_(qd.add_(1.0)).mul_(p["va_dn"]))  # + V2
            var.mul_(q3).mul_(q3).add_(t3.mul_(q3.add_(1.0)).mul_(p["va_up"]))  # + V3
        sd = var.sqrt_()
        # Distance of the trajectory to the bounds, less NEAR_BOUND_SD sd: the trajectory's max is
        # max(g1, g3), its min is min(g, g2).
        room = torch.maximum(g1, g3).sub_(p["bmax"]).neg_()
        torch.minimum(room, torch.minimum(g, g2).sub_(p["bmin"]), out=room)
        near = flat_nonzero((room.sub_(sd, alpha=self.NEAR_BOUND_SD) < 0) | (p["steep"] > 0))
        noise = torch.randn(g.shape, generator=gen, dtype=g.dtype, device=g.device)
        out = g3.addcmul_(sd, noise).clamp_(min=p["bmin"], max=p["bmax"])
        if near.numel():
            if packed is None:
                pn = {k: v.index_select(0, near) for k, v in p.items()}
            else:
                rows = packed[0].t().index_select(0, near)  # packed[0] is (K, N); its transpose device-major
                pn = dict(zip(packed[1], rows.unbind(1)))
            gn, nu = g.index_select(0, near), n_up.index_select(0, near)
            first = torch.floor(nu * 0.5)
            for n, up in ((first, True), (n_dn.index_select(0, near), False), (nu - first, True)):
                gn = self.pulses(gn, pn, n, up, mult_noise, gen)
            out.index_copy_(0, near, gn)
        return out

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


class PowStep(DeviceFamily):
    """aihwkit PowStep: up ``a_up o^gamma_up``, down ``a_dn (1 - o)^gamma_dn``, ``o = (b_max - g)/(b_max - b_min)``.

    The exponents are drawn per device like the step sizes: gain ``1 + pow_gamma_dtod xi``,
    asymmetry ``pow_up_down_dtod xi`` with the one-sided ``pow_up_down`` bias, times ``pow_gamma``.
    """

    name = "pow_step"
    pulse_keys = DeviceFamily.pulse_keys + ("pow_gamma_up", "pow_gamma_dn")

    def draw(self, cfg: Any, p: Params, shape: tuple[int, ...], gen: torch.Generator) -> None:
        gain = 1.0 + cfg.pow_gamma_dtod * torch.randn(shape, generator=gen, dtype=torch.float64)
        r = cfg.pow_up_down_dtod * torch.randn(shape, generator=gen, dtype=torch.float64)
        up = (min(cfg.pow_up_down, 0.0) + gain + r) * cfg.pow_gamma
        dn = (-max(cfg.pow_up_down, 0.0) + gain - r) * cfg.pow_gamma
        if cfg.enforce_consistency:
            up, dn = up.abs(), dn.abs()
        p["pow_gamma_up"], p["pow_gamma_dn"] = up, dn

    def steps(self, g: Tensor, p: Params) -> tuple[Tensor, Tensor]:
        return self.step(g, p, True), self.step(g, p, False)

    def step(self, g: Tensor, p: Params, up: bool) -> Tensor:
        span = p["bmax"] - p["bmin"]
        live = span > 0  # a zero range (stuck device) does not move
        omega = torch.clamp((p["bmax"] - g) / torch.where(live, span, torch.ones_like(span)), 0.0, 1.0)
        if up:
            value = p["a_up"] * omega.pow(p["pow_gamma_up"])
        else:
            value = p["a_dn"] * (1.0 - omega).pow(p["pow_gamma_dn"])
        return torch.where(live, value, torch.zeros_like(g))


class ExpStep(DeviceFamily):
    """aihwkit ExpStep: ``y_up = max(1 - A_up e^{gamma_up z}, 0)``, ``y_dn = max(1 - A_dn e^{-gamma_dn z}, 0)``.

    ``z = 2 a g / (b_max - b_min) + b``. Noise is multiplicative, or aihwkit's "complex noise"
    ``dw_min_std (|step| + dw_min_std_add + dw_min_std_slope |g|)`` (absolute units), which
    reduces to the multiplicative form when add and slope are 0.
    """

    name = "exp_step"
    pulse_keys = DeviceFamily.pulse_keys + (
        "es_A_up", "es_A_down", "es_gamma_up", "es_gamma_down", "es_a", "es_b", "std_add", "std_slope",
    )

    def draw(self, cfg: Any, p: Params, shape: tuple[int, ...], gen: torch.Generator) -> None:
        # Mean parameters, stored per device so that replicas of a population may differ.
        for key in ("A_up", "A_down", "gamma_up", "gamma_down", "a", "b"):
            p["es_" + key] = torch.full(shape, float(getattr(cfg, key)), dtype=torch.float64)
        p["std_add"] = torch.full(shape, float(cfg.dw_min_std_add), dtype=torch.float64)
        p["std_slope"] = torch.full(shape, float(cfg.dw_min_std_slope), dtype=torch.float64)

    def steps(self, g: Tensor, p: Params) -> tuple[Tensor, Tensor]:
        return self.step(g, p, True), self.step(g, p, False)

    def step(self, g: Tensor, p: Params, up: bool) -> Tensor:
        span = p["bmax"] - p["bmin"]
        live = span > 0  # a zero range (stuck device) does not move
        z = 2.0 * p["es_a"] * g / torch.where(live, span, torch.ones_like(span)) + p["es_b"]
        if up:
            value = p["a_up"] * torch.clamp(1.0 - p["es_A_up"] * torch.exp(p["es_gamma_up"] * z), min=0.0)
        else:
            value = p["a_dn"] * torch.clamp(1.0 - p["es_A_down"] * torch.exp(-p["es_gamma_down"] * z), min=0.0)
        return torch.where(live, value, torch.zeros_like(g))

    def noise_scale(self, g: Tensor, step: Tensor, a: Tensor, p: Params, mult_noise: bool) -> Tensor:
        return p["c2c"] * (step.abs() + p["std_add"] + p["std_slope"] * g.abs())


class PiecewiseStep(DeviceFamily):
    """aihwkit PiecewiseStep: the step is ``a`` times a node table linearly interpolated over ``[b_min, b_max]``.

    The tables are mean parameters shared by all replicas of an array, so the array gets its own
    configured copy of this family (``configure``) that holds them.
    """

    name = "piecewise_step"

    def __init__(self, up: Sequence[float] = (1.0,), down: Sequence[float] = (1.0,)) -> None:
        self.table_up = torch.tensor(list(up), dtype=torch.float64)
        self.table_dn = torch.tensor(list(down), dtype=torch.float64)

    def configure(self, cfgs: list[Any]) -> "PiecewiseStep":
        tables = {(tuple(c.piecewise_up), tuple(c.piecewise_down)) for c in cfgs}
        if len(tables) != 1:
            raise ValueError("all replicas of one array must share device.piecewise_up and device.piecewise_down")
        up, down = tables.pop()
        if len(up) != len(down) or not up:
            raise ValueError(f"device.piecewise_down: needs as many nodes as device.piecewise_up ({len(up)}), at least 1")
        return PiecewiseStep(up, down)

    def steps(self, g: Tensor, p: Params) -> tuple[Tensor, Tensor]:
        return self.step(g, p, True), self.step(g, p, False)

    def step(self, g: Tensor, p: Params, up: bool) -> Tensor:
        return self._interp(g, p, self.table_up if up else self.table_dn) * p["a_up" if up else "a_dn"]

    @staticmethod
    def _interp(g: Tensor, p: Params, table: Tensor) -> Tensor:
        table = table.to(dtype=g.dtype, device=g.device)
        k_max = table.numel() - 1
        if k_max <= 0:
            return table[0].expand_as(g)
        span = p["bmax"] - p["bmin"]
        live = span > 0
        q = torch.clamp((g - p["bmin"]) / torch.where(live, span, torch.ones_like(span)) * k_max, min=0.0)
        k = torch.clamp(torch.floor(q), max=k_max - 1)
        t = torch.clamp(q - k, max=1.0)
        k = k.long()
        value = (1.0 - t) * table[k] + t * table[k + 1]
        return torch.where(live, value, table[0].expand_as(g))


def _safe_div(num: Tensor, den: Tensor) -> Tensor:
    """num/den, and 0 where den is 0 (a device whose reference bound is 0 has no slope)."""
    nonzero = den != 0
    return torch.where(nonzero, num / torch.where(nonzero, den, torch.ones_like(den)), torch.zeros_like(num))


FAMILIES: dict[str, DeviceFamily] = {
    f.name: f for f in (ConstantStep(), LinearStep(), SoftBounds(), PowStep(), ExpStep(), PiecewiseStep())
}


def get_family(name: str) -> DeviceFamily:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"device.family={name}: must be one of {', '.join(sorted(FAMILIES))}") from None


__all__ = ["flat_nonzero", "DeviceFamily", "AffineFamily", "PowStep", "ExpStep", "PiecewiseStep", "FAMILIES",
           "get_family", "STEEP_Q"]
