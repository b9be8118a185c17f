"""``evaluate()`` (what ``bench reproduce`` calls) and ``bench eval`` store the same record."""

from __future__ import annotations

import json

from ssl_bench.cli import main
from ssl_bench.evaluators.runner import evaluate
from ssl_bench.records import load_records
from tests.results import fakes


def test_evaluate_and_bench_eval_write_equivalent_records(tmp_path, synth_voc_root, capsys):
    fakes.reset()
    recipe = tmp_path / "fake.yaml"
    recipe.write_text("offset: 0.0\n")
    rec = evaluate(
        "fake-cls",
        "random",
        data=synth_voc_root,
        seed=1,
        out=tmp_path / "api",
        recipe=recipe,
        recipe_overrides={"offset": 0.1},
        device="cpu",
        progress=False,
    )
    assert rec["status"] == "ok" and rec["recipe"] == {"offset": 0.1} and rec["seed"] == 1
    assert (tmp_path / "api" / f"{rec['id']}.json").is_file() and rec["record_path"].endswith(".json")

    argv = [
        "eval",
        "--task",
        "fake-cls",
        "--weights",
        "random",
        "--data",
        str(synth_voc_root),
        "--seed",
        "1",
        "--recipe",
        str(recipe),
        "--set",
        "offset=0.1",
        "--out",
        str(tmp_path / "cli"),
        "--device",
        "cpu",
        "--no-progress",
    ]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    (stored,) = load_records(tmp_path / "cli")
    for key in ("task", "seed", "recipe", "recipe_hash", "metrics", "extra", "pretrain", "data", "status"):
        assert printed[key] == stored[key] == rec[key], key


def test_failures_become_error_records_with_the_same_exit_codes(tmp_path, synth_voc_root, capsys):
    fakes.reset()
    recipe = tmp_path / "fake.yaml"
    recipe.write_text("offset: 0.0\n")
    common = [
        "--weights",
        "random",
        "--data",
        str(synth_voc_root),
        "--recipe",
        str(recipe),
        "--device",
        "cpu",
        "--out",
        str(tmp_path / "runs"),
        "--no-progress",
    ]
    assert main(["eval", "--task", "fake-cls", *common, "--set", "offset"]) == 2  # a usage error: exit 2
    assert "--set expects KEY=VALUE" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # ... and no record: the run never started
    fakes.FAIL_ON.add(("fake-cls", 0))
    assert main(["eval", "--task", "fake-cls", *common]) == 1  # a run that fails: exit 1, an error record
    assert "scripted failure" in capsys.readouterr().err
    statuses = sorted(r["status"] for r in load_records(tmp_path / "runs"))
    assert statuses == ["error"]
    rec = evaluate(
        "fake-cls",
        "random",
        data=synth_voc_root,
        out=tmp_path / "runs",
        recipe=recipe,
        device="cpu",
        progress=False,
    )
    assert rec["status"] == "error" and "scripted failure" in rec["error"]  # evaluate() does not raise
