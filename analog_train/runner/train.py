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
from analog_train.runner.metrics import MetricsWriter, package_versions, write_summary
from analog_train.runner.sanity import sanity_warnings


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


def endurance(model: nn.Module, samples_seen: int) -> dict[str, dict[str, float]]:
    """Pulses received per device per sample seen, max and mean over devices, per array kind."""
    totals: dict[str, list[torch.Tensor]] = {}
    for layer in model.modules():
        if isinstance(layer, AnalogLinear):
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
    dataset = load_dataset(cfg.data)
    device = torch.device(cfg.torch_device)
    train_x, train_y = dataset.train_x.to(device), dataset.train_y.to(device)
    test_x, test_y = dataset.test_x.to(device), dataset.test_y.to(device)
    model, optimizer = build_trainable(cfg, dataset)
    scheduler = make_scheduler(optimizer, cfg.train)
    order_gen = torch.Generator().manual_seed(derived_seed(cfg.seed, 0, 4))

    writer = MetricsWriter(out_dir)
    status, reason = "completed", ""
    history: list[dict[str, Any]] = []
    samples_seen, train_seconds, epoch = 0, 0.0, 0
    batch_size = cfg.data.batch_size
    show_progress = cfg.progress and sys.stderr.isatty()
    try:
        for epoch in range(1, cfg.train.epochs + 1):
            t0 = time.time()
            lr = optimizer.param_groups[0]["lr"]
            perm = torch.randperm(len(train_x), generator=order_gen).to(device)
            loss_sum, n_batches = 0.0, 0
            bar = tqdm(range(0, len(perm), batch_size), desc=f"epoch {epoch}", disable=not show_progress, leave=False)
            for start in bar:
                idx = perm[start:start + batch_size]
                loss_value = train_step(model, optimizer, train_x[idx], train_y[idx])
                if not math.isfinite(loss_value):
                    status, reason = "diverged", f"non-finite training loss ({loss_value}) in epoch {epoch}"
                    break
                loss_sum += loss_value
                n_batches += 1
                samples_seen += len(idx)
                stop.check()
                if cfg.train.max_train_seconds and train_seconds + time.time() - t0 > cfg.train.max_train_seconds:
                    break
            epoch_train_seconds = time.time() - t0
            train_seconds += epoch_train_seconds
            if status == "diverged":
                break
            result = evaluate(model, test_x, test_y, cfg.data.test_batch_size)
            seconds = time.time() - t0
            rows = [
                {"epoch": epoch, "replica": r, "samples_seen": samples_seen,
                 "train_loss": loss_sum / max(n_batches, 1), "test_loss": result.loss[r],
                 "test_error": result.error[r], "lr": lr, "seconds": round(seconds, 3),
                 "samples_per_s": round(n_batches * batch_size / max(epoch_train_seconds, 1e-9), 1)}
                for r in range(len(result.error))
            ]
            writer.write(rows)
            history.extend(rows)
            stop.check()
            scheduler.step()
            if any(not math.isfinite(v) for v in result.loss):
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
            "final": [{k: row[k] for k in ("replica", "test_error", "test_loss", "train_loss")} for row in history
                      if row["epoch"] == history[-1]["epoch"]] if history else [],
            "test_accuracy": (100.0 - history[-1]["test_error"]) if history else None,
            "wall_seconds": round(time.time() - started, 3),
            "train_seconds": round(train_seconds, 3),
            "seconds_per_60k_samples": round(train_seconds / max(samples_seen, 1) * 60000, 3),
            "seeds": {"seed": cfg.seed, "construction_seed": cfg.construction_seed},
            "endurance": endurance(model, samples_seen) if cfg.algo.name != "fp" else {},
            "versions": package_versions(),
            "config": OmegaConf.to_container(cfg, resolve=True),
        }
        summary["warnings"] = sanity_warnings(model, summary, cfg, (test_x, test_y)) if status == "completed" else []
        for warning in summary["warnings"]:
            logging.getLogger(__name__).warning(warning)
        write_summary(out_dir, summary)
    return RunResult(status=status, summary=summary)
