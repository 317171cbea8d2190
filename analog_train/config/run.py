"""Schemas of a run: network, data, training schedule, paper experiments, and the root config."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Optional

from analog_train.config.algorithms import ANALOG_ALGORITHMS, AlgoConfig
from analog_train.config.crossbar import IOConfig, UpdateConfig
from analog_train.config.devices import DeviceConfig
from analog_train.config.rules import Registry, Relation, param

ACTIVATIONS = ("sigmoid", "tanh", "relu")

SEED_MAX = 2**63 - 1


MODELS = Registry("name", lambda name: f"model={name}")
model = MODELS.register  # @model("lenet5"): the schema of model.name=lenet5 (the network: nn/models.py)
DATASETS = Registry("name", lambda name: f"data={name}")
dataset = DATASETS.register  # @dataset("mnist"): the schema of data.name=mnist (the loader: data/catalog.py)


@dataclass
class ModelConfig:
    """The network (SPEC 6), schema by ``model.name``; ``DATA_KIND`` is the kind of data it reads."""

    DATA_KIND: ClassVar[str] = "image"
    name: str = param("", doc="network architecture")

    def fits(self, data: "DataConfig") -> Iterator[Relation]:
        """Rules between the network and its data (checked after both sections)."""
        yield from ()


@model("fc")
@dataclass
class FCConfig(ModelConfig):
    """Fully connected, sigmoid hidden units (FC 784-256-128-10 of Gokmen & Vlasov 2016; paper Fig. 5A/B)."""

    name: str = "fc"
    hidden: list[int] = param([256, 128], ge=1, unit="units", doc="hidden layer sizes")
    activation: str = param("sigmoid", choices=ACTIVATIONS, doc="hidden activation")


@model("lenet5")
@dataclass
class LeNet5Config(ModelConfig):
    """Two conv + max-pool stages and two FC layers (aihwkit example 04; paper Fig. 5C)."""

    name: str = "lenet5"
    channels: list[int] = param([16, 32], ge=1, unit="channels", doc="output channels of the two conv layers")
    kernel_size: int = param(5, ge=1, le=64, unit="pixels", doc="side of the square conv kernels")
    hidden: int = param(128, ge=1, unit="units", doc="units of the hidden FC layer")
    activation: str = param("tanh", choices=ACTIVATIONS, doc="activation after every layer but the last")

    def relations(self) -> Iterator[Relation]:
        yield "channels", self.channels, len(self.channels) == 2, "must be two channel counts (conv 1, conv 2)"

    def fits(self, data: "DataConfig") -> Iterator[Relation]:
        side = data.INPUT_SHAPE[-1]
        features = ((side - self.kernel_size + 1) // 2 - self.kernel_size + 1) // 2
        yield "kernel_size", self.kernel_size, features >= 1, \
            f"too large for {side}x{side} images (two conv + 2x2 pool stages leave no feature map)"


@model("lstm")
@dataclass
class LSTMConfig(ModelConfig):
    """Stacked LSTM layers (aihwkit's combined-weight cell) on one-hot characters, linear read-out
    (aihwkit example 22; paper Fig. 5D)."""

    DATA_KIND: ClassVar[str] = "text"
    name: str = "lstm"
    hidden: int = param(64, ge=1, unit="units", doc="hidden units per layer")
    layers: int = param(2, ge=1, le=16, doc="stacked LSTM layers")
    dropout: float = param(0.0, ge=0.0, lt=1.0, doc="dropout between layers and before the read-out")


@dataclass
class DataConfig:
    """A data set (``data.name``); ``DATA_KIND`` picks the task, images also state their shape."""

    DATA_KIND: ClassVar[str] = "image"
    INPUT_SHAPE: ClassVar[tuple[int, ...]] = ()
    CLASSES: ClassVar[int] = 0
    name: str = param("", doc="dataset")
    root: Optional[str] = param(None, null="$ANALOG_TRAIN_DATA/<folder>, then ~/.cache/analog-train/<folder>",
                                doc="folder with the files")
    train_subset: Optional[int] = param(None, ge=1, null="all samples", doc="a fixed subset of the training set")
    test_subset: Optional[int] = param(None, ge=1, null="all samples", doc="a fixed subset of the test set")
    batch_size: int = param(10, ge=1, unit="samples", doc="mini-batch size")
    test_batch_size: int = param(1000, ge=1, unit="samples", doc="evaluation batch size")


@dataclass
class ImageData(DataConfig):
    """Images and class labels (classification)."""

    download: bool = param(True, doc="fetch missing files")


@dataset("mnist")
@dataclass
class MNISTData(ImageData):
    """MNIST: 60k/10k 28x28 grey digits."""

    INPUT_SHAPE: ClassVar[tuple[int, ...]] = (1, 28, 28)
    CLASSES: ClassVar[int] = 10
    name: str = "mnist"


@dataset("fashion_mnist")
@dataclass
class FashionMNISTData(ImageData):
    """Fashion-MNIST: 60k/10k 28x28 grey images of 10 kinds of clothing."""

    INPUT_SHAPE: ClassVar[tuple[int, ...]] = (1, 28, 28)
    CLASSES: ClassVar[int] = 10
    name: str = "fashion_mnist"


@dataset("digits")
@dataclass
class DigitsData(ImageData):
    """scikit-learn's bundled 8x8 digits (1437 train / 360 test): offline smoke runs."""

    INPUT_SHAPE: ClassVar[tuple[int, ...]] = (1, 8, 8)
    CLASSES: ClassVar[int] = 10
    name: str = "digits"


@dataset("war_and_peace")
@dataclass
class WarAndPeaceData(DataConfig):
    """War and Peace, character level (next-character prediction with truncated BPTT)."""

    DATA_KIND: ClassVar[str] = "text"
    name: str = "war_and_peace"
    train_subset: Optional[int] = param(None, ge=1, null="the whole training text", unit="characters",
                                        doc="the first characters of the training text")
    test_subset: Optional[int] = param(None, ge=1, null="the whole test text", unit="characters",
                                       doc="the first characters of the test text")
    test_fraction: float = param(0.1, gt=0.0, lt=1.0, doc="the last part of the text that tests")
    seq_len: int = param(100, ge=1, unit="characters", doc="chunk of truncated backpropagation through time")
    batch_size: int = param(32, ge=1, unit="streams", doc="parallel streams of the training text")
    test_batch_size: int = param(32, ge=1, unit="streams", doc="parallel streams of the test text")


@dataclass
class TrainConfig:
    epochs: int = param(10, ge=1, doc="passes over the training set")
    lr: float = param(0.1, gt=0.0, doc="learning rate lambda")
    lr_schedule: str = param("constant", choices=("constant", "step", "cosine"), doc="learning-rate schedule")
    lr_step_epochs: list[int] = param([], ge=1, doc="epochs where the step schedule multiplies lr by lr_gamma")
    lr_gamma: float = param(0.1, gt=0.0, le=1.0, doc="factor of the step schedule")
    max_train_seconds: Optional[float] = param(None, gt=0.0, null="no limit", unit="s", doc="stop training after")
    clip_grad_norm: Optional[float] = param(None, gt=0.0, null="no clipping",
                                            doc="clip the digital parameters' gradient norm")


EXPERIMENTS = ("weight_programming", "asymmetry", "toy_mechanism")  # runners of runner/experiment.py
TRAINING_EXPERIMENTS = ("fig5",)  # experiments that are training runs (runner/fig5.py sets them up)


@dataclass
class ExperimentConfig:
    """A paper experiment (SPEC 7). ``name`` picks the runner; each runner reads the fields it needs.

    One schema for all experiments keeps the ``experiment/`` YAML files small diffs. ``paper``
    holds the overrides that ``scale=paper`` applies.
    """

    name: str = param("", choices=EXPERIMENTS + TRAINING_EXPERIMENTS, doc="the runner")
    scale: str = param("reduced", choices=("reduced", "paper"), doc="paper: apply the paper block")
    paper: dict[str, Any] = param({}, doc="experiment keys that scale=paper changes")
    algos: list[str] = param(["sgd", "ttv2", "cttv2", "agad"], doc="analog algorithms (or variants) to run")
    variants: dict[str, dict[str, Any]] = param({}, doc="named algorithm variants: {label: {name: <algo>, <key>: ...}}")
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
    # fig5 (a training run): the run's data subsets and epochs; replicas over n_states or reference_std
    train_subset: Optional[int] = param(None, ge=1, null="the whole training set", doc="fig5: training samples")
    test_subset: Optional[int] = param(None, ge=1, null="the whole test set", doc="fig5: test samples")
    epochs: int = param(1, ge=1, doc="fig5: passes over the training samples")
    vary: str = param("reference_std", choices=("reference_std", "n_states"), doc="fig5: the device key of the replicas")
    fp_lr: Optional[float] = param(None, gt=0.0, le=1e3, null="the run's train.lr",
                                   doc="fig5: learning rate of the FP baseline (algo=fp), the digital network's own")

    def relations(self) -> Iterator[Relation]:
        for label in self.algos:
            yield "algos", self.algos, label in ANALOG_ALGORITHMS or label in self.variants, \
                f"entries must be analog algorithms ({', '.join(ANALOG_ALGORITHMS)}) or variants ({', '.join(self.variants) or 'none'})"
        for label, variant in self.variants.items():
            yield f"variants.{label}", variant, isinstance(variant, dict) and variant.get("name") in ANALOG_ALGORITHMS, \
                f"must name its algorithm: {{name: <one of {', '.join(ANALOG_ALGORITHMS)}>, ...}}"


@dataclass
class PopulationConfig:
    """Replicas of the network trained side by side in one process, on the population axis P.

    ``device`` gives device keys one value per group of replicas (lists of equal length, taken
    together: value i of every key makes group i); each group has ``repeats`` replicas. Every
    replica has its own device draw, initial weights, pulse and read noise; all see the same
    mini-batches. Digital runs (``algo=fp``) have one replica.
    """

    device: dict[str, list[Any]] = param({}, doc="device keys and one value per group of replicas")
    repeats: int = param(1, ge=1, le=10_000, doc="replicas per group")

    def relations(self) -> Iterator[Relation]:
        lengths = {len(v) if isinstance(v, list) else -1 for v in self.device.values()}
        yield "device", self.device, all(n >= 1 for n in lengths) and len(lengths) <= 1, \
            "must map device keys to lists of values, all of one length"

    def groups(self) -> list[dict[str, Any]]:
        """The device keys of each group, in order (one empty group without ``device``)."""
        n = len(next(iter(self.device.values()))) if self.device else 1
        return [{k: v[i] for k, v in self.device.items()} for i in range(n)]

    def replicas(self) -> list[dict[str, Any]]:
        """Per replica: its group's device keys and its ``repeat`` number; one empty entry for a single
        network (nothing sets it apart, so its metrics need no replica columns)."""
        if not self.device and self.repeats == 1:
            return [{}]
        return [{**group, "repeat": r} for group in self.groups() for r in range(self.repeats)]


@dataclass
class Config:
    """The composed run config (``analog-train <overrides>``)."""

    algo: AlgoConfig = param(AlgoConfig(name="sgd"), doc="algorithm (schema by algo.name)")
    device: DeviceConfig = param(DeviceConfig(family="soft_bounds"), doc="device (schema by device.family)")
    model: ModelConfig = param(FCConfig(), doc="network (schema by model.name)")
    data: DataConfig = param(MNISTData(), doc="data set (schema by data.name)")
    io: IOConfig = param(IOConfig())
    update: UpdateConfig = param(UpdateConfig())
    train: TrainConfig = param(TrainConfig())
    population: PopulationConfig = param(PopulationConfig(), doc="replicas trained side by side")
    seed: int = param(0, ge=0, le=SEED_MAX, doc="run seed: pulses, noise, data order, initial weights")
    construction_seed: int = param(0, ge=0, le=SEED_MAX, doc="device-to-device draw")
    torch_device: str = param("cpu", doc="cpu or cuda[:N]")
    threads: Optional[int] = param(None, ge=1, null="torch's default", doc="torch CPU threads")
    progress: bool = param(True, doc="progress bar on a terminal")
    plot: bool = param(False, doc="experiments: draw the figure")
    resume: Optional[str] = param(None, null="a new run", doc="a run directory: continue that run from its checkpoint")
    device_preset: str = param("generic", doc="whose algorithm presets the device takes (set by the device YAML)")
    experiment: Optional[ExperimentConfig] = param(None, null="the train loop", doc="a paper experiment")

    def relations(self) -> Iterator[Relation]:
        dev = self.torch_device
        ok = dev == "cpu" or dev == "cuda" or (dev.startswith("cuda:") and dev[5:].isdigit())
        yield "torch_device", dev, ok, "must be cpu, cuda or cuda:N"
