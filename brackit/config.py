"""Config dataclasses as data: their fields, typed overrides of a (dotted) field, and plain dicts.

One owner for "set field X of config class C to a typed value", whatever the value comes from:

- ``parse_text`` reads a command-line string (``brackit train --set critic_hidden=64,64``);
- ``check_value`` checks a TOML or JSON value (a study's ``set`` and ``grid`` tables, run.json's fields);
- ``put`` sets an already typed value at a dotted field (``behavior.hidden``), rebuilding nested configs;
- ``to_dict`` / ``from_dict`` convert a config to and from JSON-able values (``run.json``, checkpoints);
- ``build`` makes the config, refusing unknown fields.

Every function works on a config class, not an algorithm name, so this module sits below ``brackit.algos``.
Errors are ConfigErrors of the form ``WHERE: what was expected, got VALUE``, WHERE naming the field's place
(``brac.alpha``, ``study.toml: variants[0] (v).set.alpha``).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from brackit.errors import ConfigError

_EXPECTED = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}


def fields(config_cls: type) -> dict[str, Any]:
    """Field name -> resolved type annotation of a config dataclass."""
    hints = typing.get_type_hints(config_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_cls)}


def field_hint(config_cls: type, key: str, where: str) -> Any:
    """The type of the dotted field ``key`` (``alpha``, ``behavior.hidden``); a ConfigError at ``where``
    for an unknown field, a nested config set as a whole, or a dotted path through a plain field."""
    parts = key.split(".")
    known = fields(config_cls)
    if parts[0] not in known:
        raise ConfigError(f"{where}: no config field {parts[0]!r}; valid fields: {', '.join(known)}")
    hint = known[parts[0]]
    if len(parts) == 1:
        if dataclasses.is_dataclass(hint):
            raise ConfigError(f"{where}: {parts[0]!r} is a nested config; set its fields ({parts[0]}.FIELD)")
        return hint
    if not dataclasses.is_dataclass(hint):
        raise ConfigError(f"{where}: {parts[0]!r} is not a nested config")
    return field_hint(hint, ".".join(parts[1:]), where)


def _optional(hint: Any) -> Any | None:
    """``X`` for ``X | None`` (or ``Optional[X]``), else None."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        return inner
    return None


def _expected(hint: Any) -> str:
    if typing.get_origin(hint) in (tuple, list):
        return f"a list ({hint})"
    if typing.get_origin(hint) is dict:
        return f"an object ({hint})"
    return _EXPECTED.get(hint, str(hint))


def parse_text(hint: Any, raw: str, where: str) -> Any:
    """A command-line string as a value of type ``hint``: bool (true/false, 1/0, yes/no), int, float, str,
    ``tuple[X, ...]`` (comma-separated, brackets optional) or ``X | None`` (``none``/``null``)."""
    inner = _optional(hint)
    if inner is not None:
        return None if raw.lower() in ("none", "null") else parse_text(inner, raw, where)
    try:
        if hint is bool:
            if raw.lower() in ("true", "1", "yes"):
                return True
            if raw.lower() in ("false", "0", "no"):
                return False
            raise ValueError(raw)
        if hint in (int, float, str):
            return hint(raw)
        if typing.get_origin(hint) is tuple:
            items = [item.strip() for item in raw.strip("()[] ").split(",") if item.strip()]
            return tuple(parse_text(typing.get_args(hint)[0], item, where) for item in items)
    except ValueError:
        raise ConfigError(f"{where}: expected {_expected(hint)}, got {raw!r}") from None
    raise ConfigError(f"{where}: cannot be set from the command line")


def check_value(hint: Any, value: Any, where: str) -> Any:
    """A TOML/JSON value checked against type ``hint`` (no parsing of strings: ``"2"`` is not an integer);
    an int is accepted for a float, a list for a tuple, ``"none"`` (or JSON's null) for ``X | None``, an
    object for ``dict[str, X]``, anything for ``Any``."""
    if hint is Any:
        return value
    inner = _optional(hint)
    if inner is not None:
        none = value is None or (isinstance(value, str) and value.lower() == "none")
        return None if none else check_value(inner, value, where)
    if hint is bool and isinstance(value, bool):
        return value
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is str and isinstance(value, str):
        return value
    if typing.get_origin(hint) is tuple and isinstance(value, list):
        return tuple(check_value(typing.get_args(hint)[0], item, where) for item in value)
    if typing.get_origin(hint) is list and isinstance(value, list):
        return [check_value(typing.get_args(hint)[0], item, where) for item in value]
    if typing.get_origin(hint) is dict and isinstance(value, dict):
        key_hint, value_hint = typing.get_args(hint)
        return {check_value(key_hint, k, where): check_value(value_hint, v, where) for k, v in value.items()}
    raise ConfigError(f"{where}: expected {_expected(hint)}, got {value!r}")


def put(config_cls: type, overrides: Mapping[str, Any], key: str, value: Any) -> dict[str, Any]:
    """``overrides`` with the typed ``value`` at the dotted field ``key``; a nested config is rebuilt from its
    overridden value (or its defaults), so ``behavior.hidden`` keeps ``behavior``'s other fields."""
    out = dict(overrides)
    name, _, rest = key.partition(".")
    if not rest:
        out[name] = value
        return out
    nested_cls = fields(config_cls)[name]
    nested = out.get(name) or nested_cls()
    inner = put(nested_cls, {}, rest, value)
    out[name] = dataclasses.replace(nested, **inner)
    return out


def overrides_from_text(config_cls: type, assignments: Sequence[str], where: str) -> dict[str, Any]:
    """``["alpha=0.5", "critic_hidden=64,64", "behavior.hidden=32,32"]`` -> typed overrides; each error names
    ``where.KEY``."""
    overrides: dict[str, Any] = {}
    for assignment in assignments:
        if "=" not in assignment:
            raise ConfigError(f"--set expects key=value, got {assignment!r}")
        key, raw = (part.strip() for part in assignment.split("=", 1))
        place = f"{where}.{key}"
        overrides = checked_put(
            config_cls, overrides, key, parse_text(field_hint(config_cls, key, place), raw, place), place
        )
    return overrides


def overrides_from_table(
    config_cls: type, table: Mapping[str, Any], where: str, base: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A TOML table (``{alpha = 1.0, behavior = {hidden = [8]}}`` or dotted keys) -> typed overrides (on top of
    ``base``); each error names ``where.KEY``."""
    overrides: dict[str, Any] = dict(base or {})
    for key, value in flatten(table).items():
        place = f"{where}.{key}"
        overrides = checked_put(
            config_cls, overrides, key, check_value(field_hint(config_cls, key, place), value, place), place
        )
    return overrides


def checked_put(
    config_cls: type, overrides: Mapping[str, Any], key: str, value: Any, where: str
) -> dict[str, Any]:
    """``put``, with a nested config's own refusal of the value (its range checks) named at ``where``."""
    try:
        return put(config_cls, overrides, key, value)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None


def flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables as dotted keys: ``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def build(config_cls: type, overrides: Mapping[str, Any], where: str) -> Any:
    """``config_cls(**overrides)``; an unknown field is a ConfigError at ``where`` listing the valid ones."""
    known = fields(config_cls)
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ConfigError(f"{where}: no config field {unknown[0]!r}; valid fields: {', '.join(known)}")
    return config_cls(**overrides)


def to_dict(config: Any) -> dict[str, Any]:
    """A config dataclass (possibly nested) as plain JSON-able values."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def from_dict(config_cls: type, data: Mapping[str, Any]) -> Any:
    """Inverse of ``to_dict``: lists back to tuples, nested dataclasses rebuilt; fields missing from
    ``data`` (written before the field existed) keep their defaults."""
    hints = fields(config_cls)
    return config_cls(**{name: _coerce(hint, data[name]) for name, hint in hints.items() if name in data})


def _coerce(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    inner = _optional(hint)
    if inner is not None:
        return _coerce(inner, value)
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value)
    if typing.get_origin(hint) is tuple:
        return tuple(value)
    return value
