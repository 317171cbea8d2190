"""Torch layers whose weight lives on an analog tile, all on one base (:class:`AnalogLayer`).

A layer maps its input onto tile vectors ``x (P, N, in)`` (a linear layer: the samples; a
convolution: every patch of every image; the LSTM's gate tile: every time step), reads
``y = W x`` through the forward IO periphery and, in backward, ``W^T d`` through the backward
periphery, keeping each ``(x, d)`` pair. The optimizer step hands all pairs of the step to the
layer's algorithm as one pulsed update, in the order the forward pass produced them. The bias is
digital (aihwkit's default). Activations carry a leading population axis P.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from analog_train.algorithms.base import AnalogAlgorithm
from analog_train.crossbar.io import AnalogMVM


class _TileMVM(torch.autograd.Function):
    """``y = W x`` through the forward IO; backward ``W^T d`` through the backward IO, keeping (x, d)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, analog_ctx: Tensor, layer: "AnalogLayer", order: int) -> Tensor:
        ctx.layer, ctx.order = layer, order
        weight = layer.algorithm.read_weight()  # valid until the optimizer step, kept for backward
        ctx.save_for_backward(x, weight)
        return layer.mvm(weight, x, layer.generator, bound_management=True)

    @staticmethod
    def backward(ctx: Any, grad_y: Tensor) -> tuple[Tensor | None, Tensor, None, None]:
        layer: AnalogLayer = ctx.layer
        x, weight = ctx.saved_tensors
        layer.keep(ctx.order, x, grad_y)
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = layer.mvm(weight.transpose(-1, -2), grad_y, layer.generator, bound_management=False)
        return grad_x, grad_y.new_zeros(()), None, None


class AnalogLayer(nn.Module):
    """One analog tile ``(P, out, in)`` and its algorithm; subclasses map their input onto tile vectors.

    The optimizer (:class:`~analog_train.nn.optimizer.AnalogSGD`), the train loop and the benchmark
    find analog layers through this class.
    """

    def __init__(self, in_size: int, out_size: int, algorithm: AnalogAlgorithm, io: Any,
                 generator: torch.Generator) -> None:
        super().__init__()
        self.in_size, self.out_size = in_size, out_size
        self.algorithm = algorithm
        self.io = io
        self.mvm = AnalogMVM(io)  # the periphery, worked out once
        self.generator = generator
        self.population = algorithm.weight.shape[0]
        # A parameter in the graph so that backward runs (and keeps d) even when x needs no grad.
        self.analog_ctx = nn.Parameter(torch.zeros(()))
        self._kept: list[tuple[int, Tensor, Tensor]] = []
        self._reads = 0  # tile reads since the last update: the order of the kept pairs

    def tile(self, x: Tensor) -> Tensor:
        """The tile's analog ``y = W x`` for ``x (N, in)`` (shared by the replicas) or ``(P, N, in)``."""
        if x.dim() == 2:
            x = x.unsqueeze(0).expand(self.population, *x.shape)
        self._reads += 1
        return _TileMVM.apply(x, self.analog_ctx, self, self._reads)

    def keep(self, order: int, x: Tensor, d: Tensor) -> None:
        self._kept.append((order, x.detach(), d.detach()))

    def apply_update(self, lr: float) -> None:
        """Hand the kept (x, d) of this step to the algorithm as one update, then run device upkeep.

        Several reads in one step (a recurrent layer's time steps) are one update whose samples
        follow the forward order; backward delivered them in reverse.
        """
        self._reads = 0
        if not self._kept:
            return
        if len(self._kept) == 1:  # one read per step, the usual case: no copy
            _, x, d = self._kept[0]
        else:
            self._kept.sort(key=lambda item: item[0])
            x = torch.cat([x for _, x, _ in self._kept], dim=1)
            d = torch.cat([d for _, _, d in self._kept], dim=1)
        self._kept.clear()
        self.algorithm.update(x, d, lr)
        self.algorithm.post_step()

    def program_initial_weights(self, generator: torch.Generator, fan_in: int) -> None:
        """torch's default initialisation, ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``, programmed onto the devices."""
        bound = 1.0 / math.sqrt(fan_in)
        w = (torch.rand((self.population, self.out_size, self.in_size), generator=generator) * 2 - 1) * bound
        self.algorithm.set_weights(w)

    @property
    def weight(self) -> Tensor:
        """The visible weight ``(P, out, in)``."""
        return self.algorithm.weight

    def extra_repr(self) -> str:
        return (f"tile={self.out_size}x{self.in_size}, P={self.population}, "
                f"algorithm={type(self.algorithm).__name__}")


def analog_layers(model: nn.Module) -> list[AnalogLayer]:
    """The analog layers of a model, in module order."""
    return [m for m in model.modules() if isinstance(m, AnalogLayer)]


def uniform_bias(shape: tuple[int, ...], fan_in: int, generator: torch.Generator) -> nn.Parameter:
    """A digital bias drawn as torch initialises one, ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``."""
    bound = 1.0 / math.sqrt(fan_in)
    return nn.Parameter((torch.rand(shape, generator=generator) * 2 - 1) * bound)


class AnalogLinear(AnalogLayer):
    """Fully connected layer on an analog tile; input ``(B, in)`` or ``(P, B, in)``, output ``(P, B, out)``."""

    def __init__(self, in_features: int, out_features: int, algorithm: AnalogAlgorithm, io: Any,
                 generator: torch.Generator, init_generator: torch.Generator, bias: bool = True,
                 init_fan_in: int | None = None) -> None:
        super().__init__(in_features, out_features, algorithm, io, generator)
        self.in_features, self.out_features = in_features, out_features
        fan_in = init_fan_in or in_features  # an LSTM's gate tile is initialised by its hidden size
        self.program_initial_weights(init_generator, fan_in)
        self.bias = uniform_bias((self.population, 1, out_features), fan_in, init_generator) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        y = self.tile(x)
        return y + self.bias if self.bias is not None else y


class AnalogConv2d(AnalogLayer):
    """2-d convolution on an analog tile ``out_channels x in_channels k k`` (im2col, as aihwkit's AnalogConv2d).

    ``F.unfold`` turns every receptive field into a tile input, so one image of ``L`` output positions
    is ``L`` tile reads, and ``L`` samples of the pulsed update. Input ``(B, C, H, W)`` (shared by the
    replicas) or ``(P, B, C, H, W)``; output ``(P, B, out_channels, H', W')``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, algorithm: AnalogAlgorithm, io: Any,
                 generator: torch.Generator, init_generator: torch.Generator, stride: int = 1, padding: int = 0,
                 bias: bool = True) -> None:
        fan_in = in_channels * kernel_size * kernel_size
        super().__init__(fan_in, out_channels, algorithm, io, generator)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.program_initial_weights(init_generator, fan_in)
        self.bias = uniform_bias((self.population, 1, out_channels, 1, 1), fan_in, init_generator) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        shared = x.dim() == 4
        images = x if shared else x.flatten(0, 1)
        n_img, _, height, width = images.shape
        h_out = (height + 2 * self.padding - self.kernel_size) // self.stride + 1
        w_out = (width + 2 * self.padding - self.kernel_size) // self.stride + 1
        patches = F.unfold(images, self.kernel_size, padding=self.padding, stride=self.stride)  # (N, C k k, L)
        patches = patches.transpose(1, 2).reshape(1 if shared else x.shape[0], -1, self.in_size)
        y = self.tile(patches[0] if shared else patches)  # (P, B L, out)
        batch = n_img if shared else x.shape[1]
        y = y.reshape(self.population, batch, h_out * w_out, self.out_size).transpose(2, 3)
        y = y.reshape(self.population, batch, self.out_size, h_out, w_out)
        return y + self.bias if self.bias is not None else y
