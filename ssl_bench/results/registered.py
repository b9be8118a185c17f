"""What the registries say about a task or a method, for the results table (issue #24).

A task's column label, preferred metric, column order and the legend's words for its trivial level and
chance loss are registered with its evaluator (``register_evaluator``, ``evaluators/base.py``); a method's
supervision and row order are attributes of its class (``PretrainMethod.supervision``, ``table_order``).
The table holds no per-task or per-method constant: a task or method registered anywhere, a plug-in's
too, is shown with what it registered; a record of an unregistered one (``bench table --all-tasks``,
``--all-methods``) with the defaults.
"""

from __future__ import annotations

from ssl_bench.errors import RecipeError
from ssl_bench.evaluators import available_evaluators, task_info
from ssl_bench.evaluators.base import TaskInfo
from ssl_bench.methods import method_class

UNREGISTERED_ORDER = TaskInfo().order  # a method registered without a table_order sorts with these


def registered_tasks() -> list[str]:
    """Every registered task, in column order."""
    return sorted(available_evaluators(), key=task_sort_key)


def task_sort_key(task: str) -> tuple[int, str]:
    """Columns: the registered ``order``, then the name (an unregistered task after the registered ones)."""
    return task_info(task).order, task


def task_label(task: str) -> str:
    return task_info(task).label or task


def preferred_metric(task: str) -> str | None:
    """The metric the task's column shows when its records have it (the paper's); None if none registered."""
    return task_info(task).metric


def method_supervision(method: str) -> str:
    """What the method learns from (the table's supervision column); "" for an unregistered method."""
    try:
        return str(method_class(method).supervision)
    except RecipeError:
        return ""


def method_sort_key(method: str) -> tuple[int, str]:
    """Rows: the method's ``table_order`` (the paper's Table 2 rows first), then its name."""
    try:
        order = int(method_class(method).table_order)
    except RecipeError:
        order = UNREGISTERED_ORDER
    return order, method


def legend_groups(field: str) -> dict[str, list[str]]:
    """``{words: [short task names]}`` of the registered tasks' ``trivial`` or ``chance`` words, in column
    order; tasks with the same words share an entry (``cls``, ``linear``, ``kNN``: a constant scorer)."""
    groups: dict[str, list[str]] = {}
    for task in registered_tasks():
        info = task_info(task)
        words = getattr(info, field)
        names = groups.setdefault(words, []) if words is not None else None
        if names is not None and (info.short or task) not in names:
            names.append(info.short or task)
    return groups
