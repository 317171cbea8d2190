"""Every device preset trains the FC network with in-memory SGD (slow tier: real MNIST).

A short run per preset: 10000 training samples, one epoch, 2000 test samples. The bar is
learning, not accuracy. A network whose analog weights never learn still fits its digital
biases, which predicts the most frequent class; test accuracy must beat that baseline by five
standard errors of a 2000-sample estimate. No pulses, a wrong sign or NaNs cannot.
Some presets learn slowly with plain SGD (an unsubtracted symmetry point, large c2c noise):
that is the physics the TT family of algorithms addresses, so the bar stays at learning.
A preset whose single pulse moves a weight by more than the FC weights' scale (1/sqrt(784) =
0.036) and whose write noise is larger than that scale too (reram_array_hfo2: 0.46 per pulse,
noise 0.27; reram_array_om: 0.095 per pulse, noise 0.13, c2c 0.42) cannot be expected to learn
in one short run of plain SGD: reram_array_om reached 9-22 % over seeds 0-2 at 10k samples and
16-37 % at 30k, before and after the 2026-11-30 kernel changes alike (57 % after a full 60k
epoch). There the bar is a completed run with finite losses. (Coarse steps alone, as on
softbounds or pcm, or write noise alone, as on reram, still learn.)
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from analog_train.config import CONF_DIR
from analog_train.config import validate
from analog_train.data import load_dataset
from analog_train.devices.parameters import number_of_states
from analog_train.runner.train import train
from analog_train.config import compose_config
from tests.test_data import real_folder

PRESETS = sorted(p.stem for p in (Path(CONF_DIR) / "device").glob("*.yaml"))
WEIGHT_SCALE = 1 / math.sqrt(784)  # initial FC weights are uniform in +-1/sqrt(in_features)
OVERRIDES = ["algo=sgd", "data=mnist", "data.train_subset=10000", "data.test_subset=2000",
             "train.epochs=1", "progress=false", "threads=1"]


@pytest.fixture(scope="module")
def bias_only_accuracy() -> float:
    """Accuracy (%) of always predicting the most frequent test class, plus five standard errors."""
    real_folder("mnist")  # skips, saying why, when the MNIST files are not available
    data = load_dataset(compose_config(OVERRIDES).data)
    n = len(data.test_y)
    p = torch.bincount(data.test_y).max().item() / n
    return 100.0 * (p + 5 * math.sqrt(p * (1 - p) / n))


@pytest.mark.slow
@pytest.mark.parametrize("preset", PRESETS)
def test_sgd_trains_on_every_preset(preset: str, tmp_path: Path, bias_only_accuracy: float) -> None:
    cfg = compose_config([*OVERRIDES, f"device={preset}"])
    validate(cfg)
    result = train(cfg, tmp_path)
    assert result.status == "completed"
    step = (cfg.device.w_max - cfg.device.w_min) / number_of_states(cfg.device)
    if step > WEIGHT_SCALE and cfg.device.write_noise_std * step > WEIGHT_SCALE:
        assert all(math.isfinite(row["test_loss"]) for row in result.summary["final"])
        return
    accuracy = result.summary["test_accuracy"]
    assert accuracy > bias_only_accuracy, f"{preset}: {accuracy:.1f} % <= {bias_only_accuracy:.1f} %"
