"""One training run: build data and model from a validated config, train, evaluate, write files.

A plain loop on purpose (nanoGPT style): the per-batch path is forward, loss, backward, step.
Everything a run produces goes to ``out_dir``: ``metrics.csv``, a log line and a checkpoint after
every epoch, and ``summary.json`` at the end, whatever the end is (completed, diverged,
interrupted or failed).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass, field, replace
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
from analog_train.runner.checkpoint import CHECKPOINT, Checkpointer, Progress
from analog_train.runner.compile_clock import CompileClock
from analog_train.runner.logs import log_epoch
from analog_train.runner.metrics import MetricsWriter, common_summary, write_summary
from analog_train.runner.sanity import sanity_warnings
from analog_train.runner.signals import StopSignals
from analog_train.runner.status import COMPLETED, DIVERGED, Outcome
from analog_train.runner.tasks import Task, build_task
from analog_train.seeding import derived_seed

log = logging.getLogger(__name__)


def replicas(cfg: DictConfig) -> list[dict[str, Any]]:
    """What sets each replica of the network apart (``population``: its device keys and repeat); one
    empty entry for a digital run (no devices to set apart)."""
    return [{}] if cfg.algo.name == "fp" else to_object(cfg.population).replicas()


def layer_factory(cfg: DictConfig) -> LayerFactory:
    """Digital layers for ``fp``, analog tiles with the configured algorithm, device, update and IO otherwise.

    Layer ``i`` draws its devices from ``(construction_seed, i)`` and its pulses and noise from
    ``(seed, i)``; every layer's initial weights come from one generator in layer order. The
    analog layers hold one replica per entry of :func:`replicas`, each with its own device config.
    """
    init_gen = torch.Generator().manual_seed(derived_seed(cfg.seed, 0, 1))
    if cfg.algo.name == "fp":
        return DigitalLayers(init_gen)
    torch_device = torch.device(cfg.torch_device)
    algo, device_cfg, update = to_object(cfg.algo), to_object(cfg.device), to_object(cfg["update"])
    devices = [replace(device_cfg, **{k: v for k, v in r.items() if k != "repeat"}) for r in replicas(cfg)]

    def make_algorithm(index: int, shape: tuple[int, int]) -> tuple[Any, torch.Generator]:
        construction = torch.Generator().manual_seed(derived_seed(cfg.construction_seed, index, 2))
        run = torch.Generator(device=torch_device).manual_seed(derived_seed(cfg.seed, index, 3))
        return build_algorithm(algo, devices, shape, update, construction, run, population=len(devices),
                               device=torch_device), run

    return AnalogLayers(make_algorithm, to_object(cfg.io), init_gen, len(devices))


def build_network(cfg: DictConfig, spec: DataSpec) -> nn.Module:
    """The configured model for data described by ``spec`` (digital for ``fp``, analog otherwise)."""
    model = build_model(cfg.model, spec, layer_factory(cfg))
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


def pulse_stats(model: nn.Module) -> dict[str, dict[str, float]]:
    """Pulses received per device so far, mean and max over devices, per array kind."""
    totals: dict[str, list[torch.Tensor]] = {}
    for layer in analog_layers(model):
        for name, count in layer.algorithm.pulse_counts().items():
            totals.setdefault(name, []).append(count.flatten())
    return {name: {"mean": float(c.mean()), "max": float(c.max())}
            for name, c in ((name, torch.cat(counts)) for name, counts in totals.items())}


def endurance(model: nn.Module, samples_seen: int) -> dict[str, dict[str, float]]:
    """Pulses received per device per sample seen, max and mean over devices, per array kind.

    A sample is what the task counts (an image, a character); a conv layer's patches and an LSTM's
    time steps are all updates of that sample.
    """
    n = max(samples_seen, 1)
    return {name: {"max_pulses_per_sample": s["max"] / n, "mean_pulses_per_sample": s["mean"] / n}
            for name, s in pulse_stats(model).items()}


@dataclass
class RunResult:
    status: str
    summary: dict[str, Any] = field(default_factory=dict)


def train(cfg: DictConfig, out_dir: Path) -> RunResult:
    """Train as configured; always leaves ``summary.json`` (and ``metrics.csv`` once the data are loaded).

    SIGTERM (a scheduler or ``kill``) and Ctrl-C stop the run after the current mini-batch (a second
    one at once): it ends as ``interrupted`` with its completed epochs on disk. An exception ends it
    as ``failed`` (:mod:`.status`). A checkpoint after every epoch lets ``cfg.resume`` (a run
    directory) continue where the run stopped, with the numbers of an uninterrupted run.
    """
    started = time.time()
    out_dir = Path(out_dir)
    progress, model, writer, task, compile_before = Progress(), None, None, None, 0.0
    with StopSignals() as stop, CompileClock() as compiled:
        with Outcome(log) as outcome:
            if cfg.threads:
                torch.set_num_threads(cfg.threads)
            torch.manual_seed(derived_seed(cfg.seed, 0, 0))
            outcome.stage = "loading the data"
            task = build_task(cfg.data, load_data(cfg.data), torch.device(cfg.torch_device))
            outcome.stage = "building the model"
            model, optimizer = build_trainable(cfg, task.spec)
            scheduler = make_scheduler(optimizer, cfg.train)
            order_gen = torch.Generator().manual_seed(derived_seed(cfg.seed, 0, 4))
            checkpoint = Checkpointer(out_dir, model, optimizer, scheduler, order_gen,
                                      OmegaConf.to_container(cfg, resolve=True))
            if cfg.resume:
                progress = checkpoint.restore(Path(cfg.resume))
                log.info("resumed from %s after epoch %d", Path(cfg.resume) / CHECKPOINT, progress.epoch)
            compile_before = progress.compile_seconds
            described = replicas(cfg)
            writer = MetricsWriter(out_dir, task.metrics, progress.history, tuple(described[0]))
            show_progress = cfg.progress and sys.stderr.isatty()
            for epoch in range(progress.epoch + 1, cfg.train.epochs + 1):
                outcome.stage = f"epoch {epoch}"
                t0, compile0 = time.time(), compiled.seconds
                lr = optimizer.param_groups[0]["lr"]
                loss_sum, n_batches, epoch_samples = 0.0, 0, 0
                bar = tqdm(task.batches(order_gen), desc=f"epoch {epoch}", disable=not show_progress, leave=False)
                for batch in bar:
                    loss_value = train_step(model, optimizer, task, batch, cfg.train.clip_grad_norm)
                    if not math.isfinite(loss_value):
                        outcome.diverged(f"non-finite training loss ({loss_value}) in epoch {epoch}")
                        break
                    loss_sum += loss_value
                    n_batches += 1
                    epoch_samples += task.batch_samples(batch)
                    if show_progress:
                        bar.set_postfix(loss=f"{loss_sum / n_batches:.4f}", refresh=False)
                    stop.check()
                    if cfg.train.max_train_seconds and \
                            progress.train_seconds + time.time() - t0 > cfg.train.max_train_seconds:
                        break
                progress.samples_seen += epoch_samples
                epoch_train_seconds = time.time() - t0 - (compiled.seconds - compile0)  # compiling is not training
                progress.train_seconds += epoch_train_seconds
                if outcome.status == DIVERGED:
                    break
                result = task.evaluate(model)
                rows = [
                    {"epoch": epoch, "replica": r, **described[r], "samples_seen": progress.samples_seen,
                     "train_loss": loss_sum / max(n_batches, 1), **metrics, "lr": lr,
                     "seconds": round(time.time() - t0, 3),
                     "samples_per_s": round(epoch_samples / max(epoch_train_seconds, 1e-9), 1)}
                    for r, metrics in enumerate(result)
                ]
                writer.write(rows)
                progress.history.extend(rows)
                scheduler.step()
                if any(not math.isfinite(m["test_loss"]) for m in result):
                    outcome.diverged(f"non-finite test loss in epoch {epoch}")
                    break
                progress.epoch = epoch
                progress.compile_seconds = compile_before + compiled.seconds
                checkpoint.save(progress)
                log_epoch(log, epoch, cfg.train.epochs, rows, pulse_stats(model))
                stop.check()
                if cfg.train.max_train_seconds and progress.train_seconds > cfg.train.max_train_seconds:
                    break
        if writer is not None:
            writer.close()
        progress.compile_seconds = compile_before + compiled.seconds
        history = progress.history
        metrics = task.metrics if task is not None else ("test_loss", "test_error")
        summary = {
            **outcome.record(),
            "epochs_completed": max((row["epoch"] for row in history), default=0),
            "samples_seen": progress.samples_seen,
            "sample_unit": task.unit if task is not None else "samples",
            "final": [{k: row[k] for k in ("replica", "train_loss", *metrics)} for row in history
                      if row["epoch"] == history[-1]["epoch"]] if history else [],
            "test_accuracy": (100.0 - history[-1]["test_error"]) if history else None,
            "test_loss": history[-1]["test_loss"] if history else None,
            "train_seconds": round(progress.train_seconds, 3),
            "compile_seconds": round(progress.compile_seconds, 3),
            "seconds_per_60k_samples": round(progress.train_seconds / max(progress.samples_seen, 1) * 60000, 3),
            "seconds_per_1m_samples": round(progress.train_seconds / max(progress.samples_seen, 1) * 1e6, 3),
            "resumed_after_epochs": progress.resumed_after,
            "seeds": {"seed": cfg.seed, "construction_seed": cfg.construction_seed},
            "endurance": endurance(model, progress.samples_seen) if model is not None and cfg.algo.name != "fp" else {},
            **common_summary(started, cfg),
        }
        summary["warnings"] = sanity_warnings(model, summary, cfg, task) if summary["status"] == COMPLETED else []
        for warning in summary["warnings"]:
            log.warning(warning)
        write_summary(out_dir, summary)
    return RunResult(status=outcome.status, summary=summary)
