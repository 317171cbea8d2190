"""Run configs: schemas with each field's allowed range, Hydra composition, and checking.

* :mod:`.rules`: how a field states its range, unit and meaning, and the checker (:func:`build`).
* :mod:`.devices`: one schema per device family; :mod:`.algorithms`: one per algorithm;
  :mod:`.crossbar`: ``io`` and ``update``; :mod:`.run`: model, data, train, experiment, the root.
* :mod:`.check`: a composed config checked and typed as a whole (:func:`validate`).
* :mod:`.compose`: composing outside the Hydra app (:func:`compose_config`), Hydra's errors as one line.

Every invalid value fails with :class:`ConfigError`: one line naming the key and what it allows.
"""

from analog_train.config.algorithms import (
    ALGORITHMS, ANALOG_ALGORITHMS, TRANSFER_ALGORITHMS, AGADConfig, AlgoConfig, CTTv2Config, FPConfig, SGDConfig,
    TransferConfig, TTv2Config, build_algo, make_algo,
)
from analog_train.config.check import (
    CONF_DIR, GENERIC, check_algo_arrays, check_arrays, check_run, experiment_algo, load_algo_yaml, to_object, validate,
    variant_algo,
)
from analog_train.config.compose import compose_config, compose_raw, device_presets, one_line, register_configs
from analog_train.config.crossbar import IOConfig, UpdateConfig
from analog_train.config.devices import (
    DEVICE_FAMILIES, ConstantStepDevice, DeviceConfig, ExpStepDevice, LinearStepDevice, PiecewiseStepDevice,
    PowStepDevice, SoftBoundsDevice, build_device, make_device,
)
from analog_train.config.rules import ConfigError, FieldInfo, Rule, field_infos
from analog_train.config.run import (
    DATASETS, EXPERIMENTS, MODELS, TRAINING_EXPERIMENTS, Config, DataConfig, ExperimentConfig, ModelConfig, TrainConfig,
    WarAndPeaceData,
)

__all__ = [
    "AGADConfig", "ALGORITHMS", "ANALOG_ALGORITHMS", "AlgoConfig", "CONF_DIR", "CTTv2Config", "Config", "ConfigError",
    "ConstantStepDevice", "DATASETS", "DEVICE_FAMILIES", "DataConfig", "DeviceConfig", "EXPERIMENTS", "ExpStepDevice",
    "ExperimentConfig", "FPConfig", "FieldInfo", "GENERIC", "IOConfig", "LinearStepDevice", "MODELS", "ModelConfig",
    "PiecewiseStepDevice", "PowStepDevice", "Rule", "SGDConfig", "SoftBoundsDevice", "TRANSFER_ALGORITHMS", "TTv2Config",
    "TRAINING_EXPERIMENTS", "TrainConfig", "TransferConfig", "UpdateConfig", "WarAndPeaceData", "build_algo", "build_device", "check_algo_arrays", "check_arrays", "check_run",
    "compose_config", "compose_raw", "device_presets", "experiment_algo", "field_infos", "load_algo_yaml", "make_algo",
    "make_device", "one_line", "register_configs", "to_object", "validate", "variant_algo",
]
