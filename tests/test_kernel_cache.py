"""The compiled-kernel cache: stale after any kernel module changes, and found wherever the package is.

numba checks a cached function against its own file only; the package's locators stamp every
kernel with all kernel modules' sources (analog_train/kernel_cache.py). The end-to-end test
edits the callee of a cached kernel in a copy of the package and runs it again: with numba's own
locator (the control) the old code runs, with the package's the new one.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from numba.core.caching import NullCache
from numba.core.registry import CPUDispatcher

from analog_train import kernel_cache
from analog_train.algorithms import transfer_kernel
from analog_train.crossbar import mvm_kernel
from analog_train.devices import kernels

PACKAGE = Path(kernel_cache.__file__).parent
CALLER = '''from analog_train import kernel_cache

kernel_cache.register()

from numba import njit

from analog_train.probe_callee import value


@njit(cache=True)
def caller():
    return value() + 1


if __name__ == "__main__":
    print(caller(), sum(caller.stats.cache_hits.values()))
'''
CALLEE = "from numba import njit\n\n\n@njit\ndef value():\n    return {value}\n"


def test_every_cached_kernel_uses_the_package_locators() -> None:
    # the device, read and transfer kernels, and the algorithms whose buffer rules compile into their transfer step
    assert {p.name for p in kernel_cache.kernel_sources()} == {"kernels.py", "transfer_kernel.py", "mvm_kernel.py",
                                                               "ttv2.py", "cttv2.py", "agad.py"}
    cached = 0
    for module in (kernels, transfer_kernel, mvm_kernel):
        for name, obj in vars(module).items():
            if isinstance(obj, CPUDispatcher) and not isinstance(obj._cache, NullCache):
                locator = kernel_cache.locator_of(obj)
                assert isinstance(locator, kernel_cache.PackageLocator), f"{module.__name__}.{name}"
                assert locator.get_source_stamp() == kernel_cache.fingerprint()
                cached += 1
    assert cached >= 10


def _probe(pkg: Path, env: dict[str, str]) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-m", "analog_train.probe_caller"], cwd=pkg, env=env, capture_output=True,
                         text=True, timeout=120, check=True).stdout.split()
    return int(out[0]), int(out[1])


@pytest.mark.parametrize("locators", ["package", "numba"])
def test_editing_a_callee_recompiles_the_cached_caller(tmp_path: Path, locators: str) -> None:
    pkg = tmp_path / "src"
    shutil.copytree(PACKAGE, pkg / "analog_train", ignore=shutil.ignore_patterns("__pycache__", "conf"))
    (pkg / "analog_train" / "probe_caller.py").write_text(CALLER)
    callee = pkg / "analog_train" / "probe_callee.py"
    callee.write_text(CALLEE.format(value=1))
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "PYTHONPATH")}
    env["PYTHONPATH"] = str(pkg)
    if locators == "numba":  # the control: numba's own in-tree locator, stamped with the caller's file only
        env["NUMBA_CACHE_LOCATOR_CLASSES"] = "numba.core.caching.InTreeCacheLocator"
    assert _probe(pkg, env) == (2, 0)  # compiled and cached
    assert _probe(pkg, env) == (2, 1)  # loaded from the cache
    callee.write_text(CALLEE.format(value=10))
    result = _probe(pkg, env)[0]
    if locators == "numba":
        assert result == 2  # the fault: the cached caller keeps the old callee
    else:
        assert result == 11
        assert list((pkg / "analog_train" / "__pycache__").glob("probe_caller.caller-*.nbi"))


def _locate() -> kernel_cache.PackageLocator:
    def kernel() -> None:
        pass

    source = str(PACKAGE / "devices" / "kernels.py")
    for cls in kernel_cache.LOCATORS:
        locator = cls.from_function(kernel, source)
        if locator is not None:
            return locator
    raise AssertionError("no locator")


def test_read_only_package_uses_a_per_user_folder_then_a_private_one(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    blocked = tmp_path / "a file"
    blocked.write_text("")  # no folder can be made below a file, whoever runs the tests
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setattr(kernel_cache.config, "CACHE_DIR", "")
    monkeypatch.setattr(kernel_cache.InTreeLocator, "folder", classmethod(lambda cls, source: blocked / "x"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    locator = _locate()
    assert isinstance(locator, kernel_cache.UserLocator)
    assert Path(locator.get_cache_path()).is_relative_to(tmp_path / "cache" / "analog-train" / "numba")
    assert Path(locator.get_cache_path()).parts[-2:] == ("analog_train", "devices")

    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked / "cache"))
    monkeypatch.setenv("HOME", str(blocked))
    monkeypatch.setattr(kernel_cache, "_process_dir", None)
    with pytest.warns(RuntimeWarning, match="no writable cache folder"):
        locator = _locate()
    assert isinstance(locator, kernel_cache.ProcessLocator)
    private = kernel_cache._process_dir
    assert private is not None and (private.stat().st_mode & 0o777) == 0o700
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert isinstance(_locate(), kernel_cache.ProcessLocator)  # one warning per process
    shutil.rmtree(private)


TRAINS_ONLY = """
import numpy as np
from analog_train.devices import kernels
g = np.zeros(4, dtype=np.float32)
rows = np.zeros((4, len(kernels.ROW_KEYS)), dtype=np.float32)
state = kernels.DeviceState(g, g.copy(), g.copy(), rows, g.copy(), np.zeros(0, dtype=np.float32), False, False)
x = np.full((1, 2, 2), 0.5, dtype=np.float32)
settings = kernels.UpdateSettings(1.0, 1.0, True, True)
xpos, xneg, dpos, dneg, off = kernels.pulse_masks(x, x, np.ones((1, 2), dtype=np.float32), np.ones(1, dtype=np.float32),
                                                  settings, np.uint64(0))
kernels.apply_trains(state, dpos, dneg, xpos, xneg, off, np.array([0]), np.array([1]), np.uint64(0),
                     np.empty((1, 2, 1), dtype=np.float32))
"""

TRANSFER_UPDATE = """
import torch
from analog_train.algorithms import build_algorithm
from analog_train.config import UpdateConfig, make_algo, make_device
alg = build_algorithm(make_algo("agad", in_chop_prob=0.1), make_device("soft_bounds", n_states=20), (8, 4), UpdateConfig(),
                      torch.Generator().manual_seed(0), torch.Generator().manual_seed(1))
g = torch.Generator().manual_seed(2)
alg.update(torch.randn(1, 16, 4, generator=g), torch.randn(1, 16, 8, generator=g) * 0.1, 0.1)
assert alg.A.pulse_count.sum() > 0
print("ok")
"""


def test_a_transfer_step_compiled_after_its_pulse_kernel_was_cached_runs_again_from_the_cache(tmp_path: Path) -> None:
    """Run A (an SGD run or ``bench devices``) caches the parallel pulse kernel alone; run B loads it and compiles
    the transfer step around it; run C loads both. numba caches a compiled caller of a parallel kernel in a form
    that crashes run C (seen: a segfault); the step calls that kernel from Python, so run C completes."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(tmp_path / "cache")}
    for label, script in (("A", TRAINS_ONLY), ("B", TRANSFER_UPDATE), ("C", TRANSFER_UPDATE)):
        out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, f"run {label} ended with {out.returncode}: {out.stderr[-2000:]}"
    assert out.stdout.split() == ["ok"]
