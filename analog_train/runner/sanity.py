"""Signs that a finished run learned nothing worth reading, as warnings for its log and ``summary.json``.

A short or badly set-up run can end ``completed`` without having trained: an analog array that never
received a pulse (AGAD writes its weight array C only after one full chopper period), a test accuracy
within noise of chance, or a learning rate past the stability of the chosen device (in-memory SGD: a
sample's update moves weights by a sizeable part of the device's range, so they jump instead of
averaging gradients). Each check states what it saw and what to change.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from omegaconf import DictConfig
from torch import nn

from analog_train.config import TRANSFER_ALGORITHMS
from analog_train.devices.parameters import granularity
from analog_train.nn.layers import AnalogLayer, analog_layers
from analog_train.runner.tasks import Task

CHANCE_SIGMAS = 3.0  # accuracy within this many binomial standard deviations of chance is chance
STEP_LIMIT = 0.1  # a sample's update beyond this share of the device's range is past its stability


def sanity_warnings(model: nn.Module, summary: dict[str, Any], cfg: DictConfig, task: Task) -> list[str]:
    """Warnings about a finished run: ``summary`` as train writes it, ``task`` what it trained on.

    One training mini-batch goes forward and backward through the network (no update), which gives
    each analog layer's inputs and errors at the end of training for the pulse-train check.
    """
    layers = analog_layers(model)
    warnings = []
    if summary.get("samples_seen", 0) > 0:
        warnings += silent_arrays(layers, summary["samples_seen"], cfg)
    accuracy = summary.get("test_accuracy")
    if accuracy is not None:
        warnings += near_chance(accuracy, task.spec.n_classes, task.test_samples)
    if layers and cfg.algo.name == "sgd":
        warnings += unstable_steps(model, layers, task, cfg)
    elif cfg.algo.name in TRANSFER_ALGORITHMS and cfg.algo.fast_lr > 1.0 and cfg.algo.auto_scale:
        warnings.append(f"algo.fast_lr={cfg.algo.fast_lr:g} > 1: with auto_scale every update of A asks for about "
                        f"fast_lr * BL pulses, more than a train of update.desired_bl={cfg['update'].desired_bl} holds; "
                        "the updates are cut to BL pulses (use fast_lr <= 1)")
    return warnings


def silent_arrays(layers: list[AnalogLayer], samples: int, cfg: DictConfig) -> list[str]:
    """Analog arrays that received no pulse at all."""
    out = []
    for i, layer in enumerate(layers):
        for name, counts in layer.algorithm.pulse_counts().items():
            if float(counts.sum()) > 0:
                continue
            hint = ""
            if name == "C" and cfg.algo.name == "agad":
                period = max(math.ceil(1.0 / cfg.algo.in_chop_prob), 2)
                first = period * min(layer.in_size, cfg.algo.transfer_forward.max_input_size) * cfg.algo.transfer_every
                hint = (f"; AGAD writes C only after one chopper period, about {first} samples here "
                        "(train longer, or raise algo.in_chop_prob)")
            out.append(f"analog layer {i} ({layer.in_size}->{layer.out_size}): array {name} received no "
                       f"pulses in {samples} samples{hint}")
    return out


def near_chance(accuracy: float, classes: int, n_test: int) -> list[str]:
    """A test accuracy (%) within CHANCE_SIGMAS binomial standard deviations of chance (1 / classes;
    for a character model the vocabulary)."""
    chance = 1.0 / classes
    limit = 100.0 * (chance + CHANCE_SIGMAS * math.sqrt(chance * (1 - chance) / max(n_test, 1)))
    if accuracy > limit:
        return []
    return [f"test accuracy {accuracy:.1f} % is within noise of chance ({100 * chance:.0f} % for {classes} classes, "
            f"{n_test} test samples): the network did not learn"]


def unstable_steps(model: nn.Module, layers: list[AnalogLayer], task: Task, cfg: DictConfig) -> list[str]:
    """In-memory SGD: layers where a typical sample moves a weight by more than STEP_LIMIT of the device's
    range (``min(lr max|x| max|d| / eps, BL) eps``), so that the weights jump instead of averaging gradients."""
    kept = capture_updates(model, layers, task)
    eps = granularity(cfg.device)
    span = cfg.device.w_max - cfg.device.w_min
    bl = cfg["update"].desired_bl
    lr = cfg.train.lr
    out = []
    for i, (layer, (x, d)) in enumerate(zip(layers, kept)):
        k = lr * x.abs().amax(dim=-1) * d.abs().amax(dim=-1) / eps  # pulses each sample asks for
        move = float(torch.clamp(k, max=bl).median()) * eps
        if move > STEP_LIMIT * span:
            out.append(f"train.lr={lr:g} is past the stability of the device in analog layer {i} "
                       f"({layer.in_size}->{layer.out_size}): a typical sample moves a weight by {move:.3g}, "
                       f"{100 * move / span:.0f} % of its range ({int(round(span / eps))} states); the weights jump "
                       f"instead of averaging gradients: lower train.lr below about {lr * STEP_LIMIT * span / move:.2g} "
                       "or use a device with more states")
    return out


def capture_updates(model: nn.Module, layers: list[AnalogLayer], task: Task) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Each analog layer's (x, d) of one training mini-batch forward and backward, without an update."""
    kept: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for i, layer in enumerate(layers):
        layer.keep = lambda order, x, d, i=i: kept.__setitem__(i, (x.detach(), d.detach()))  # type: ignore[method-assign]
    try:
        batch = next(iter(task.batches(torch.Generator().manual_seed(0))))
        loss, _ = task.loss(model, batch)
        loss.backward()
    finally:
        for layer in layers:
            del layer.keep  # back to the class's method
            layer._reads = 0
        model.zero_grad(set_to_none=True)
    return [kept[i] for i in range(len(layers)) if i in kept]
