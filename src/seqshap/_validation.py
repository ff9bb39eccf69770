"""Declared constraints on the numbers a user gives, each with its one message.

The library checks a value with :meth:`Constraint.check` (``ValueError: batch_size must be a whole
number of at least 1, got 0``) and the command line reuses the same object as an argparse ``type=``
(``seqshap importance: error: argument --n: must be a whole number of at least 1, got '0'``): one
rule, one wording, wherever the number comes from. This module imports nothing from seqshap.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any


class Constraint:
    """A rule on a whole number (``kind=int``) or a real one (``kind=float``): ``test(value)`` must
    hold; ``description`` completes "must be ..." (``"a whole number of at least 1"``)."""

    def __init__(self, description: str, test: Callable[[Any], bool], kind: type = int):
        self.description, self.test, self.kind = description, test, kind
        self.__name__ = description  # argparse names a type by it in its own messages

    def __repr__(self) -> str:
        return f"Constraint({self.description!r})"

    def ok(self, value: Any) -> bool:
        if isinstance(value, bool):
            return False
        if self.kind is int and not isinstance(value, int):
            return False
        if self.kind is float and not (isinstance(value, (int, float)) and math.isfinite(value)):
            return False
        return bool(self.test(value))

    def check(self, name: str, value: Any) -> Any:
        """``value`` if it keeps the rule, else ``ValueError("{name} must be {description}, got ...")``."""
        if not self.ok(value):
            raise ValueError(f"{name} must be {self.description}, got {value!r}")
        return value

    def __call__(self, text: str) -> Any:
        """The argparse ``type=``: parse ``text`` and check it (argparse prefixes the option's name)."""
        try:
            value = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {self.description}, got {text!r}") from None
        if not self.ok(value):
            raise argparse.ArgumentTypeError(f"must be {self.description}, got {text!r}")
        return value


def at_least(low: int) -> Constraint:
    return Constraint(f"a whole number of at least {low}", lambda v: v >= low)


def between(low: int, high: int, why: str = "") -> Constraint:
    return Constraint(f"a whole number from {low} to {high:,}{why}", lambda v: low <= v <= high)


POSITIVE = at_least(1)
NON_NEGATIVE = at_least(0)
PAIRS = Constraint("an even number of at least 2 (antithetic pairs)", lambda v: v >= 2 and v % 2 == 0)
PORT = between(0, 65535)
POSITIVE_NUMBER = Constraint("a positive number", lambda v: v > 0, float)
NON_NEGATIVE_NUMBER = Constraint("a number of 0 or more", lambda v: v >= 0, float)
FRACTION = Constraint("a number between 0 and 1 (both excluded)", lambda v: 0 < v < 1, float)
