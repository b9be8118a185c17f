"""Transfer evaluators, one module per protocol, registered by task name with its typed options (``base.py``).

Shared by them: ``engine.py`` (fine-tuning), ``features.py`` (frozen features), ``examples.py`` (figures);
``runner.py`` checks a request and runs it into a result record. ``*_model.py`` hold the networks of ``det``
and ``seg``; ``inpainting_*.py`` the ``inpaint`` evaluator's parts (its images, the nearest-neighbour and
classic baselines).

Every module here is imported below, so a new evaluator is one module with its ``@register_evaluator`` and
its recipes; nothing else to edit. (Evaluators of other packages register through the
``ssl_bench.evaluators`` entry point.)
"""

import importlib
import pkgutil

from ssl_bench.evaluators.base import (
    EvalContext,
    Metrics,
    available_evaluators,
    check_disjoint,
    evaluator_protocol,
    get_evaluator,
    register_evaluator,
    task_info,
)

# Every module but these is an evaluator or a part of one: the runner runs them and is none.
_NOT_EVALUATORS = {"base", "runner"}
for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    if _module not in _NOT_EVALUATORS and not _module.startswith("_"):
        importlib.import_module(f"{__name__}.{_module}")

__all__ = ["EvalContext", "Metrics", "available_evaluators", "check_disjoint", "evaluator_protocol",
           "get_evaluator", "register_evaluator", "task_info"]
