"""Imports its sibling relatively (a target by path must then be named as relpkg.relative:f)."""

from . import sibling  # noqa: F401


def f() -> None:
    pass
