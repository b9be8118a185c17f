"""Recipes: small YAML files of plain values under ``pretrain/<profile>/`` and ``eval/<profile>/``.

Looked up in the source tree first (an editable install or a clone), then in the copy packaged into
the wheel (``ssl_bench/_recipes``). Code holds behaviour; recipes hold numbers.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml

from ssl_bench.errors import RecipeError

PROFILES = ("smoke", "mini", "paper")
_PACKAGE = Path(__file__).resolve().parent


def recipe_dirs(kind: str) -> list[Path]:
    return [_PACKAGE.parent / kind, _PACKAGE / "_recipes" / kind]


def find_recipe(kind: str, profile: str, name: str) -> Path:
    """``find_recipe("pretrain", "smoke", "context_encoder")`` → ``pretrain/smoke/context_encoder.yaml``."""
    if profile not in PROFILES:
        raise RecipeError(f"unknown profile '{profile}'; choose from {', '.join(PROFILES)}")
    for d in recipe_dirs(kind):
        path = d / profile / f"{name}.yaml"
        if path.is_file():
            return path
    searched = ", ".join(str(d / profile) for d in recipe_dirs(kind))
    raise RecipeError(
        f"no {kind} recipe '{name}' for profile '{profile}' (searched {searched}); pass --recipe FILE"
    )


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise RecipeError(f"recipe not found: {path}") from None
    except yaml.YAMLError as e:
        raise RecipeError(f"recipe {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise RecipeError(f"recipe {path} must be a mapping of keys to values")
    return data


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings merge key by key, anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def check_keys(section: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = set(section) - allowed
    if unknown:
        raise RecipeError(
            f"unknown key(s) {sorted(unknown)} in {where}; allowed: {', '.join(sorted(allowed))}"
        )


def config_hash(config: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON form: equal configs hash equal whatever their key order."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def parse_value(text: str) -> Any:
    """A ``--set`` value: YAML, except that ``1e-4`` is a number (YAML 1.1 reads it as a string)."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value
