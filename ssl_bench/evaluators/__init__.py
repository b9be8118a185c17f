"""Transfer evaluators, one module per protocol, registered by task name with its typed options (``base.py``).

Shared by them: ``engine.py`` (fine-tuning), ``features.py`` (frozen features), ``examples.py`` (figures);
``runner.py`` checks a request and runs it into a result record. ``*_model.py`` hold the networks of ``det``
and ``seg``; ``inpainting_*.py`` the ``inpaint`` evaluator's parts (its images, the nearest-neighbour and
classic baselines).
"""

import importlib

from ssl_bench.evaluators.base import (
    EvalContext,
    Metrics,
    available_evaluators,
    check_disjoint,
    evaluator_protocol,
    get_evaluator,
    register_evaluator,
)

# Built-in evaluators register themselves on import; a module missing here (not yet written) is skipped.
for _module in ("classification", "linear", "knn", "detection", "segmentation", "inpainting"):
    try:
        importlib.import_module(f"ssl_bench.evaluators.{_module}")
    except ModuleNotFoundError as _e:
        if _e.name != f"ssl_bench.evaluators.{_module}":
            raise

__all__ = ["EvalContext", "Metrics", "available_evaluators", "check_disjoint", "evaluator_protocol",
           "get_evaluator", "register_evaluator"]
