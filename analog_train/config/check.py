"""A composed run config, checked and typed as a whole: sections, overlays, cross-section rules.

The values a run uses come from several places: the sections themselves, ``algo.device_c`` (the
weight array's device), ``experiment.fast_device`` / ``weight_device`` / ``algo_overrides`` (what a
paper experiment changes per array and per algorithm) and ``experiment.paper``. Each overlay is
checked on top of what it changes, with the schema that will read it, so a value is range-checked
wherever it sits and an error names the key where the user wrote it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict, read_write
from omegaconf.errors import OmegaConfBaseException

from analog_train.config.algorithms import ALGORITHMS, TRANSFER_ALGORITHMS, AlgoConfig, build_algo
from analog_train.config.crossbar import IOConfig, UpdateConfig
from analog_train.config.devices import DeviceConfig, build_device
from analog_train.config.rules import ConfigError, build, join, keys_of, unknown_key
from analog_train.config.run import DATASETS, EXPERIMENTS, MODELS, Config, ExperimentConfig, PopulationConfig, TrainConfig

log = logging.getLogger(__name__)

# The config tree ships inside the package, so the installed console script finds it anywhere.
CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
GENERIC = "generic"  # device_preset of a device that names no preset: the algorithms' own settings

SECTIONS = {"io": IOConfig, "update": UpdateConfig, "train": TrainConfig, "population": PopulationConfig}  # one each
SELECTED = {"model": MODELS, "data": DATASETS}  # schema chosen by the section's name


def check_run(values: Mapping[str, Any]) -> Config:
    """The typed run config of a plain mapping (``hydra`` excluded); ConfigError on the first problem."""
    known = keys_of(Config)
    for key in values:
        if key not in known:
            raise unknown_key(key, known, "the run config")
    algo = build_algo(values.get("algo", {}))
    device = build_device(values.get("device", {}))
    typed = dict(values, algo=algo, device=device)
    for key, registry in SELECTED.items():
        typed[key] = registry.build(_mapping(values.get(key, {}), key), key)
    check_model_data(typed["model"], typed["data"])
    experiment = values.get("experiment") or None  # open_sections leaves an empty node in plain runs
    typed["experiment"] = experiment
    if experiment is not None and "name" not in _mapping(experiment, "experiment"):
        key = f"experiment.{next(iter(experiment))}"
        raise ConfigError(f"{key}: experiment settings need a paper experiment (experiment=<name>; names: "
                          f"{', '.join(EXPERIMENTS)})", key)
    if experiment is not None:
        typed["experiment"] = build(ExperimentConfig, _mapping(experiment, "experiment"), "experiment")
    cfg = build(Config, typed, "")
    check_arrays(algo, values.get("device", {}), "algo")
    for group in cfg.population.groups():  # every replica's device, checked as it will be built
        for key, value in group.items():
            if key == "family":
                raise ConfigError("population.device.family: the replicas of a network share their device family",
                                  "population.device.family")
        overlay(values.get("device", {}), group, "population.device")
    if cfg.experiment is not None:
        check_experiment(cfg.experiment, values)
    return cfg


def check_model_data(model: Any, data: Any) -> None:
    """The network and its data: the kind of data it reads, and what its layers need of the images."""
    if model.DATA_KIND != data.DATA_KIND:
        fits = [name for name, cls in DATASETS.schemas.items() if cls.DATA_KIND == model.DATA_KIND]
        raise ConfigError(f"model.name={model.name}: reads {model.DATA_KIND} data, data.name={data.name} is "
                          f"{data.DATA_KIND} data (use data={' or data='.join(fits)})", "model.name")
    for key, value, ok, allowed in model.fits(data):
        if not ok:
            raise ConfigError(f"model.{key}={value}: {allowed}", f"model.{key}")


def _mapping(value: Any, key: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key}={value}: must be a mapping of keys to values", key)
    return value


def check_arrays(algo: AlgoConfig, device: Mapping[str, Any], prefix: str) -> DeviceConfig | None:
    """The arrays an algorithm builds from ``device``: A as it is, and for the transfer algorithms C with
    ``device_c`` on top (a valid device of the same family). Returns C's config (None: no C)."""
    a = build_device(device)
    if algo.name not in TRANSFER_ALGORITHMS:
        return None
    c = overlay(device, algo.device_c, f"{prefix}.device_c")  # type: ignore[attr-defined]
    check_algo_arrays(algo.name, a, c, prefix)
    return c


def check_algo_arrays(name: str, a: DeviceConfig, c: DeviceConfig | None = None, prefix: str = "algo") -> None:
    """Combinations that cannot work: a one-sided (potentiation-only) cell as A or C of a transfer algorithm."""
    if name not in TRANSFER_ALGORITHMS:
        return
    if a.one_sided:
        raise ConfigError(
            f"{prefix}.name={name} with device.one_sided=true: A must be pulsed up and down and decay to its "
            f"symmetry point; {'/'.join(TRANSFER_ALGORITHMS)} work with bidirectional devices (device.one_sided=false), "
            "one-sided devices only with algo=sgd or fp", f"{prefix}.name")
    if c is not None and c.one_sided:
        raise ConfigError(f"{prefix}.device_c.one_sided=true: a one-sided weight array C is not supported "
                          "(use a bidirectional device for C)", f"{prefix}.device_c.one_sided")


def overlay(device: Mapping[str, Any], changes: Mapping[str, Any], prefix: str) -> DeviceConfig:
    """``device`` with ``changes`` on top, checked; errors name ``prefix.<key>``."""
    merged = {**device, **changes}
    if "family" in changes:
        raise ConfigError(f"{prefix}.family: an array cannot change the device family", f"{prefix}.family")
    return build_device(merged, prefix)


def check_experiment(exp: ExperimentConfig, values: Mapping[str, Any]) -> None:
    """The experiment's overlays on the device and the algorithms, and its ``paper`` block."""
    device = values.get("device", {})
    fast = overlay(device, exp.fast_device, "experiment.fast_device")
    overlay(asdict(fast), exp.weight_device, "experiment.weight_device")
    # Every algorithm that has a key takes it (in-memory SGD none): a key no algorithm has is a typo,
    # and each value is checked by every schema that would read it.
    for key in exp.algo_overrides:
        if not any(key in keys_of(cls) for cls in ALGORITHMS.values()):
            every = sorted({k for cls in ALGORITHMS.values() for k in keys_of(cls)} - {"name"})
            raise unknown_key(f"experiment.algo_overrides.{key}", every, "any algorithm")
    for name in ALGORITHMS:
        algo = experiment_algo(name, exp.algo_overrides, "experiment.algo_overrides")
        if name in exp.algos:
            check_arrays(algo, asdict(fast), "experiment.algo_overrides")
    for label in exp.variants:  # a variant's own keys belong to its algorithm
        name, own = variant_parts(label, exp.variants)
        for key in own:
            if key not in keys_of(ALGORITHMS[name]):
                raise unknown_key(f"experiment.variants.{label}.{key}", keys_of(ALGORITHMS[name]), f"algo={name}")
        variant_algo(label, exp.variants, exp.algo_overrides, f"experiment.variants.{label}")
    if exp.paper:
        build(ExperimentConfig, {**_experiment_values(values), **exp.paper}, "experiment.paper", where="experiment")


def _experiment_values(values: Mapping[str, Any]) -> Mapping[str, Any]:
    return values.get("experiment") or {}


def load_algo_yaml(name: str) -> dict[str, Any]:
    """``conf/algo/<name>.yaml`` as a plain mapping (the algorithm's generic settings)."""
    node = OmegaConf.load(CONF_DIR / "algo" / f"{name}.yaml")
    node.pop("defaults", None)
    return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]


def experiment_algo(name: str, overrides: Mapping[str, Any], prefix: str = "experiment.algo_overrides") -> AlgoConfig:
    """Algorithm ``name`` from its YAML with the ``overrides`` that it has (the others belong to other algorithms).

    The per-(algorithm, device) presets of ``conf/algo_device/`` do not apply: a paper experiment
    states every hyper-parameter it depends on.
    """
    own = {k: v for k, v in overrides.items() if k in keys_of(ALGORITHMS[name])}
    try:
        return build_algo({**load_algo_yaml(name), **own})
    except ConfigError as err:  # name the key where it was written
        key = err.key.split(".", 1)[-1]
        if key.split(".")[0] in own:
            raise ConfigError(str(err).replace(err.key, f"{prefix}.{key}", 1), f"{prefix}.{key}") from None
        raise


def variant_parts(label: str, variants: Mapping[str, Mapping[str, Any]]) -> tuple[str, dict[str, Any]]:
    """The algorithm behind an experiment's ``algos`` entry and the keys its variant sets: a plain
    algorithm name, or a label of ``variants`` (``{label: {name: <algorithm>, <key>: ...}}``)."""
    variant = dict(variants.get(label, {"name": label}))
    return variant.pop("name"), variant


def variant_algo(label: str, variants: Mapping[str, Mapping[str, Any]], overrides: Mapping[str, Any],
                 prefix: str = "experiment.algo_overrides") -> AlgoConfig:
    """:func:`experiment_algo` of an ``algos`` entry: its variant's own keys go on top of ``overrides``."""
    name, own = variant_parts(label, variants)
    return experiment_algo(name, {**overrides, **own}, prefix)


# -- the composed DictConfig -------------------------------------------------------------------------
def job_values(cfg: DictConfig) -> dict[str, Any]:
    """The job part of a composed config (no ``hydra`` node), interpolations resolved."""
    try:
        return {k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
                for k in cfg if k != "hydra"}
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", "") or "config"
        raise ConfigError(f"{key}: {str(err).splitlines()[0]}", key) from None


def validate(cfg: DictConfig) -> None:
    """Check a composed run config and type it in place: ``cfg.device`` becomes its family's schema,
    ``cfg.algo`` its algorithm's, missing keys take the schema defaults. ConfigError (one line
    naming the key and the allowed range) on the first problem, before any data is loaded."""
    typed = OmegaConf.structured(check_run(job_values(cfg)))
    with read_write(cfg), open_dict(cfg):
        for key in typed:
            cfg[key] = typed[key]
    note_generic_settings(cfg)


def note_generic_settings(cfg: DictConfig) -> None:
    """One log line when a transfer algorithm trains a device that names no preset (generic settings)."""
    if cfg.device_preset == GENERIC and cfg.algo.name in TRANSFER_ALGORITHMS:
        log.info("device %s names no preset (device_preset=%s): %s runs with its generic settings (conf/algo/%s.yaml); "
                 "a device YAML inherits a preset's settings with defaults: [<preset>], or pass device_preset=<preset>",
                 cfg.device.source or f"family={cfg.device.family}", GENERIC, cfg.algo.name, cfg.algo.name)


def to_object(node: Any) -> Any:
    """A typed dataclass copy of a (sub)config, for code that should not depend on OmegaConf."""
    if isinstance(node, DictConfig):
        return OmegaConf.to_object(node)
    return node
