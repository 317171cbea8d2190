"""The devices of one crossbar array: drawn once, then pulsed (SPEC 2).

State tensors are ``(P, out, in)``: P independent replicas (seeds or sweep points), each with
its own config if wanted (e.g. one ``n_states`` per replica). The visible weight is the
conductance minus the reference conductance (SP subtraction and programming offset), plus write
noise when configured.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from analog_train.devices import kernels
from analog_train.devices.families import DeviceFamily, flat_nonzero, get_family
from analog_train.devices.parameters import draw_common, granularity, multiplicative_noise, resolve_replicas


# Below this fraction of touched devices the fast engine gathers them and works on a short vector.
SPARSE_FRACTION = 0.5
_NO_VISIBLE = np.zeros(0, dtype=np.float32)


class _StateTensor:
    """A state tensor of a :class:`DeviceArray` (``g``, ``w_noise``): setting it drops the kept visible weight."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = "_" + name

    def __get__(self, array: Any, owner: type | None = None) -> Any:
        return self if array is None else getattr(array, self.slot)

    def __set__(self, array: Any, value: Tensor) -> None:
        setattr(array, self.slot, value)
        array._visible = None


class DeviceArray:
    """A ``(P, out, in)`` array of devices of one family."""

    g = _StateTensor()  # conductance of every device, (P, out, in)
    w_noise = _StateTensor()  # write noise of every device (zeros without write noise), (P, out, in)
    STATE = ("g", "w_noise", "pulse_count")  # what pulses change (state_dict)

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
        families = {c.family for c in self.cfgs}
        mult = {multiplicative_noise(c) for c in self.cfgs}
        if len(families) != 1 or len(mult) != 1:
            raise ValueError("all replicas of one array must share device.family and device.mult_noise")
        if any(c.one_sided for c in self.cfgs):
            raise ValueError("device.one_sided=true: build the array with make_array (a OneSidedArray of two devices)")
        self.family: DeviceFamily = get_family(families.pop()).configure(self.cfgs)
        self.mult_noise = mult.pop()
        self.shape = (len(self.cfgs), *shape)
        self.dtype, self.device = dtype, torch.device(device)

        per_replica = []
        for cfg in self.cfgs:
            p = draw_common(cfg, shape, generator)
            self.family.draw(cfg, p, shape, generator)
            per_replica.append(p)
        self.params: dict[str, Tensor] = {
            k: torch.stack([p[k] for p in per_replica]).to(dtype=dtype, device=self.device) for k in per_replica[0]
        }
        # Affine families on the CPU update through the compiled kernels, which read one row of
        # parameters per device (kernels.ROW_KEYS); the torch implementation (other families, GPUs,
        # ANALOG_TRAIN_KERNELS=0) reads the family's pulse_keys, packed both ways.
        self._kernel_rows = None
        if self.family.affine and self.device.type == "cpu" and kernels.enabled():
            self._kernel_rows = torch.stack([self.params[k].reshape(-1) for k in kernels.ROW_KEYS], 1).numpy()
        else:
            self._keys = self.family.pulse_keys
            self._packed = torch.stack([self.params[k].reshape(-1) for k in self._keys])
            self._flat_params = dict(zip(self._keys, self._packed.unbind(0)))
            # The same parameters device-major, (N, K): gathering a few devices then reads one cache
            # line per device instead of one per device and parameter.
            self._packed_rows = self._packed.t().contiguous()
            self._sparse_limit = SPARSE_FRACTION * self._packed.shape[1]
        # Flat index of the first element of every (replica, row), (P, out, 1): column k of all rows is base + k.
        n_p, n_out, n_in = self.shape
        self._row_base = (torch.arange(n_p, device=self.device).view(-1, 1, 1) * (n_out * n_in)
                          + torch.arange(n_out, device=self.device).view(1, -1, 1) * n_in)
        affine = self.family.affine
        self._any_flat = affine and bool((self.params["flat_up"] > 0).any() or (self.params["flat_dn"] > 0).any())
        self.eps = torch.tensor([granularity(c) for c in self.cfgs], dtype=dtype, device=self.device)
        self.sp = self.family.symmetry_point(self.params)
        subtract = torch.tensor([c.subtract_symmetry_point for c in self.cfgs], device=self.device).view(-1, 1, 1)
        self.ref = self.params["ref_offset"] + torch.where(subtract, self.sp, torch.zeros_like(self.sp))
        self.has_write_noise = any(c.write_noise_std > 0 for c in self.cfgs)
        self.has_decay = any(c.lifetime > 0 for c in self.cfgs)
        self.has_diffusion = any(c.diffusion > 0 for c in self.cfgs)
        self._visible: Tensor | None = None  # read_weight's kept visible weight; None: to be computed
        self.g = self.family.clip(self.ref.clone(), self.params)
        self.w_noise = torch.zeros(self.shape, dtype=dtype, device=self.device)
        self.pulse_count = torch.zeros(self.shape, dtype=dtype, device=self.device)
        if self._kernel_rows is not None:  # the reads of apply_masks subtract it per device
            self._ref_flat = self.ref.expand(self.shape).reshape(-1).contiguous().numpy()
        self._numpy_views = kernels.NumpyViews()  # kernel_state's views of g, w_noise, pulse_count

    # -- reading ---------------------------------------------------------------------------------
    @property
    def weight(self) -> Tensor:
        """Visible weight: conductance minus reference, plus write noise (a new tensor)."""
        w = self.g - self.ref
        return w + self.w_noise if self.has_write_noise else w

    def read_weight(self) -> Tensor:
        """The visible weight for this step's reads, kept from step to step: not a copy.

        The forward pass reads the slow array C of the transfer algorithms every mini-batch, and
        the transfer writes change only a few of its columns, which the compiled writes bring up
        to date in place (``kernel_state(keep_visible=True)``); any other change drops it. Valid until the
        array changes next: keep :attr:`weight` instead.
        """
        if self._visible is None:
            self._visible = self.weight
        return self._visible

    def symmetry_point(self) -> Tensor:
        """Each device's SP in visible-weight units (where alternating pulses converge)."""
        return self.sp - self.ref

    # -- writing ---------------------------------------------------------------------------------
    def set_weights(self, w: Tensor, generator: torch.Generator | None = None) -> None:
        """Program the visible weights exactly (clipped to each device's range)."""
        self.g = self.family.clip(w.to(self.dtype).expand(self.shape) + self.ref, self.params)
        if self.has_write_noise:
            self._redraw_write_noise(torch.ones(self.shape, dtype=torch.bool, device=self.device), generator)

    def pulse_once(self, sign: Tensor, generator: torch.Generator) -> None:
        """One pulse per element where ``sign`` is +1 (up) or -1 (down): the exact engine's step."""
        touched = sign != 0
        self.g = self.family.pulse(self.g, self.params, sign, self.mult_noise, generator)
        self.pulse_count += touched
        if self.has_write_noise:
            self._redraw_write_noise(touched, generator)

    def apply_counts(self, n_up: Tensor, n_dn: Tensor, generator: torch.Generator) -> None:
        """Apply per-element pulse counts: half the ups, all the downs, the other half of the ups.

        The training updates hand it one same-sign run per device at a time
        (:meth:`~analog_train.crossbar.pulsed_update.PulseTrains.runs`), since no fixed order of a
        mini-batch's many ups and downs matches the order its samples give them. Affine
        families apply the three phases as one composite map with one noise draw
        (:meth:`AffineFamily.counts`); the others sub-step each phase. On the CPU the affine families
        run the same computation in a compiled kernel (:mod:`analog_train.devices.kernels`); in torch,
        sparse updates (a minority of the devices touched) gather those devices first.
        """
        if self._kernel_rows is not None:
            self._kernel_apply(None, n_up, n_dn, generator)
            return
        n_up, n_dn = n_up.to(self.dtype), n_dn.to(self.dtype)
        n_tot = n_up + n_dn
        # The indices of the touched devices give their count too (torch.count_nonzero is slow on CPU).
        idx = flat_nonzero(n_tot.reshape(-1) != 0)
        count = idx.numel()
        if count == 0:
            return
        self.pulse_count += n_tot
        if count < self._sparse_limit:
            self._apply_at(idx, n_up.reshape(-1).index_select(0, idx), n_dn.reshape(-1).index_select(0, idx), generator)
        else:
            g = self._apply_phases(self.g.reshape(-1), self._flat_params, n_up.reshape(-1), n_dn.reshape(-1), generator,
                                   self._packed_rows.t())
            self.g = g.view(self.shape)
        if self.has_write_noise:
            self._redraw_write_noise(n_tot > 0, generator)

    def apply_counts_at(self, cols: Tensor, n_up: Tensor, n_dn: Tensor, generator: torch.Generator,
                        sparse: bool = False) -> None:
        """:meth:`apply_counts` on the distinct columns ``cols`` only, counts ``(P, out, len(cols))``.

        ``sparse=True``: only the elements with a nonzero count are gathered (few pulses).
        """
        idx = (self._row_base + cols.view(1, 1, -1)).reshape(-1)
        if self._kernel_rows is not None:
            self._kernel_apply(idx, n_up, n_dn, generator)
            return
        n_up, n_dn = n_up.to(self.dtype), n_dn.to(self.dtype)
        n_tot = n_up + n_dn
        self.pulse_count.index_add_(2, cols, n_tot)
        n_up, n_dn = n_up.reshape(-1), n_dn.reshape(-1)
        if sparse:
            nz = flat_nonzero(n_tot.reshape(-1) != 0)
            if nz.numel() == 0:
                return
            idx, n_up, n_dn = idx.index_select(0, nz), n_up.index_select(0, nz), n_dn.index_select(0, nz)
        self._apply_at(idx, n_up, n_dn, generator)
        if self.has_write_noise:
            mask = torch.zeros(self.shape, dtype=self.dtype, device=self.device)
            mask.index_add_(2, cols, n_tot)
            self._redraw_write_noise(mask > 0, generator)

    def apply_column_steps(self, cols: Tensor, steps: Tensor, generator: torch.Generator) -> None:
        """``|steps|`` single pulses of ``sign(steps)`` on the distinct columns ``cols``, ``steps (P, out, R)``.

        Compiled kernels only (:attr:`kernel_ready`): the transfer's C writes without gathering.
        """
        kernels.apply_column_steps(self.kernel_state(keep_visible=True), cols.numpy(), steps.contiguous().numpy(),
                                   self.shape[2], kernels.draw_seed(generator))

    @property
    def kernel_ready(self) -> bool:
        """Whether :meth:`apply_masks` is available (compiled kernels: affine family on the CPU)."""
        return self._kernel_rows is not None

    def apply_masks(self, masks: Any, generator: torch.Generator, read_cols: Tensor | None = None,
                    read_samples: Tensor | None = None) -> Tensor:
        """Apply a batch's pulse trains given as bit masks (:class:`~analog_train.crossbar.pulsed_update.PulseMasks`).

        With ``read_cols`` and ``read_samples`` (reads in time order, a column any number of times):
        returns the visible weight of each read column right after its read sample's pulses,
        ``(P, out, R)``, as the transfer algorithms read A (see :func:`kernels.apply_trains`).
        """
        n_p, n_out, _ = self.shape
        if read_cols is None:
            read_cols = read_samples = torch.zeros(0, dtype=torch.int64)
        read_out = torch.empty((n_p, n_out, len(read_cols)), dtype=self.dtype)
        kernels.match_torch_threads()
        kernels.apply_trains(self.kernel_state(), masks.dpos, masks.dneg, masks.xpos, masks.xneg, masks.off,
                             read_samples.numpy(), read_cols.numpy(), kernels.draw_seed(generator), read_out.numpy())
        return read_out

    def kernel_state(self, keep_visible: bool = False) -> kernels.DeviceState:
        """What the compiled kernels update and read (:class:`kernels.DeviceState`): numpy views of the
        flat conductance, write noise and pulse counts, the device rows and the flat reference.

        The kernels change the state behind the setters, so the kept visible weight is dropped, or,
        with ``keep_visible`` (the kernels that bring it up to date as they write), handed over.
        """
        visible = self.read_weight() if keep_visible else None
        self.g = self.g.contiguous()  # (drops the kept visible weight)
        self._visible = visible
        views = self._numpy_views
        return kernels.DeviceState(views(self.g).reshape(-1), views(self.w_noise).reshape(-1),
                                   views(self.pulse_count).reshape(-1), self._kernel_rows, self._ref_flat,
                                   _NO_VISIBLE if visible is None else views(visible).reshape(-1), self.mult_noise,
                                   self.has_write_noise)

    def _kernel_apply(self, idx: Tensor | None, n_up: Tensor, n_dn: Tensor, generator: torch.Generator) -> None:
        """Counts applied in place by the compiled kernel: to every device (``idx`` None) or to ``idx``."""
        seed = kernels.draw_seed(generator)
        state = self.kernel_state()[:4]  # g, w_noise, pulse_count, rows
        counts = tuple(n.reshape(-1).to(self.dtype).contiguous().numpy() for n in (n_up, n_dn))
        if idx is None:
            kernels.apply_dense(*state, *counts, seed, self.mult_noise, self.has_write_noise)
        else:
            kernels.apply_listed(*state, idx.numpy(), *counts, seed, self.mult_noise, self.has_write_noise)

    def _apply_at(self, idx: Tensor, n_up: Tensor, n_dn: Tensor, generator: torch.Generator) -> None:
        """Apply flat counts to the flat element indices ``idx`` (gathered, updated, scattered back)."""
        rows = self._packed_rows.index_select(0, idx)
        p = dict(zip(self._keys, rows.unbind(1)))  # one op for all the column views
        g_flat = self.g.reshape(-1)
        g = self._apply_phases(g_flat.index_select(0, idx), p, n_up, n_dn, generator, rows.t())
        self.g = g_flat.index_copy(0, idx, g).view(self.shape)

    # -- checkpoints -----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Tensor]:
        """What pulses change: conductances, write noise, pulse counts and the kept visible weight.

        The per-device parameters are not included: they follow from the construction seed.
        """
        state = {name: getattr(self, name).clone() for name in self.STATE}
        if self._visible is not None:  # kept up to date in place by the compiled writes: saved as it is
            state["visible"] = self._visible.clone()
        return state

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Copy a :meth:`state_dict` into this array's tensors in place (the kernels hold numpy views of them)."""
        for name in self.STATE:
            load_in_place(getattr(self, name), state[name], name)
        self._visible = None
        if "visible" in state:
            load_in_place(self.read_weight(), state["visible"], "visible")

    def weight_at(self, cols: Tensor) -> Tensor:
        """Visible weight of columns ``cols``, ``(P, out, len(cols))`` (without computing all of it)."""
        w = self.g.index_select(2, cols) - self.ref.index_select(2, cols)
        return w + self.w_noise.index_select(2, cols) if self.has_write_noise else w

    def _apply_phases(self, g: Tensor, p: dict[str, Tensor], n_up: Tensor, n_dn: Tensor, gen: torch.Generator,
                      packed: Tensor | None = None) -> Tensor:
        if self.family.affine:
            return self.family.counts(g, p, n_up, n_dn, self.mult_noise, gen, any_flat=self._any_flat,
                                      packed=None if packed is None else (packed, self._keys))
        first_up = torch.div(n_up, 2, rounding_mode="floor")
        for n, up in ((first_up, True), (n_dn, False), (n_up - first_up, True)):
            if bool(n.any()):  # single up pulses leave the first half empty
                g = self.family.pulses(g, p, n, up, self.mult_noise, gen)
        return g

    def reset(self, mask: Tensor, generator: torch.Generator) -> None:
        """aihwkit ``resetAtIndices``: where ``mask``, visible weight ``reset_bias + reset_std xi``, clipped."""
        if not bool(mask.any()):
            return
        target = self.params["reset_bias"] + self.params["reset_std"] * sparse_randn(mask, generator, self.dtype)
        self.g = torch.where(mask, self.family.clip(target + self.ref, self.params), self.g)
        if self.has_write_noise:
            self._redraw_write_noise(mask, generator)

    def post_step(self, generator: torch.Generator) -> None:
        """Once per optimizer step: lifetime decay toward the reset bias, then diffusion."""
        if self.has_decay:
            w = self.g - self.ref
            b = self.params["reset_bias"]
            self.g = self.family.clip((w - b) * self.params["decay"] + b + self.ref, self.params)
        if self.has_diffusion:
            noise = torch.randn(self.shape, generator=generator, dtype=self.dtype, device=self.device)
            self.g = self.family.clip(self.g + self.params["diffusion"] * noise, self.params)
        if self.has_write_noise and (self.has_decay or self.has_diffusion):
            self._redraw_write_noise(torch.ones(self.shape, dtype=torch.bool, device=self.device), generator)

    def _redraw_write_noise(self, mask: Tensor, generator: torch.Generator | None) -> None:
        if generator is None:
            generator = torch.Generator(device=self.device).manual_seed(0)
        fresh = self.params["write_noise"] * sparse_randn(mask, generator, self.dtype)
        self.w_noise = torch.where(mask, fresh, self.w_noise)


def load_in_place(target: Tensor, saved: Tensor, name: str) -> None:
    """``target.copy_(saved)`` after checking the shape (``copy_`` would broadcast a wrong one silently)."""
    if tuple(saved.shape) != tuple(target.shape):
        raise ValueError(f"{name}: the saved state has shape {tuple(saved.shape)}, this one {tuple(target.shape)}")
    target.copy_(saved)


def sparse_randn(mask: Tensor, gen: torch.Generator, dtype: torch.dtype) -> Tensor:
    """Standard normals where ``mask`` is set, zeros elsewhere; draws only what is needed."""
    count = int(mask.sum().item())
    if count == mask.numel():
        return torch.randn(mask.shape, generator=gen, dtype=dtype, device=mask.device)
    out = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    if count:
        out[mask] = torch.randn(count, generator=gen, dtype=dtype, device=mask.device)
    return out
