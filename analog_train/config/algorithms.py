"""Algorithm schemas (SPEC 4): one dataclass per ``algo.name``, aihwkit's compound parameter names.

``fp`` and ``sgd`` take no settings; TTv2, c-TTv2 and AGAD share the transfer settings of
:class:`TransferConfig` (aihwkit ``ChoppedTransferCompound``/``DynamicTransferCompound``), the
chopped ones add their choppers and AGAD its ``tail_weightening``. Each is registered once with
:func:`algorithm`; a key that the chosen algorithm does not have is an error naming it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from analog_train.config.crossbar import IOConfig
from analog_train.config.rules import Registry, Relation, param

NAMES = Registry("name", lambda name: f"algo={name}")
ALGORITHMS: dict[str, type["AlgoConfig"]] = NAMES.schemas
algorithm = NAMES.register  # @algorithm("agad"): the schema of algo.name=agad


@dataclass
class AlgoConfig:
    ANALOG = True  # trains on analog arrays (device and io apply)

    name: str = param("", doc="the algorithm")


@algorithm("fp")
@dataclass
class FPConfig(AlgoConfig):
    """Digital floating-point SGD, the baseline (device and io unused)."""

    ANALOG = False
    name: str = "fp"


@algorithm("sgd")
@dataclass
class SGDConfig(AlgoConfig):
    """In-memory SGD: the pulsed update applied to the weight array (settings in ``update``)."""

    name: str = "sgd"


def _transfer_io() -> IOConfig:
    return IOConfig(noise_management="none", bound_management="none")


@dataclass
class TransferConfig(AlgoConfig):
    """Settings of the two-array algorithms: A accumulates, H buffers, C is the weight (SPEC 4)."""

    fast_lr: float = param(0.5, gt=0.0, doc="eta_0 of A's learning rate (paper Eq. 15)")
    auto_scale: bool = param(True, doc="eta_A = fast_lr BL eps_A / (mu_x mu_d)")
    auto_momentum: float = param(0.99, ge=0.0, lt=1.0, doc="momentum of the running max|x|, max|d|")
    auto_granularity: float = param(1000.0, gt=0.0, doc="gamma_0 of the buffer rate (paper Eq. 14)")
    transfer_every: int = param(1, ge=1, unit="samples", doc="n_s: samples between column reads")
    buffer_granularity: float = param(1.0, gt=0.0, doc="buffer threshold scale")
    transfer_desired_bl: int = param(1, ge=1, le=1000, unit="pulses",
                                     doc="most pulses per element and write to C (aihwkit transfer_update.desired_bl)")
    momentum: float = param(0.0, ge=0.0, lt=1.0, doc="kept part of H after a write")
    forget_buffer: bool = param(True, doc="H <- momentum H after a write (else H -= (1 - momentum) n)")
    transfer_forward: IOConfig = param(_transfer_io(), doc="periphery of the column reads of A")
    device_c: dict[str, Any] = param({}, doc="device keys that differ on the weight array C")

    def relations(self) -> Iterator[Relation]:
        io = self.transfer_forward
        yield "transfer_forward.inp_noise", io.inp_noise, io.inp_noise == 0, \
            "must be 0 (transfer reads are one-hot column reads)"


@algorithm("ttv2")
@dataclass
class TTv2Config(TransferConfig):
    """Tiki-Taka v2: A read against its reference R (aihwkit ChoppedTransferCompound without choppers)."""

    name: str = "ttv2"


@algorithm("cttv2")
@dataclass
class CTTv2Config(TransferConfig):
    """Chopped TTv2: input (and optional output) choppers on A."""

    name: str = "cttv2"
    in_chop_prob: float = param(0.1, ge=0.0, le=1.0, doc="rho: chopper flip probability per read (0: none)")
    in_chop_random: bool = param(True, doc="random flips (else regular, every ceil(1/rho) reads)")
    out_chop_prob: float = param(0.0, ge=0.0, le=1.0, doc="output chopper flip probability per pass")


@algorithm("agad")
@dataclass
class AGADConfig(CTTv2Config):
    """AGAD: regular choppers and a digital dynamic reference p_ref instead of R."""

    name: str = "agad"
    in_chop_prob: float = param(0.1, gt=0.0, le=1.0, doc="rho: the chopper period is max(ceil(1/rho), 2) reads")
    in_chop_random: bool = param(False, doc="also flip at random (aihwkit AGAD: regular only)")
    tail_weightening: float = param(5.0, ge=0.0, doc="beta = min(tail_weightening / N, 1)")


TRANSFER_ALGORITHMS = tuple(n for n, c in ALGORITHMS.items() if issubclass(c, TransferConfig))
ANALOG_ALGORITHMS = tuple(n for n, c in ALGORITHMS.items() if c.ANALOG)


def build_algo(values: Mapping[str, Any], prefix: str = "algo") -> AlgoConfig:
    """A checked algorithm config of the algorithm ``values['name']`` (a key of another one is an error)."""
    return NAMES.build(values, prefix)


def make_algo(name: str, **values: Any) -> AlgoConfig:
    """A checked algorithm config from keyword arguments: ``make_algo("agad", in_chop_prob=0.05)``."""
    return build_algo({"name": name, **values})
