"""Schemas of the crossbar periphery: the analog MVM (SPEC 5, ``io``) and the pulsed update (SPEC 3, ``update``)."""

from __future__ import annotations

from dataclasses import dataclass

from analog_train.config.rules import param


@dataclass
class IOConfig:
    """Analog MVM periphery (SPEC 5; aihwkit ``PresetIOParameters``)."""

    is_perfect: bool = param(False, doc="exact matrix products: no noise, quantisation or clipping")
    inp_bound: float = param(1.0, gt=0.0, doc="input (DAC) range")
    inp_res: float = param(1.0 / 126.0, ge=0.0, lt=1.0, doc="DAC step over the range (0: none)")
    inp_noise: float = param(0.0, ge=0.0, le=10.0, doc="Gaussian input noise")
    out_bound: float = param(20.0, gt=0.0, doc="output (ADC) range")
    out_res: float = param(1.0 / 510.0, ge=0.0, lt=1.0, doc="ADC step over the range (0: none)")
    out_noise: float = param(0.1, ge=0.0, doc="Gaussian output noise")
    noise_management: str = param("abs_max", choices=("abs_max", "none"), doc="scale inputs by max|x|")
    bound_management: str = param("iterative", choices=("iterative", "none"), doc="halve inputs while outputs clip")
    max_bm_factor: float = param(1000.0, ge=1.0, doc="largest input down-scaling of bound management")
    max_bm_res: float = param(0.25, gt=0.0, le=1.0, doc="stop bound management at this input resolution")
    max_input_size: int = param(512, ge=1, doc="tile size: inputs")
    max_output_size: int = param(512, ge=1, doc="tile size: outputs")


@dataclass
class UpdateConfig:
    """Pulsed outer-product update (SPEC 3; aihwkit ``UpdateParameters``)."""

    engine: str = param("fast", choices=("fast", "exact"), doc="exact: sample by sample, pulse by pulse")
    desired_bl: int = param(31, ge=1, le=1000, unit="pulses", doc="BL, the longest pulse train")
    update_bl_management: bool = param(True, doc="shorten trains of small updates")
    update_management: bool = param(True, doc="balance the x and d pulse probabilities")
    um_grad_scale: float = param(1.0, gt=0.0, doc="scale of d in update management")
