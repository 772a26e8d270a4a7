"""Declared valid ranges of numeric config fields and rules across fields, checked by one validator for
every config (the algorithms', SAC's, the divergences', the extras').

A config dataclass declares each numeric field's valid range in its type, ``Annotated[T, RANGE]``
(``epsilon: Annotated[float, ">= 0"] = 0.05``; a subclass that declares the field again keeps its range
unless it declares another), for the fields that ``convention_range`` does not already cover (discount,
Polyak rate, batch size, critic count, seeds, learning rates and hidden widths have one range in every
config)::

    ">= 1"  "> 0"  "<= 5"  "< 5"          a half-line
    "[0, 1]"  "(0, 1]"  "[a, b)"  "(a, b)"  an interval
    "finite"                             any finite number
    "<range> or None"                    also None (an ``X | None`` field's default)

and calls ``check_ranges(self)`` first in its ``__post_init__``. For a tuple field (hidden widths) the
range applies to every entry, and a fixed-length tuple type (``tuple[float, float]``) fixes the length. A
float value must be finite (NaN and inf are refused whatever the range); an int field must hold an integer
(bools refused), within int32 unless its range bounds it (JAX computes in int32). A value outside its
range is a ``ConfigError`` naming the class, the field, the range and the value: ``BRACConfig.batch_size
must be >= 1, got 0``. Every numeric field (int, float, tuple of them, or ``X | None`` of those) must have
a range, and only numeric fields may declare one: either slip is a ``TypeError`` the first time the class
is checked.

Conditions that span fields are declared beside them, ``RULES: ClassVar[tuple[Rule, ...]]`` (inherited
too), and ``check_ranges`` checks them once every field is in its range::

    RULES = (
        comparison("log_std_min <= log_std_max"),
        choice("penalty", ("value", "policy")),
        Rule(("tune_alpha", "divergence"), lambda tune, divergence: not tune or divergence != "none",
             "tune_alpha needs a divergence: set divergence to 'kl', 'mmd' or 'w'"),
    )

A broken rule is a ``ConfigError`` naming the class, the rule and every field it reads with its value:
``BCConfig: need log_std_min <= log_std_max; got log_std_min=1.0, log_std_max=0.0``. A rule naming no
field of its class is a ``TypeError``. ``field_facts`` lists each field's type and range, and
``rule_texts`` the rules, for ``brackit algos NAME`` and the documentation's config tables.

Command-line options use the same grammar: ``check_option("--episodes", episodes, ">= 1")`` raises
``--episodes must be >= 1, got 0``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import re
import typing
from collections.abc import Callable, Sequence
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
    if typing.get_origin(hint) is tuple and args and (args[-1] is Ellipsis or len(set(args)) == 1):
        return {int: "ints", float: "floats"}.get(args[0]), optional  # (x, ...) or (x, x): every entry
    return None, optional


def tuple_length(hint: Any) -> int | None:
    """The length a fixed-length tuple type requires (``tuple[float, float]``: 2), else None."""
    args = typing.get_args(hint)
    if type(None) in args:
        rest = [a for a in args if a is not type(None)]
        hint, args = (rest[0], typing.get_args(rest[0])) if len(rest) == 1 else (hint, ())
    if typing.get_origin(hint) is tuple and args and args[-1] is not Ellipsis:
        return len(args)
    return None


COMMON_RANGES: dict[str, str] = {
    "gamma": "[0, 1]",
    "tau": "(0, 1]",
    "batch_size": ">= 1",
    "num_critics": ">= 1",
    "learning_rate": "> 0",
    "seed": "[0, 4294967296)",  # numpy's and jax's seeds: non-negative, 32 bits
}
"""Ranges of the fields that mean the same in every config, by name (with ``*_lr`` > 0 and ``*_hidden``
>= 1 in ``convention_range``); a range declared in the field's type overrides them."""


def convention_range(name: str) -> str | None:
    """The range a field named ``name`` has in every config unless its class declares another: the discount
    ``gamma``, the Polyak rate ``tau``, ``batch_size``, ``num_critics``, ``seed``, learning rates
    (``learning_rate``, ``lr``, ``*_lr``) and hidden widths (``hidden``, ``*_hidden``); None for any other
    name."""
    if name in COMMON_RANGES:
        return COMMON_RANGES[name]
    if name == "lr" or name.endswith("_lr"):
        return "> 0"
    if name == "hidden" or name.endswith("_hidden"):
        return ">= 1"
    return None


def annotated_range(hint: Any) -> str | None:
    """The range text declared by an ``Annotated[T, RANGE]`` field type, or None for any other type."""
    if typing.get_origin(hint) is not typing.Annotated:
        return None
    texts = [m for m in hint.__metadata__ if isinstance(m, str)]
    if len(texts) != 1:
        raise TypeError(f"{hint} must carry exactly one range text, got {len(texts)}")
    return texts[0]


def _declared_range(config_cls: type, name: str) -> str | None:
    """The range of field ``name`` declared by the nearest class in ``config_cls``'s MRO whose own
    annotation of it declares one: a subclass that only changes a field's default keeps its range."""
    for cls in config_cls.__mro__:
        if name in vars(cls).get("__annotations__", {}):
            text = annotated_range(typing.get_type_hints(cls, include_extras=True)[name])
            if text is not None:
                return text
    return None


@functools.cache
def declared_ranges(config_cls: type) -> dict[str, tuple[str, FieldRange]]:
    """field -> (kind, range) of every numeric field of ``config_cls``: the range its type declares
    (``Annotated[T, RANGE]``) or else ``convention_range``'s; a numeric field without a range, or a range on
    a field that is not numeric, is a TypeError (a slip in the class, not in the user's input)."""
    hints = typing.get_type_hints(config_cls)
    out = {}
    for field in dataclasses.fields(config_cls):
        kind, optional = numeric_kind(hints[field.name])
        where = f"{config_cls.__name__}.{field.name}"
        text = _declared_range(config_cls, field.name)
        if kind is None:
            if text is not None:
                raise TypeError(f"{where} declares the range {text!r} but is not numeric")
            continue
        if text is None and (text := convention_range(field.name)) is not None and optional:
            text += " or None"
        if text is None:
            raise TypeError(f"{where} is numeric but declares no range (Annotated[T, RANGE])")
        field_range = FieldRange.parse(text)
        if field_range.allow_none != optional:
            raise TypeError(f"{where}: its range {field_range.text!r} and its type disagree about None")
        out[field.name] = (kind, field_range)
    return out


INT32_MAX = 2**31 - 1
"""The largest value of an int field whose range leaves it unbounded: JAX computes in int32 (steps, sizes)."""

MAX_RUNS = 65_536
"""The most runs one vmapped program may hold (``--seeds``, a study's seeds): more is a slip of the keyboard,
and their tuple alone would fill the host's memory."""

MAX_EPISODES = 65_536
"""The most evaluation episodes per run (``--episodes``, ``--eval-episodes``): each holds an environment
while the episodes run side by side."""


def _beyond_int32(kind: str, field_range: FieldRange, value: Any) -> bool:
    """Whether an int (or an int entry of a tuple) exceeds int32 where the range itself sets no bound."""
    if kind == "ints" and isinstance(value, tuple):
        return any(_beyond_int32("int", field_range, v) for v in value)
    if kind != "int" or isinstance(value, bool) or not isinstance(value, numbers.Integral):
        return False
    unbounded = (field_range.high == math.inf and value > INT32_MAX) or (
        field_range.low == -math.inf and value < -INT32_MAX
    )
    return bool(unbounded)


def value_in_range(kind: str, field_range: FieldRange, value: Any) -> bool:
    """Whether ``value`` is a valid value of a field of this kind and range (an int within int32 unless the
    range bounds it, ``INT32_MAX``)."""
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
        return (
            isinstance(value, numbers.Integral)
            and field_range.contains(value)
            and not _beyond_int32(kind, field_range, value)
        )
    try:
        return field_range.contains(float(value))
    except OverflowError:  # an int too large for a float
        return False


def _expected(kind: str, field_range: FieldRange, value: Any) -> str:
    """What the message says the field must be: the range, prefixed by the type when that is wrong."""
    described = field_range.describe(kind)
    if _beyond_int32(kind, field_range, value):
        return f"{described} and within int32 (|value| <= {INT32_MAX})"
    if kind in ("ints", "floats") or value is None:
        return described
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return f"{'an integer' if kind == 'int' else 'a number'} {described}"
    if kind == "int" and not isinstance(value, numbers.Integral):
        return f"an integer {described}"
    return described


def check_value(where: str, kind: str, valid: str | FieldRange, value: Any) -> None:
    """A ConfigError ``WHERE must be RANGE, got VALUE`` unless ``value`` is a valid value of this kind
    ('int', 'float', 'ints', 'floats') and range (a ``FieldRange`` or its text)."""
    field_range = FieldRange.parse(valid) if isinstance(valid, str) else valid
    if not value_in_range(kind, field_range, value):
        raise ConfigError(f"{where} must be {_expected(kind, field_range, value)}, got {value!r}")


def check_option(option: str, value: Any, valid: str) -> None:
    """The same check for a command-line option (``check_option("--episodes", episodes, ">= 1")``): an int
    value is checked as an int, anything else as a number; None (an option left out) passes."""
    if value is None:
        return
    kind = "int" if isinstance(value, int) and not isinstance(value, bool) else "float"
    check_value(option, kind, valid, value)


@dataclasses.dataclass(frozen=True)
class Rule:
    """A condition on several fields of one config (or on one field as a whole, e.g. an increasing tuple):
    ``holds`` gets the values of ``fields`` in that order; ``text`` states the condition as the error and
    ``brackit algos NAME`` print it."""

    fields: tuple[str, ...]
    holds: Callable[..., bool]
    text: str


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "<=": lambda a, b: a <= b,
    "<": lambda a, b: a < b,
    ">=": lambda a, b: a >= b,
    ">": lambda a, b: a > b,
}


def comparison(chain: str, why: str = "") -> Rule:
    """A rule from a chain of comparisons between fields, written as Python would
    (``"log_lagrange_min <= initial_log_lagrange <= log_lagrange_max"``); ``why`` is appended in
    parentheses. Operators: ``<``, ``<=``, ``>``, ``>=``, separated from the names by spaces."""
    tokens = chain.split()
    names, operators = tuple(tokens[0::2]), tokens[1::2]
    if len(tokens) < 3 or len(tokens) % 2 == 0 or any(op not in _COMPARE for op in operators):
        raise ValueError(f"not a comparison chain of fields: {chain!r}")

    def holds(*values: Any) -> bool:
        return all(_COMPARE[op](a, b) for op, a, b in zip(operators, values, values[1:], strict=False))

    return Rule(names, holds, f"need {chain}" + (f" ({why})" if why else ""))


def choice(field: str, choices: Sequence[str]) -> Rule:
    """A rule that a (string) field holds one of ``choices``: ``choice("penalty", ("value", "policy"))``."""
    return Rule(
        (field,), lambda value: value in choices, f"{field} must be one of {', '.join(map(repr, choices))}"
    )


@functools.cache
def declared_rules(config_cls: type) -> tuple[Rule, ...]:
    """The ``RULES`` of ``config_cls``; one naming no field of the class is a TypeError."""
    rules = tuple(getattr(config_cls, "RULES", ()))
    names = {field.name for field in dataclasses.fields(config_cls)}
    for rule in rules:
        unknown = [name for name in rule.fields if name not in names]
        if unknown:
            raise TypeError(f"{config_cls.__name__}.RULES: {rule.text!r} names no field {', '.join(unknown)}")
    return rules


@functools.cache
def _tuple_lengths(config_cls: type) -> dict[str, int]:
    hints = typing.get_type_hints(config_cls)
    lengths = {field.name: tuple_length(hints[field.name]) for field in dataclasses.fields(config_cls)}
    return {name: length for name, length in lengths.items() if length is not None}


def check_ranges(config: Any) -> None:
    """Raises ConfigError for the first numeric field of ``config`` outside its declared range (or a
    fixed-length tuple of another length), then for the first of its ``RULES`` that does not hold."""
    cls = type(config)
    for name, (kind, field_range) in declared_ranges(cls).items():
        check_value(f"{cls.__name__}.{name}", kind, field_range, getattr(config, name))
    for name, length in _tuple_lengths(cls).items():
        value = getattr(config, name)
        if value is not None and (not isinstance(value, tuple) or len(value) != length):
            raise ConfigError(f"{cls.__name__}.{name} must be a tuple of {length} entries, got {value!r}")
    for rule in declared_rules(cls):
        values = [getattr(config, name) for name in rule.fields]
        if not rule.holds(*values):
            got = ", ".join(f"{name}={value!r}" for name, value in zip(rule.fields, values, strict=True))
            raise ConfigError(f"{cls.__name__}: {rule.text}; got {got}")


def _type_text(hint: Any) -> str:
    text = getattr(hint, "__name__", None) if not typing.get_args(hint) else None
    return text or str(hint).replace("typing.", "")


def field_facts(config_cls: type, prefix: str = "") -> dict[str, tuple[str, str]]:
    """Field name (nested configs as ``outer.inner``) -> (type, range) of a config dataclass; the range is
    the declared or conventional one of a numeric field (``declared_ranges``), empty for the others."""
    hints = typing.get_type_hints(config_cls)
    ranges = declared_ranges(config_cls)
    facts: dict[str, tuple[str, str]] = {}
    for field in dataclasses.fields(config_cls):
        if dataclasses.is_dataclass(hints[field.name]):
            facts.update(field_facts(hints[field.name], f"{prefix}{field.name}."))
            continue
        valid = ""
        if field.name in ranges:
            kind, field_range = ranges[field.name]
            valid = f"each {field_range.text}" if kind in ("ints", "floats") else field_range.text
        facts[f"{prefix}{field.name}"] = (_type_text(hints[field.name]), valid)
    return facts


def rule_texts(config_cls: type, path: str = "") -> list[str]:
    """Every rule of a config, then those of its nested configs prefixed by their place
    (``behavior: need log_std_min <= log_std_max``), as the errors state them."""
    hints = typing.get_type_hints(config_cls)
    texts = [f"{path}: {rule.text}" if path else rule.text for rule in declared_rules(config_cls)]
    for field in dataclasses.fields(config_cls):
        if dataclasses.is_dataclass(hints[field.name]):
            texts += rule_texts(hints[field.name], f"{path}.{field.name}" if path else field.name)
    return texts
