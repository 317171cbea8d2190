"""One-sided unit cell for potentiation-only devices such as PCM (aihwkit ``OneSidedUnitCell``).

Each weight is a pair of devices, ``W = G+ - G-``, that are only ever pulsed up: an up update is an
up pulse on G+, a down update an up pulse on G-. Both devices therefore creep toward saturation;
once per ``refresh_every`` optimizer steps every pair where the larger device is above
``refresh_upper_thres * w_max`` and the smaller above ``refresh_lower_thres * w_max`` is
refreshed as in aihwkit's ``refreshWeights``: read both, reset both, and re-program the difference
onto the device that was larger with one pulsed update (BL 31, a one-hot x per column).

Simplifications against aihwkit (stated so results can be compared): the refresh read is exact (no
forward IO noise; ``devices`` does not depend on the crossbar periphery), and the refresh write
draws each device's pulse count from its exact marginal ``Binomial(BL_col, diff/(eps BL_col))``
(``BL_col`` from the column's largest difference, as update BL management does) without the
correlation that the column's shared x bits add, then applies the pulses with the fast engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import Tensor

from analog_train.devices.array import DeviceArray, load_in_place
from analog_train.devices.parameters import resolve, resolve_replicas

# Pulse-train length of the refresh write (aihwkit PCMPreset: refresh_update = PresetUpdateParameters).
REFRESH_BL = 31


class OneSidedArray:
    """A ``(P, out, in)`` array of device pairs with the interface of :class:`DeviceArray`."""

    def __init__(
        self,
        cfgs: Any | Sequence[Any],
        shape: tuple[int, int],
        generator: torch.Generator,
        population: int | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        self.cfgs = resolve_replicas(cfgs, population)
        if not all(c.one_sided for c in self.cfgs):
            raise ValueError("all replicas of one array must share device.one_sided")
        plain = [replace(c, one_sided=False) for c in self.cfgs]
        # Two independent draws of the same device (aihwkit copies the parameters, copy_inverted=False).
        self.plus = DeviceArray(plain, shape, generator, population=population, dtype=dtype, device=device)
        self.minus = DeviceArray(plain, shape, generator, population=population, dtype=dtype, device=device)
        self.shape, self.dtype, self.device = self.plus.shape, dtype, self.plus.device
        self.eps = self.plus.eps
        self.w_max = torch.tensor([abs(c.w_max) for c in self.cfgs], dtype=dtype, device=self.device).view(-1, 1, 1)
        self.upper = torch.tensor([c.refresh_upper_thres for c in self.cfgs], dtype=dtype, device=self.device).view(-1, 1, 1)
        self.lower = torch.tensor([c.refresh_lower_thres for c in self.cfgs], dtype=dtype, device=self.device).view(-1, 1, 1)
        self.refresh_every = self.cfgs[0].refresh_every
        self.refresh_count = torch.zeros(self.shape, dtype=dtype, device=self.device)
        self._steps = 0

    # Pulse masks go to one device of the pair by sign, which apply_masks does not model: the pair
    # takes counts (apply_counts), which each device's own array may apply in a compiled kernel.
    kernel_ready = False

    # -- reading ---------------------------------------------------------------------------------
    @property
    def weight(self) -> Tensor:
        """Visible weight ``G+ - G-``."""
        return self.plus.weight - self.minus.weight

    @property
    def pulse_count(self) -> Tensor:
        """Pulses received by the pair (both devices, refresh writes included)."""
        return self.plus.pulse_count + self.minus.pulse_count

    def symmetry_point(self) -> Tensor:
        """Zero: both devices only grow, so there is no fixed point of alternating pulses to report."""
        return torch.zeros(self.shape, dtype=self.dtype, device=self.device)

    # -- writing ---------------------------------------------------------------------------------
    def set_weights(self, w: Tensor, generator: torch.Generator | None = None) -> None:
        """aihwkit ``onSetWeights``: the positive part on G+, the negative part on G-."""
        w = w.to(self.dtype).expand(self.shape)
        self.plus.set_weights(torch.clamp(w, min=0.0), generator)
        self.minus.set_weights(torch.clamp(-w, min=0.0), generator)

    def pulse_once(self, sign: Tensor, generator: torch.Generator) -> None:
        """Up (+1) is an up pulse on G+, down (-1) an up pulse on G-."""
        self.plus.pulse_once((sign > 0).to(self.dtype), generator)
        self.minus.pulse_once((sign < 0).to(self.dtype), generator)

    def apply_counts(self, n_up: Tensor, n_dn: Tensor, generator: torch.Generator) -> None:
        """Up counts potentiate G+, down counts potentiate G-."""
        zero = torch.zeros_like(n_up)
        self.plus.apply_counts(n_up, zero, generator)
        self.minus.apply_counts(n_dn, zero, generator)

    def post_step(self, generator: torch.Generator) -> None:
        """Refresh (every ``refresh_every`` steps) at the end of the update, then decay and diffusion."""
        self._steps += 1
        if self.refresh_every > 0 and self._steps % self.refresh_every == 0:
            self.refresh(generator)
        self.plus.post_step(generator)
        self.minus.post_step(generator)

    def state_dict(self) -> dict[str, Any]:
        """Both devices' states, the refresh counts and the step counter (the refresh schedule)."""
        return {"plus": self.plus.state_dict(), "minus": self.minus.state_dict(),
                "refresh_count": self.refresh_count.clone(), "steps": self._steps}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Copy a :meth:`state_dict` in place."""
        self.plus.load_state_dict(state["plus"])
        self.minus.load_state_dict(state["minus"])
        load_in_place(self.refresh_count, state["refresh_count"], "refresh_count")
        self._steps = int(state["steps"])

    def refresh(self, generator: torch.Generator) -> Tensor:
        """Reset and re-program every pair past the thresholds; return the mask of refreshed pairs."""
        wp, wm = self.plus.weight, self.minus.weight
        rp, rm = wp / self.w_max, wm / self.w_max
        mask = torch.where(wp > wm, (rp > self.upper) & (rm > self.lower), (rp > self.lower) & (rm > self.upper))
        if not bool(mask.any()):
            return mask
        diff = torch.where(mask, wp - wm, torch.zeros_like(wp))
        self.plus.reset(mask, generator)
        self.minus.reset(mask, generator)
        zero = torch.zeros_like(diff)
        for target, part in ((self.plus, torch.clamp(diff, min=0.0)), (self.minus, torch.clamp(-diff, min=0.0))):
            n = self._write_counts(part, generator)
            if bool(n.any()):
                target.apply_counts(n, zero, generator)
        self.refresh_count += mask.to(self.dtype)
        return mask

    def _write_counts(self, target: Tensor, generator: torch.Generator) -> Tensor:
        """Pulse counts of one refresh write of ``target`` (>= 0) per column (see module docstring)."""
        eps = self.eps.view(-1, 1, 1)
        col_max = target.amax(dim=1, keepdim=True)
        bl = torch.clamp(torch.ceil(col_max / eps), 1.0, float(REFRESH_BL)).expand_as(target).contiguous()
        prob = torch.clamp(target / (eps * bl), 0.0, 1.0)
        return torch.binomial(bl, prob, generator=generator)


def make_array(
    cfgs: Any | Sequence[Any],
    shape: tuple[int, int],
    generator: torch.Generator,
    population: int | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> DeviceArray | OneSidedArray:
    """The array for ``cfgs``: a :class:`OneSidedArray` when ``one_sided`` is set, else a :class:`DeviceArray`."""
    first = cfgs[0] if isinstance(cfgs, Sequence) else cfgs
    cls = OneSidedArray if resolve(first).one_sided else DeviceArray
    return cls(cfgs, shape, generator, population=population, dtype=dtype, device=device)
