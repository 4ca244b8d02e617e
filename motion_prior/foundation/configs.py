"""Config dataclasses <-> plain dicts <-> YAML, with nested dataclasses and tuples.

Unknown keys are an error (a typo must not silently fall back to a default).
"""

from __future__ import annotations

import copy
import dataclasses
import typing
from pathlib import Path

import yaml


def config_to_dict(config) -> dict:
    """A dataclass instance as a dict of plain YAML types (tuples become lists)."""
    def plain(value):
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(config)


def config_from_dict(cls, data: dict, where: str = "config"):
    """Build dataclass `cls` from a dict made by :func:`config_to_dict` (missing keys take
    their defaults)."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping of {cls.__name__} fields, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)} for {cls.__name__}; known: {sorted(names)}")
    values = {}
    for name, value in data.items():
        hint = hints[name]
        if dataclasses.is_dataclass(hint):
            value = config_from_dict(hint, value, f"{where}.{name}")
        elif typing.get_origin(hint) is tuple and isinstance(value, list):
            value = tuple(value)
        values[name] = value
    return cls(**values)


def config_to_yaml(config) -> str:
    return yaml.safe_dump(config_to_dict(config), sort_keys=False)


def config_from_yaml(cls, text: str, where: str = "config"):
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as error:
        raise ValueError(f"{where}: invalid YAML ({error})") from None
    return config_from_dict(cls, data, where)


def load_yaml(cls, path: str | Path):
    return config_from_yaml(cls, Path(path).read_text(), str(path))


def copy_preset(presets: dict, name: str):
    """A deep copy of `presets[name]` (callers may change it freely); a clear error for an
    unknown name."""
    if name not in presets:
        raise ValueError(f"preset: expected one of {sorted(presets)}, got {name!r}")
    return copy.deepcopy(presets[name])


def check_settings(config, checks: list[tuple[str, bool, str]], what: str):
    """Raise ValueError naming the first `(setting, ok, expected)` of `checks` that is not ok,
    with the setting's value (a dotted name reaches into nested configs); return `config`."""
    for name, ok, expected in checks:
        if not ok:
            value = config
            for part in name.split("."):
                value = getattr(value, part)
            raise ValueError(f"{what}: {name}: expected {expected}, got {value}")
    return config
