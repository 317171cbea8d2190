"""A non-editable install (wheel, not `pip install -e`) runs from an unrelated directory.

Configs ship inside the wheel; this catches a missing package-data entry or a path that only
resolves inside the source tree.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import public_tmp, unprivileged  # noqa: F401 - public_tmp is a fixture

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed() -> Iterator[Path]:
    """The package built as a wheel and installed into a target directory of its own (readable by all
    users, so that an unprivileged user can run it too)."""
    root = Path(tempfile.mkdtemp(prefix="analog-train-wheel-"))
    root.chmod(0o755)
    try:
        yield _install(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _install(root: Path) -> Path:
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


def test_read_only_install_without_writable_home_trains(installed: Path, public_tmp: Path) -> None:
    """Nowhere to cache the compiled kernels (read-only site-packages, no writable HOME): still trains."""
    site = installed / "site"
    files = set(site.rglob("*"))
    for path in [site, *files]:  # read-only for everyone but root, who runs it as nobody
        path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    home = public_tmp / "home"
    home.mkdir(mode=0o555)
    work = public_tmp / "work"
    work.mkdir()
    work.chmod(0o777)
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_CACHE_HOME", "NUMBA_CACHE_DIR")}
    env.update(PYTHONPATH=str(site), HOME=str(home))
    try:
        proc = subprocess.run([*unprivileged(), sys.executable, str(site / "bin" / "analog-train"), "algo=fp",
                               "data=digits", "train.epochs=1", "progress=false", "hydra.run.dir=run"], cwd=work,
                              env=env, capture_output=True, text=True, timeout=300)
    finally:
        for path in [site, *site.rglob("*")]:
            path.chmod(path.stat().st_mode | stat.S_IWUSR)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert json.loads((work / "run" / "summary.json").read_text())["status"] == "completed"
    assert set(site.rglob("*")) == files, "the run wrote into the read-only package"
    said = proc.stdout + proc.stderr + (work / "run" / "analog-train.log").read_text()
    assert said.count("no writable cache folder for the compiled kernels") == 1  # one warning, no traceback
    assert "Traceback" not in said
