"""Registry of pretraining methods by name; third-party packages add theirs through an entry point.

A package registers a method by declaring, in its own ``pyproject.toml``::

    [project.entry-points."ssl_bench.methods"]
    my_method = "my_package.my_module:MyMethod"

where ``MyMethod`` subclasses ``ssl_bench.methods.base.PretrainMethod``.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, TypeVar

from ssl_bench.errors import RecipeError
from ssl_bench.methods.base import PretrainMethod

ENTRY_POINT_GROUP = "ssl_bench.methods"
_METHODS: dict[str, type[PretrainMethod]] = {}
_M = TypeVar("_M", bound=type[PretrainMethod])


def register_method(name: str) -> Callable[[_M], _M]:
    """Class decorator: ``@register_method("context_encoder")``."""

    def wrap(cls: _M) -> _M:
        if name in _METHODS and _METHODS[name] is not cls:
            raise ValueError(
                f"method '{name}' is registered twice ({_METHODS[name].__name__}, {cls.__name__})"
            )
        _METHODS[name] = cls
        cls.method_name = name  # type: ignore[attr-defined]
        return cls

    return wrap


def _load_entry_points() -> None:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name not in _METHODS:
            _METHODS[ep.name] = ep.load()
            _METHODS[ep.name].method_name = ep.name  # type: ignore[attr-defined]


def available_methods() -> list[str]:
    _load_entry_points()
    return sorted(_METHODS)


def method_class(name: str) -> type[PretrainMethod]:
    if name not in _METHODS:  # reading the installed packages' entry points takes ~30 ms a time
        _load_entry_points()
    try:
        return _METHODS[name]
    except KeyError:
        raise RecipeError(f"unknown method '{name}'; registered: {', '.join(sorted(_METHODS))}") from None


def create_method(name: str, **options: Any) -> PretrainMethod:
    """Build a registered method; unknown options fail with the option's name."""
    cls = method_class(name)
    try:
        return cls(**options)
    except TypeError as e:
        raise RecipeError(f"bad model options for method '{name}': {e}") from None


def build_method(config: dict[str, Any], num_classes: int = 0) -> PretrainMethod:
    """The method a resolved pretraining recipe (``config.yaml``) describes, freshly initialised.

    Args:
        config: the recipe: ``method``, ``model`` options and ``data.image_size``.
        num_classes: classes of the labelled pool, for methods that need labels (0 when unknown: the
            classifier is then built from the saved weights' shape by the method itself, or not at all).
    """
    options = dict(config.get("model", {}))
    options["image_size"] = config["data"]["image_size"]
    if method_class(config["method"]).needs_labels:
        options["num_classes"] = num_classes
    return create_method(config["method"], **options)
