"""Hydra composition of run configs outside the Hydra app, and Hydra's errors as one line.

The YAML files of ``conf/`` are plain (untyped) for Hydra: which schema checks a section depends
on its values (``device.family``, ``algo.name``), so the typing happens after composition
(:func:`~analog_train.config.check.validate`). What Hydra registers here is only the
``device_preset`` group: the identity a device YAML declares, from which the per-(algorithm,
device) presets of ``conf/algo_device/`` are chosen.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from analog_train.config.algorithms import ALGORITHMS
from analog_train.config.check import CONF_DIR, GENERIC, SECTIONS, SELECTED, validate
from analog_train.config.devices import DEVICE_FAMILIES
from analog_train.config.rules import ConfigError, keys_of, unknown_key
from analog_train.config.run import Config, ExperimentConfig


def device_presets() -> list[str]:
    """Names of the device presets shipped in ``conf/device`` (each is also a ``device_preset``)."""
    return sorted(p.stem for p in (CONF_DIR / "device").glob("*.yaml"))


OPEN_SECTIONS = "open_sections"  # the first entry of config.yaml's defaults list
OPEN = ("algo", "device", *SECTIONS, *SELECTED, "experiment")


def _open() -> DictConfig:
    return OmegaConf.create({}, flags={"struct": False})


def register_configs() -> None:
    """Register ``open_sections`` and the ``device_preset`` options (every shipped device preset, and ``generic``).

    ``open_sections`` merges empty nodes without Hydra's struct flag as the first of every section:
    a section takes any key from the command line, also one its YAML does not list (the schema of
    ``algo`` and ``device`` depends on ``algo.name`` / ``device.family``), and
    :func:`~analog_train.config.check.validate` rejects a key that the section's schema does not
    have, naming the family or algorithm. Root keys are all listed in ``config.yaml``.

    A device YAML states its identity with ``override /device_preset@_global_.device_preset: <name>``
    in its defaults list (inherited by a YAML that lists the preset in its own defaults); the run
    config then records it as ``device_preset`` and Hydra loads ``algo_device/<algo>_<name>.yaml``.
    """
    cs = ConfigStore.instance()
    cs.store(name=OPEN_SECTIONS, node=OmegaConf.create({key: _open() for key in OPEN}))
    for name in [GENERIC, *device_presets()]:
        cs.store(group="device_preset", name=name, node={"device_preset": name}, package="_global_")


def compose_raw(overrides: Sequence[str] = ()) -> DictConfig:
    """The config Hydra composes for ``analog-train <overrides>`` (untyped); Hydra's errors as ConfigError."""
    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return compose(config_name="config", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as err:
        raise ConfigError(one_line(err), getattr(err, "key", "") or "") from None
    finally:
        GlobalHydra.instance().clear()


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """The typed, checked config ``analog-train <overrides>`` runs with, for code outside the Hydra app
    (bench, figures, device tools, tests). ConfigError on any problem."""
    cfg = compose_raw(overrides)
    validate(cfg)
    return cfg


# -- Hydra's errors, one line each -------------------------------------------------------------------
def one_line(err: Exception) -> str:
    """Hydra's (multi-line) composition errors as one line naming the key, with a suggestion."""
    if isinstance(err, MissingConfigException) and err.missing_cfg_file and "/" in err.missing_cfg_file:
        group, _, option = err.missing_cfg_file.rpartition("/")
        if option.endswith("_schema"):  # a YAML written for the typed schemas of earlier versions
            return (f"{group}={option}: no such option; schemas are chosen by device.family and algo.name now, "
                    f"remove '{option}' from the YAML's defaults list")
        options = sorted(err.options or [])
        close = difflib.get_close_matches(option, options, n=1)
        hint = f"; did you mean {group}={close[0]}?" if close else ""
        return f"{group}={option}: no such option{hint}" + (f" (options: {', '.join(options)})" if options else "")
    if isinstance(err, OverrideParseException):
        return f"cannot parse the override {err.override!r}: {_first_line(err.message)}"
    text = str(err)
    match = re.search(r"Could not override '([^']+)'", text)
    if match:
        return str(_unknown(match.group(1)))
    match = re.search(r"Could not append to config\. An item is already at '([^']+)'", text)
    if match:
        return f"+{match.group(1)}: already in the config; set it without the leading +"
    match = re.search(r"Key '([^']+)' is not in struct", text)
    if match:
        return str(_unknown(match.group(1)))
    return " ".join(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("\t"))


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), text)


def _unknown(key: str) -> ConfigError:
    """``key`` is not in the run config: name the section's keys (every family's or algorithm's where it depends)."""
    section, _, rest = key.partition(".")
    if not rest:
        return unknown_key(key, keys_of(Config), "the run config")
    if section == "device":
        known = sorted({k for cls in DEVICE_FAMILIES.values() for k in keys_of(cls)})
        return unknown_key(key, known, "any device family")
    if section == "algo":
        known = sorted({k for cls in ALGORITHMS.values() for k in keys_of(cls)})
        return unknown_key(key, known, "any algorithm")
    if section in SELECTED:
        known = sorted({k for cls in SELECTED[section].schemas.values() for k in keys_of(cls)})
        return unknown_key(key, known, f"any {section}")
    schema = SECTIONS.get(section) or (ExperimentConfig if section == "experiment" else None)
    if schema is not None and "." not in rest:
        return unknown_key(key, keys_of(schema), section)
    return ConfigError(f"{key}: not a key of the run config (add keys with +{key}=... only where a section takes "
                       "free keys)", key)


def job_overrides(overrides: Sequence[str], multirun: bool) -> list[list[str]]:
    """The override list of every job that ``analog-train [-m] <overrides>`` runs (a sweep expanded
    as Hydra's basic sweeper expands it); a single run is one job."""
    if not multirun:
        return [list(overrides)]
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
        return BasicSweeper.split_arguments(parsed, None)[0]
    except HydraException as err:
        raise ConfigError(one_line(err)) from None


def check_jobs(overrides: Sequence[str], multirun: bool = False) -> list[DictConfig]:
    """Compose every job of a run or sweep before any starts, and check a single run's values; the first
    problem as ConfigError. A sweep's values are checked job by job (an invalid point fails alone)."""
    return [compose_raw(job) if multirun else compose_config(job) for job in job_overrides(overrides, multirun)]
