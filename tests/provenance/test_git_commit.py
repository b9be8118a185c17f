"""``git_commit``: a run is "dirty" only when the code or recipes that made it have uncommitted changes."""

from __future__ import annotations

import subprocess

from ssl_bench import provenance


def _fake_git(status_by_paths):
    def run(args, **kwargs):
        if "rev-parse" in args:
            return subprocess.CompletedProcess(args, 0, stdout="abc123\n")
        paths = tuple(args[args.index("--") + 1 :]) if "--" in args else ()
        return subprocess.CompletedProcess(args, 0, stdout=status_by_paths(paths))

    return run


def test_result_files_being_rewritten_do_not_make_a_run_dirty(monkeypatch):
    # git reports a change only when asked about the whole tree (a result file), not about the source paths.
    whole_tree_only = _fake_git(lambda paths: "" if paths else " M results/smoke/REPORT.md")
    monkeypatch.setattr(subprocess, "run", whole_tree_only)
    provenance.git_commit.cache_clear()
    try:
        assert provenance.git_commit() == "abc123"
    finally:
        provenance.git_commit.cache_clear()


def test_uncommitted_code_makes_a_run_dirty(monkeypatch):
    monkeypatch.setattr(subprocess, "run", _fake_git(lambda paths: " M ssl_bench/evaluators/knn.py"))
    provenance.git_commit.cache_clear()
    try:
        assert provenance.git_commit() == "abc123+dirty"
    finally:
        provenance.git_commit.cache_clear()
