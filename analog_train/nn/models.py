"""The networks of SPEC 6, written once against a :class:`~analog_train.nn.tiles.LayerFactory`.

Each model registers its builder with :func:`register_model` under its ``model.name``; its config
schema (the keys, their ranges, the kind of data it reads) is registered under the same name in
:mod:`analog_train.config.run`. Adding a model is a class here, a schema there and one YAML file.
Models return log-probabilities with a leading population axis: images ``(P, B, classes)``, text
``(P, T, B, vocabulary)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from analog_train.nn.lstm import LSTMLayer, State
from analog_train.nn.tiles import LayerFactory

ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu}


@dataclass(frozen=True)
class DataSpec:
    """What a model needs to know of its data: ``image`` (input shape, classes) or ``text`` (vocabulary size)."""

    kind: str
    n_classes: int
    input_shape: tuple[int, ...] = ()


MODELS: dict[str, Callable[[Any, DataSpec, LayerFactory], nn.Module]] = {}


def register_model(name: str) -> Callable[[type], type]:
    """Class decorator: ``cls.build(cfg, spec, layers)`` makes the model ``name`` from its checked config."""
    def wrap(cls: type) -> type:
        MODELS[name] = cls.build
        return cls
    return wrap


def build_model(cfg: Any, spec: DataSpec, layers: LayerFactory) -> nn.Module:
    return MODELS[cfg.name](cfg, spec, layers)


# -- FC 784-256-128-10 -------------------------------------------------------------------------------
@register_model("fc")
class FullyConnected(nn.Module):
    """784-256-128-10 with sigmoid hidden units and log-softmax (Gokmen & Vlasov 2016; paper Fig. 5A/B)."""

    def __init__(self, n_inputs: int, hidden: list[int], n_classes: int, activation: str, layers: LayerFactory) -> None:
        super().__init__()
        sizes = [n_inputs, *hidden, n_classes]
        self.layers = nn.ModuleList(layers.linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.activation = ACTIVATIONS[activation]

    @classmethod
    def build(cls, cfg: Any, spec: DataSpec, layers: LayerFactory) -> nn.Module:
        return cls(math.prod(spec.input_shape), list(cfg.hidden), spec.n_classes, cfg.activation, layers)

    def forward(self, x: Tensor) -> Tensor:
        h = x.flatten(1)
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = self.activation(h)
        return torch.log_softmax(h, dim=-1)


# -- LeNet-5 ---------------------------------------------------------------------------------------
@register_model("lenet5")
class LeNet5(nn.Module):
    """conv 1->16 5x5, tanh, maxpool 2; conv 16->32 5x5, tanh, maxpool 2; FC 512->128 tanh; FC 128->10
    (aihwkit example 04; paper Fig. 5C; 80,202 parameters on MNIST)."""

    def __init__(self, in_channels: int, side: int, channels: list[int], kernel_size: int, hidden: int,
                 n_classes: int, activation: str, layers: LayerFactory) -> None:
        super().__init__()
        self.conv1 = layers.conv2d(in_channels, channels[0], kernel_size)
        self.conv2 = layers.conv2d(channels[0], channels[1], kernel_size)
        flat = channels[1] * self.feature_side(side, kernel_size) ** 2
        self.fc1 = layers.linear(flat, hidden)
        self.fc2 = layers.linear(hidden, n_classes)
        self.activation = ACTIVATIONS[activation]

    @staticmethod
    def feature_side(side: int, kernel_size: int) -> int:
        """Side of the feature maps after the two conv + pool stages."""
        return ((side - kernel_size + 1) // 2 - kernel_size + 1) // 2

    @classmethod
    def build(cls, cfg: Any, spec: DataSpec, layers: LayerFactory) -> nn.Module:
        return cls(spec.input_shape[0], spec.input_shape[-1], list(cfg.channels), cfg.kernel_size, cfg.hidden,
                   spec.n_classes, cfg.activation, layers)

    def _stage(self, conv: nn.Module, x: Tensor) -> Tensor:
        h = self.activation(conv(x))  # (P, B, C, H, W)
        return F.max_pool2d(h.flatten(0, 1), 2).unflatten(0, h.shape[:2])

    def forward(self, x: Tensor) -> Tensor:
        h = self._stage(self.conv2, self._stage(self.conv1, x))
        h = self.activation(self.fc1(h.flatten(2)))
        return torch.log_softmax(self.fc2(h), dim=-1)


# -- 2-layer character LSTM ------------------------------------------------------------------------
@register_model("lstm")
class CharLSTM(nn.Module):
    """Stacked LSTM layers on one-hot characters and a linear read-out (aihwkit example 22, "LSTM2-64WP";
    paper Fig. 5D). Input ``(T, B)`` character ids and the state of the previous chunk."""

    def __init__(self, vocabulary: int, hidden: int, n_layers: int, dropout: float, layers: LayerFactory) -> None:
        super().__init__()
        self.vocabulary = vocabulary
        self.rnn = nn.ModuleList(LSTMLayer(vocabulary if i == 0 else hidden, hidden, layers) for i in range(n_layers))
        self.dropout = nn.Dropout(dropout)
        self.decoder = layers.linear(hidden, vocabulary)

    @classmethod
    def build(cls, cfg: Any, spec: DataSpec, layers: LayerFactory) -> nn.Module:
        return cls(spec.n_classes, cfg.hidden, cfg.layers, cfg.dropout, layers)

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> list[State]:
        return [layer.initial_state(batch, device) for layer in self.rnn]

    def forward(self, ids: Tensor, state: list[State]) -> tuple[Tensor, list[State]]:
        h = F.one_hot(ids, self.vocabulary).to(torch.float32)  # (T, B, V), shared by the replicas
        new_state = []
        for i, layer in enumerate(self.rnn):
            h, s = layer(h if i == 0 else self.dropout(h), state[i])  # (P, T, B, hidden)
            new_state.append(s)
        n_p, n_t, n_b, _ = h.shape
        logits = self.decoder(self.dropout(h).reshape(n_p, n_t * n_b, -1))  # one read for all time steps
        return torch.log_softmax(logits, dim=-1).reshape(n_p, n_t, n_b, -1), new_state
