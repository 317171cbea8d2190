"""Checkpoints of a training run: everything needed to go on as if it had never stopped.

``<run dir>/checkpoint.pt`` is rewritten at the end of every epoch, atomically (a temporary file,
flushed to disk, then renamed), so a kill during the write leaves the previous checkpoint intact.
It holds the digital parameters, every analog layer's algorithm state (device arrays, buffers,
choppers, running means, counters), the optimizer and scheduler, every random state (each layer's
generator with its block of kernel seeds, the data order, torch's, numpy's and Python's global
ones), the progress (epoch, samples, timings) and the metrics rows so far. Resuming rebuilds the
model from the config, as a fresh run does, and then loads the checkpoint into it in place, so a
resumed run gives the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import os
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np
import torch
from torch import nn

from analog_train.config import ConfigError
from analog_train.devices import kernels
from analog_train.nn.layers import analog_layers

CHECKPOINT = "checkpoint.pt"
FORMAT = 1
# Config keys a resumed run may change: they do not alter the numbers of the epochs it trains.
RESUMABLE_KEYS = ("train.epochs", "train.max_train_seconds", "threads", "progress", "resume", "data.root",
                  "data.download")


@dataclass
class Progress:
    """How far a run got: what the loop counts and the metrics rows written so far."""

    epoch: int = 0
    samples_seen: int = 0
    train_seconds: float = 0.0
    compile_seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_after: list[int] = field(default_factory=list)  # the epochs after which the run was resumed


def _generators(model: nn.Module, order: torch.Generator) -> dict[str, torch.Generator]:
    """Every generator a training step draws from: the data order and each analog layer's own."""
    gens = {"order": order}
    for i, layer in enumerate(analog_layers(model)):
        for owner, name in ((layer, "layer"), (layer.algorithm, "algorithm")):
            gen = owner.generator
            if all(gen is not g for g in gens.values()):
                gens[f"{name}{i}"] = gen
    return gens


def _global_random_state() -> dict[str, Any]:
    _, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos), "has_gauss": int(has_gauss),
                      "gauss": float(gauss)},
            "python": [list(x) if isinstance(x, tuple) else x for x in random.getstate()]}


def _load_global_random_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


def write_atomically(path: Path, state: Mapping[str, Any]) -> None:
    """``torch.save`` into a temporary file beside ``path``, flushed to disk, then renamed over it."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("wb") as f:
            torch.save(dict(state), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    try:  # the rename itself on disk (POSIX); not possible everywhere
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(node, Mapping):
        out: dict[str, Any] = {}
        for key, value in node.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def changed_key(saved: Mapping[str, Any], current: Mapping[str, Any]) -> Optional[tuple[str, Any, Any]]:
    """The first key (sorted) whose value would change the numbers, with its saved and current value."""
    old, new = _flat(saved), _flat(current)
    for key in sorted(set(old) | set(new)):
        if key not in RESUMABLE_KEYS and old.get(key) != new.get(key):
            return key, old.get(key), new.get(key)
    return None


def check_same_run(saved: Mapping[str, Any], current: Mapping[str, Any], where: Path) -> None:
    """Refuse to resume under a config that would change the numbers (one line naming the key)."""
    changed = changed_key(saved, current)
    if changed is not None:
        key, was, now = changed
        # The value may differ without being given: a shipped default changed since the run was made.
        keep = f"; give {key}={'null' if was is None else was} to continue it as it was made" \
            if was is None or isinstance(was, (bool, int, float, str)) else ""
        raise ConfigError(f"resume={where}: {key}={now} but the run was made with {key}={was} "
                          f"(a resumed run keeps its config; only {', '.join(k for k in RESUMABLE_KEYS if k != 'resume')} "
                          f"may change){keep}")


def _load(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / CHECKPOINT
    if not path.is_file():
        raise ConfigError(f"resume={run_dir}: no {CHECKPOINT} there (a run writes one after each epoch)")
    try:
        state = torch.load(path, weights_only=True)
    except Exception as err:  # noqa: BLE001 - whatever makes it unreadable, the user sees one line
        raise ConfigError(f"resume={run_dir}: {CHECKPOINT} cannot be read ({type(err).__name__}: {err})") from err
    if state.get("format") != FORMAT:
        raise ConfigError(f"resume={run_dir}: {CHECKPOINT} has format {state.get('format')}, this version reads {FORMAT}")
    return state


def saved_config(run_dir: Path) -> dict[str, Any]:
    """The resolved config a checkpointed run was made with."""
    return _load(run_dir)["config"]


class Checkpointer:
    """Saves and restores one run's training state in ``<out_dir>/checkpoint.pt``."""

    def __init__(self, out_dir: Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                 scheduler: Any, order: torch.Generator, config: Mapping[str, Any]) -> None:
        self.path = Path(out_dir) / CHECKPOINT
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.generators = _generators(model, order)
        self.config = config

    def save(self, progress: Progress) -> None:
        state = {
            "format": FORMAT,
            "config": self.config,
            "progress": asdict(progress),
            "model": self.model.state_dict(),
            "analog": [layer.algorithm.state_dict() for layer in analog_layers(self.model)],
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "generators": {name: {"state": gen.get_state(), "seed_block": kernels.seed_block_state(gen)}
                           for name, gen in self.generators.items()},
            "global_random": _global_random_state(),
        }
        write_atomically(self.path, state)

    def restore(self, run_dir: Path) -> Progress:
        """Load ``<run_dir>/checkpoint.pt`` into the model, optimizer, scheduler and generators."""
        state = _load(run_dir)
        check_same_run(state["config"], self.config, Path(run_dir))
        self.model.load_state_dict(state["model"])
        layers = analog_layers(self.model)
        for layer, saved in zip(layers, state["analog"], strict=True):
            layer.algorithm.load_state_dict(saved)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        for name, gen in self.generators.items():
            gen.set_state(state["generators"][name]["state"])
            kernels.load_seed_block_state(gen, state["generators"][name]["seed_block"])
        _load_global_random_state(state["global_random"])
        progress = Progress(**state["progress"])
        progress.resumed_after.append(progress.epoch)
        return progress
