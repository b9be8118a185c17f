"""The pretraining recipe, typed: each value ``bench pretrain`` accepts is checked before anything is written.

A recipe (``pretrain/<profile>/<method>.yaml``) holds ``method``, ``seed`` and three sections:

    model   the method's constructor options: valid keys and their types are read from its ``__init__``
            signature (``image_size`` and ``num_classes`` come from the data, not from here)
    data    :class:`DataOptions`
    train   :class:`TrainOptions`

Flags and ``--set`` values arrive as :class:`Override` s that carry their origin (``--lr 0.1``,
``--set train.lr=abc``), so a bad value is reported against what the user typed.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from torch import nn

from ssl_bench.data.masks import MASK_TYPES, mask_options
from ssl_bench.encoders import pool5_size
from ssl_bench.errors import RecipeError
from ssl_bench.methods import PretrainMethod, available_methods, method_class
from ssl_bench.options import did_you_mean, options_dict, options_from, unknown_name_error
from ssl_bench.recipes import merge

SECTIONS = ("model", "data", "train")
TOP_LEVEL = ("method", "seed", *SECTIONS)
# Written into config.yaml by the run itself; dropped when a config.yaml is read back as a recipe.
RESOLVED_DATA_KEYS = ("resolved_root", "num_images", "num_classes", "listing_sha256")
RESOLVED_TOP_LEVEL = ("provenance",)
# Model options the run fills in itself (the method never sees these names from the recipe).
FROM_DATA = ("image_size", "num_classes")
# A model value the training stage resolves before building the method.
DATASET_MEAN = "dataset_mean"


def _smallest_image_size() -> int:
    """The smallest square input the CaffeNet encoder (and so the decoder) takes: pool5 is then 1×1."""
    for size in range(1, 1024):
        try:
            pool5_size(size)
        except ValueError:
            continue
        return size
    raise AssertionError("unreachable")


MIN_IMAGE_SIZE = _smallest_image_size()  # 67 px


@dataclass(frozen=True)
class DataOptions:
    """``data:`` — where the images come from and how they are cut."""

    source: str | None = "synthvoc"  # a folder of images, or synthvoc (the cached pool); null: pass --data
    image_size: int = 227  # training crop side; PAPER.md §1.2
    synth_images: int = 2000  # size of the generated SynthVOC (source: synthvoc)
    synth_pool: int | None = None  # pretraining pool size (source: synthvoc); null: the dataset's own (half)
    skip_bad: bool = False  # --skip-bad-images
    stats_images: int = 256  # images averaged for model.fill: dataset_mean


@dataclass(frozen=True)
class TrainOptions:
    """``train:`` — the schedule and the speed settings (``runtime/performance.py``)."""

    steps: int | None = None  # required for methods that train
    batch_size: int | None = None  # per process; required for methods that read data
    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float | None = None  # required for methods that train
    schedule: Literal["constant", "cosine"] = "constant"  # runtime/schedules.py
    warmup_steps: int = 0  # linear warm-up to lr over the first steps (either schedule)
    fold_batch_norm: bool = False  # encoder.pt as plain caffenet, BN folded in (model.encoder: caffenet_bn)
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    workers: int | Literal["auto"] = "auto"
    log_every: int = 10
    sample_every: int = 0  # 0: no sample grids
    checkpoint_every: int = 0  # 0: a checkpoint at the end (and on a stop signal) only
    sample_images: int = 8
    amp: bool | Literal["auto"] = "auto"
    channels_last: bool | Literal["auto"] = "auto"
    compile: bool | Literal["auto"] = "auto"
    fused_adam: bool | Literal["auto"] = "auto"
    loader_thread: bool | Literal["auto"] = "auto"


# The flag that sets each key, so a message names what the user typed.
FLAGS = {
    "data.source": "--data",
    "data.image_size": "--image-size",
    "data.skip_bad": "--skip-bad-images",
    "train.steps": "--steps",
    "train.batch_size": "--batch-size",
    "train.lr": "--lr",
    "train.workers": "--workers",
    "train.checkpoint_every": "--checkpoint-every",
    "train.sample_every": "--sample-every",
    "seed": "--seed",
}


def _at_least(low: float) -> Any:
    return lambda v: v is None or v >= low, f"at least {low:g}"


# key → (test, what is allowed). None means "not given" and is checked by `check_recipe` where required.
_RANGES: dict[str, tuple[Any, str]] = {
    "seed": _at_least(0),
    "data.image_size": (
        lambda v: v >= MIN_IMAGE_SIZE,
        f"at least {MIN_IMAGE_SIZE} px (the smallest input the CaffeNet encoder takes: pool5 is then 1×1; "
        "the paper uses 227)",
    ),
    "data.synth_images": _at_least(8),
    "data.synth_pool": _at_least(4),
    "data.stats_images": _at_least(1),
    "train.steps": _at_least(1),
    "train.batch_size": _at_least(1),
    "train.lr": (lambda v: v is None or v > 0, "greater than 0"),
    "train.betas": (lambda v: all(0 <= b < 1 for b in v), "two numbers in [0, 1)"),
    "train.weight_decay": _at_least(0),
    "train.warmup_steps": _at_least(0),
    "train.workers": (lambda v: v == "auto" or v >= 0, "auto or a whole number ≥ 0"),
    "train.log_every": _at_least(1),
    "train.sample_every": (lambda v: v >= 0, "0 (off) or a whole number ≥ 1"),
    "train.checkpoint_every": (lambda v: v >= 0, "0 (at the end only) or a whole number ≥ 1"),
    "train.sample_images": _at_least(1),
}


@dataclass(frozen=True)
class Override:
    """One value from the command line: ``("train", "lr")`` = 0.1, typed as ``--lr 0.1``."""

    path: tuple[str, ...]
    value: Any
    origin: str

    @property
    def key(self) -> str:
        return ".".join(self.path)


@dataclass(frozen=True)
class PretrainRecipe:
    """A checked recipe. ``model`` holds the keys given (the method's signature holds the defaults)."""

    method: str
    seed: int
    model: dict[str, Any]
    data: DataOptions
    train: TrainOptions

    def to_config(self) -> dict[str, Any]:
        """The plain dict saved as config.yaml (before the run adds what it resolved)."""
        return {
            "method": self.method,
            "seed": self.seed,
            "model": dict(self.model),
            "data": options_dict(self.data),
            "train": options_dict(self.train),
        }


# ------------------------------------------------------------------------------------------------------
# The model section: keys and types from the method's constructor


def _plain_type(tp: Any) -> Any:
    """``Sequence[float]`` → ``list[float]`` (what YAML gives), inside unions too."""
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        return Union[tuple(_plain_type(a) for a in get_args(tp))]  # noqa: UP007 - built from a tuple
    if origin is Sequence:
        return list[get_args(tp)] if get_args(tp) else list
    return tp


def _constructor_parameters(cls: type) -> tuple[list[tuple[str, Any, Any]], bool]:
    """(name, type, default) of every keyword ``cls(...)`` takes, following ``**options`` to the parent;
    and whether it takes any keyword (a ``**options`` that no parent's signature spells out)."""
    found: dict[str, tuple[str, Any, Any]] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        if klass in (PretrainMethod, nn.Module, object):  # takes no options: the **options stay open
            return list(found.values()), True
        hints = get_type_hints(init)
        params = list(inspect.signature(init).parameters.values())[1:]  # without self
        for p in params:
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.name in found:
                continue
            default = dataclasses.MISSING if p.default is p.empty else p.default
            found[p.name] = (p.name, _plain_type(hints.get(p.name, Any)), default)
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return list(found.values()), False


@cache
def model_options_class(method: str) -> type | None:
    """A dataclass of ``method``'s model options, built from its constructor's signature; None for a
    plug-in whose constructor takes any ``**options`` (its keys cannot be checked here)."""
    fields = []
    params, open_ended = _constructor_parameters(method_class(method))
    if open_ended:
        return None
    for name, tp, default in params:
        if name in FROM_DATA:
            continue
        if name == "fill":
            tp = Union[tp, Literal[DATASET_MEAN]]  # noqa: UP007 - resolved by the training stage
        if isinstance(default, (list, dict, set)):
            fields.append((name, tp, dataclasses.field(default_factory=lambda d=default: d)))
        elif default is dataclasses.MISSING:
            fields.append((name, tp))
        else:
            fields.append((name, tp, dataclasses.field(default=default)))
    fields.sort(key=lambda f: len(f) != 2)  # dataclasses want the required fields first
    return dataclasses.make_dataclass(f"{method}_model_options", fields, frozen=True)


def model_defaults(method: str) -> dict[str, Any]:
    """The constructor's default for each model option (for comparing a saved recipe with a new one)."""
    cls = model_options_class(method)
    out = {}
    for f in dataclasses.fields(cls) if cls is not None else ():
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


# ------------------------------------------------------------------------------------------------------
# Checking


def _check_range(key: str, value: Any, place: str) -> None:
    """``place`` is a flag (``--steps``), a ``--set`` item, or a recipe path."""
    rule = _RANGES.get(key)
    if rule is None or value is None:
        return
    test, allowed = rule
    if test(value):
        return
    if place.startswith("--set"):
        raise RecipeError(f"{place}: {key} must be {allowed}")
    if place.startswith("--"):
        raise RecipeError(f"{place} {value}: must be {allowed}")
    raise RecipeError(f"{key}={value!r} in {place}: must be {allowed}")


def _check_section(section: str, values: Any, method: str, place: str) -> Any:
    """Type-check one section (unknown keys, wrong types) and the ranges of the keys given."""
    if not isinstance(values, Mapping):
        raise RecipeError(
            f"'{section}' in {place} must be a mapping of keys to values, not {type(values).__name__}"
        )
    if section == "model":
        for key in FROM_DATA:
            if key in values:
                where = "data.image_size" if key == "image_size" else "the data folder's labels"
                raise RecipeError(f"model.{key} in {place}: not a model option; it comes from {where}")
        cls = model_options_class(method)
        if cls is None:
            return dict(values)
    else:
        cls = DataOptions if section == "data" else TrainOptions
    where = place if place.startswith("--") else f"the {section} section of {place}"
    if section == "model" and not place.startswith("--"):
        where += f" (method '{method}')"
    options = options_from(cls, values, where)
    for key in values:
        _check_range(f"{section}.{key}", getattr(options, key), place)
    if section == "model" and isinstance(values.get("mask_options"), Mapping):
        kind = values.get("mask", model_defaults(method).get("mask", "none"))
        if kind in MASK_TYPES:
            valid = mask_options(kind)
            for key in values["mask_options"]:
                if key not in valid:
                    raise RecipeError(
                        f"unknown key 'model.mask_options.{key}' in {place} for mask '{kind}'"
                        f"{did_you_mean(key, valid)}; valid keys: {', '.join(valid) or 'none'}"
                    )
    return options


def check_method(name: Any, place: str) -> str:
    if not isinstance(name, str) or name not in available_methods():
        raise unknown_name_error("method", str(name), available_methods(), place)
    return name


def strip_resolved(config: Mapping[str, Any]) -> dict[str, Any]:
    """A saved config.yaml as a recipe: without the values the run resolved (provenance, data folder)."""
    out = {k: v for k, v in config.items() if k not in RESOLVED_TOP_LEVEL}
    if isinstance(out.get("data"), Mapping):
        out["data"] = {k: v for k, v in out["data"].items() if k not in RESOLVED_DATA_KEYS}
    return out


def check_recipe(config: Mapping[str, Any], place: str) -> PretrainRecipe:
    """Check a whole recipe (a merged dict); raises RecipeError naming the key, the value and what is allowed.

    Args:
        config: ``method``, ``seed``, ``model``, ``data``, ``train``.
        place: where it came from, for the message (the recipe path).
    """
    config = strip_resolved(config)
    for key in config:
        if key not in TOP_LEVEL:
            raise RecipeError(
                f"unknown recipe key '{key}' in {place}{did_you_mean(key, TOP_LEVEL)}; "
                f"valid keys: {', '.join(TOP_LEVEL)}"
            )
    method = check_method(config.get("method"), place)
    seed = config.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise RecipeError(f"seed={seed!r} in {place} is not valid: expected int")
    _check_range("seed", seed, place)
    model = dict(config.get("model") or {})
    _check_section("model", model, method, place)
    data = _check_section("data", config.get("data") or {}, method, place)
    train = _check_section("train", config.get("train") or {}, method, place)
    encoder = model.get("encoder") or model_defaults(method).get("encoder")
    if train.fold_batch_norm and encoder != "caffenet_bn":
        raise RecipeError(f"train.fold_batch_norm in {place} needs model.encoder: caffenet_bn")
    cls = method_class(method)
    required = []
    if cls.trains:
        required += [("steps", train.steps), ("lr", train.lr)]
    if cls.needs_data:
        required += [("batch_size", train.batch_size)]
    for key, value in required:
        if value is None:
            flag = FLAGS.get(f"train.{key}")
            raise RecipeError(
                f"train.{key} is missing in {place}: method '{method}' needs it"
                + (f" (pass {flag} or --set train.{key}=…)" if flag else "")
            )
    return PretrainRecipe(method, seed, model, data, train)


def apply_overrides(recipe: Mapping[str, Any], overrides: Sequence[Override]) -> dict[str, Any]:
    """``recipe`` with the command line's values on top, each checked against its origin first.

    An unknown section or key, a value of the wrong type or out of range is reported with the flag or
    ``--set`` item that gave it.
    """
    method = recipe.get("method")
    for o in overrides:
        if o.path == ("method",):
            method = o.value
    method = check_method(method, next((o.origin for o in overrides if o.path == ("method",)), "the recipe"))
    merged: dict[str, Any] = {}
    for o in overrides:
        head, *rest = o.path
        if head not in TOP_LEVEL:
            raise RecipeError(
                f"unknown recipe section '{head}' in {o.origin}{did_you_mean(head, TOP_LEVEL)}; "
                f"valid sections: {', '.join(TOP_LEVEL)}"
            )
        if head in SECTIONS:
            if not rest:
                raise RecipeError(f"{o.origin}: '{head}' is a section; set one of its keys: {head}.KEY=…")
            value: Any = o.value
            for part in reversed(rest[1:]):
                value = {part: value}
            values = {rest[0]: value}
            if (head, rest[0]) == ("model", "mask_options"):  # checked against the mask the run will use
                values["mask"] = next(
                    (m.value for m in reversed(overrides) if m.path == ("model", "mask")),
                    (recipe.get("model") or {}).get("mask", model_defaults(method).get("mask", "none")),
                )
            _check_section(head, values, method, o.origin)
        elif rest:
            raise RecipeError(f"{o.origin}: '{head}' is a value, not a section")
        elif head == "seed":
            if isinstance(o.value, bool) or not isinstance(o.value, int):
                raise RecipeError(f"{o.origin}: seed must be a whole number, not {o.value!r}")
            _check_range("seed", o.value, o.origin)
        node = merged
        for part in o.path[:-1]:
            node = node.setdefault(part, {})
        node[o.path[-1]] = o.value
    return merge(dict(recipe), merged)


__all__ = [
    "FLAGS",
    "MIN_IMAGE_SIZE",
    "DataOptions",
    "Override",
    "PretrainRecipe",
    "TrainOptions",
    "apply_overrides",
    "check_method",
    "check_recipe",
    "model_defaults",
    "model_options_class",
    "strip_resolved",
]
