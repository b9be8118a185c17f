"""The code version of a ``bench reproduce`` stage: a hash of every module its entry point imports.

A stage's cache key must change when, and only when, code that the stage runs changes. Hand-written lists of
source folders drift from the code (a figure once read features from a module its list left out), so the set
of files is computed from the source instead: starting at the stage's entry modules, every ``ssl_bench``
module they import is followed, transitively, by reading the ``import`` statements with :mod:`ast`.

What counts as an import of a module:

- ``import ssl_bench.a.b`` and ``from ssl_bench.a import b`` (``b`` a module or a name in ``a``), absolute or
  relative, at module level or inside a function (a lazy import runs when the stage runs);
- importing ``ssl_bench.a.b`` also runs the ``__init__.py`` of ``ssl_bench`` and ``ssl_bench.a``;
- a module that imports modules by computed name (``importlib.import_module``, ``pkgutil.iter_modules``),
  as the method and evaluator registries do, counts every module of its own package.

Modules of other packages (a method plug-in registered through the entry point) are hashed by their own
file, with the ``ssl_bench`` modules they import. Third-party libraries are not hashed: their versions are in
every record's provenance.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
from collections.abc import Iterable
from pathlib import Path

ROOT_PACKAGE = "ssl_bench"
_PACKAGE_DIR = Path(__file__).resolve().parent.parent

__all__ = ["code_version", "module_closure"]


def _module_file(name: str, package_dir: Path) -> Path | None:
    """The source file of ``ssl_bench`` module ``name`` under ``package_dir``, or None if there is none."""
    parts = name.split(".")[1:]
    base = package_dir.joinpath(*parts)
    for candidate in (base / "__init__.py", base.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _imported_names(tree: ast.AST, module: str, is_package: bool) -> tuple[set[str], bool]:
    """Absolute names imported by a module's syntax tree, and whether it imports by computed name."""
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    dynamic = False
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            names.add(source)
            names.update(f"{source}.{alias.name}" for alias in node.names if alias.name != "*")
        elif isinstance(node, ast.Attribute) and node.attr in ("import_module", "iter_modules"):
            dynamic = True
    return names, dynamic


def _parents(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def module_closure(entries: Iterable[str], package_dir: Path = _PACKAGE_DIR) -> dict[str, Path]:
    """Every module that importing ``entries`` runs, by name, with its source file.

    Args:
        entries: module names; ``ssl_bench`` ones are looked up under ``package_dir``, others (plug-ins)
            where Python finds them.
        package_dir: the ``ssl_bench`` package folder to read (a temporary copy in tests).

    Raises:
        ModuleNotFoundError: an entry module does not exist.
    """
    found: dict[str, Path] = {}
    todo = list(entries)
    for entry in todo:
        if _locate(entry, package_dir) is None:
            raise ModuleNotFoundError(f"no module named {entry!r}", name=entry)
    while todo:
        name = todo.pop()
        for candidate in _parents(name) if name.startswith(ROOT_PACKAGE + ".") else [name]:
            if candidate in found:
                continue
            path = _locate(candidate, package_dir)
            if path is None:
                continue  # a name inside a module (``from m import f``), not a module
            found[candidate] = path
            imported, dynamic = _imported_names(
                ast.parse(path.read_bytes(), str(path)), candidate, _is_package(path)
            )
            todo += [n for n in imported if n == ROOT_PACKAGE or n.startswith(ROOT_PACKAGE + ".")]
            if dynamic and candidate.startswith(ROOT_PACKAGE):
                package = candidate if _is_package(path) else candidate.rpartition(".")[0]
                todo += _package_modules(package, path)
    return found


def _locate(name: str, package_dir: Path) -> Path | None:
    if name == ROOT_PACKAGE or name.startswith(ROOT_PACKAGE + "."):
        return _module_file(name, package_dir)
    spec = importlib.util.find_spec(name)
    origin = spec.origin if spec is not None else None
    return Path(origin) if origin and origin.endswith(".py") else None


def _package_modules(package: str, path: Path) -> list[str]:
    folder = path.parent
    return [f"{package}.{f.stem}" for f in sorted(folder.glob("*.py")) if f.stem != "__init__"] + [
        f"{package}.{d.name}" for d in sorted(folder.iterdir()) if (d / "__init__.py").is_file()
    ]


def code_version(entries: Iterable[str], package_dir: Path = _PACKAGE_DIR) -> str:
    """SHA-256 over the names and bytes of :func:`module_closure` (``entries``): a stage's code version.

    Reading the import graph takes a fraction of a second; a reproduction asks for the same versions hundreds
    of times, so the answer is kept while no source file under ``package_dir`` changes (size or mtime).
    """
    package_dir, entries = Path(package_dir), tuple(entries)
    plugins = [_locate(e, package_dir) for e in entries if not e.startswith(ROOT_PACKAGE)]
    files = sorted(package_dir.rglob("*.py")) + [f for f in plugins if f is not None]
    state = tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files)
    return _code_version(entries, package_dir, state)


@functools.lru_cache(maxsize=64)
def _code_version(entries: tuple[str, ...], package_dir: Path, state: tuple) -> str:
    h = hashlib.sha256()
    for name, path in sorted(module_closure(entries, package_dir).items()):
        h.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()
