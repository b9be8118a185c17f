"""What an evaluator is: a function ``EvalContext → dict[str, float]``, registered by task name.

Each evaluator lives in its own module with its protocol constants at the top, a docstring citing the
source (PAPER.md §3) and ``NOTE:`` on each deviation. Third-party evaluators register through the
``ssl_bench.evaluators`` entry-point group::

    [project.entry-points."ssl_bench.evaluators"]
    my_task = "my_package.my_module:evaluate_my_task"
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
from ssl_bench.errors import DataError, RecipeError

Metrics = dict[str, float]
Evaluator = Callable[["EvalContext"], Metrics]
ENTRY_POINT_GROUP = "ssl_bench.evaluators"
_EVALUATORS: dict[str, Evaluator] = {}


@dataclass
class EvalContext:
    """Everything an evaluator gets.

    Attributes:
        weights: an ``encoder.pt`` path, or ``"random"``.
        arch: encoder architecture the weights load into (``caffenet``, ``torchvision_alexnet``, …).
        voc_root: a VOCdevkit year folder (``…/VOC2007``); SynthVOC by default.
        recipe: protocol values from ``eval/<profile>/<task>.yaml`` (evaluators read their keys here).
        seed, device, progress: as given on the command line.
        work_dir: a folder for the evaluator's artefacts (predictions, figures).
        extra: values an evaluator reports besides metrics (AP variant names, image counts…), copied
            into the result record; fill it with ``ctx.extra[...] = …``.
    """

    weights: str
    arch: str
    voc_root: Path
    recipe: dict[str, Any]
    seed: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    progress: bool = True
    work_dir: Path = Path("results/work")
    extra: dict[str, Any] = field(default_factory=dict)
    images_processed: int = 0  # evaluators add the images they push through the network (for img/s)

    def load_encoder(self) -> nn.Module:
        """The encoder with strict key checks: unfitting weights fail with the keys named."""
        return load_encoder(self.weights, self.arch)

    def option(self, key: str, default: Any = None) -> Any:
        return self.recipe.get(key, default)

    @property
    def pretrain_dir(self) -> Path | None:
        """The ``bench pretrain --out`` folder the weights came from (holds checkpoint.pt), if any."""
        if self.weights == "random":
            return None
        parent = Path(self.weights).parent
        return parent if (parent / "config.yaml").is_file() else None


def register_evaluator(name: str) -> Callable[[Evaluator], Evaluator]:
    def wrap(fn: Evaluator) -> Evaluator:
        if name in _EVALUATORS and _EVALUATORS[name] is not fn:
            raise ValueError(f"evaluator '{name}' is registered twice")
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
    _load_entry_points()
    try:
        return _EVALUATORS[name]
    except KeyError:
        raise RecipeError(f"unknown task '{name}'; registered: {', '.join(sorted(_EVALUATORS))}") from None


def check_disjoint(train_ids: Iterable[str], test_ids: Iterable[str], what: str) -> None:
    """Refuse an evaluation whose test images overlap its training images."""
    overlap = sorted(set(train_ids) & set(test_ids))
    if overlap:
        shown = ", ".join(overlap[:5]) + (" …" if len(overlap) > 5 else "")
        raise DataError(f"{what}: {len(overlap)} test image(s) are also in the training list ({shown})")


def frozen_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the weights, to assert after a frozen-trunk evaluation that nothing moved."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_unchanged(module: nn.Module, before: dict[str, torch.Tensor]) -> None:
    changed = [k for k, v in module.state_dict().items() if not torch.equal(v, before[k])]
    if changed:
        raise AssertionError(f"frozen trunk changed during evaluation: {', '.join(changed)}")


def freeze(module: nn.Module) -> nn.Module:
    """Frozen trunk: no gradients, and ``eval()`` so batch-norm statistics stay put."""
    module.eval()
    for p in module.parameters():
        p.requires_grad_(False)
    return module
