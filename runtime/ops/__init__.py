"""Kernels, one registry keyed by op type (see ``registry``).

Importing this package imports every kernel module in it, which registers the kernels:
a new op is one function in one module here, nothing else to edit.
"""

from __future__ import annotations

import importlib
import pkgutil

from .registry import REGISTRY, Kernel, OpContext, register, resolve, supported_ops

for _mod in pkgutil.iter_modules(__path__):
    if _mod.name not in ("registry", "common"):
        importlib.import_module(f"{__name__}.{_mod.name}")

__all__ = ["REGISTRY", "Kernel", "OpContext", "register", "resolve", "supported_ops"]
