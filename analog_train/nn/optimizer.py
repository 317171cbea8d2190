"""The analog optimizer: digital SGD for digital parameters, pulsed updates for analog layers.

It is a ``torch.optim.SGD`` so torch's learning-rate schedulers drive it; the scheduled lr of the
first parameter group is what each analog layer's algorithm receives.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import nn

from analog_train.nn.layers import analog_layers


class AnalogSGD(torch.optim.SGD):
    def __init__(self, model: nn.Module, lr: float) -> None:
        self.analog_layers = analog_layers(model)
        ctx_ids = {id(m.analog_ctx) for m in self.analog_layers}
        digital = [p for p in model.parameters() if id(p) not in ctx_ids]
        if not digital:  # torch refuses an empty parameter list; a placeholder keeps the lr schedule working
            digital = [nn.Parameter(torch.zeros(()))]
        super().__init__(digital, lr=lr)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = super().step(closure)
        lr = self.param_groups[0]["lr"]
        with torch.inference_mode():
            for layer in self.analog_layers:
                layer.apply_update(lr)
        return loss
