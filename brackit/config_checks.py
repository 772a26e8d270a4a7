"""Declared valid ranges of numeric config fields, checked by one validator for every algorithm.

A config dataclass declares ``RANGES: ClassVar[dict[str, str]]``, field name -> range (subclasses inherit
it), for the fields that ``convention_range`` does not already cover (discount, Polyak rate, batch size,
critic count, learning rates and hidden widths have one range in every config)::

    ">= 1"  "> 0"  "<= 5"  "< 5"          a half-line
    "[0, 1]"  "(0, 1]"  "[a, b)"  "(a, b)"  an interval
    "finite"                             any finite number
    "<range> or None"                    also None (an ``X | None`` field's default)

and calls ``check_ranges(self)`` first in its ``__post_init__``. For a tuple field (hidden widths) the
range applies to every entry. A float value must be finite (NaN and inf are refused whatever the range);
an int field must hold an integer (bools refused). A value outside its range is a ``ConfigError`` naming
the class, the field, the range and the value: ``BRACConfig.batch_size must be >= 1, got 0``. Every
numeric field (int, float, tuple of them, or ``X | None`` of those) must have a range, and every range
must name a field: either slip is a ``TypeError`` the first time the class is checked.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import re
import typing
from typing import Any

from brackit.errors import ConfigError

_INTERVAL = re.compile(r"^([\[(])\s*(\S+)\s*,\s*(\S+)\s*([\])])$")
_HALF_LINE = re.compile(r"^(>=|>|<=|<)\s*(\S+)$")


@dataclasses.dataclass(frozen=True)
class FieldRange:
    """One declared range (see the module docstring), parsed; ``contains`` tests one scalar."""

    text: str
    low: float = -math.inf
    high: float = math.inf
    low_closed: bool = False
    high_closed: bool = False
    allow_none: bool = False

    @classmethod
    def parse(cls, text: str) -> FieldRange:
        body, allow_none = text.strip(), False
        if body.endswith(" or None"):
            body, allow_none = body.removesuffix(" or None").strip(), True
        if body == "finite":
            return cls(text, allow_none=allow_none)
        if match := _INTERVAL.match(body):
            left, low, high, right = match.groups()
            return cls(text, float(low), float(high), left == "[", right == "]", allow_none)
        if match := _HALF_LINE.match(body):
            op, bound = match.group(1), float(match.group(2))
            if op.startswith(">"):
                return cls(text, low=bound, low_closed=op == ">=", allow_none=allow_none)
            return cls(text, high=bound, high_closed=op == "<=", allow_none=allow_none)
        raise ValueError(f"not a range: {text!r} (expected e.g. '>= 1', '(0, 1]', 'finite', '> 0 or None')")

    def contains(self, value: float) -> bool:
        """Whether a number lies in the range (NaN and inf never do); ints compare exactly."""
        if not isinstance(value, numbers.Integral) and not math.isfinite(value):
            return False
        above = value >= self.low if self.low_closed else value > self.low
        below = value <= self.high if self.high_closed else value < self.high
        return bool(above and below)

    def describe(self, kind: str) -> str:
        """The range as the error message states it, e.g. ``>= 0 and finite or None``; for a tuple field
        ``every entry >= 1``."""
        body = self.text.removesuffix(" or None").strip()
        if kind in ("float", "floats") and body != "finite" and math.inf in (-self.low, self.high):
            body += " and finite"
        if body[0] in "[(":
            body = f"in {body}"
        if kind in ("ints", "floats"):
            body = f"a tuple with every entry {body}"
        return f"{body} or None" if self.allow_none else body


def numeric_kind(hint: Any) -> tuple[str | None, bool]:
    """(kind, optional) of a field type: kind 'int', 'float', 'ints' or 'floats' (tuples), or None for a
    non-numeric field (bool, str, a nested config ...)."""
    args = typing.get_args(hint)
    optional = type(None) in args
    if optional:
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1:
            return None, optional
        hint, args = rest[0], typing.get_args(rest[0])
    if hint is int:
        return "int", optional
    if hint is float:
        return "float", optional
    if typing.get_origin(hint) is tuple and len(args) == 2 and args[1] is Ellipsis:
        return {int: "ints", float: "floats"}.get(args[0]), optional
    return None, optional


COMMON_RANGES: dict[str, str] = {
    "gamma": "[0, 1]",
    "tau": "(0, 1]",
    "batch_size": ">= 1",
    "num_critics": ">= 1",
}
"""Ranges of the fields that mean the same in every config, by name (with ``*_lr`` > 0 and ``*_hidden``
>= 1 in ``convention_range``); a class's own ``RANGES`` entry overrides them."""


def convention_range(name: str) -> str | None:
    """The range a field named ``name`` has in every config unless its class declares another: the discount
    ``gamma``, the Polyak rate ``tau``, ``batch_size``, ``num_critics``, learning rates (``lr``, ``*_lr``)
    and hidden widths (``hidden``, ``*_hidden``); None for any other name."""
    if name in COMMON_RANGES:
        return COMMON_RANGES[name]
    if name == "lr" or name.endswith("_lr"):
        return "> 0"
    if name == "hidden" or name.endswith("_hidden"):
        return ">= 1"
    return None


@functools.cache
def declared_ranges(config_cls: type) -> dict[str, tuple[str, FieldRange]]:
    """field -> (kind, range) of every numeric field of ``config_cls``; a numeric field without a range,
    or a range naming no such field, is a TypeError (a slip in the class, not in the user's input)."""
    hints = typing.get_type_hints(config_cls)
    declared = dict(getattr(config_cls, "RANGES", {}))
    out = {}
    for field in dataclasses.fields(config_cls):
        kind, optional = numeric_kind(hints[field.name])
        if kind is None:
            continue
        where = f"{config_cls.__name__}.{field.name}"
        text = declared.pop(field.name, None)
        if text is None and (text := convention_range(field.name)) is not None and optional:
            text += " or None"
        if text is None:
            raise TypeError(f"{where} is numeric but RANGES declares no range")
        field_range = FieldRange.parse(text)
        if field_range.allow_none != optional:
            raise TypeError(f"{where}: its range {field_range.text!r} and its type disagree about None")
        out[field.name] = (kind, field_range)
    if declared:
        raise TypeError(f"{config_cls.__name__}.RANGES names no numeric field: {', '.join(declared)}")
    return out


def value_in_range(kind: str, field_range: FieldRange, value: Any) -> bool:
    """Whether ``value`` is a valid value of a field of this kind and range."""
    if value is None:
        return field_range.allow_none
    if kind in ("ints", "floats"):
        entries = kind.removesuffix("s")
        return isinstance(value, tuple) and all(
            v is not None and value_in_range(entries, field_range, v) for v in value
        )
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    if kind == "int":
        return isinstance(value, numbers.Integral) and field_range.contains(value)
    try:
        return field_range.contains(float(value))
    except OverflowError:  # an int too large for a float
        return False


def _expected(kind: str, field_range: FieldRange, value: Any) -> str:
    """What the message says the field must be: the range, prefixed by the type when that is wrong."""
    described = field_range.describe(kind)
    if kind in ("ints", "floats") or value is None:
        return described
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return f"{'an integer' if kind == 'int' else 'a number'} {described}"
    if kind == "int" and not isinstance(value, numbers.Integral):
        return f"an integer {described}"
    return described


def check_ranges(config: Any) -> None:
    """Raises ConfigError for the first numeric field of ``config`` outside its declared range."""
    cls = type(config)
    for name, (kind, field_range) in declared_ranges(cls).items():
        value = getattr(config, name)
        if not value_in_range(kind, field_range, value):
            expected = _expected(kind, field_range, value)
            raise ConfigError(f"{cls.__name__}.{name} must be {expected}, got {value!r}")
