"""Weight programming (paper Fig. 4, SPEC 7): how well does an algorithm write a known matrix?

One ``size x size`` analog layer learns a fixed target ``W_hat ~ N(0, target_std)`` from inputs
``x ~ N(0, 1)`` under the MSE loss, one sample per update, so ``d = W x - W_hat x`` (a digital,
exact forward: the paper's toy isolates the update). The metric is the RMS error
``eps_w = sqrt(mean((W - W_hat)^2))`` per replica, logged every ``log_every`` samples.

The whole sweep grid (``n_states x sigma_r x seeds``) of one algorithm is ONE population of P
replicas, each with its own device config, so an algorithm is one vectorised job. The same
target and input stream feed every replica and every algorithm; seeds differ in the
device-to-device draw. ``sigma_r`` (``reference_std``) goes to the accumulation array A (the
reference R of TTv2/c-TTv2); the weight array C gets ``experiment.weight_device`` on top (paper:
``sigma_b = 0`` on C). For in-memory SGD the only array is the weight, so ``sigma_r`` does not
reach it and its rows over ``sigma_r`` are replicas.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from analog_train.algorithms import AnalogAlgorithm, build_algorithm
from analog_train.config import AlgoConfig, DeviceConfig, ExperimentConfig, to_object, variant_algo
from analog_train.runner import signals
from analog_train.seeding import derived_seed

COLUMNS = ["algo", "n_states", "sigma_r", "seed", "samples", "eps_w"]


def experiment_settings(cfg: DictConfig) -> ExperimentConfig:
    """The experiment node with ``paper`` merged in when ``scale=paper`` (one documented switch)."""
    exp = cfg.experiment
    if exp.scale == "paper" and exp.paper:
        exp = OmegaConf.merge(exp, exp.paper)
    return to_object(exp)


def build_population(
    algo: AlgoConfig,
    a_cfgs: Sequence[DeviceConfig],
    c_cfgs: Sequence[DeviceConfig],
    shape: tuple[int, int],
    update: Any,
    construction: torch.Generator,
    run: torch.Generator,
    torch_device: str = "cpu",
) -> AnalogAlgorithm:
    """One algorithm over P replicas: SGD pulses the weight-array configs, the others A and C."""
    if algo.name == "sgd":
        return build_algorithm(algo, list(c_cfgs), shape, update, construction, run, population=len(c_cfgs),
                               device=torch_device)
    return build_algorithm(algo, list(a_cfgs), shape, update, construction, run, population=len(a_cfgs),
                           device=torch_device, weight_devices=list(c_cfgs))


def rms_error(w: Tensor, target: Tensor) -> Tensor:
    """``eps_w`` per replica: RMS of ``W - W_hat`` over the matrix (paper Fig. 4)."""
    return (w - target).pow(2).flatten(1).mean(dim=1).sqrt()


@torch.no_grad()
def program_weights(
    algorithm: AnalogAlgorithm, target: Tensor, samples: int, lr: float, log_every: int, data_gen: torch.Generator
) -> list[tuple[int, Tensor]]:
    """Single-sample pulsed SGD on the MSE toward ``target``; ``(samples seen, eps_w (P,))`` checkpoints.

    A SIGINT or SIGTERM (:mod:`.signals`) ends it early, with a last checkpoint at the sample reached.
    """
    p, n_out, n_in = algorithm.weight.shape
    dev = algorithm.weight.device
    algorithm.set_weights(torch.zeros(p, n_out, n_in, device=dev))
    target = target.to(dev)
    log = [(0, rms_error(algorithm.weight, target))]
    for t in range(1, samples + 1):
        x = torch.randn(1, 1, n_in, generator=data_gen).to(dev).expand(p, 1, n_in)
        d = torch.bmm(x, (algorithm.weight - target).transpose(1, 2))  # (P, 1, out): dL/dy of the MSE
        algorithm.update(x, d, lr)
        algorithm.post_step()
        stop = signals.requested()
        if t % log_every == 0 or t == samples or stop:
            log.append((t, rms_error(algorithm.weight, target)))
        if stop:
            break
    return log


def run_grid(
    cfg: DictConfig, exp: ExperimentConfig, points: list[dict[str, Any]], a_cfgs: list[DeviceConfig],
    c_cfgs: list[DeviceConfig],
) -> pd.DataFrame:
    """Every algorithm of ``exp.algos`` over the replicas described by ``points`` (one row each)."""
    shape = (exp.size, exp.size)
    update = to_object(cfg["update"])
    target_gen = torch.Generator().manual_seed(derived_seed(cfg.seed, 0, 6))
    target = exp.target_std * torch.randn(shape, generator=target_gen)
    rows = []
    for name in exp.algos:  # an algorithm or a named variant (e.g. c-TTv2 with regular choppers)
        algo = variant_algo(name, exp.variants, exp.algo_overrides)
        construction = torch.Generator().manual_seed(derived_seed(cfg.construction_seed, 0, 2))
        run = torch.Generator(device=cfg.torch_device).manual_seed(derived_seed(cfg.seed, 0, 3))
        data_gen = torch.Generator().manual_seed(derived_seed(cfg.seed, 0, 5))
        algorithm = build_population(algo, a_cfgs, c_cfgs, shape, update, construction, run, cfg.torch_device)
        for samples, eps in program_weights(algorithm, target, exp.samples, exp.lr, exp.log_every, data_gen):
            rows += [{"algo": name, **point, "samples": samples, "eps_w": float(e)} for point, e in zip(points, eps)]
        if signals.requested():  # stopped: the algorithms so far
            break
    return pd.DataFrame(rows, columns=[*points[0], "algo", "samples", "eps_w"] if points else None)


def weight_programming(cfg: DictConfig, out_dir: Path) -> dict[str, Any]:
    """The Fig. 4 grid: ``weight_programming.csv`` (tidy, one row per replica and checkpoint)."""
    exp = experiment_settings(cfg)
    base = to_object(cfg.device)
    points, a_cfgs = [], []
    for n_states in exp.n_states:
        for sigma_r in exp.reference_std:
            for seed in range(exp.seeds):
                points.append({"n_states": n_states, "sigma_r": sigma_r, "seed": seed})
                a_cfgs.append(replace(base, n_states=n_states, reference_std=sigma_r, **exp.fast_device))
    c_cfgs = [replace(c, **exp.weight_device) for c in a_cfgs]
    df = run_grid(cfg, exp, points, a_cfgs, c_cfgs)[COLUMNS]
    path = Path(out_dir) / "weight_programming.csv"
    df.to_csv(path, index=False)
    return {"csv": str(path), "replicas_per_algo": len(points), "final_eps_w": final_means(df, ["n_states", "sigma_r"])}


def final_means(df: pd.DataFrame, keys: list[str]) -> list[dict[str, Any]]:
    """Seed-mean ``eps_w`` at the last checkpoint, per algorithm and grid point (for summary.json)."""
    final = df[df.samples == df.samples.max()].groupby(["algo", *keys], sort=False).eps_w.mean().round(4)
    return final.reset_index().to_dict(orient="records")
