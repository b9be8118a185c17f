"""Typed options: unknown, renamed and mistyped keys fail with one line naming the key."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import pytest

from ssl_bench.errors import RecipeError
from ssl_bench.options import did_you_mean, options_dict, options_from, unknown_name_error


@dataclass(frozen=True)
class Protocol:
    RENAMED: ClassVar[dict[str, str]] = {"clip_grad_norm": "grad_clip"}
    iterations: int = 150
    lr: float = 0.001
    grad_clip: float | None = 10.0
    schedule: Literal["step", "poly", "cosine"] = "step"
    lr_steps: tuple[int, ...] = ()
    flip: bool = True


def test_defaults_and_values_are_typed():
    p = options_from(Protocol, {"iterations": 20, "lr": 1, "grad_clip": None, "lr_steps": [5, 10]}, "r.yaml")
    assert p == Protocol(iterations=20, lr=1.0, grad_clip=None, lr_steps=(5, 10))
    assert isinstance(p.lr, float)
    assert options_dict(p)["lr_steps"] == [5, 10]
    assert options_from(Protocol, None, "r.yaml") == Protocol()


def test_unknown_key_names_it_lists_valid_keys_and_suggests():
    with pytest.raises(RecipeError) as e:
        options_from(Protocol, {"iteration": 20}, "eval/smoke/cls.yaml + --set")
    msg = str(e.value)
    assert "'iteration'" in msg and "did you mean 'iterations'" in msg
    assert "eval/smoke/cls.yaml" in msg
    assert "valid keys: iterations, lr, grad_clip, schedule, lr_steps, flip" in msg


def test_renamed_key_names_the_new_one():
    with pytest.raises(RecipeError, match="'clip_grad_norm'.*renamed to 'grad_clip'"):
        options_from(Protocol, {"clip_grad_norm": 0}, "--set")


@pytest.mark.parametrize(
    "key, value, expected",
    [
        ("iterations", "abc", "int"),
        ("iterations", 2.5, "int"),
        ("lr", "fast", "float"),
        ("flip", 1, "bool"),
        ("grad_clip", True, "float or null"),
        ("schedule", "linear", "'step' | 'poly' | 'cosine'"),
        ("lr_steps", 5, "list of int"),
    ],
)
def test_wrong_type_names_key_value_and_type(key, value, expected):
    with pytest.raises(RecipeError) as e:
        options_from(Protocol, {key: value}, "--set")
    assert str(e.value) == f"{key}={value!r} in --set is not valid: expected {expected}"


def test_did_you_mean():
    suggestion = did_you_mean("contxt_encoder", ["context_encoder", "autoencoder"])
    assert suggestion == " (did you mean 'context_encoder'?)"
    assert did_you_mean("zzz", ["seg", "cls"]) == ""
    err = unknown_name_error("task", "segg", ["seg", "cls", "det"])
    assert str(err) == "unknown task 'segg' (did you mean 'seg'?); choose from: cls, det, seg"
