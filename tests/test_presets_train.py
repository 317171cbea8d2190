"""Every device preset trains the FC network with in-memory SGD (slow tier: real MNIST).

A short run per preset: 3000 training samples, one epoch. The bar is learning, not accuracy:
test accuracy on 1000 samples must clear chance (10 %) by far more than its standard error
(about 1 % at these sizes), which a broken update (no pulses, wrong sign, NaN) cannot do.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from analog_train.cli import CONF_DIR
from analog_train.config import validate
from analog_train.runner.train import train
from tests.test_config_cli import compose_cfg
from tests.test_data import real_folder

PRESETS = sorted(p.stem for p in (Path(CONF_DIR) / "device").glob("*.yaml"))


@pytest.mark.slow
@pytest.mark.parametrize("preset", PRESETS)
def test_sgd_trains_on_every_preset(preset: str, tmp_path: Path) -> None:
    real_folder("mnist")  # skips, saying why, when the MNIST files are not available
    cfg = compose_cfg(["algo=sgd", f"device={preset}", "data=mnist", "data.train_subset=3000",
                       "data.test_subset=1000", "train.epochs=1", "progress=false", "threads=1"])
    validate(cfg)
    result = train(cfg, tmp_path)
    assert result.status == "completed"
    assert result.summary["test_accuracy"] > 30.0, f"{preset}: {result.summary['test_accuracy']:.1f} %"
