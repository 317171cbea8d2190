"""Clear errors: one line naming the file, key or device, exit code 2, no traceback, before any compute.

Each case is one that ended in a traceback, a misleading message or silence (issue 14).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from analog_train.cli import app
from tests.helpers import SCRIPT, public_tmp, run_cli, unprivileged  # noqa: F401 - public_tmp is a fixture

MNIST = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz")


def one_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


def _as_nobody(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(cwd)}
    env.pop("ANALOG_TRAIN_DATA", None)
    return subprocess.run([*unprivileged(), sys.executable, SCRIPT, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("locked", ["folder", "file"])
def test_unreadable_data_is_named(public_tmp: Path, locked: str) -> None:
    data = public_tmp / "mnist"
    data.mkdir()
    for name in MNIST:
        (data / name).write_bytes(b"")
    (data / MNIST[0]).chmod(0o600 if locked == "file" else 0o644)
    data.chmod(0o700 if locked == "folder" else 0o755)
    work = public_tmp / "work"
    work.mkdir(mode=0o777)
    work.chmod(0o777)
    proc = _as_nobody(work, "algo=fp", "data=mnist", f"data.root={data}", "data.download=false", "hydra.run.dir=run")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "truncated or corrupted" not in proc.stderr
    if locked == "file":
        assert one_line(proc.stderr) == f"error: {data / MNIST[0]}: permission denied; make it readable (chmod), " \
                                        "or point data.root at a readable copy"
    else:
        assert f"{data} (permission denied)" in proc.stderr


def test_data_root_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    proc = run_cli(tmp_path, "algo=fp", "data=digits", f"data.root={tmp_path / 'nowhere'}", "hydra.run.dir=run")
    assert proc.returncode == 2
    assert one_line(proc.stderr) == f"error: data.root={tmp_path / 'nowhere'}: no such folder"


@pytest.mark.skipif(torch.cuda.is_available(), reason="this torch has a CUDA device")
def test_cuda_on_a_cpu_only_torch_fails_before_the_data(tmp_path: Path) -> None:
    proc = run_cli(tmp_path, "torch_device=cuda", "data=digits", f"data.root={tmp_path / 'nowhere'}", "hydra.run.dir=run")
    assert proc.returncode == 2
    line = one_line(proc.stderr)
    assert line.startswith("error: torch_device=cuda:") and "no CUDA" in line  # not the data.root error
    assert not (tmp_path / "run" / "metrics.csv").exists()


@pytest.mark.parametrize("content,message", [
    ("", "the file is empty"),
    ('a,b\n1,2\n"3,4\n', "not a readable CSV file"),
    ("epoch,replica,test_error\n1,0,5.0\n", "not the CSV of this figure: it lacks column(s) algo, n_states"),
    ("algo,n_states,sigma_r,samples,eps_w\n", "no rows"),
    ("algo,n_states,sigma_r,samples,eps_w\nsgd,many,0.1,100,0.3\n", "column n_states holds values that are not numbers"),
])
def test_plot_names_a_csv_it_cannot_draw(tmp_path: Path, content: str, message: str) -> None:
    csv = tmp_path / "data.csv"
    csv.write_text(content)
    result = CliRunner().invoke(app, ["plot", "fig4", str(csv)])
    assert result.exit_code == 2
    line = one_line(result.output)
    assert line.startswith(f"error: {csv}: ") and message in line
    assert not list(tmp_path.glob("data.p*"))  # no figure drawn


def test_plot_of_each_figure_checks_its_columns(tmp_path: Path) -> None:
    csv = tmp_path / "metrics.csv"
    csv.write_text("epoch,test_error\n1,5.0\n")
    for figure in ("fig2", "fig3", "fig4", "fig6", "table1"):
        result = CliRunner().invoke(app, ["plot", figure, str(csv)])
        assert result.exit_code == 2, (figure, result.output)
        assert "it lacks column(s)" in one_line(result.output)


def test_devices_fit_to_an_unwritable_path_fails_before_fitting(tmp_path: Path) -> None:
    data = tmp_path / "pulses.csv"
    data.write_text("device_id,pulse_index,direction,weight\n")  # would fail the fit: the path is checked first
    blocker = tmp_path / "a file"
    blocker.write_text("")
    result = CliRunner().invoke(app, ["devices", "fit", str(data), "--out", str(blocker / "device" / "mine.yaml")])
    assert result.exit_code == 2
    assert one_line(result.output) == f"error: cannot write {blocker / 'device' / 'mine.yaml'}: {blocker} is not a folder"


def test_devices_list_rejects_a_negative_count() -> None:
    result = CliRunner().invoke(app, ["devices", "list", "--devices", "-5"])
    assert result.exit_code == 2
    assert one_line(result.output) == "error: --devices=-5: must be >= 1 (devices drawn per preset)"
