"""Structured-config schemas (types, checked by OmegaConf at compose time) and range validation.

Every config group of ``conf/`` is backed by one dataclass here. Hydra rejects unknown keys and
wrong types while composing; :func:`validate` then checks ranges and cross-field rules and raises
:class:`ConfigError` with one line naming the key and the allowed range, before any data is loaded.
Field names follow aihwkit wherever the concept exists there.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Optional

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from omegaconf import MISSING, DictConfig, OmegaConf

# The config tree ships inside the package, so the installed console script finds it anywhere.
CONF_DIR = Path(__file__).resolve().parent / "conf"

DEVICE_FAMILIES = ("constant_step", "linear_step", "soft_bounds", "pow_step", "exp_step", "piecewise_step")
ALGORITHMS = ("fp", "sgd", "ttv2", "cttv2", "agad")
ANALOG_ALGORITHMS = ("sgd", "ttv2", "cttv2", "agad")
MODELS = ("fc",)
DATASETS = ("mnist", "fashion_mnist", "digits")
ACTIVATIONS = ("sigmoid", "tanh", "relu")


class ConfigError(ValueError):
    """An invalid configuration value; the message is one line naming the key and the allowed range."""


@dataclass
class DeviceConfig:
    """One device model (SPEC 2). Parameters of other families than ``family`` are ignored."""

    family: str = "soft_bounds"
    source: str = ""
    # Paper parametrisation: when set, dw_min = (w_max - w_min) / n_states.
    n_states: Optional[int] = None
    dw_min: float = 0.001
    dw_min_dtod: float = 0.3
    dw_min_dtod_log_normal: bool = False
    dw_min_std: float = 0.3
    up_down: float = 0.0
    up_down_dtod: float = 0.01
    w_max: float = 0.6
    w_min: float = -0.6
    w_max_dtod: float = 0.3
    w_min_dtod: float = 0.3
    enforce_consistency: bool = True
    mult_noise: bool = False
    write_noise_std: float = 0.0
    corrupt_devices_prob: float = 0.0
    corrupt_devices_range: float = 0.1
    lifetime: float = 0.0
    lifetime_dtod: float = 0.0
    diffusion: float = 0.0
    diffusion_dtod: float = 0.0
    reset: float = 0.0
    reset_dtod: float = 0.0
    reset_std: float = 0.01
    # Reference conductance subtracted on read (aihwkit SoftBoundsReference; paper sigma_r, mu_r).
    reference_mean: float = 0.0
    reference_std: float = 0.0
    subtract_symmetry_point: bool = False
    # linear_step
    gamma_up: float = 0.0
    gamma_down: float = 0.0
    gamma_up_dtod: float = 0.05
    gamma_down_dtod: float = 0.05
    allow_increasing: bool = False
    mean_bound_reference: bool = True
    # soft_bounds: extra d2d spread of the slopes (aihwkit SoftBoundsReference)
    slope_up_dtod: float = 0.0
    slope_down_dtod: float = 0.0
    # pow_step
    pow_gamma: float = 1.0
    pow_gamma_dtod: float = 0.1
    pow_up_down: float = 0.0
    pow_up_down_dtod: float = 0.0
    # exp_step (aihwkit's C++ es_* names)
    es_A_up: float = 0.00081
    es_A_down: float = 0.36833
    es_gamma_up: float = 12.44625
    es_gamma_down: float = 12.78785
    es_a: float = 0.244
    es_b: float = 0.2425
    dw_min_std_add: float = 0.0
    dw_min_std_slope: float = 0.0
    # piecewise_step
    piecewise_up: list[float] = field(default_factory=lambda: [1.0])
    piecewise_down: list[float] = field(default_factory=lambda: [1.0])
    # one-sided unit cell (PCM-like): two potentiation-only devices, weight = G+ - G-
    one_sided: bool = False
    refresh_upper_thres: float = 0.75
    refresh_lower_thres: float = 0.25
    refresh_every: int = 1  # optimizer steps between refresh checks (0 = never)


@dataclass
class UpdateConfig:
    """Pulsed outer-product update (SPEC 3; aihwkit ``UpdateParameters``)."""

    engine: str = "fast"
    desired_bl: int = 31
    update_bl_management: bool = True
    update_management: bool = True
    um_grad_scale: float = 1.0


@dataclass
class IOConfig:
    """Analog MVM periphery (SPEC 5; aihwkit ``PresetIOParameters``)."""

    is_perfect: bool = False
    inp_bound: float = 1.0
    inp_res: float = 1.0 / 126.0
    inp_noise: float = 0.0
    out_bound: float = 20.0
    out_res: float = 1.0 / 510.0
    out_noise: float = 0.1
    noise_management: str = "abs_max"
    bound_management: str = "iterative"
    max_bm_factor: float = 1000.0
    max_bm_res: float = 0.25
    max_input_size: int = 512
    max_output_size: int = 512


@dataclass
class AlgoConfig:
    """How gradients become pulses (SPEC 4; aihwkit compound parameter names)."""

    name: str = "sgd"
    # TTv2 / c-TTv2 / AGAD
    fast_lr: float = 0.5
    auto_scale: bool = True
    auto_momentum: float = 0.99
    auto_granularity: float = 1000.0
    transfer_every: int = 1
    buffer_granularity: float = 1.0
    transfer_desired_bl: int = 1
    momentum: float = 0.0
    forget_buffer: bool = True
    in_chop_prob: float = 0.0
    in_chop_random: bool = True
    out_chop_prob: float = 0.0
    tail_weightening: float = 5.0
    transfer_io: IOConfig = field(
        default_factory=lambda: IOConfig(noise_management="none", bound_management="none")
    )
    # Overrides of the device config for the slow array C (W); A uses the device config as is.
    # E.g. {w_max_dtod: 0, w_min_dtod: 0} for the paper's Fig. 4 (sigma_b = 0 on W only).
    device_c: dict[str, Any] = field(default_factory=dict)


@dataclass
class ModelConfig:
    name: str = "fc"
    hidden: list[int] = field(default_factory=lambda: [256, 128])
    activation: str = "sigmoid"


@dataclass
class DataConfig:
    name: str = "mnist"
    root: Optional[str] = None
    download: bool = True
    train_subset: Optional[int] = None
    test_subset: Optional[int] = None
    batch_size: int = 10
    test_batch_size: int = 1000


@dataclass
class TrainConfig:
    epochs: int = 10
    lr: float = 0.1
    lr_schedule: str = "constant"
    lr_step_epochs: list[int] = field(default_factory=list)
    lr_gamma: float = 0.1
    max_train_seconds: Optional[float] = None


@dataclass
class ExperimentConfig:
    """A paper experiment (SPEC 7). ``name`` picks the runner; ``train`` is the ordinary train loop.

    One schema for all experiments keeps the ``experiment/`` YAML files small diffs; each runner
    reads only the fields it needs. ``paper`` holds the overrides that ``scale=paper`` applies.
    """

    name: str = "train"
    scale: str = "reduced"
    paper: dict[str, Any] = field(default_factory=dict)
    algos: list[str] = field(default_factory=lambda: ["sgd", "ttv2", "cttv2", "agad"])
    size: int = 20
    target_std: float = 0.3
    samples: int = 4000
    log_every: int = 1000
    lr: float = 0.1
    seeds: int = 3
    n_states: list[int] = field(default_factory=lambda: [10, 20, 40, 80, 160])
    reference_std: list[float] = field(default_factory=lambda: [0.0, 0.05, 0.1, 0.2, 0.3, 0.5])
    bounds: list[float] = field(default_factory=lambda: [1.0, 2.0, 4.0, 8.0])
    response_pulses: int = 200
    # Overrides of every algo config (e.g. the paper's fixed eta_A and gamma_0), of the device of
    # the fast array A (and of in-memory SGD's array) and, on top of those, of the weight array C.
    algo_overrides: dict[str, Any] = field(default_factory=dict)
    fast_device: dict[str, Any] = field(default_factory=dict)
    weight_device: dict[str, Any] = field(default_factory=dict)
    # toy_mechanism
    alpha: float = 0.4
    reference_offsets: list[float] = field(default_factory=lambda: [0.0, -0.8])


EXPERIMENTS = ("train", "weight_programming", "asymmetry", "toy_mechanism")


@dataclass
class Config:
    algo: AlgoConfig = MISSING
    device: DeviceConfig = MISSING
    model: ModelConfig = MISSING
    data: DataConfig = MISSING
    io: IOConfig = MISSING
    update: UpdateConfig = field(default_factory=UpdateConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    construction_seed: int = 0
    torch_device: str = "cpu"
    threads: Optional[int] = None
    progress: bool = True
    plot: bool = False
    resume: Optional[str] = None
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """The config ``analog-train <overrides>`` composes, for code outside the Hydra app (bench, figures, tests)."""
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def register_configs() -> None:
    """Register the schemas so that YAML files can extend them (``defaults: [<schema>, _self_]``)."""
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)
    cs.store(group="algo", name="algo_schema", node=AlgoConfig)
    cs.store(group="device", name="device_schema", node=DeviceConfig)
    cs.store(group="model", name="model_schema", node=ModelConfig)
    cs.store(group="data", name="data_schema", node=DataConfig)
    cs.store(group="io", name="io_schema", node=IOConfig)


# ---------------------------------------------------------------------------------------------
# Range validation


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value}: {allowed}")


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and math.isfinite(v)


def validate_device(dev: Any, prefix: str = "device") -> None:
    """Raise ConfigError for the first out-of-range device parameter."""
    g = lambda name: getattr(dev, name)  # noqa: E731
    _check(g("family") in DEVICE_FAMILIES, f"{prefix}.family", g("family"), f"must be one of {', '.join(DEVICE_FAMILIES)}")
    _check(_finite(g("w_max")) and _finite(g("w_min")) and g("w_min") < g("w_max"),
           f"{prefix}.w_min", g("w_min"), f"must be < {prefix}.w_max ({g('w_max')})")
    if g("one_sided"):
        _check(g("w_min") >= 0 or math.isclose(g("w_min"), 0.0), f"{prefix}.w_min", g("w_min"),
               "must be >= 0 for a one-sided (potentiation-only) device")
    else:
        _check(g("w_min") <= 0 <= g("w_max"), f"{prefix}.w_min", g("w_min"),
               f"the range [w_min, w_max] must contain 0 (w_max={g('w_max')})")
    if g("n_states") is not None:
        _check(g("n_states") >= 1, f"{prefix}.n_states", g("n_states"), "must be an integer >= 1 (or null to use dw_min)")
    else:
        _check(_finite(g("dw_min")) and g("dw_min") > 0, f"{prefix}.dw_min", g("dw_min"), "must be > 0")
    for name in ("dw_min_dtod", "dw_min_std", "up_down_dtod", "w_max_dtod", "w_min_dtod", "write_noise_std",
                 "lifetime", "lifetime_dtod", "diffusion", "diffusion_dtod", "reset_dtod", "reset_std",
                 "reference_std", "gamma_up_dtod", "gamma_down_dtod", "slope_up_dtod", "slope_down_dtod",
                 "pow_gamma_dtod", "pow_up_down_dtod", "corrupt_devices_range"):
        _check(_finite(g(name)) and g(name) >= 0, f"{prefix}.{name}", g(name), "must be >= 0")
    _check(0 <= g("corrupt_devices_prob") <= 1, f"{prefix}.corrupt_devices_prob", g("corrupt_devices_prob"), "must be in [0, 1]")
    _check(-1 < g("up_down") < 1, f"{prefix}.up_down", g("up_down"), "must be in (-1, 1)")
    _check(g("pow_gamma") > 0, f"{prefix}.pow_gamma", g("pow_gamma"), "must be > 0")
    up, down = list(g("piecewise_up")), list(g("piecewise_down"))
    _check(len(up) >= 1, f"{prefix}.piecewise_up", up, "must have at least 1 node")
    _check(len(up) == len(down), f"{prefix}.piecewise_down", down,
           f"must have the same length as {prefix}.piecewise_up ({len(up)} nodes)")
    _check(all(v >= 0 for v in up + down), f"{prefix}.piecewise_up", up, "node values must be >= 0")
    _check(0 < g("refresh_lower_thres") < g("refresh_upper_thres") <= 1, f"{prefix}.refresh_upper_thres",
           g("refresh_upper_thres"), "need 0 < refresh_lower_thres < refresh_upper_thres <= 1")
    _check(g("refresh_every") >= 0, f"{prefix}.refresh_every", g("refresh_every"), "must be an integer >= 0 (0 = never)")
    for name in ("dw_min_std_add", "dw_min_std_slope"):
        _check(_finite(g(name)) and g(name) >= 0, f"{prefix}.{name}", g(name), "must be >= 0")
    for name in ("es_A_up", "es_A_down", "es_gamma_up", "es_gamma_down", "es_a", "es_b"):
        _check(_finite(g(name)), f"{prefix}.{name}", g(name), "must be a finite number")


def validate_io(io: Any, prefix: str = "io") -> None:
    _check(io.inp_bound > 0, f"{prefix}.inp_bound", io.inp_bound, "must be > 0")
    _check(io.out_bound > 0, f"{prefix}.out_bound", io.out_bound, "must be > 0")
    _check(0 <= io.inp_res < 1, f"{prefix}.inp_res", io.inp_res, "must be in [0, 1) (0 = no DAC quantisation)")
    _check(0 <= io.out_res < 1, f"{prefix}.out_res", io.out_res, "must be in [0, 1) (0 = no ADC quantisation)")
    _check(io.out_noise >= 0, f"{prefix}.out_noise", io.out_noise, "must be >= 0")
    _check(io.inp_noise >= 0, f"{prefix}.inp_noise", io.inp_noise, "must be >= 0")
    _check(io.noise_management in ("abs_max", "none"), f"{prefix}.noise_management", io.noise_management,
           "must be one of abs_max, none")
    _check(io.bound_management in ("iterative", "none"), f"{prefix}.bound_management", io.bound_management,
           "must be one of iterative, none")
    _check(io.max_input_size >= 1, f"{prefix}.max_input_size", io.max_input_size, "must be >= 1")
    _check(io.max_output_size >= 1, f"{prefix}.max_output_size", io.max_output_size, "must be >= 1")


def validate_update(up: Any, prefix: str = "update") -> None:
    _check(up.engine in ("fast", "exact"), f"{prefix}.engine", up.engine, "must be one of fast, exact")
    _check(1 <= up.desired_bl <= 1000, f"{prefix}.desired_bl", up.desired_bl, "must be an integer in [1, 1000]")
    _check(up.um_grad_scale > 0, f"{prefix}.um_grad_scale", up.um_grad_scale, "must be > 0")


def validate_algo(algo: Any, prefix: str = "algo") -> None:
    _check(algo.name in ALGORITHMS, f"{prefix}.name", algo.name, f"must be one of {', '.join(ALGORITHMS)}")
    _check(algo.fast_lr > 0, f"{prefix}.fast_lr", algo.fast_lr, "must be > 0")
    _check(0 <= algo.auto_momentum < 1, f"{prefix}.auto_momentum", algo.auto_momentum, "must be in [0, 1)")
    _check(algo.auto_granularity > 0, f"{prefix}.auto_granularity", algo.auto_granularity, "must be > 0")
    _check(algo.transfer_every >= 1, f"{prefix}.transfer_every", algo.transfer_every, "must be an integer >= 1")
    _check(algo.buffer_granularity > 0, f"{prefix}.buffer_granularity", algo.buffer_granularity, "must be > 0")
    _check(algo.transfer_desired_bl >= 1, f"{prefix}.transfer_desired_bl", algo.transfer_desired_bl, "must be >= 1")
    _check(0 <= algo.momentum < 1, f"{prefix}.momentum", algo.momentum, "must be in [0, 1)")
    _check(0 <= algo.in_chop_prob <= 1, f"{prefix}.in_chop_prob", algo.in_chop_prob, "must be in [0, 1]")
    _check(0 <= algo.out_chop_prob <= 1, f"{prefix}.out_chop_prob", algo.out_chop_prob, "must be in [0, 1]")
    _check(algo.tail_weightening >= 0, f"{prefix}.tail_weightening", algo.tail_weightening, "must be >= 0")
    if algo.name == "agad":
        _check(algo.in_chop_prob > 0, f"{prefix}.in_chop_prob", algo.in_chop_prob, "must be > 0 for agad (it sets the chopper period)")
    validate_io(algo.transfer_io, f"{prefix}.transfer_io")
    _check(algo.transfer_io.inp_noise == 0, f"{prefix}.transfer_io.inp_noise", algo.transfer_io.inp_noise,
           "must be 0 (transfer reads are one-hot column reads)")
    known = {f.name for f in fields(DeviceConfig)}
    for key in algo.device_c:
        _check(key in known, f"{prefix}.device_c.{key}", algo.device_c[key], "is not a device config key")


TRANSFER_ALGORITHMS = ("ttv2", "cttv2", "agad")


def validate_algo_device(algo: Any, dev: Any, prefix: str = "algo") -> None:
    """Combinations that cannot work: a one-sided (potentiation-only) cell as A of a transfer algorithm."""
    if algo.name in TRANSFER_ALGORITHMS and getattr(dev, "one_sided", False):
        raise ConfigError(
            f"{prefix}.name={algo.name} with device.one_sided=true: A must be pulsed up and down and decay to "
            f"its symmetry point; {'/'.join(TRANSFER_ALGORITHMS)} work with bidirectional devices "
            "(device.one_sided=false), one-sided devices only with algo=sgd or fp")


def validate_model(model: Any, prefix: str = "model") -> None:
    _check(model.name in MODELS, f"{prefix}.name", model.name, f"must be one of {', '.join(MODELS)}")
    _check(model.activation in ACTIVATIONS, f"{prefix}.activation", model.activation,
           f"must be one of {', '.join(ACTIVATIONS)}")
    _check(all(h >= 1 for h in model.hidden), f"{prefix}.hidden", list(model.hidden), "layer sizes must be >= 1")


def validate_data(data: Any, prefix: str = "data") -> None:
    _check(data.name in DATASETS, f"{prefix}.name", data.name, f"must be one of {', '.join(DATASETS)}")
    _check(data.batch_size >= 1, f"{prefix}.batch_size", data.batch_size, "must be an integer >= 1")
    _check(data.test_batch_size >= 1, f"{prefix}.test_batch_size", data.test_batch_size, "must be an integer >= 1")
    for name in ("train_subset", "test_subset"):
        v = getattr(data, name)
        _check(v is None or v >= 1, f"{prefix}.{name}", v, "must be >= 1 or null (all samples)")


def validate_train(train: Any, prefix: str = "train") -> None:
    _check(train.epochs >= 1, f"{prefix}.epochs", train.epochs, "must be an integer >= 1")
    _check(_finite(train.lr) and train.lr > 0, f"{prefix}.lr", train.lr, "must be > 0")
    _check(train.lr_schedule in ("constant", "step", "cosine"), f"{prefix}.lr_schedule", train.lr_schedule,
           "must be one of constant, step, cosine")
    _check(0 < train.lr_gamma <= 1, f"{prefix}.lr_gamma", train.lr_gamma, "must be in (0, 1]")
    _check(all(e >= 1 for e in train.lr_step_epochs), f"{prefix}.lr_step_epochs", list(train.lr_step_epochs),
           "epochs must be >= 1")
    _check(train.max_train_seconds is None or train.max_train_seconds > 0, f"{prefix}.max_train_seconds",
           train.max_train_seconds, "must be > 0 or null")


def validate_experiment(exp: Any, prefix: str = "experiment") -> None:
    _check(exp.name in EXPERIMENTS, f"{prefix}.name", exp.name, f"must be one of {', '.join(EXPERIMENTS)}")
    _check(exp.scale in ("reduced", "paper"), f"{prefix}.scale", exp.scale, "must be one of reduced, paper")
    _check(all(a in ANALOG_ALGORITHMS for a in exp.algos), f"{prefix}.algos", list(exp.algos),
           f"must be analog algorithms ({', '.join(ANALOG_ALGORITHMS)})")
    for name in ("size", "samples", "log_every", "seeds", "response_pulses"):
        _check(getattr(exp, name) >= 1, f"{prefix}.{name}", getattr(exp, name), "must be an integer >= 1")
    _check(exp.lr > 0 and exp.target_std > 0, f"{prefix}.lr", exp.lr, "lr and target_std must be > 0")
    _check(all(n >= 1 for n in exp.n_states), f"{prefix}.n_states", list(exp.n_states), "must be >= 1")
    _check(all(s >= 0 for s in exp.reference_std), f"{prefix}.reference_std", list(exp.reference_std), "must be >= 0")
    _check(all(b > 0 for b in exp.bounds), f"{prefix}.bounds", list(exp.bounds), "must be > 0")


VALIDATORS: dict[str, Callable[[Any, str], None]] = {
    "device": validate_device,
    "io": validate_io,
    "update": validate_update,
    "algo": validate_algo,
    "model": validate_model,
    "data": validate_data,
    "train": validate_train,
    "experiment": validate_experiment,
}


def validate(cfg: DictConfig) -> None:
    """Check every range and cross-field rule of a composed run config; raise ConfigError on the first."""
    for key, check in VALIDATORS.items():
        node = cfg[key] if key in cfg else None
        if node is not None:
            check(node, key)
    if "algo" in cfg and "device" in cfg:
        validate_algo_device(cfg.algo, cfg.device)
    _check(cfg.torch_device == "cpu" or cfg.torch_device.startswith("cuda"), "torch_device", cfg.torch_device,
           "must be cpu or cuda[:N]")
    _check(cfg.threads is None or cfg.threads >= 1, "threads", cfg.threads, "must be >= 1 or null")


def to_object(node: Any) -> Any:
    """A typed dataclass copy of a (sub)config, for code that should not depend on OmegaConf."""
    if isinstance(node, DictConfig):
        return OmegaConf.to_object(node)
    return node
