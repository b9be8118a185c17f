"""``bench eval`` usage errors: one line, exit 2, no record; typed protocols for every registered task."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ssl_bench.cli import main
from ssl_bench.cli.eval import BUILT_IN_ARCHES
from ssl_bench.encoders import ENCODERS
from ssl_bench.errors import RecipeError
from ssl_bench.evaluators import available_evaluators
from ssl_bench.evaluators.base import evaluator_protocol
from ssl_bench.evaluators.runner import evaluate, resolve_protocol
from ssl_bench.options import option_names
from tests.results import fakes  # noqa: F401 - registers fake-cls / fake-det (plug-in style evaluators)

BUILT_IN = ("cls", "cls-fc6-8", "cls-linear", "knn", "det", "seg", "inpaint")


def _misspelt(key: str) -> str:
    return key[:-1] if len(key) > 3 else key + "x"


@pytest.mark.parametrize("task", available_evaluators())
def test_a_misspelt_key_is_named_with_the_valid_keys(task: str, tmp_path: Path) -> None:
    keys = option_names(evaluator_protocol(task))
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text("{}\n")
    if not keys:  # an evaluator without options refuses any key
        with pytest.raises(RecipeError, match="unknown key 'bogus' in --set"):
            resolve_protocol(task, recipe=recipe, overrides=["bogus=3"])
        return
    bad = _misspelt(keys[0])
    with pytest.raises(RecipeError) as caught:
        resolve_protocol(task, recipe=recipe, overrides=[f"{bad}=3"])
    message = str(caught.value)
    assert f"unknown key '{bad}' in --set" in message
    assert f"did you mean '{keys[0]}'?" in message
    assert "valid keys: " + ", ".join(keys) in message


@pytest.mark.parametrize("task", BUILT_IN)
@pytest.mark.parametrize("profile", ["smoke", "paper"])
def test_every_recipe_fits_its_protocol(task: str, profile: str) -> None:
    protocol = resolve_protocol(task, profile)
    assert dataclasses.is_dataclass(protocol)


def test_a_misspelt_key_in_a_recipe_file_names_the_file(tmp_path: Path) -> None:
    recipe = tmp_path / "knn.yaml"
    recipe.write_text("k: 5\ntemprature: 0.1\n")
    with pytest.raises(
        RecipeError, match=rf"unknown key 'temprature' in {recipe} \(did you mean 'temperature'\?\)"
    ):
        resolve_protocol("knn", recipe=recipe)


@pytest.mark.parametrize(
    ("task", "old", "new"),
    [("cls", "clip_grad_norm", "grad_clip"), ("seg", "clip_grad_norm", "grad_clip"),
     ("det", "bias_lr_factor", "bias_lr_mult"), ("det", "lr_step", "lr_steps"),
     ("det", "head_width", "fc_width"), ("det", "flip", "hflip"), ("det", "head_dropout", "dropout"),
     ("cls", "lr_step", "lr_steps")],
)  # fmt: skip
def test_an_old_key_names_its_new_name(task: str, old: str, new: str) -> None:
    with pytest.raises(RecipeError, match=f"key '{old}' in --set was renamed to '{new}'"):
        resolve_protocol(task, "smoke", overrides=[f"{old}=0"])


def test_a_value_of_the_wrong_type_names_the_key() -> None:
    with pytest.raises(RecipeError, match=r"k='abc' in --set is not valid: expected int"):
        resolve_protocol("knn", "smoke", overrides=["k=abc"])
    with pytest.raises(RecipeError, match=r"head_init='magic' .* expected 'filler' \| 'data'"):
        resolve_protocol("cls", "smoke", overrides={"head_init": "magic"})


def test_bench_eval_with_a_misspelt_key_exits_2_naming_it_without_a_record(tmp_path: Path) -> None:
    """Through the real command line, in a subprocess: one line on stderr, exit 2, nothing written."""
    out = tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    result = subprocess.run(
        [sys.executable, "-m", "ssl_bench", "eval", "--task", "cls", "--weights", "random", "--device", "cpu",
         "--set", "iteration=20", "--out", str(out), "--no-progress"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    err = result.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in result.stderr
    assert "unknown key 'iteration' in --set (did you mean 'iterations'?); valid keys: iterations," in err[0]
    assert not out.exists() and not (tmp_path / "work").exists()


def _refused(argv: list[str], out: Path, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert main(["eval", *argv, "--out", str(out), "--no-progress"]) == 2
    assert not out.exists()  # no record: the run never started
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_an_unknown_task_suggests_the_closest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _refused(["--task", "segg", "--weights", "random"], tmp_path / "runs", capsys)
    assert "unknown task 'segg' (did you mean 'seg'?); choose from: cls, cls-fc6-8, cls-linear" in err


@pytest.mark.parametrize("content", [None, b"", b"not a torch file", "folder"])
def test_missing_or_unreadable_weights_are_refused(
    content: bytes | str | None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = tmp_path / "encoder.pt"
    if content == "folder":
        weights.mkdir()
    elif content is not None:
        weights.write_bytes(content)
    err = _refused(["--task", "knn", "--weights", str(weights)], tmp_path / "runs", capsys)
    assert str(weights) in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="asks for CUDA where there is none")
def test_cuda_asked_for_where_there_is_none(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    err = _refused(["--task", "knn", "--weights", "random", "--device", "cuda"], tmp_path / "runs", capsys)
    assert "--device cuda: no CUDA device is available here; use --device cpu" in err


def test_an_unknown_arch_lists_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["eval", "--task", "knn", "--weights", "random", "--arch", "caffnet"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "unknown encoder 'caffnet' (did you mean 'caffenet'?); choose from: caffenet, caffenet_bn" in err


def test_the_help_lists_every_built_in_task_and_encoder() -> None:
    registered = [t for t in available_evaluators() if not t.startswith("fake-")]
    assert sorted(BUILT_IN) == registered
    assert sorted(BUILT_IN_ARCHES) == sorted(ENCODERS)


def test_help_gives_every_flag_a_text_and_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["eval", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--task", "--weights", "--arch", "--data", "--profile", "--recipe", "--seed", "--device",
                 "--out", "--set", "--no-progress"):  # fmt: skip
        assert flag in text
    assert "evaluation seed" in text and "(default: 0)" in text and "(default: smoke)" in text
    assert "cls, det, seg, cls-fc6-8, cls-linear, knn, inpaint" in text and "caffenet, caffenet_bn" in text


def test_the_python_api_records_a_refused_request(tmp_path: Path) -> None:
    """``evaluate()`` never raises (bench reproduce shows a failed cell): a refusal is an error record."""
    recipe = tmp_path / "fake.yaml"
    recipe.write_text("offset: 0.0\n")
    out = tmp_path / "runs"
    record = evaluate("fake-cls", "random", out=out, recipe=recipe, recipe_overrides={"ofset": 1.0})
    assert record["status"] == "error" and "unknown key 'ofset'" in record["error"]
    assert Path(record["record_path"]).is_file()
