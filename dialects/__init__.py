"""The `df` dialect, the `cost` attributes, the target dialects `rdu` (SN40L) and `nv` (GPU) with the ops they share, and the shape rules."""

from collections.abc import Callable
from importlib import import_module

from xdsl.ir import Dialect

DIALECTS: dict[str, tuple[str, str]] = {
    "df": ("dfdsl.dialects.df", "Df"),
    "cost": ("dfdsl.dialects.cost", "Cost"),
    "rdu": ("dfdsl.dialects.rdu", "Rdu"),
    "nv": ("dfdsl.dialects.nv", "Nv"),
}
"""Dialect name to (module, attribute), imported only when the dialect is asked for."""


def dialect_loader(name: str) -> Callable[[], Dialect]:
    module, attr = DIALECTS[name]
    return lambda: getattr(import_module(module), attr)


def all_dialects() -> list[Dialect]:
    return [dialect_loader(name)() for name in DIALECTS]
