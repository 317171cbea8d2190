"""Device schemas: one dataclass per device family (SPEC 2), selected by ``device.family``.

Names and defaults follow aihwkit (``PulsedDevice`` and the ``*StepDevice`` classes, see
``reference/aihwkit-internals.md`` 2.1). :class:`DeviceConfig` holds what every family uses; each
family adds its own parameters and is registered once with :func:`family`. A key that the chosen
family does not have is an error naming the family (``device.pow_gamma`` on a ``soft_bounds``
device, say). Weights are in normalised conductance units: the mean device spans about [-1, 1].
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Optional

from analog_train.config.rules import Registry, Relation, param

W = "weight"  # unit: normalised conductance (the mean device spans about [-1, 1])
REL = "relative"  # unit: a fraction of the mean value
W_LIMIT = 1000.0  # |w_min|, |w_max|: far beyond any normalised device, short of overflow
SPREAD = dict(ge=0.0, le=10.0, unit=REL)  # device-to-device spreads

FAMILIES = Registry("family", lambda name: f"the {name} family")
DEVICE_FAMILIES: dict[str, type["DeviceConfig"]] = FAMILIES.schemas
family = FAMILIES.register  # @family("soft_bounds"): the schema of device.family=soft_bounds


@dataclass
class ConductanceMap:
    """How measured conductances map to weights: ``conductance = offset + per_weight * weight``."""

    offset: float = param(0.0, doc="conductance at weight 0 (the data's unit)")
    per_weight: float = param(1.0, gt=0.0, doc="conductance per unit of weight")


@dataclass
class DeviceConfig:
    """Parameters every family uses (aihwkit ``PulsedDevice``) plus the reference read and one-sided cell."""

    family: str = param("", doc="the update rule (SPEC 2)")
    source: str = param("", doc="where the parameters come from")
    dw_min: float = param(0.001, gt=0.0, unit=W, doc="mean step size")
    dw_min_dtod: float = param(0.3, **SPREAD, doc="d2d spread of the step gain")
    dw_min_dtod_log_normal: bool = param(False, doc="gain exp(dtod xi) instead of 1 + dtod xi")
    dw_min_std: float = param(0.3, ge=0.0, le=100.0, unit=REL, doc="c2c noise of a pulse")
    up_down: float = param(0.0, gt=-1.0, lt=1.0, unit=REL, doc="systematic up/down step asymmetry")
    up_down_dtod: float = param(0.01, **SPREAD, doc="d2d spread of the asymmetry")
    w_max: float = param(0.6, ge=-W_LIMIT, le=W_LIMIT, unit=W, doc="mean upper bound")
    w_min: float = param(-0.6, ge=-W_LIMIT, le=W_LIMIT, unit=W, doc="mean lower bound")
    w_max_dtod: float = param(0.3, **SPREAD, doc="d2d spread of the upper bound")
    w_min_dtod: float = param(0.3, **SPREAD, doc="d2d spread of the lower bound")
    enforce_consistency: bool = param(True, doc="flip negative steps and swapped bounds (aihwkit)")
    write_noise_std: float = param(0.0, ge=0.0, le=1000.0, unit="dw_min", doc="read-out noise redrawn per write")
    corrupt_devices_prob: float = param(0.0, ge=0.0, le=1.0, doc="probability that a device is stuck")
    corrupt_devices_range: float = param(0.1, ge=0.0, inf=True, unit=W, doc="range of stuck values")
    lifetime: float = param(0.0, ge=0.0, unit="optimizer steps", doc="decay time toward reset (0: none)")
    lifetime_dtod: float = param(0.0, **SPREAD, doc="d2d spread of the lifetime")
    diffusion: float = param(0.0, ge=0.0, unit=W, doc="random walk per optimizer step")
    diffusion_dtod: float = param(0.0, **SPREAD, doc="d2d spread of the diffusion")
    reset: float = param(0.0, unit=W, doc="reset target (additive bias)")
    reset_dtod: float = param(0.0, ge=0.0, unit=W, doc="d2d spread of the reset target")
    reset_std: float = param(0.01, ge=0.0, unit=W, doc="c2c spread of a reset")
    reference_mean: float = param(0.0, unit=W, doc="mean offset of the reference device (paper mu_r)")
    reference_std: float = param(0.0, ge=0.0, unit=W, doc="d2d spread of the reference (paper sigma_r)")
    subtract_symmetry_point: bool = param(False, doc="program the reference at the device's SP")
    one_sided: bool = param(False, doc="pair of potentiation-only devices, W = G+ - G- (aihwkit OneSidedUnitCell)")
    refresh_upper_thres: float = param(0.75, gt=0.0, le=1.0, unit="w_max", doc="refresh when the larger device passes")
    refresh_lower_thres: float = param(0.25, gt=0.0, le=1.0, unit="w_max", doc="... and the smaller passes")
    refresh_every: int = param(1, ge=0, unit="optimizer steps", doc="between refresh checks (0: never)")
    conductance: Optional[ConductanceMap] = param(None, null="weights only",
                                                  doc="metadata from devices fit (not simulated)")

    def relations(self) -> Iterator[Relation]:
        """Rules between fields (checked after each field's own range)."""
        span = self.w_max - self.w_min
        yield "w_min", self.w_min, self.w_min < self.w_max, f"must be < w_max ({self.w_max:g})"
        if self.one_sided:
            yield "w_min", self.w_min, self.w_min >= 0, "must be >= 0 for a one-sided (potentiation-only) device"
        else:
            yield "w_min", self.w_min, self.w_min <= 0 <= self.w_max, \
                f"the range [w_min, w_max] must contain 0 (w_max={self.w_max:g})"
        if self.states() is None:
            yield "dw_min", self.dw_min, self.dw_min <= span, f"must be <= w_max - w_min ({span:g}): at least one state"
        yield "reset", self.reset, self.w_min <= self.reset <= self.w_max, \
            f"must lie in [w_min, w_max] = [{self.w_min:g}, {self.w_max:g}]"
        for name in ("reset_dtod", "reset_std", "reference_std", "diffusion"):
            value = getattr(self, name)
            yield name, value, value <= span, f"must be in [0, w_max - w_min] = [0, {span:g}]"
        yield "reference_mean", self.reference_mean, abs(self.reference_mean) <= span, \
            f"must be in [-(w_max - w_min), w_max - w_min] = [{-span:g}, {span:g}]"
        yield "refresh_lower_thres", self.refresh_lower_thres, self.refresh_lower_thres < self.refresh_upper_thres, \
            f"must be < refresh_upper_thres ({self.refresh_upper_thres:g})"

    def states(self) -> Optional[int]:
        """The paper's ``n_states`` where the family takes it (dw_min = (w_max - w_min) / n_states)."""
        return None


@dataclass
class AffineDevice(DeviceConfig):
    """The families whose step is affine in w and whose granularity is dw_min: they take the paper's ``n_states``."""

    n_states: Optional[int] = param(None, ge=1, null="use dw_min", unit="states",
                                    doc="paper parametrisation: dw_min = (w_max - w_min) / n_states")

    def states(self) -> Optional[int]:
        return self.n_states


@family("constant_step")
@dataclass
class ConstantStepDevice(AffineDevice):
    """aihwkit ConstantStepDevice: ``w +/- a (1 + s xi)`` (noise is the same additive or multiplicative)."""

    family: str = "constant_step"


@family("linear_step")
@dataclass
class LinearStepDevice(AffineDevice):
    """aihwkit LinearStepDevice: step ``a + k w`` with ``k = -gamma a / R`` (R the mean or own bound)."""

    family: str = "linear_step"
    gamma_up: float = param(0.0, ge=-100.0, le=100.0, unit=REL, doc="step reduction toward w_max")
    gamma_down: float = param(0.0, ge=-100.0, le=100.0, unit=REL, doc="step reduction toward w_min")
    gamma_up_dtod: float = param(0.05, **SPREAD, doc="d2d spread of gamma_up")
    gamma_down_dtod: float = param(0.05, **SPREAD, doc="d2d spread of gamma_down")
    allow_increasing: bool = param(False, doc="keep the sign of gamma (steps may grow toward a bound)")
    mean_bound_reference: bool = param(True, doc="R = the mean bound (else each device's own)")
    mult_noise: bool = param(True, doc="noise s |step| (else s a)")


@family("soft_bounds")
@dataclass
class SoftBoundsDevice(AffineDevice):
    """aihwkit SoftBounds(Reference)Device, paper Eq. 4: ``a_up (1 - w/b_max)``, ``a_dn (1 - w/b_min)``."""

    family: str = "soft_bounds"
    mult_noise: bool = param(False, doc="noise s |step| (else s a, inside the bracket: paper Eq. 4)")
    slope_up_dtod: float = param(0.0, **SPREAD, doc="d2d spread of the up slope (moves b_max)")
    slope_down_dtod: float = param(0.0, **SPREAD, doc="d2d spread of the down slope (moves b_min)")


@family("pow_step")
@dataclass
class PowStepDevice(DeviceConfig):
    """aihwkit PowStepDevice: ``a_up o^gamma_up``, ``a_dn (1 - o)^gamma_dn``, ``o = (b_max - w)/(b_max - b_min)``."""

    family: str = "pow_step"
    pow_gamma: float = param(1.0, gt=0.0, le=100.0, doc="exponent of the step law")
    pow_gamma_dtod: float = param(0.1, **SPREAD, doc="d2d spread of the exponent")
    pow_up_down: float = param(0.0, gt=-1.0, lt=1.0, unit=REL, doc="up/down asymmetry of the exponent")
    pow_up_down_dtod: float = param(0.0, **SPREAD, doc="d2d spread of that asymmetry")


EXP_LIMIT = 50.0  # |gamma| (2|a| + |b|): the exponent of exp_step stays finite in float32 (e^88 overflows)


@family("exp_step")
@dataclass
class ExpStepDevice(DeviceConfig):
    """aihwkit ExpStepDevice: ``y_up = max(1 - A_up e^{gamma_up z}, 0)``, ``y_dn = max(1 - A_down e^{-gamma_down z}, 0)``,
    ``z = 2 a w / (b_max - b_min) + b``; noise ``s (|step| + dw_min_std_add + dw_min_std_slope |w|)``."""

    family: str = "exp_step"
    A_up: float = param(0.00081, ge=-1e6, le=1e6, doc="prefactor of the up saturation")
    A_down: float = param(0.36833, ge=-1e6, le=1e6, doc="prefactor of the down saturation")
    gamma_up: float = param(12.44625, ge=-100.0, le=100.0, doc="rate of the up saturation")
    gamma_down: float = param(12.78785, ge=-100.0, le=100.0, doc="rate of the down saturation")
    a: float = param(0.244, ge=-100.0, le=100.0, doc="scale of w in z")
    b: float = param(0.2425, ge=-100.0, le=100.0, doc="offset of z")
    dw_min_std_add: float = param(0.0, ge=0.0, unit=W, doc="additive part of the c2c noise")
    dw_min_std_slope: float = param(0.0, ge=0.0, unit=W, doc="part of the c2c noise that grows with |w|")

    def relations(self) -> Iterator[Relation]:
        yield from super().relations()
        z_max = 2.0 * abs(self.a) + abs(self.b)
        for name in ("gamma_up", "gamma_down"):
            value = getattr(self, name)
            yield name, value, abs(value) * z_max <= EXP_LIMIT, \
                f"|{name}| (2|a| + |b|) must be <= {EXP_LIMIT:g} (the step's exponential overflows)"
        span = self.w_max - self.w_min
        for name in ("dw_min_std_add", "dw_min_std_slope"):
            value = getattr(self, name)
            yield name, value, value <= span, f"must be in [0, w_max - w_min] = [0, {span:g}]"


@family("piecewise_step")
@dataclass
class PiecewiseStepDevice(DeviceConfig):
    """aihwkit PiecewiseStepDevice: the step is ``a`` times a node table linearly interpolated over [b_min, b_max]."""

    family: str = "piecewise_step"
    piecewise_up: list[float] = param([1.0], ge=0.0, le=1000.0, unit="dw_min", doc="up-step nodes from b_min to b_max")
    piecewise_down: list[float] = param([1.0], ge=0.0, le=1000.0, unit="dw_min", doc="down-step nodes")

    def relations(self) -> Iterator[Relation]:
        yield from super().relations()
        up, down = self.piecewise_up, self.piecewise_down
        yield "piecewise_up", up, len(up) >= 1, "must have at least 1 node"
        yield "piecewise_down", down, len(down) == len(up), f"must have as many nodes as piecewise_up ({len(up)})"
        yield "piecewise_up", up, up[len(up) // 2] > 0, \
            "the middle node must be > 0 (it sets the granularity, aihwkit dw_min * piecewise_up[n/2])"


def build_device(values: Mapping[str, Any], prefix: str = "device") -> DeviceConfig:
    """A checked device config of the family that ``values`` names (a key of another family is an error)."""
    return FAMILIES.build(values, prefix)


def make_device(family: str, **values: Any) -> DeviceConfig:
    """A checked device config from keyword arguments: ``make_device("soft_bounds", n_states=20)``."""
    return build_device({"family": family, **values})
