"""Device presets: find them in the package's ``conf/device`` and compose them with Hydra.

Composing through Hydra (rather than reading the YAML) gives exactly what a run would get: the
family schema's defaults, checks and override syntax; but no algorithm presets (those are the
algorithm's settings for the device, not the device). A YAML file outside the package is
composed by putting a copy into a temporary ``device/`` folder on Hydra's search path, which is
also how a run can use such a file (``hydra.searchpath=[file://DIR] device=NAME``).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

from analog_train.config import CONF_DIR, ConfigError, compose_config
from analog_train.config import device_presets as list_presets

PRESET_DIR = CONF_DIR / "device"
FILE_PRESET = "_device_file"  # name of the copied file: cannot clash with a package preset


def is_file(name: str) -> bool:
    return name.endswith((".yaml", ".yml")) or Path(name).is_file()


def source_of(name: str) -> str:
    """A preset's ``# source:`` header comment ('' if none); its ``source:`` field takes precedence."""
    path = Path(name) if is_file(name) else PRESET_DIR / f"{name}.yaml"
    for line in path.read_text().splitlines():
        if line.lower().startswith("# source:"):
            return line.split(":", 1)[1].strip()
    return ""


def device_overrides(overrides: Sequence[str]) -> list[str]:
    """``w_max=1.2`` -> ``device.w_max=1.2`` (``device.``-prefixed keys and ``+``/``~`` kept)."""
    out = []
    for o in overrides:
        prefix = o[0] if o[:1] in ("+", "~") else ""
        body = o[len(prefix):]
        out.append(o if body.startswith("device.") else f"{prefix}device.{body}")
    return out


def compose_device_run(name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """The checked run config of preset ``name`` (or of a YAML file path) with device ``overrides``,
    without any algorithm: ``algo=fp`` and no ``algo_device`` presets, so the device is what its
    YAML says (``device_preset`` still records its identity).

    Raises ConfigError for an unknown preset (listing the presets), a missing file or a bad value.
    """
    extra: list[str] = []
    tmp = None
    if is_file(name):
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"device file {name}: not found")
        tmp = Path(tempfile.mkdtemp(prefix="analog_train_device_"))
        (tmp / "device").mkdir()
        shutil.copy(path, tmp / "device" / f"{FILE_PRESET}.yaml")
        extra = [f"hydra.searchpath=[file://{tmp}]"]
        name = FILE_PRESET
    elif name not in list_presets():
        raise ConfigError(f"device preset {name!r} not found; presets: {', '.join(list_presets())}")
    try:
        return compose_config([*extra, "algo=fp", "~algo_device", f"device={name}", *device_overrides(overrides)])
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def compose_device(name: str, overrides: Sequence[str] = ()) -> DictConfig:
    """The checked ``device`` node of preset ``name`` (or of a YAML file path) with overrides (see
    :func:`compose_device_run`)."""
    return compose_device_run(name, overrides).device
