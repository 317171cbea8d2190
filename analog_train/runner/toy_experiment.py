"""``experiment=toy_mechanism`` (paper Fig. 3): the Hydra-configured call of :func:`toy_mechanism`.

The mechanism itself lives in :mod:`analog_train.runner.toy_mechanism`; this wrapper takes its
settings from the composed config (device, update, ``experiment.*``) and writes the traces CSV.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from analog_train.config import to_object
from analog_train.runner.toy_mechanism import toy_mechanism
from analog_train.runner.weight_programming import experiment_settings


def toy_experiment(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """``toy_mechanism.csv``: element (0, 0) traces per algorithm and reference offset."""
    exp = experiment_settings(cfg)
    df = toy_mechanism(
        samples=exp.samples, alpha=exp.alpha, reference_offsets=list(exp.reference_offsets), algos=list(exp.algos),
        lr=exp.lr, size=exp.size, seed=cfg.seed, construction_seed=cfg.construction_seed,
        device=replace(to_object(cfg.device), **exp.fast_device), update=to_object(cfg["update"]),
        algo_overrides=exp.algo_overrides, variants=exp.variants,
    )
    path = Path(out_dir) / "toy_mechanism.csv"
    df.to_csv(path, index=False)
    final = df[df["sample"] == df["sample"].max()].set_index(["algo", "reference_offset"]).W
    return {"csv": str(path), "final_W00": [{"algo": a, "reference_offset": o, "W": round(float(w), 4)}
                                            for (a, o), w in final.items()]}
