"""Schemas of a run: network, data, training schedule, paper experiments, and the root config."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Optional

from analog_train.config.algorithms import ANALOG_ALGORITHMS, AlgoConfig
from analog_train.config.crossbar import IOConfig, UpdateConfig
from analog_train.config.devices import DeviceConfig
from analog_train.config.rules import Relation, param

SEED_MAX = 2**63 - 1


@dataclass
class ModelConfig:
    name: str = param("fc", choices=("fc",), doc="network architecture")
    hidden: list[int] = param([256, 128], ge=1, unit="units", doc="hidden layer sizes")
    activation: str = param("sigmoid", choices=("sigmoid", "tanh", "relu"), doc="hidden activation")


@dataclass
class DataConfig:
    name: str = param("mnist", choices=("mnist", "fashion_mnist", "digits"), doc="dataset")
    root: Optional[str] = param(None, null="$ANALOG_TRAIN_DATA/<name>, then ~/.cache/analog-train/<name>",
                                doc="folder with the files")
    download: bool = param(True, doc="fetch missing files")
    train_subset: Optional[int] = param(None, ge=1, null="all samples", doc="a fixed subset of the training set")
    test_subset: Optional[int] = param(None, ge=1, null="all samples", doc="a fixed subset of the test set")
    batch_size: int = param(10, ge=1, unit="samples", doc="mini-batch size")
    test_batch_size: int = param(1000, ge=1, unit="samples", doc="evaluation batch size")


@dataclass
class TrainConfig:
    epochs: int = param(10, ge=1, doc="passes over the training set")
    lr: float = param(0.1, gt=0.0, doc="learning rate lambda")
    lr_schedule: str = param("constant", choices=("constant", "step", "cosine"), doc="learning-rate schedule")
    lr_step_epochs: list[int] = param([], ge=1, doc="epochs where the step schedule multiplies lr by lr_gamma")
    lr_gamma: float = param(0.1, gt=0.0, le=1.0, doc="factor of the step schedule")
    max_train_seconds: Optional[float] = param(None, gt=0.0, null="no limit", unit="s", doc="stop training after")


EXPERIMENTS = ("weight_programming", "asymmetry", "toy_mechanism")


@dataclass
class ExperimentConfig:
    """A paper experiment (SPEC 7). ``name`` picks the runner; each runner reads the fields it needs.

    One schema for all experiments keeps the ``experiment/`` YAML files small diffs. ``paper``
    holds the overrides that ``scale=paper`` applies.
    """

    name: str = param("", choices=EXPERIMENTS, doc="the runner")
    scale: str = param("reduced", choices=("reduced", "paper"), doc="paper: apply the paper block")
    paper: dict[str, Any] = param({}, doc="experiment keys that scale=paper changes")
    algos: list[str] = param(["sgd", "ttv2", "cttv2", "agad"], choices=tuple(a for a in ANALOG_ALGORITHMS),
                             doc="analog algorithms to run")
    size: int = param(20, ge=1, doc="layer size (size x size)")
    target_std: float = param(0.3, gt=0.0, le=1e3, unit="weight", doc="std of the target matrix")
    samples: int = param(4000, ge=1, doc="samples per algorithm")
    log_every: int = param(1000, ge=1, unit="samples", doc="checkpoint interval")
    lr: float = param(0.1, gt=0.0, doc="learning rate")
    seeds: int = param(3, ge=1, doc="device draws per grid point")
    n_states: list[int] = param([10, 20, 40, 80, 160], ge=1, doc="grid of device states")
    reference_std: list[float] = param([0.0, 0.05, 0.1, 0.2, 0.3, 0.5], ge=0.0, le=1e3, unit="weight",
                                       doc="grid of reference spreads sigma_r")
    bounds: list[float] = param([1.0, 2.0, 4.0, 8.0], gt=0.0, le=1e3, unit="weight", doc="grid of w_max = -w_min")
    response_pulses: int = param(200, ge=1, doc="pulses of the example responses")
    algo_overrides: dict[str, Any] = param({}, doc="algo keys for every algorithm that has them")
    fast_device: dict[str, Any] = param({}, doc="device keys of the fast array A (and of SGD's array)")
    weight_device: dict[str, Any] = param({}, doc="device keys of the weight array C, on top of fast_device")
    alpha: float = param(0.4, ge=0.0, le=1.0, doc="toy: gradient share of d")
    reference_offsets: list[float] = param([0.0, -0.8], ge=-1e3, le=1e3, unit="weight", doc="toy: offsets of R")


@dataclass
class Config:
    """The composed run config (``analog-train <overrides>``)."""

    algo: AlgoConfig = param(AlgoConfig(name="sgd"), doc="algorithm (schema by algo.name)")
    device: DeviceConfig = param(DeviceConfig(family="soft_bounds"), doc="device (schema by device.family)")
    model: ModelConfig = param(ModelConfig())
    data: DataConfig = param(DataConfig())
    io: IOConfig = param(IOConfig())
    update: UpdateConfig = param(UpdateConfig())
    train: TrainConfig = param(TrainConfig())
    seed: int = param(0, ge=0, le=SEED_MAX, doc="run seed: pulses, noise, data order, initial weights")
    construction_seed: int = param(0, ge=0, le=SEED_MAX, doc="device-to-device draw")
    torch_device: str = param("cpu", doc="cpu or cuda[:N]")
    threads: Optional[int] = param(None, ge=1, null="torch's default", doc="torch CPU threads")
    progress: bool = param(True, doc="progress bar on a terminal")
    plot: bool = param(False, doc="experiments: draw the figure")
    device_preset: str = param("generic", doc="whose algorithm presets the device takes (set by the device YAML)")
    experiment: Optional[ExperimentConfig] = param(None, null="the train loop", doc="a paper experiment")

    def relations(self) -> Iterator[Relation]:
        dev = self.torch_device
        ok = dev == "cpu" or dev == "cuda" or (dev.startswith("cuda:") and dev[5:].isdigit())
        yield "torch_device", dev, ok, "must be cpu, cuda or cuda:N"
