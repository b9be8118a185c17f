"""Stage cache keys follow the code each stage imports (issue: stale cached results)."""

import shutil
import sys
import textwrap
from pathlib import Path

import pytest

import ssl_bench
from ssl_bench.results.code_version import code_version, module_closure
from ssl_bench.results.reproduce import EVAL_ENTRY, FIGURE_ENTRY, PRETRAIN_ENTRY

PACKAGE = Path(ssl_bench.__file__).resolve().parent


@pytest.fixture
def package_copy(tmp_path: Path) -> Path:
    """A temporary copy of the ssl_bench source to edit."""
    ignore = shutil.ignore_patterns("__pycache__")
    return Path(shutil.copytree(PACKAGE, tmp_path / "ssl_bench", ignore=ignore))


def stage_keys(package_dir: Path) -> dict[str, str]:
    return {
        "pretrain": code_version([PRETRAIN_ENTRY, "ssl_bench.methods.context_encoder"], package_dir),
        "eval": code_version([EVAL_ENTRY], package_dir),
        "figure": code_version([FIGURE_ENTRY], package_dir),
    }


def append_line(path: Path) -> None:
    path.write_text(path.read_text() + "\nEDITED = True\n")


def test_a_module_only_the_evaluators_import_changes_the_eval_key_not_the_pretraining_key(package_copy):
    before = stage_keys(package_copy)
    append_line(package_copy / "evaluators" / "segmentation.py")
    after = stage_keys(package_copy)
    assert after["eval"] != before["eval"]
    assert after["pretrain"] == before["pretrain"]


def test_a_figure_dependency_changes_the_figure_key_not_the_pretraining_key(package_copy):
    # The bug this replaces: figures.py reads its t-SNE features through evaluators/features.py, which the
    # hand-written list of the figure stage left out, so an edit there served a stale figure.
    before = stage_keys(package_copy)
    append_line(package_copy / "evaluators" / "features.py")
    after = stage_keys(package_copy)
    assert after["figure"] != before["figure"]
    assert after["pretrain"] == before["pretrain"]


def test_shared_runtime_code_is_part_of_the_eval_key_in_its_own_right(package_copy):
    # The evaluators run runtime/schedules.py; their key must not depend on the pretraining key for that.
    before = stage_keys(package_copy)
    append_line(package_copy / "runtime" / "schedules.py")
    assert stage_keys(package_copy)["eval"] != before["eval"]


def test_a_module_only_pretraining_imports_changes_the_pretraining_key_not_the_eval_key(package_copy):
    before = stage_keys(package_copy)
    append_line(package_copy / "training" / "loop.py")
    after = stage_keys(package_copy)
    assert after["pretrain"] != before["pretrain"]
    assert after["eval"] == before["eval"]


def test_table_code_and_the_cli_are_in_no_stage_key(package_copy):
    before = stage_keys(package_copy)
    append_line(package_copy / "results" / "table.py")
    append_line(package_copy / "cli" / "table.py")
    assert stage_keys(package_copy) == before


def test_what_the_stages_run_is_in_their_closure():
    pretrain = module_closure([PRETRAIN_ENTRY])
    evaluation = module_closure([EVAL_ENTRY])
    figure = module_closure([FIGURE_ENTRY])
    # parents' __init__ run on import; registries import their packages' modules by computed name
    assert {"ssl_bench", "ssl_bench.training", "ssl_bench.methods.context_encoder"} <= set(pretrain)
    assert {"ssl_bench.evaluators.segmentation", "ssl_bench.runtime.schedules", "ssl_bench.provenance",
            "ssl_bench.errors"} <= set(evaluation)  # fmt: skip
    assert {"ssl_bench.evaluators.features", "ssl_bench.evaluators.inpainting_baselines",
            "ssl_bench.evaluators.inpainting_data"} <= set(figure)  # fmt: skip
    assert not any(name.startswith("ssl_bench.evaluators") for name in pretrain)


def test_lazy_relative_and_computed_imports_are_followed(tmp_path):
    package = tmp_path / "ssl_bench"
    (package / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "entry.py": "def run():\n    from .sub import lazy\n",
        "sub/__init__.py": "import importlib\nimportlib.import_module(f'{__name__}.plugin_found_by_name')\n",
        "sub/lazy.py": "from ..helper import value\n",
        "sub/plugin_found_by_name.py": "",
        "helper.py": "value = 1\n",
        "unused.py": "",
    }
    for name, text in files.items():
        (package / name).write_text(textwrap.dedent(text))
    closure = module_closure(["ssl_bench.entry"], package)
    assert set(closure) == {"ssl_bench", "ssl_bench.entry", "ssl_bench.sub", "ssl_bench.sub.lazy",
                            "ssl_bench.sub.plugin_found_by_name", "ssl_bench.helper"}  # fmt: skip


def test_a_plugin_module_outside_the_package_counts_with_what_it_imports(tmp_path, monkeypatch, package_copy):
    plugin = tmp_path / "plugins" / "my_method_plugin.py"
    plugin.parent.mkdir()
    plugin.write_text("from ssl_bench.metrics import sharpness\n")
    monkeypatch.syspath_prepend(str(plugin.parent))
    sys.modules.pop("my_method_plugin", None)
    closure = module_closure(["my_method_plugin"], package_copy)
    assert closure["my_method_plugin"] == plugin and "ssl_bench.metrics.sharpness" in closure
    before = code_version(["my_method_plugin"], package_copy)
    append_line(plugin)
    assert code_version(["my_method_plugin"], package_copy) != before


def test_an_unknown_entry_module_fails_loudly():
    with pytest.raises(ModuleNotFoundError, match="ssl_bench.no_such_module"):
        module_closure(["ssl_bench.no_such_module"])
