"""Config dataclasses <-> plain dicts <-> YAML, with nested dataclasses and tuples.

Unknown keys are an error (a typo must not silently fall back to a default), and so is a value
of the wrong type (`dim: "64"`, `buckets: 2048.5`, `depth: null`): the error names the file, the
key, the expected type and the value. YAML has no tuples, so a list fills a tuple field, and an
int fills a float field (as a float).
"""

from __future__ import annotations

import copy
import dataclasses
import types
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


def _typed(hint, value, where: str, key: str):
    """`value` checked against the type hint `hint` (and tuples, floats made from lists, ints);
    ValueError naming `where`, `key`, the expected type and the value otherwise."""
    def wrong():
        expected = getattr(hint, "__name__", None) if isinstance(hint, type) else str(hint).replace("typing.", "")
        return ValueError(f"{where}: key {key!r} expects {expected}, got {value!r} ({type(value).__name__})")

    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        return config_from_dict(hint, value, f"{where}.{key}")
    if origin in (typing.Union, types.UnionType):
        for option in args:
            try:
                return _typed(option, value, where, key)
            except ValueError:
                pass
        raise wrong()
    if hint is type(None):
        if value is not None:
            raise wrong()
        return None
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise wrong()
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise wrong()
            items = [_typed(a, v, where, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value))]
        else:
            items = [_typed(args[0], v, where, f"{key}[{i}]") if args else v for i, v in enumerate(value)]
        return origin(items)
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise wrong()
        return float(value)
    if hint is int and isinstance(value, bool):  # bool is an int subclass; `steps: true` is a typo
        raise wrong()
    if hint is typing.Any:
        return value
    if not isinstance(value, origin or hint):
        raise wrong()
    return value


def config_from_dict(cls, data: dict, where: str = "config"):
    """Build dataclass `cls` from a dict made by :func:`config_to_dict` (missing keys take
    their defaults), checking every value against its field's type (see the module docstring)."""
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a mapping of {cls.__name__} fields, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)} for {cls.__name__}; known: {sorted(names)}")
    return cls(**{name: _typed(hints[name], value, where, name) for name, value in data.items()})


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
