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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn
from tqdm import tqdm

from analog_train.algorithms import build_algorithm
from analog_train.config import to_object
from analog_train.data import Dataset, load_dataset
from analog_train.nn.layers import AnalogLinear
from analog_train.nn.models import build_model
from analog_train.nn.optimizer import AnalogSGD
from analog_train.runner.checkpoint import CHECKPOINT, Checkpointer, Progress, analog_layers
from analog_train.runner.compile_clock import CompileClock
from analog_train.runner.logs import log_epoch
from analog_train.runner.metrics import MetricsWriter, common_summary, write_summary
from analog_train.runner.signals import StopSignals
from analog_train.runner.status import DIVERGED, Outcome

log = logging.getLogger(__name__)


def derived_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from (seed, layer index, purpose), so streams never overlap."""
    return int(np.random.SeedSequence([abs(int(p)) for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


def build_network(cfg: DictConfig, dataset: Dataset, population: int = 1) -> nn.Module:
    """The configured model, with analog layers for analog algorithms and nn.Linear for ``fp``."""
    torch_device = torch.device(cfg.torch_device)
    init_gen = torch.Generator().manual_seed(derived_seed(cfg.seed, 0, 1))
    if cfg.algo.name == "fp":
        def linear(n_in: int, n_out: int, index: int) -> nn.Module:
            layer = nn.Linear(n_in, n_out)
            bound = 1.0 / n_in**0.5
            with torch.no_grad():
                layer.weight.copy_((torch.rand((1, n_out, n_in), generator=init_gen) * 2 - 1)[0] * bound)
                layer.bias.copy_((torch.rand((1, 1, n_out), generator=init_gen) * 2 - 1)[0, 0] * bound)
            return layer
    else:
        algo, device_cfg, update, io = (to_object(cfg.algo), to_object(cfg.device), to_object(cfg["update"]), to_object(cfg.io))

        def linear(n_in: int, n_out: int, index: int) -> nn.Module:
            construction = torch.Generator().manual_seed(derived_seed(cfg.construction_seed, index, 2))
            run = torch.Generator(device=torch_device).manual_seed(derived_seed(cfg.seed, index, 3))
            algorithm = build_algorithm(algo, device_cfg, (n_out, n_in), update, construction, run,
                                        population=population, device=torch_device)
            layer = AnalogLinear(n_in, n_out, algorithm, io, run)
            layer.reset_parameters(init_gen)
            return layer

    model = build_model(cfg.model.name, list(cfg.model.hidden), cfg.model.activation,
                        tuple(dataset.train_x.shape[1:]), dataset.n_classes, linear)
    return model.to(torch_device)


def build_trainable(cfg: DictConfig, dataset: Dataset) -> tuple[nn.Module, torch.optim.Optimizer]:
    """The configured network and its optimizer: torch's SGD for ``fp``, else AnalogSGD (digital SGD
    for the biases, pulses for the analog layers). The training loop and the benchmark share it."""
    model = build_network(cfg, dataset)
    if cfg.algo.name == "fp":
        return model, torch.optim.SGD(model.parameters(), lr=cfg.train.lr)
    return model, AnalogSGD(model, lr=cfg.train.lr)


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> float:
    """One mini-batch: forward, loss, backward, optimizer step. Returns the loss per replica; when it
    is not finite, nothing is stepped."""
    out = model(x)
    p = out.shape[0]
    loss = F.nll_loss(out.reshape(-1, out.shape[-1]), y.repeat(p)) * p
    loss_value = loss.item() / p
    if math.isfinite(loss_value):
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return loss_value


def make_scheduler(optimizer: torch.optim.Optimizer, train: Any) -> torch.optim.lr_scheduler.LRScheduler:
    if train.lr_schedule == "step":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, list(train.lr_step_epochs), gamma=train.lr_gamma)
    if train.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=train.epochs)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


@dataclass
class EvalResult:
    loss: list[float]
    error: list[float]


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> EvalResult:
    """Per-replica mean NLL and error (%) on a data split, through the same (noisy) analog forward."""
    model.eval()
    loss_sum, wrong = None, None
    for start in range(0, len(x), batch_size):
        out = model(x[start:start + batch_size])  # (P, B, C)
        yb = y[start:start + batch_size]
        nll = F.nll_loss(out.transpose(1, 2), yb.expand(out.shape[0], -1), reduction="none").sum(dim=1)
        miss = (out.argmax(dim=-1) != yb).sum(dim=1)
        loss_sum = nll if loss_sum is None else loss_sum + nll
        wrong = miss if wrong is None else wrong + miss
    model.train()
    n = len(x)
    return EvalResult(loss=(loss_sum / n).tolist(), error=(100.0 * wrong / n).tolist())


def pulse_stats(model: nn.Module) -> dict[str, dict[str, float]]:
    """Pulses received per device so far, mean and max over devices, per array kind."""
    totals: dict[str, list[torch.Tensor]] = {}
    for layer in analog_layers(model):
        for name, count in layer.algorithm.pulse_counts().items():
            totals.setdefault(name, []).append(count.flatten())
    return {name: {"mean": float(c.mean()), "max": float(c.max())}
            for name, c in ((name, torch.cat(counts)) for name, counts in totals.items())}


def endurance(model: nn.Module, samples_seen: int) -> dict[str, dict[str, float]]:
    """Pulses received per device per sample seen, max and mean over devices, per array kind."""
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
    progress, model, writer, compile_before = Progress(), None, None, 0.0
    with StopSignals() as stop, CompileClock() as compiled:
        with Outcome(log) as outcome:
            if cfg.threads:
                torch.set_num_threads(cfg.threads)
            torch.manual_seed(derived_seed(cfg.seed, 0, 0))
            outcome.stage = "loading the data"
            dataset = load_dataset(cfg.data)
            device = torch.device(cfg.torch_device)
            train_x, train_y = dataset.train_x.to(device), dataset.train_y.to(device)
            test_x, test_y = dataset.test_x.to(device), dataset.test_y.to(device)
            outcome.stage = "building the model"
            model, optimizer = build_trainable(cfg, dataset)
            scheduler = make_scheduler(optimizer, cfg.train)
            order_gen = torch.Generator().manual_seed(derived_seed(cfg.seed, 0, 4))
            checkpoint = Checkpointer(out_dir, model, optimizer, scheduler, order_gen,
                                      OmegaConf.to_container(cfg, resolve=True))
            if cfg.resume:
                progress = checkpoint.restore(Path(cfg.resume))
                log.info("resumed from %s after epoch %d", Path(cfg.resume) / CHECKPOINT, progress.epoch)
            compile_before = progress.compile_seconds
            writer = MetricsWriter(out_dir, progress.history)
            batch_size = cfg.data.batch_size
            show_progress = cfg.progress and sys.stderr.isatty()
            for epoch in range(progress.epoch + 1, cfg.train.epochs + 1):
                outcome.stage = f"epoch {epoch}"
                t0, compile0 = time.time(), compiled.seconds
                lr = optimizer.param_groups[0]["lr"]
                perm = torch.randperm(len(train_x), generator=order_gen).to(device)
                loss_sum, n_batches = 0.0, 0
                bar = tqdm(range(0, len(perm), batch_size), desc=f"epoch {epoch}", disable=not show_progress,
                           leave=False)
                for start in bar:
                    idx = perm[start:start + batch_size]
                    loss_value = train_step(model, optimizer, train_x[idx], train_y[idx])
                    if not math.isfinite(loss_value):
                        outcome.diverged(f"non-finite training loss ({loss_value}) in epoch {epoch}")
                        break
                    loss_sum += loss_value
                    n_batches += 1
                    progress.samples_seen += len(idx)
                    if show_progress:
                        bar.set_postfix(loss=f"{loss_sum / n_batches:.4f}", refresh=False)
                    stop.check()
                    if cfg.train.max_train_seconds and \
                            progress.train_seconds + time.time() - t0 > cfg.train.max_train_seconds:
                        break
                epoch_train_seconds = time.time() - t0 - (compiled.seconds - compile0)  # compiling is not training
                progress.train_seconds += epoch_train_seconds
                if outcome.status == DIVERGED:
                    break
                result = evaluate(model, test_x, test_y, cfg.data.test_batch_size)
                seconds = time.time() - t0
                rows = [
                    {"epoch": epoch, "replica": r, "samples_seen": progress.samples_seen,
                     "train_loss": loss_sum / max(n_batches, 1), "test_loss": result.loss[r],
                     "test_error": result.error[r], "lr": lr, "seconds": round(seconds, 3),
                     "samples_per_s": round(n_batches * batch_size / max(epoch_train_seconds, 1e-9), 1)}
                    for r in range(len(result.error))
                ]
                writer.write(rows)
                progress.history.extend(rows)
                scheduler.step()
                if any(not math.isfinite(v) for v in result.loss):
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
        summary = {
            **outcome.record(),
            "epochs_completed": max((row["epoch"] for row in history), default=0),
            "samples_seen": progress.samples_seen,
            "final": [{k: row[k] for k in ("replica", "test_error", "test_loss", "train_loss")} for row in history
                      if row["epoch"] == history[-1]["epoch"]] if history else [],
            "test_accuracy": (100.0 - history[-1]["test_error"]) if history else None,
            "train_seconds": round(progress.train_seconds, 3),
            "compile_seconds": round(progress.compile_seconds, 3),
            "seconds_per_60k_samples": round(progress.train_seconds / max(progress.samples_seen, 1) * 60000, 3),
            "resumed_after_epochs": progress.resumed_after,
            "seeds": {"seed": cfg.seed, "construction_seed": cfg.construction_seed},
            "endurance": endurance(model, progress.samples_seen) if model is not None and cfg.algo.name != "fp" else {},
            **common_summary(started, cfg),
        }
        write_summary(out_dir, summary)
    return RunResult(status=outcome.status, summary=summary)
