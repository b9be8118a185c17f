"""Pretraining methods, registered by name (``create_method``); importing this package registers them."""

from ssl_bench.methods import context_encoder, datainit, random_init, supervised  # noqa: F401 - registration
from ssl_bench.methods.base import PretrainMethod
from ssl_bench.methods.registry import (
    available_methods,
    build_method,
    create_method,
    method_class,
    register_method,
)

__all__ = [
    "PretrainMethod",
    "available_methods",
    "build_method",
    "create_method",
    "method_class",
    "register_method",
]
