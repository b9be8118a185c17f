"""Pretraining methods, registered by name (``create_method``); importing this package registers them.

Every module of this package is imported here, so a new method is one file with its ``@register_method``:
nothing else to edit. (Methods of other packages register through the ``ssl_bench.methods`` entry point.)
"""

import importlib
import pkgutil

from ssl_bench.methods.base import PretrainMethod
from ssl_bench.methods.registry import (
    available_methods,
    build_method,
    create_method,
    method_class,
    register_method,
)

_NOT_METHODS = {"base", "registry", "losses", "dcgan"}
for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module not in _NOT_METHODS and not _module.startswith("_"):
        importlib.import_module(f"{__name__}.{_module}")

__all__ = [
    "PretrainMethod",
    "available_methods",
    "build_method",
    "create_method",
    "method_class",
    "register_method",
]
