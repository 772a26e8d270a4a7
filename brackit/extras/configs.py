"""The base of the extras' config dataclasses: declared ranges and rules, checked when a config is made.

A port's config is a frozen dataclass deriving from ``CheckedConfig``; its numeric fields declare their
ranges in their types (``Annotated[int, ">= 1"]``) and, for conditions across fields or on a string's value,
it declares ``RULES`` (``brackit.config_checks``
explains both), and ``__post_init__`` runs ``check_ranges``: a value out of its range or a broken rule is a
``ConfigError`` naming the class, the field and the value.
"""

from __future__ import annotations

from typing import ClassVar

from brackit.config_checks import Rule, check_ranges


class CheckedConfig:
    """Mixin of a frozen config dataclass: the ranges in its fields' types and
    ``RULES`` (empty unless declared) are checked by
        ``brackit.config_checks.check_ranges`` as the dataclass is made."""

    RULES: ClassVar[tuple[Rule, ...]] = ()

    def __post_init__(self) -> None:
        check_ranges(self)
