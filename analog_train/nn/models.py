"""The networks of SPEC 6, built from either digital or analog linear layers."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

LinearFactory = Callable[[int, int, int], nn.Module]  # (in, out, layer index) -> layer

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}


class FullyConnected(nn.Module):
    """784-256-128-10 with sigmoid hidden units and log-softmax (Gokmen & Vlasov 2016; paper Fig. 5A/B).

    Returns log-probabilities of shape ``(P, B, classes)``.
    """

    def __init__(self, n_inputs: int, hidden: list[int], n_classes: int, activation: str, linear: LinearFactory) -> None:
        super().__init__()
        sizes = [n_inputs, *hidden, n_classes]
        self.layers = nn.ModuleList(linear(a, b, i) for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])))
        self.activation = ACTIVATIONS[activation]

    def forward(self, x: Tensor) -> Tensor:
        h = x.flatten(1)
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = self.activation(h)
        if h.dim() == 2:
            h = h.unsqueeze(0)
        return torch.log_softmax(h, dim=-1)


def build_model(name: str, hidden: list[int], activation: str, input_shape: tuple[int, ...], n_classes: int,
                linear: LinearFactory) -> nn.Module:
    if name == "fc":
        n_inputs = 1
        for s in input_shape:
            n_inputs *= s
        return FullyConnected(n_inputs, list(hidden), n_classes, activation, linear)
    raise ValueError(f"model.name={name}: must be one of fc")
