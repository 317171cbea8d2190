"""A recurrent layer with aihwkit's combined-weight LSTM cell (``AnalogLSTMCellCombinedWeight``).

One tile maps ``[x_t, h_{t-1}]`` to the four gates, ``i, f, g, o = W [x_t; h_{t-1}] + b`` (torch's gate
order), with a digital bias; ``c_t = sigma(f) c_{t-1} + sigma(i) tanh(g)`` and ``h_t = sigma(o) tanh(c_t)``.
The tile comes from a :class:`~analog_train.nn.tiles.LayerFactory`: digital for ``algo=fp``, an
:class:`~analog_train.nn.layers.AnalogLinear` otherwise, which reads once per time step and hands the
``(x, d)`` pairs of every time step to its algorithm as one update.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from analog_train.nn.tiles import LayerFactory

State = tuple[Tensor, Tensor]  # (h, c), each (P, B, hidden)


class LSTMLayer(nn.Module):
    """Sequence ``(T, B, in)`` (shared by the replicas) or ``(P, T, B, in)`` -> hidden states ``(P, T, B, hidden)``."""

    def __init__(self, input_size: int, hidden_size: int, layers: LayerFactory) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.population = layers.population
        # torch's LSTM initialisation: every weight and bias U(+-1/sqrt(hidden)).
        self.gates = layers.linear(input_size + hidden_size, 4 * hidden_size, init_fan_in=hidden_size)

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> State:
        zeros = torch.zeros((self.population, batch, self.hidden_size), device=device)
        return zeros, zeros.clone()

    def forward(self, xs: Tensor, state: State) -> tuple[Tensor, State]:
        h, c = state
        shared = xs.dim() == 3
        outputs = []
        for t in range(xs.shape[0 if shared else 1]):
            x = xs[t] if shared else xs[:, t]
            if shared:
                x = x.unsqueeze(0).expand(h.shape[0], *x.shape)
            i, f, g, o = self.gates(torch.cat([x, h], dim=-1)).chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outputs.append(h)
        return torch.stack(outputs, dim=1), (h, c)
