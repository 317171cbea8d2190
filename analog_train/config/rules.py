"""What a config field allows, stated once next to the field, and the one checker that enforces it.

Every schema field is declared with :func:`param`, which records its allowed range (or choices),
its unit and one line of meaning in the dataclass field's metadata. :func:`build` turns a plain
mapping (a composed config section) into a schema instance: unknown keys, wrong types (a bool is
not a number, ``2`` is not a bool, ``3.5`` is not an integer), NaN, infinity and out-of-range
values all raise :class:`ConfigError` with one line naming the key and what it allows. Relations
between fields (``w_min < w_max``, ...) are each schema's ``relations`` method, checked after the
fields themselves.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Optional, Union


class ConfigError(ValueError):
    """An invalid configuration value; the message is one line naming the key and the allowed range."""

    def __init__(self, message: str, key: str = "") -> None:
        super().__init__(message)
        self.key = key  # the offending key, where known


def fail(key: str, value: Any, allowed: str) -> ConfigError:
    """The error for ``key=value``: ``allowed`` says what the key takes."""
    return ConfigError(f"{key}={show(value)}: {allowed}", key)


def require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise fail(key, value, allowed)


def show(value: Any) -> str:
    """A value as a user would type it on the command line."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(show(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{show(v)}" for k, v in value.items()) + "}"
    return str(value)


@dataclass(frozen=True)
class Rule:
    """Allowed values of one field: numbers within limits (finite unless ``inf``), or ``choices``."""

    low: Optional[float] = None
    high: Optional[float] = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    inf: bool = False  # +inf is meaningful (e.g. no limit)
    null: str = ""  # what null means, for Optional fields
    unit: str = ""
    doc: str = ""

    def allows(self, x: float) -> bool:
        if math.isnan(x) or (math.isinf(x) and not (self.inf and x > 0)):
            return False
        if self.low is not None and (x < self.low or (self.low_open and x == self.low)):
            return False
        return self.high is None or (x < self.high or (not self.high_open and x == self.high))

    def describe(self) -> str:
        """``> 0``, ``in [0, 1)``, ``one of a, b``: the range part of an error message."""
        if self.choices:
            return "one of " + ", ".join(self.choices)
        lo = None if self.low is None else f"{self.low:g}"
        hi = None if self.high is None else f"{self.high:g}"
        if lo is not None and hi is not None:
            return f"in {'(' if self.low_open else '['}{lo}, {hi}{')' if self.high_open else ']'}"
        if lo is not None:
            return f"{'>' if self.low_open else '>='} {lo}"
        if hi is not None:
            return f"{'<' if self.high_open else '<='} {hi}"
        return ""


NO_RULE = Rule()


def param(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
          lt: float | None = None, choices: tuple[str, ...] = (), inf: bool = False, null: str = "", unit: str = "",
          doc: str = "") -> Any:
    """A dataclass field with its rule: ``ge``/``gt``/``le``/``lt`` limits or ``choices``, unit and meaning."""
    rule = Rule(low=ge if gt is None else gt, high=le if lt is None else lt, low_open=gt is not None,
                high_open=lt is not None, choices=choices, inf=inf, null=null, unit=unit, doc=doc)
    meta = {"rule": rule}
    if isinstance(default, (list, dict)) or dataclasses.is_dataclass(default):
        return field(default_factory=lambda: _copy(default), metadata=meta)
    return field(default=default, metadata=meta)


def _copy(value: Any) -> Any:
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return dataclasses.replace(value)


def rule_of(f: dataclasses.Field) -> Rule:
    return f.metadata.get("rule", NO_RULE)


def hints(cls: type) -> dict[str, Any]:
    """Resolved type hints of a schema class (its annotations are strings under ``from __future__``)."""
    return typing.get_type_hints(cls)


def keys_of(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


def unknown_key(key: str, known: list[str], where: str) -> ConfigError:
    """``key`` is not one of ``known``: name the closest known key."""
    name = key.rsplit(".", 1)[-1]
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"; did you mean {key.rsplit('.', 1)[0] + '.' if '.' in key else ''}{close[0]}?" if close else ""
    return ConfigError(f"{key}: not a key of {where}{hint} (keys: {', '.join(known)})", key)


# -- building a schema instance from a mapping ----------------------------------------------------
def build(cls: type, values: Mapping[str, Any], prefix: str, where: str | None = None) -> Any:
    """An instance of schema ``cls`` from ``values`` (missing keys take their defaults), fully checked.

    ``prefix`` is the key path of ``values`` in the run config (``device``, ``algo.transfer_forward``);
    ``where`` names the schema in the unknown-key message (default: the prefix).
    """
    types_ = hints(cls)
    known = keys_of(cls)
    for key in values:
        if key not in types_:
            raise unknown_key(join(prefix, key), known, where or prefix)
    kwargs = {}
    for f in fields(cls):
        if f.name in values:
            value = values[f.name]
            if dataclasses.is_dataclass(types_[f.name]) and isinstance(value, Mapping):
                value = {**dataclasses.asdict(default_of(f)), **value}  # a partial node keeps the field's defaults
            kwargs[f.name] = convert(types_[f.name], value, join(prefix, f.name), rule_of(f))
    obj = cls(**kwargs)
    relations = getattr(obj, "relations", None)
    if relations is not None:
        for key, value, ok, allowed in relations():
            require(ok, join(prefix, key), value, allowed)
    return obj


def join(prefix: str, key: str) -> str:
    """``prefix.key`` (just ``key`` at the root)."""
    return f"{prefix}.{key}" if prefix else key


Relation = tuple[str, Any, bool, str]  # key (relative), value, whether it holds, what is allowed


def convert(hint: Any, value: Any, key: str, rule: Rule) -> Any:
    """``value`` as type ``hint`` if it is one and lies within ``rule``; else ConfigError."""
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        try:
            return convert(args[0], value, key, rule)
        except ConfigError:
            raise fail(key, value, f"must be {expect(args[0], rule)}, or null ({rule.null or 'none'})") from None
    if value is None:
        raise fail(key, value, f"must be {expect(hint, rule)}")
    if origin is list:
        (item,) = typing.get_args(hint)
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise fail(key, value, f"must be a list of {expect(item, rule, plural=True)}")
        out = []
        for v in value:
            try:
                out.append(convert(item, v, key, rule))
            except ConfigError:
                raise fail(key, value, f"must be a list of {expect(item, rule, plural=True)}") from None
        return out
    if origin is dict:
        if not isinstance(value, Mapping):
            raise fail(key, value, "must be a mapping of keys to values ({key: value, ...})")
        return dict(value)
    if dataclasses.is_dataclass(hint):
        if isinstance(value, hint):  # already built (a family or algorithm schema of the run config)
            return value
        if not isinstance(value, Mapping):
            raise fail(key, value, f"must be a mapping of {', '.join(keys_of(hint))}")
        return build(hint, value, key)
    if hint is bool:
        require(isinstance(value, bool), key, value, "must be true or false")
        return value
    if hint is int:
        require(isinstance(value, int) and not isinstance(value, bool), key, value, f"must be {expect(int, rule)}")
        require(rule.allows(value), key, value, f"must be {expect(int, rule)}")
        return value
    if hint is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and rule.allows(float(value))
        require(ok, key, value, f"must be {expect(float, rule)}")
        return float(value)
    if hint is str:
        ok = isinstance(value, str) and (not rule.choices or value in rule.choices)
        require(ok, key, value, f"must be {expect(str, rule)}")
        return value
    if hint is Any:
        return value
    raise TypeError(f"{key}: unsupported schema type {hint}")


def expect(hint: Any, rule: Rule, plural: bool = False) -> str:
    """``a number > 0``, ``an integer in [1, 1000]``, ``one of fast, exact``: what a value must be."""
    if rule.choices:
        return rule.describe()
    noun = {bool: ("true or false", "booleans"), int: ("an integer", "integers"),
            float: ("a finite number" if not rule.inf else "a number", "numbers"),
            str: ("a string", "strings")}.get(hint, ("a value", "values"))[1 if plural else 0]
    if hint is bool:
        return noun
    limits = rule.describe()
    return f"{noun} {limits}" if limits else noun


class Registry:
    """Schemas of one section selected by one of its keys (``device.family``, ``algo.name``), each
    registered once with :meth:`register`; :meth:`build` checks a mapping with the schema it selects."""

    def __init__(self, key: str, where: Callable[[str], str]) -> None:
        self.key = key  # the selecting key
        self.where = where  # name -> how the unknown-key message names the schema
        self.schemas: dict[str, type] = {}

    def register(self, name: str) -> Callable[[type], type]:
        def add(cls: type) -> type:
            cls.SELECTOR = name
            self.schemas[name] = cls
            return cls

        return add

    def schema(self, values: Mapping[str, Any], prefix: str) -> type:
        name = values.get(self.key)
        if name not in self.schemas:
            raise fail(f"{prefix}.{self.key}", name, "must be one of " + ", ".join(self.schemas))
        return self.schemas[name]

    def build(self, values: Mapping[str, Any], prefix: str) -> Any:
        """A checked instance of the schema ``values[key]`` selects (a key of another schema is an error)."""
        cls = self.schema(values, prefix)
        return build(cls, values, prefix, where=self.where(cls.SELECTOR))


# -- introspection for the docs, the device views and the fuzz test -------------------------------
@dataclass(frozen=True)
class FieldInfo:
    name: str
    hint: Any
    rule: Rule
    default: Any


def default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else None  # type: ignore[misc]


def field_infos(cls: type) -> Iterator[FieldInfo]:
    types_ = hints(cls)
    for f in fields(cls):
        yield FieldInfo(f.name, types_[f.name], rule_of(f), default_of(f))
