"""One training run: build data and model from a validated config, train, evaluate, write files.

A plain loop on purpose (nanoGPT style): the per-batch path is forward, loss, backward, step.
Everything a run produces goes to ``out_dir``: ``metrics.csv`` after every epoch and
``summary.json`` at the end, whatever the end is (completed, diverged or interrupted).
"""

from __future__ import annotations

import logging
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn
from tqdm import tqdm

from analog_train.algorithms import build_algorithm
from analog_train.config import to_object
from analog_train.data import load_data
from analog_train.nn.layers import analog_layers
from analog_train.nn.models import DataSpec, build_model
from analog_train.nn.optimizer import AnalogSGD
from analog_train.nn.tiles import AnalogLayers, DigitalLayers, LayerFactory
from analog_train.runner.metrics import MetricsWriter, package_versions, write_summary
from analog_train.runner.sanity import sanity_warnings
from analog_train.runner.tasks import Task, build_task
from analog_train.seeding import derived_seed


def layer_factory(cfg: DictConfig, population: int = 1) -> LayerFactory:
    """Digital layers for ``fp``, analog tiles with the configured algorithm, device, update and IO otherwise.

    Layer ``i`` draws its devices from ``(construction_seed, i)`` and its pulses and noise from
    ``(seed, i)``; every layer's initial weights come from one generator in layer order.
    """
    init_gen = torch.Generator().manual_seed(derived_seed(cfg.seed, 0, 1))
    if cfg.algo.name == "fp":
        return DigitalLayers(init_gen)
    torch_device = torch.device(cfg.torch_device)
    algo, device_cfg, update = to_object(cfg.algo), to_object(cfg.device), to_object(cfg["update"])

    def make_algorithm(index: int, shape: tuple[int, int]) -> tuple[Any, torch.Generator]:
        construction = torch.Generator().manual_seed(derived_seed(cfg.construction_seed, index, 2))
        run = torch.Generator(device=torch_device).manual_seed(derived_seed(cfg.seed, index, 3))
        return build_algorithm(algo, device_cfg, shape, update, construction, run, population=population,
                               device=torch_device), run

    return AnalogLayers(make_algorithm, to_object(cfg.io), init_gen, population)


def build_network(cfg: DictConfig, spec: DataSpec, population: int = 1) -> nn.Module:
    """The configured model for data described by ``spec`` (digital for ``fp``, analog otherwise)."""
    model = build_model(cfg.model, spec, layer_factory(cfg, population))
    return model.to(torch.device(cfg.torch_device))


def build_trainable(cfg: DictConfig, spec: DataSpec) -> tuple[nn.Module, torch.optim.Optimizer]:
    """The configured network and its optimizer: torch's SGD for ``fp``, else AnalogSGD (digital SGD
    for the biases, pulses for the analog layers). The training loop and the benchmark share it."""
    model = build_network(cfg, spec)
    if cfg.algo.name == "fp":
        return model, torch.optim.SGD(model.parameters(), lr=cfg.train.lr)
    return model, AnalogSGD(model, lr=cfg.train.lr)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, task: Task, batch: Any,
               clip_grad_norm: float | None = None) -> float:
    """One mini-batch: forward, loss, backward, optimizer step. Returns the loss per replica; when it
    is not finite, nothing is stepped. ``clip_grad_norm`` clips the digital parameters' gradients
    (an analog layer's update is bounded by its pulse trains instead)."""
    loss, p = task.loss(model, batch)
    loss_value = loss.item()
    if math.isfinite(loss_value):
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if clip_grad_norm:
            digital = [q for group in optimizer.param_groups for q in group["params"] if q.grad is not None]
            torch.nn.utils.clip_grad_norm_(digital, clip_grad_norm)
        optimizer.step()
    return loss_value / p


def make_scheduler(optimizer: torch.optim.Optimizer, train: Any) -> torch.optim.lr_scheduler.LRScheduler:
    if train.lr_schedule == "step":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, list(train.lr_step_epochs), gamma=train.lr_gamma)
    if train.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=train.epochs)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


def endurance(model: nn.Module, samples_seen: int) -> dict[str, dict[str, float]]:
    """Pulses received per device per sample seen, max and mean over devices, per array kind.

    A sample is what the task counts (an image, a character); a conv layer's patches and an LSTM's
    time steps are all updates of that sample.
    """
    totals: dict[str, list[torch.Tensor]] = {}
    for layer in analog_layers(model):
        for name, count in layer.algorithm.pulse_counts().items():
            totals.setdefault(name, []).append(count.flatten())
    out = {}
    for name, counts in totals.items():
        c = torch.cat(counts) / max(samples_seen, 1)
        out[name] = {"max_pulses_per_sample": float(c.max()), "mean_pulses_per_sample": float(c.mean())}
    return out


@dataclass
class RunResult:
    status: str
    summary: dict[str, Any] = field(default_factory=dict)


class _StopRequest:
    """SIGTERM and SIGINT handler: note the signal; the loop stops at the next batch boundary.

    Raising from the handler would interrupt whatever runs at that moment, e.g. a Python callback
    inside a compiled kernel, which then surfaces as a ``SystemError`` instead of an interrupt. A
    second signal interrupts at once.
    """

    def __init__(self) -> None:
        self.signum: int | None = None

    def __call__(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt(f"signal {signum}")
        self.signum = signum

    def check(self) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt(f"signal {self.signum}")


def train(cfg: DictConfig, out_dir: Path) -> RunResult:
    """Train as configured; always leaves ``metrics.csv`` and ``summary.json`` in ``out_dir``.

    SIGTERM (a scheduler or ``kill``) and Ctrl-C stop the run after the current mini-batch (a second
    one at once): the run ends as ``interrupted`` with its completed epochs on disk.
    """
    started = time.time()
    stop = _StopRequest()
    previous_handlers: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        previous_handlers = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    out_dir = Path(out_dir)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(derived_seed(cfg.seed, 0, 0))
    device = torch.device(cfg.torch_device)
    task = build_task(cfg.data, load_data(cfg.data), device)
    model, optimizer = build_trainable(cfg, task.spec)
    scheduler = make_scheduler(optimizer, cfg.train)
    order_gen = torch.Generator().manual_seed(derived_seed(cfg.seed, 0, 4))

    writer = MetricsWriter(out_dir, task.metrics)
    status, reason = "completed", ""
    history: list[dict[str, Any]] = []
    samples_seen, train_seconds, epoch = 0, 0.0, 0
    show_progress = cfg.progress and sys.stderr.isatty()
    try:
        for epoch in range(1, cfg.train.epochs + 1):
            t0 = time.time()
            lr = optimizer.param_groups[0]["lr"]
            loss_sum, n_batches, epoch_samples = 0.0, 0, 0
            bar = tqdm(task.batches(order_gen), desc=f"epoch {epoch}", disable=not show_progress, leave=False)
            for batch in bar:
                loss_value = train_step(model, optimizer, task, batch, cfg.train.clip_grad_norm)
                if not math.isfinite(loss_value):
                    status, reason = "diverged", f"non-finite training loss ({loss_value}) in epoch {epoch}"
                    break
                loss_sum += loss_value
                n_batches += 1
                epoch_samples += task.batch_samples(batch)
                stop.check()
                if cfg.train.max_train_seconds and train_seconds + time.time() - t0 > cfg.train.max_train_seconds:
                    break
            samples_seen += epoch_samples
            epoch_train_seconds = time.time() - t0
            train_seconds += epoch_train_seconds
            if status == "diverged":
                break
            result = task.evaluate(model)
            seconds = time.time() - t0
            rows = [
                {"epoch": epoch, "replica": r, "samples_seen": samples_seen,
                 "train_loss": loss_sum / max(n_batches, 1), **metrics, "lr": lr, "seconds": round(seconds, 3),
                 "samples_per_s": round(epoch_samples / max(epoch_train_seconds, 1e-9), 1)}
                for r, metrics in enumerate(result)
            ]
            writer.write(rows)
            history.extend(rows)
            stop.check()
            scheduler.step()
            if any(not math.isfinite(m["test_loss"]) for m in result):
                status, reason = "diverged", f"non-finite test loss in epoch {epoch}"
                break
            if cfg.train.max_train_seconds and train_seconds > cfg.train.max_train_seconds:
                break
    except KeyboardInterrupt:
        status, reason = "interrupted", f"interrupted during epoch {epoch}"
    finally:
        for sig, handler in previous_handlers.items():
            signal.signal(sig, handler)
        writer.close()
        summary = {
            "status": status,
            "reason": reason,
            "epochs_completed": max((row["epoch"] for row in history), default=0),
            "samples_seen": samples_seen,
            "final": [{k: row[k] for k in ("replica", "train_loss", *task.metrics)} for row in history
                      if row["epoch"] == history[-1]["epoch"]] if history else [],
            "test_accuracy": (100.0 - history[-1]["test_error"]) if history else None,
            "test_loss": history[-1]["test_loss"] if history else None,
            "sample_unit": task.unit,
            "wall_seconds": round(time.time() - started, 3),
            "train_seconds": round(train_seconds, 3),
            "seconds_per_60k_samples": round(train_seconds / max(samples_seen, 1) * 60000, 3),
            "seconds_per_1m_samples": round(train_seconds / max(samples_seen, 1) * 1e6, 3),
            "seeds": {"seed": cfg.seed, "construction_seed": cfg.construction_seed},
            "endurance": endurance(model, samples_seen) if cfg.algo.name != "fp" else {},
            "versions": package_versions(),
            "config": OmegaConf.to_container(cfg, resolve=True),
        }
        summary["warnings"] = sanity_warnings(model, summary, cfg, task) if status == "completed" else []
        for warning in summary["warnings"]:
            logging.getLogger(__name__).warning(warning)
        write_summary(out_dir, summary)
    return RunResult(status=status, summary=summary)
