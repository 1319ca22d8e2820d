"""A setting's valid values: one definition checks a command-line option, a config file and a stored checkpoint."""

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Setting:
    """The valid values of one TrainConfig field: a type with a range (low <= value < high, or <= high), or
    choices."""

    kind: type                   # int, float, bool or str
    low: float | None = None
    above_low: bool = False      # value > low instead of value >= low
    high: float | None = None
    high_inclusive: bool = False  # value <= high instead of value < high
    step: int = 1                # ints: a multiple of step
    choices: tuple = ()

    def describe(self) -> str:
        """The valid values in words, e.g. 'a finite number > 0'."""
        if self.choices:
            return f"one of {', '.join(self.choices)}"
        if self.kind is bool:
            return "true or false"
        words = "a finite number" if self.kind is float else "an integer" if self.step == 1 else \
            f"a multiple of {self.step}"
        limits = ([f"{'>' if self.above_low else '>='} {self.low}"] if self.low is not None else []) + \
            ([f"{'<=' if self.high_inclusive else '<'} {self.high}"] if self.high is not None else [])
        return " ".join([words, " and ".join(limits)]) if limits else words

    def check(self, value):
        """`value` (a JSON value) when it is valid, ints widened to float for float settings; else ValueError."""
        if not self._valid(value):
            raise ValueError(f"must be {self.describe()}, got {value!r}")
        return float(value) if self.kind is float else value

    def parse(self, text: str):
        """The value of a number setting given as a command-line word; ValueError naming the valid values."""
        try:
            value = self.kind(text)
        except ValueError:
            raise ValueError(f"must be {self.describe()}, got {text!r}") from None
        return self.check(value)

    def _valid(self, value) -> bool:
        if self.kind is bool or isinstance(value, bool):
            return self.kind is bool and isinstance(value, bool)
        if self.choices:
            return value in self.choices
        if not isinstance(value, int if self.kind is int else (int, float)) or not math.isfinite(value):
            return False
        return ((self.kind is float or value % self.step == 0)
                and (self.low is None or (value > self.low if self.above_low else value >= self.low))
                and (self.high is None or value < self.high or (self.high_inclusive and value == self.high)))
