"""Transfer evaluators, one module per protocol, registered by task name (see ``base.py``)."""

import importlib

from ssl_bench.evaluators.base import (
    EvalContext,
    Metrics,
    available_evaluators,
    check_disjoint,
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

__all__ = ["EvalContext", "Metrics", "available_evaluators", "check_disjoint", "get_evaluator",
           "register_evaluator"]
