"""A non-editable install (wheel, not `pip install -e`) runs from an unrelated directory.

Configs ship inside the wheel; this catches a missing package-data entry or a path that only
resolves inside the source tree.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package built as a wheel and installed into a private target directory."""
    root = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(root / "dist"), str(REPO)],
                   check=True, cwd=root, capture_output=True, timeout=300)
    wheel = next((root / "dist").glob("analog_train-*.whl"))
    subprocess.run([*pip, "install", "--no-deps", "--target", str(root / "site"), str(wheel)],
                   check=True, cwd=root, capture_output=True, timeout=300)
    return root


def _run(installed: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(installed / "site")}
    script = installed / "site" / "bin" / "analog-train"
    return subprocess.run([sys.executable, str(script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_wheel_ships_every_config(installed: Path) -> None:
    shipped = {p.relative_to(installed / "site" / "analog_train" / "conf")
               for p in (installed / "site" / "analog_train" / "conf").rglob("*.yaml")}
    in_tree = {p.relative_to(REPO / "analog_train" / "conf") for p in (REPO / "analog_train" / "conf").rglob("*.yaml")}
    assert shipped == in_tree


def test_installed_script_trains_from_another_directory(installed: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = _run(installed, tmp_path, "algo=sgd", "data=digits", "train.epochs=1", "progress=false",
                f"hydra.run.dir={out}")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed"
    assert (out / "metrics.csv").read_text().count("\n") == 2
    probe = _run(installed, tmp_path, "--cfg", "job", "algo=sgd")
    assert probe.returncode == 0, probe.stderr
    where = subprocess.run([sys.executable, "-c", "import analog_train; print(analog_train.__file__)"],
                           cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(installed / "site")},
                           capture_output=True, text=True, check=True)
    assert str(installed / "site") in where.stdout, "the test imported the source tree, not the wheel"
