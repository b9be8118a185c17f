"""What an evaluator is: a function ``EvalContext → dict[str, float]`` with a typed protocol, by task name.

Each evaluator lives in its own module: a frozen dataclass ``Protocol`` whose fields are its recipe keys (a
type and a cited default each; ``NOTE:`` on each deviation), and the function, registered with
``@register_evaluator("task", protocol=Protocol)``. The runner builds the protocol from the recipe and
``--set`` before anything runs (an unknown, renamed or mistyped key is a usage error) and hands it to the
evaluator as ``ctx.protocol``. Third-party evaluators register through the ``ssl_bench.evaluators``
entry-point group, naming the function; its protocol is the function's ``protocol`` attribute (none: the
task takes no options)::

    [project.entry-points."ssl_bench.evaluators"]
    my_task = "my_package.my_module:evaluate_my_task"

An evaluator loads ``--weights`` into ``--arch`` (``EvalContext.load_encoder``), and the runner checks that
load before anything runs. One that evaluates the pretraining run's whole method instead (``inpaint``: the
encoder with its decoder) registers with ``own_model=True``: for weights from a run whose method has a
decoder (``RunFolder.has_decoder``), the runner then checks that the run's method loads, not the encoder
into ``--arch`` (a DCGAN ``encoder.pt`` is no CaffeNet).

How the results table shows the task is registered with it too (timm keeps ``pretrained_cfg`` with the
model): ``label``, the preferred ``metric``, the column ``order``, and the legend's words for its trivial
level and chance loss, gathered in a :class:`TaskInfo` on the function (``fn.task_info``; an entry-point
plug-in may set that attribute itself, else its task gets the defaults). Every module of this package is
imported by ``ssl_bench/evaluators/__init__.py``, so a new task is one module and its recipes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ssl_bench.encoders import load_encoder
from ssl_bench.errors import DataError
from ssl_bench.options import unknown_name_error

Metrics = dict[str, float]
Evaluator = Callable[["EvalContext"], Metrics]
ENTRY_POINT_GROUP = "ssl_bench.evaluators"
_EVALUATORS: dict[str, Evaluator] = {}


@dataclass(frozen=True)
class TaskInfo:
    """How the results table shows a task; registered with its evaluator.

    Attributes:
        label: the column's label (``"classification"``); "" → the task name.
        metric: the metric the column shows when its records have it (the paper's); otherwise the records'
            own ``extra.primary_metric``. Its trivial level is the records' ``trivial_<metric>``.
        order: the column's place when no ``--tasks`` order is given: lower first, then by name
            (the default puts a plug-in after the built-ins).
        short: the task's name in the legend (``"kNN"``); "" → the task name.
        trivial: the legend's words for the predictor behind ``trivial_<metric>`` (``"all background"``);
            None where the evaluator records no trivial level.
        chance: the legend's words for the constant prediction behind ``chance_loss`` (``"the label
            prior"``); "" for a task that trains a head but has no chance loss (the legend says so); None
            where no training loss is recorded.
    """

    label: str = ""
    metric: str | None = None
    order: int = 1000
    short: str = ""
    trivial: str | None = None
    chance: str | None = None


@dataclass(frozen=True)
class NoOptions:
    """The protocol of an evaluator that declares none: every recipe key is unknown."""


@dataclass
class EvalContext:
    """Everything an evaluator gets.

    Attributes:
        weights: an ``encoder.pt`` path, or ``"random"``.
        arch: encoder architecture the weights load into (``caffenet``, ``torchvision_alexnet``, …).
        voc_root: a VOCdevkit year folder (``…/VOC2007``); SynthVOC by default.
        protocol: the evaluator's ``Protocol`` built from ``eval/<profile>/<task>.yaml`` and ``--set``.
        seed, device, progress: as given on the command line.
        work_dir: this run's own folder for the files its record points to (predictions, figures); no
            other run writes there.
        extra: values an evaluator reports besides metrics (AP variant names, image counts…), copied
            into the result record; fill it with ``ctx.extra[...] = …``.
    """

    weights: str
    arch: str
    voc_root: Path
    protocol: Any = field(default_factory=NoOptions)
    seed: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    progress: bool = True
    work_dir: Path = Path("results/work")
    extra: dict[str, Any] = field(default_factory=dict)
    images_processed: int = 0  # evaluators add the images they push through the network (for img/s)

    def load_encoder(self) -> nn.Module:
        """The encoder with strict key checks: unfitting weights fail with the keys named."""
        return load_encoder(self.weights, self.arch)


def register_evaluator(
    name: str,
    protocol: type | None = None,
    own_model: bool = False,
    *,
    label: str = "",
    metric: str | None = None,
    order: int = 1000,
    short: str = "",
    trivial: str | None = None,
    chance: str | None = None,
) -> Callable[[Evaluator], Evaluator]:
    """Register ``fn`` as task ``name``; ``protocol`` is its options dataclass (None: it takes none).

    ``own_model``: ``fn`` rebuilds the pretraining run's method from the weights' run folder where that
    method has a decoder, rather than loading the encoder into ``--arch`` (module docstring). The other
    arguments say how the results table shows the task (:class:`TaskInfo`).
    """
    info = TaskInfo(label, metric, order, short, trivial, chance)

    def wrap(fn: Evaluator) -> Evaluator:
        if name in _EVALUATORS and _EVALUATORS[name] is not fn:
            raise ValueError(f"evaluator '{name}' is registered twice")
        fn.protocol = protocol or NoOptions  # type: ignore[attr-defined]
        fn.own_model = own_model  # type: ignore[attr-defined]
        fn.task_info = info  # type: ignore[attr-defined]
        _EVALUATORS[name] = fn
        return fn

    return wrap


def _load_entry_points() -> None:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        _EVALUATORS.setdefault(ep.name, ep.load())


def available_evaluators() -> list[str]:
    _load_entry_points()
    return sorted(_EVALUATORS)


def get_evaluator(name: str) -> Evaluator:
    """The evaluator of task ``name``; a RecipeError with the closest task name if there is none."""
    if name not in _EVALUATORS:  # reading the installed packages' entry points takes ~30 ms a time
        _load_entry_points()
    try:
        return _EVALUATORS[name]
    except KeyError:
        raise unknown_name_error("task", name, _EVALUATORS) from None


def evaluator_protocol(name: str) -> type:
    """The options dataclass of task ``name`` (``NoOptions`` for an evaluator that declares none)."""
    return getattr(get_evaluator(name), "protocol", NoOptions)


def task_info(name: str) -> TaskInfo:
    """How the table shows task ``name``: its registered :class:`TaskInfo`; the defaults for a task that
    registered none (an entry-point plug-in) or is not registered (records kept with ``--all-tasks``)."""
    if name not in _EVALUATORS:  # the table asks for every cell: read the entry points only when needed
        _load_entry_points()
    return getattr(_EVALUATORS.get(name), "task_info", None) or TaskInfo()


def check_disjoint(train_ids: Iterable[str], test_ids: Iterable[str], what: str) -> None:
    """Refuse an evaluation whose test images overlap its training images."""
    overlap = sorted(set(train_ids) & set(test_ids))
    if overlap:
        shown = ", ".join(overlap[:5]) + (" …" if len(overlap) > 5 else "")
        raise DataError(f"{what}: {len(overlap)} test image(s) are also in the training list ({shown})")
