"""conf/model_algo/<model>_<algo>.yaml: schedule changes that Hydra loads for one (model, algorithm) pair.

The defaults entry is optional, so a file whose name matches no pair would be skipped in silence:
every file must name a shipped model and algorithm, compose and validate, and change the model's
own schedule.
"""

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from analog_train.config import compose_config
from analog_train.config.check import CONF_DIR

PRESETS = sorted(p.stem for p in (Path(CONF_DIR) / "model_algo").glob("*.yaml"))
MODELS = {p.stem for p in (Path(CONF_DIR) / "model").glob("*.yaml")}
ALGOS = {p.stem for p in (Path(CONF_DIR) / "algo").glob("*.yaml")}


def test_there_are_presets():
    assert PRESETS


@pytest.mark.parametrize("preset", PRESETS)
def test_each_preset_names_a_model_and_algorithm_and_is_loaded_for_that_pair(preset):
    model, algo = preset.split("_", 1)
    assert model in MODELS and algo in ALGOS, f"{preset}.yaml matches no (model, algo) pair"
    cfg = compose_config([f"model={model}", f"algo={algo}"])  # composes and validates
    own = compose_config([f"model={model}", f"algo={algo}", "~model_algo"])
    assert OmegaConf.to_container(cfg.train) != OmegaConf.to_container(own.train)
