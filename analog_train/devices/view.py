"""What ``devices show`` and ``devices list`` print about a device: its keys, marked by family, with units.

The keys, their units and meaning come from the family schemas (:mod:`analog_train.config.devices`),
so the views cannot drift from what a run checks.
"""

from __future__ import annotations

from typing import Any

from omegaconf import OmegaConf

from analog_train.config import DEVICE_FAMILIES, DeviceConfig, field_infos, to_object

COMMON = {info.name for info in field_infos(DeviceConfig)}


def family_keys(family: str) -> list[str]:
    """Keys that only ``family`` (of the families) has, in schema order."""
    return [info.name for info in field_infos(DEVICE_FAMILIES[family]) if info.name not in COMMON]


def device_yaml(cfg: Any, identity: str = "") -> str:
    """The device as YAML, common keys first, then the family's own; each key with ``# [unit] meaning``.

    ``identity`` (the run config's ``device_preset``) is noted as a comment: it picks the algorithm
    presets, which are not part of the device and not shown.
    """
    obj = to_object(cfg)
    infos = {info.name: info for info in field_infos(type(obj))}
    values = OmegaConf.to_container(OmegaConf.structured(obj))
    assert isinstance(values, dict)
    lines = []
    if identity:
        lines.append(f"# device_preset: {identity} (algorithm presets: conf/algo_device/<algo>_{identity}.yaml, not shown)")
    own = family_keys(obj.family)
    for title, names in (("keys of every family", [n for n in infos if n in COMMON]),
                         (f"keys of the {obj.family} family only", own)):
        if not names:
            continue
        lines.append(f"# -- {title}")
        for name in names:
            text = OmegaConf.to_yaml({name: values[name]}).rstrip("\n")
            rule = infos[name].rule
            note = " ".join(part for part in (f"[{rule.unit}]" if rule.unit else "", rule.doc) if part)
            first, *rest = text.splitlines()
            lines.append(f"{first}  # {note}" if note else first)
            lines.extend(rest)
    return "\n".join(lines) + "\n"
