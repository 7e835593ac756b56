"""Optuna search domains as plain data, so a search-space module imports without Ray.

`strategies.build` turns them into Tune domains (`to_tune`) only when an Optuna sweep starts;
analysis, validation and `--help` read them as they are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Choice:
    """One of `categories`."""

    categories: tuple[Any, ...]


@dataclass(frozen=True)
class Float:
    """A float in [lower, upper], sampled on a log scale when `log`."""

    lower: float
    upper: float
    log: bool = False


@dataclass(frozen=True)
class Integer:
    """An integer in [lower, upper] (both included) on a grid of `q`."""

    lower: int
    upper: int
    q: int = 1


Domain = Choice | Float | Integer


def choice(values: list) -> Choice:
    return Choice(tuple(values))


def uniform(lower: float, upper: float) -> Float:
    return Float(lower, upper)


def loguniform(lower: float, upper: float) -> Float:
    return Float(lower, upper, log=True)


def qrandint(lower: int, upper: int, q: int = 1) -> Integer:
    return Integer(lower, upper, q)


def numeric(domain: Domain) -> bool:
    """Whether every value of the domain is a number (booleans are not)."""
    if isinstance(domain, Choice):
        return all(isinstance(c, int | float) and not isinstance(c, bool) for c in domain.categories)
    return True


def largest(domain: Domain) -> Any:
    """The largest value the domain can take (for checking that folds are long enough)."""
    return max(domain.categories) if isinstance(domain, Choice) else domain.upper


def to_tune(domain: Domain):
    """The equivalent Tune domain (imports Ray)."""
    from ray import tune

    if isinstance(domain, Choice):
        return tune.choice(list(domain.categories))
    if isinstance(domain, Integer):
        return tune.qrandint(domain.lower, domain.upper, domain.q)
    return (tune.loguniform if domain.log else tune.uniform)(domain.lower, domain.upper)
