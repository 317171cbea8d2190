"""Torch layers whose weight lives on analog arrays.

Forward and backward are analog MVMs through the IO periphery; backward also keeps ``x`` and
``d`` so that the optimizer step can hand them to the layer's algorithm as pulses. The bias is
digital (aihwkit's default). Activations carry a leading population axis P when P > 1.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from analog_train.algorithms.base import AnalogAlgorithm
from analog_train.crossbar.io import AnalogMVM


class _AnalogMVM(torch.autograd.Function):
    """``y = W x`` through the forward IO; backward ``W^T d`` through the backward IO, keeping x, d."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, analog_ctx: Tensor, layer: "AnalogLinear") -> Tensor:
        ctx.layer = layer
        weight = layer.algorithm.read_weight()  # valid until the optimizer step, kept for backward
        ctx.save_for_backward(x, weight)
        return layer.mvm(weight, x, layer.generator, bound_management=True)

    @staticmethod
    def backward(ctx: Any, grad_y: Tensor) -> tuple[Tensor | None, Tensor, None]:
        layer: AnalogLinear = ctx.layer
        x, weight = ctx.saved_tensors
        layer.keep(x, grad_y)
        grad_x = None
        if ctx.needs_input_grad[0]:
            w_t = weight.transpose(-1, -2)
            grad_x = layer.mvm(w_t, grad_y, layer.generator, bound_management=False)
        return grad_x, grad_y.new_zeros(()), None


class AnalogLinear(nn.Module):
    """Fully connected layer on an analog tile; input ``(B, in)`` or ``(P, B, in)``, output ``(P, B, out)``."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        algorithm: AnalogAlgorithm,
        io: Any,
        generator: torch.Generator,
        bias: bool = True,
    ) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.algorithm = algorithm
        self.io = io
        self.mvm = AnalogMVM(io)  # the periphery, worked out once
        self.generator = generator
        self.population = algorithm.weight.shape[0]
        self.bias = nn.Parameter(torch.zeros(self.population, 1, out_features)) if bias else None
        # A parameter in the graph so that backward runs (and keeps d) even when x needs no grad.
        self.analog_ctx = nn.Parameter(torch.zeros(()))
        self._kept: list[tuple[Tensor, Tensor]] = []

    def reset_parameters(self, generator: torch.Generator) -> None:
        """nn.Linear's initialisation, programmed onto the devices (and clipped to their ranges)."""
        bound = 1.0 / self.in_features**0.5
        shape = (self.population, self.out_features, self.in_features)
        w = (torch.rand(shape, generator=generator) * 2 - 1) * bound
        self.algorithm.set_weights(w)
        if self.bias is not None:
            with torch.no_grad():
                self.bias.copy_((torch.rand(self.bias.shape, generator=generator) * 2 - 1) * bound)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.population, *x.shape)
        y = _AnalogMVM.apply(x, self.analog_ctx, self)
        return y + self.bias if self.bias is not None else y

    def keep(self, x: Tensor, d: Tensor) -> None:
        self._kept.append((x.detach(), d.detach()))

    def apply_update(self, lr: float) -> None:
        """Hand the kept (x, d) of this step to the algorithm as one update, then run device upkeep."""
        if not self._kept:
            return
        if len(self._kept) == 1:  # one forward per step, the usual case: no copy
            x, d = self._kept[0]
        else:
            x = torch.cat([x for x, _ in self._kept], dim=1)
            d = torch.cat([d for _, d in self._kept], dim=1)
        self._kept.clear()
        self.algorithm.update(x, d, lr)
        self.algorithm.post_step()

    @property
    def weight(self) -> Tensor:
        return self.algorithm.weight

    def extra_repr(self) -> str:
        return f"in={self.in_features}, out={self.out_features}, P={self.population}, algorithm={type(self.algorithm).__name__}"
