"""Running the installed console script in tests: one-shot, in the background, and as an unprivileged user."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

SCRIPT = shutil.which("analog-train", path=str(Path(sys.executable).parent)) or shutil.which("analog-train")
NOBODY = 65534


def run_cli(cwd: Path, *args: str, timeout: float = 300, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``analog-train ARGS`` in ``cwd``; stdout and stderr captured as text."""
    assert SCRIPT, "the analog-train console script is not installed"
    return subprocess.run([SCRIPT, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def start_cli(cwd: Path, *args: str) -> subprocess.Popen:
    """``analog-train ARGS`` started in the background (stop it with a signal or ``kill``)."""
    assert SCRIPT, "the analog-train console script is not installed"
    return subprocess.Popen([SCRIPT, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition: Callable[[], Any], timeout: float = 120.0, poll: float = 0.01) -> Any:
    """Poll until ``condition()`` is truthy and return it; fail the test after ``timeout`` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    pytest.fail(f"waited {timeout} s in vain")


def summary(run_dir: Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / "summary.json").read_text())


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def unprivileged() -> list[str]:
    """A command prefix that runs a command as a user whose permissions are checked (root's are not):
    ``nobody`` through util-linux's ``setpriv`` when the tests run as root, nothing otherwise. The
    command must be readable by that user."""
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: cannot drop to an unprivileged user")
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


@pytest.fixture
def public_tmp() -> Iterator[Path]:
    """A fresh folder that ``unprivileged()`` can read (pytest's own temporary folders are private)."""
    path = Path(tempfile.mkdtemp(prefix="analog-train-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)
