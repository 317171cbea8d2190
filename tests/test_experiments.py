"""Paper experiments (SPEC 7): configs compose, runners write tidy CSVs and plots, Fig. 4 ordering, figures."""

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from analog_train.config import CONF_DIR, compose_config, validate
from analog_train.runner.experiment import run_experiment
from analog_train.runner.weight_programming import COLUMNS, experiment_settings

SCRIPT = shutil.which("analog-train", path=str(Path(sys.executable).parent)) or shutil.which("analog-train")
EXPERIMENTS = sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml"))
TINY = ["experiment.samples=60", "experiment.log_every=30", "experiment.seeds=1", "experiment.n_states=[20,80]",
        "experiment.reference_std=[0.0,0.5]"]




@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiment_configs_compose_and_validate(name):
    cfg = compose_config([f"experiment={name}"])
    validate(cfg)
    # fc_mnist is a set of overrides of the ordinary train loop; Fig. 5's panels share the fig5 set-up.
    expected = {"fc_mnist": None}.get(name, "fig5" if name.startswith("fig5_") else name)
    assert (cfg.experiment is None) if expected is None else cfg.experiment.name == expected


def test_default_is_the_train_loop_and_paper_scale_merges():
    assert compose_config().experiment is None  # a plain run has no experiment settings
    reduced = experiment_settings(compose_config(["experiment=weight_programming"]))
    paper = experiment_settings(compose_config(["experiment=weight_programming", "experiment.scale=paper"]))
    assert paper.samples > reduced.samples
    # Fig. 4 device: sigma_pm 0.1 on A, sigma_b = 0 on the weight array; grid of 6 x 5 x 3 replicas.
    assert reduced.weight_device["w_max_dtod"] == 0 and compose_config(["experiment=weight_programming"]).device.up_down_dtod == 0.1
    assert len(reduced.n_states) * len(reduced.reference_std) * reduced.seeds == 90


def test_weight_programming_tiny_grid_writes_csv_and_plot(tmp_path):
    cfg = compose_config(["experiment=weight_programming", *TINY])
    summary = run_experiment(cfg, tmp_path)
    assert summary["status"] == "completed"
    df = pd.read_csv(tmp_path / "weight_programming.csv")
    assert list(df.columns) == COLUMNS
    algos = list(cfg.experiment.algos)
    assert sorted(df.algo.unique()) == sorted(algos)
    assert len(df) == len(algos) * 4 * 3  # 4 replicas, checkpoints at 0, 30, 60 samples
    assert (df.eps_w > 0).all() and set(df.samples) == {0, 30, 60}
    for suffix in (".png", ".pdf"):
        assert (tmp_path / f"weight_programming{suffix}").stat().st_size > 0
    assert (tmp_path / "summary.json").exists()


def test_asymmetry_tiny_writes_csvs_and_plot(tmp_path):
    cfg = compose_config(["experiment=asymmetry", "experiment.samples=40", "experiment.log_every=40",
                       "experiment.seeds=2", "experiment.bounds=[1,4]", "experiment.response_pulses=10",
                       "experiment.algos=[sgd,agad]"])
    run_experiment(cfg, tmp_path)
    df = pd.read_csv(tmp_path / "asymmetry.csv")
    assert list(df.columns) == ["algo", "w_max", "n_states", "seed", "samples", "eps_w"]
    assert sorted(set(zip(df.w_max, df.n_states))) == [(1, 20), (4, 80)]
    resp = pd.read_csv(tmp_path / "asymmetry_responses.csv")
    assert len(resp) == 2 * (2 * 10 + 1)
    # Same step at w = 0: the first up pulse moves every bound setting by about dw_min = 0.1.
    first = resp[resp.pulse == 1].weight.to_numpy()
    assert ((first > 0.05) & (first < 0.15)).all()
    # Wider bounds saturate later: the top of the ramp grows with the bound.
    top = resp[resp.pulse == 10].set_index("w_max").weight
    assert top[4.0] > top[1.0]
    assert (tmp_path / "asymmetry.png").exists() and (tmp_path / "asymmetry.pdf").exists()


def _fig4_means(tmp_path, samples):
    cfg = compose_config(["experiment=weight_programming", f"experiment.samples={samples}",
                       f"experiment.log_every={samples}", "experiment.seeds=2", "experiment.n_states=[20]",
                       "experiment.reference_std=[0.0,0.5]", "plot=false"])
    run_experiment(cfg, tmp_path)
    df = pd.read_csv(tmp_path / "weight_programming.csv")
    return df[df.samples == samples].groupby(["algo", "sigma_r"]).eps_w.mean()


def _check_fig4_ordering(m):
    assert m["sgd", 0.0] > 0.25  # paper: SGD > 25 % at 20 states
    assert m["sgd", 0.0] > 1.5 * m["ttv2", 0.0]
    assert m["ttv2", 0.5] > 2 * m["ttv2", 0.0]  # TTv2 breaks with a reference offset
    assert abs(m["agad", 0.5] - m["agad", 0.0]) < 0.25 * m["agad", 0.0]  # AGAD is offset-invariant
    assert m["cttv2", 0.5] < m["ttv2", 0.5]  # choppers tolerate the offset


def test_fig4_ordering_fast(tmp_path):
    _check_fig4_ordering(_fig4_means(tmp_path, 3000))


@pytest.mark.slow
def test_fig4_ordering_converged(tmp_path):
    m = _fig4_means(tmp_path, 10000)
    _check_fig4_ordering(m)
    assert m["ttv2", 0.0] < 0.08  # paper: TTv2 ~5 % at 20 states without offset


def run_cli(tmp_path, *args, timeout=600):
    assert SCRIPT, "the analog-train console script is not installed"
    return subprocess.run([SCRIPT, *args], cwd=tmp_path, capture_output=True, text=True, timeout=timeout)


def test_cli_experiment_dispatch_writes_into_the_run_dir(tmp_path):
    proc = run_cli(tmp_path, "experiment=weight_programming", *TINY, "experiment.algos=[sgd]", "hydra.run.dir=run")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "run" / "weight_programming.csv").exists()
    assert (tmp_path / "run" / "summary.json").exists() and not (tmp_path / "run" / "metrics.csv").exists()


def test_figures_smoke_and_plot_redraw(tmp_path):
    proc = run_cli(tmp_path, "figures", "--smoke", "--out", "figs", "--only", "fig2,fig3,fig4,fig6,table1")
    assert proc.returncode == 0, proc.stderr
    figs = tmp_path / "figs"
    for fig in ("fig2", "fig3", "fig4", "fig6", "table1"):
        for suffix in (".csv", ".png", ".pdf"):
            assert (figs / f"{fig}{suffix}").stat().st_size > 0, f"{fig}{suffix}"
    assert (figs / "fig6_responses.csv").exists()
    table = pd.read_csv(figs / "table1.csv")
    assert table.time_ns.round(1).tolist() == [30.9, 56.3, 56.3, 62.1, 3024.5, 17.1]
    proc = run_cli(tmp_path, "plot", "fig4", "figs/fig4.csv", "--out", "redrawn")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "redrawn.png").exists() and (tmp_path / "redrawn.pdf").exists()
    assert run_cli(tmp_path, "plot", "fig9", "figs/fig4.csv").returncode == 2
    assert run_cli(tmp_path, "figures", "--only", "fig9").returncode == 2


def test_toy_mechanism_shows_the_six_fig3_claims(tmp_path):
    """Paper Fig. 3 on the default toy (5000 single-sample updates, element (0, 0), one seed).

    The expected gradient pushes W(0, 0) down. Margins are in device steps (eps = 2/40 = 0.05):
    "moves the right way" is more than two steps down; "stalls or drifts the wrong way" is less
    than one step down; AGAD "unaffected" is within two steps of its offset-free result.
    """
    run_experiment(compose_config(["experiment=toy_mechanism", "plot=false"]), tmp_path)
    trace = pd.read_csv(tmp_path / "toy_mechanism.csv")
    w = trace.groupby(["algo", "reference_offset"])["W"].last()
    eps = 0.05
    assert w["ttv2", 0.0] < -2 * eps  # 1: TTv2 learns without offset
    assert w["ttv2", -0.8] > -eps  # 2: TTv2 fails with offset
    assert w["cttv2", 0.0] < -2 * eps  # 3: c-TTv2 learns without offset
    assert w["cttv2", -0.8] < -2 * eps  # 4: c-TTv2 still moves the right way with offset ...
    assert w["cttv2", -0.8] > w["agad", -0.8]  # 5: ... more slowly than AGAD
    assert w["agad", 0.0] < -2 * eps and abs(w["agad", -0.8] - w["agad", 0.0]) < 2 * eps  # 6: AGAD unaffected
