"""``bench reproduce``: stages cached on input hashes, invalidated by recipe changes, resumable, isolated.

The evaluations use the instant fake evaluators of ``fakes.py`` (the real ones take minutes); pretraining is
real (``random``, and a 2-step context encoder at 99 px where resuming a trained method matters).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

import ssl_bench.recipes as recipes_mod
from ssl_bench.cli import main
from ssl_bench.results import figure_stages
from ssl_bench.results import reproduce as reproduce_mod
from ssl_bench.results.reproduce import ReproduceOptions, reproduce
from tests.conftest import TINY_SYNTH_IMAGES
from tests.results import fakes

# A context encoder small enough for a test: 99 px, 2 images a step, centre masks (the cheapest to draw).
TINY_CE = {"model": {"mask": "center"},
           "data": {"image_size": 99, "synth_images": TINY_SYNTH_IMAGES, "stats_images": 4},
           "train": {"steps": 2, "batch_size": 2, "workers": 0, "log_every": 1, "checkpoint_every": 1,
                     "sample_every": 0, "sample_images": 2}}  # fmt: skip
TASKS = ["fake-cls", "fake-det"]


@pytest.fixture
def env(tmp_path: Path, synth_voc_root: Path, monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    fakes.reset()
    recipes = tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "random.yaml").write_text(
        "method: random\nmodel: {encoder: caffenet, std: 0.01}\ndata: {image_size: 99}\ntrain: {}\n"
    )
    for task in TASKS:
        (recipes / f"{task}.yaml").write_text("offset: 0.0\n")
    pretrain_calls: list[tuple[str, bool]] = []
    real = reproduce_mod.run_pretraining

    def counting(config, out, resume=False, device=None, progress=True):
        pretrain_calls.append((config["method"], resume))
        return real(config, out, resume=resume, device=device, progress=progress)

    monkeypatch.setattr(reproduce_mod, "run_pretraining", counting)
    out = tmp_path / "results"

    def options(**kw) -> ReproduceOptions:
        base = dict(
            profile="smoke",
            seeds=2,
            methods=["random"],
            tasks=TASKS,
            out=out,
            data_voc={"": synth_voc_root},
            device="cpu",
            figures=False,
            progress=False,
            pretrain_recipes={"random": recipes / "random.yaml"},
            eval_recipes={t: recipes / f"{t}.yaml" for t in TASKS},
            pretrain_overrides={"context_encoder": TINY_CE},
            command="bench reproduce (test)",
        )
        return ReproduceOptions(**(base | kw))

    return SimpleNamespace(
        options=options, pretrain_calls=pretrain_calls, recipes=recipes, out=out, real_pretraining=real
    )


def eval_records(out: Path) -> list[dict]:
    recs = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]
    return [r for r in recs if r["task"] != "pretrain"]


def outputs(out: Path) -> dict[str, bytes]:
    names = ["table.md", "table.csv", "table.tex", "table.manifest.json", "REPORT.md"]
    return {n: (out / n).read_bytes() for n in names}


def test_rerun_reuses_every_stage_and_rewrites_identical_outputs(env):
    first = reproduce(env.options())
    assert first["stages"] == {"cached": 0, "ran": 1 + 4, "failed": 0, "blocked": 0}
    assert env.pretrain_calls == [("random", False)] and len(fakes.CALLS) == 4
    assert len(eval_records(env.out)) == 4
    table = (env.out / "table.md").read_text()
    # the pretraining time is the record's wall time (under a second idle; no test asserts a timing)
    assert re.search(r"\| random \| initialisation \| [^|]+ s \| 0 \|", table) and table.count("(n=2)") == 2
    assert (env.out / "stages" / ".gitignore").read_text() == "*\n"
    before = outputs(env.out)

    second = reproduce(env.options())
    assert second["stages"] == {"cached": 5, "ran": 0, "failed": 0, "blocked": 0}
    assert len(env.pretrain_calls) == 1 and len(fakes.CALLS) == 4  # nothing ran again
    assert outputs(env.out) == before  # same records → same table, manifest and report, byte for byte


def test_changed_eval_recipe_reruns_only_that_task(env):
    reproduce(env.options())
    old = {r["id"]: r for r in eval_records(env.out)}
    (env.recipes / "fake-cls.yaml").write_text("offset: 0.1\n")
    summary = reproduce(env.options())
    assert summary["stages"]["ran"] == 2 and summary["stages"]["cached"] == 1 + 2
    assert [t for t, _, _ in fakes.CALLS[4:]] == ["fake-cls", "fake-cls"] and len(env.pretrain_calls) == 1
    now = eval_records(env.out)
    assert len(now) == 4  # one current record per stage; the replaced ones moved out of runs/
    stale = sorted(p.stem for p in (env.out / "stages" / "stale").glob("*.json"))
    assert stale == sorted(i for i, r in old.items() if r["task"] == "fake-cls")
    new_cls = [r for r in now if r["task"] == "fake-cls"]
    for r in new_cls:
        before = next(o for o in old.values() if o["task"] == "fake-cls" and o["seed"] == r["seed"])
        assert r["metrics"]["map_sklearn"] == pytest.approx(before["metrics"]["map_sklearn"] + 0.1)


def test_changed_pretraining_recipe_reruns_pretraining_and_its_evaluations(env):
    reproduce(env.options())
    (env.recipes / "random.yaml").write_text(
        "method: random\nmodel: {encoder: caffenet, std: 0.02}\ndata: {image_size: 99}\ntrain: {}\n"
    )
    summary = reproduce(env.options())
    assert summary["stages"] == {"cached": 0, "ran": 1 + 4, "failed": 0, "blocked": 0}
    assert env.pretrain_calls == [("random", False), ("random", False)] and len(fakes.CALLS) == 8


def test_interrupted_evaluation_resumes_without_redoing_finished_stages(env):
    fakes.INTERRUPT_AT.append(3)
    with pytest.raises(KeyboardInterrupt):
        reproduce(env.options())
    assert len(fakes.CALLS) == 3
    done = sorted(p.stem for p in (env.out / "stages" / "eval").glob("*.json"))
    assert done == ["fake-cls-random-s0", "fake-cls-random-s1"]  # only finished stages have markers
    assert not (env.out / "table.md").exists()

    summary = reproduce(env.options())
    assert summary["stages"] == {"cached": 1 + 2, "ran": 2, "failed": 0, "blocked": 0}
    assert [(t, s) for t, s, _ in fakes.CALLS[3:]] == [("fake-det", 0), ("fake-det", 1)]
    assert len(env.pretrain_calls) == 1
    assert "(n=2)" in (env.out / "table.md").read_text()


def test_interrupted_pretraining_continues_from_its_checkpoint(env, monkeypatch):
    def interrupted_once(config, out, resume=False, device=None, progress=True):
        env.pretrain_calls.append((config["method"], resume))
        if len(env.pretrain_calls) == 1:  # stop after step 1 of 2, as Ctrl-C would (a checkpoint at step 1)
            config["train"]["steps"] = 1
            env.real_pretraining(config, out, resume=resume, device=device, progress=progress)
            raise KeyboardInterrupt
        return env.real_pretraining(config, out, resume=resume, device=device, progress=progress)

    monkeypatch.setattr(reproduce_mod, "run_pretraining", interrupted_once)
    opts = env.options(methods=["context_encoder"], tasks=["fake-cls"], seeds=1)
    with pytest.raises(KeyboardInterrupt):
        reproduce(opts)
    run = env.out / "stages" / "pretrain" / "context_encoder-s0"
    assert (run / "checkpoint.pt").is_file() and not (run / "stage.json").exists()

    summary = reproduce(opts)
    assert env.pretrain_calls == [("context_encoder", False), ("context_encoder", True)]
    assert summary["stages"]["ran"] == 2 and json.loads((run / "stage.json").read_text())["status"] == "ok"
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]  # step 1 from the first attempt, step 2 resumed
    assert "2 steps" in (env.out / "table.md").read_text()  # steps and time from the pretraining record


def test_failed_stage_is_reported_and_does_not_stop_the_others(env):
    fakes.FAIL_ON.add(("fake-det", 1))
    summary = reproduce(env.options())
    assert summary["stages"] == {"cached": 0, "ran": 1 + 3, "failed": 1, "blocked": 0}
    assert summary["failed"] == ["eval fake-det random s1: RuntimeError: scripted failure of fake-det seed 1"]
    table = (env.out / "table.md").read_text()
    assert "(n=1, no CI); 1 failed" in table and "scripted failure" in (env.out / "REPORT.md").read_text()

    fakes.FAIL_ON.clear()
    kept = reproduce(env.options(retry_failed=False))
    assert kept["stages"]["failed"] == 1 and len(fakes.CALLS) == 4  # the failure is kept, nothing re-runs
    retried = reproduce(env.options())
    assert retried["stages"] == {"cached": 1 + 3, "ran": 1, "failed": 0, "blocked": 0}
    assert fakes.CALLS[-1][:2] == ("fake-det", 1) and "(n=2)" in (env.out / "table.md").read_text()


def test_failed_pretraining_shows_its_cells_as_failed(env, monkeypatch):
    def broken(config, out, resume=False, device=None, progress=True):
        raise RuntimeError("disk full")

    monkeypatch.setattr(reproduce_mod, "run_pretraining", broken)
    summary = reproduce(env.options())
    assert summary["stages"] == {"cached": 0, "ran": 0, "failed": 1, "blocked": 4}
    assert not fakes.CALLS
    table = (env.out / "table.md").read_text()
    assert table.count("failed: pretraining failed: RuntimeError: disk full") == 2
    assert "| failed |" in table  # the pretraining-time column says so too

    monkeypatch.setattr(reproduce_mod, "run_pretraining", env.real_pretraining)
    summary = reproduce(env.options())
    assert summary["stages"] == {"cached": 0, "ran": 1 + 4, "failed": 0, "blocked": 0}
    assert "pretraining failed" not in (env.out / "table.md").read_text()
    assert {r["status"] for r in eval_records(env.out)} == {"ok"}


def test_bench_reproduce_command_line(env, monkeypatch, capsys, synth_voc_root):
    real_dirs = recipes_mod.recipe_dirs
    monkeypatch.setattr(
        recipes_mod, "recipe_dirs", lambda kind: [env.recipes.parent / "by_kind" / kind] + real_dirs(kind)
    )
    (env.recipes.parent / "by_kind" / "eval" / "smoke").mkdir(parents=True)
    (env.recipes.parent / "by_kind" / "eval" / "smoke" / "fake-cls.yaml").write_text("offset: 0.0\n")
    argv = [
        "reproduce",
        "--methods",
        "random",
        "--tasks",
        "fake-cls",
        "--seeds",
        "1",
        "--no-figures",
        "--data-voc",
        str(synth_voc_root),
        "--out",
        str(env.out),
        "--set",
        "fake-cls.offset=0.2",
        "--set",
        "random.data.image_size=99",
        "--device",
        "cpu",
        "--no-progress",
    ]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["stages"]["ran"] == 2
    (rec,) = eval_records(env.out)
    assert rec["recipe"] == {"offset": 0.2} and rec["metrics"]["map_sklearn"] >= 0.5
    report = (env.out / "REPORT.md").read_text()
    assert "bench reproduce --profile smoke --seeds 1 --methods random --tasks fake-cls" in report
    assert "bench table --results" in report and "pretrained once (seed 0)" in report
    # the random encoder's conv1 structure, computed from its encoder.pt: a Gaussian init scores about 0
    (row,) = [x for x in report.splitlines() if x.startswith("| random") and "(n=1)" in x]
    assert "## Did pretraining learn?" in report and abs(float(row.split("|")[2].split()[0])) < 0.05

    assert main(["reproduce", "--set", "nothing.x=1", "--out", str(env.out)]) == 2
    assert "neither" in capsys.readouterr().err


def test_figures_are_drawn_linked_from_the_report_and_cached(env, monkeypatch):
    small = {"inpaint_images": 2, "tsne_images": 8, "layer_images": 2, "layer_draws": 1,
             "layer_output_images": 2, "seed": 0}  # fmt: skip
    monkeypatch.setattr(figure_stages, "FIGURE_OPTIONS", small)
    first = reproduce(env.options(figures=True, seeds=1, tasks=["fake-cls"]))
    assert first["stages"] == {"cached": 0, "ran": 1 + 1 + 6, "failed": 0, "blocked": 0}
    names = ["results_bars", "loss_curves", "conv1_filters", "inpainting_examples", "tsne_pool5",
             "layer_randomisation"]  # fmt: skip
    report = (env.out / "REPORT.md").read_text()
    for name in names:
        assert (env.out / "figures" / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert f"(figures/{name}.png)" in report
    again = reproduce(env.options(figures=True, seeds=1, tasks=["fake-cls"]))
    assert again["stages"] == {"cached": 8, "ran": 0, "failed": 0, "blocked": 0}


def test_one_seed_per_command_gives_the_stages_of_the_whole_run(env, tmp_path):
    """--only-seeds: the seeds of a long method as separate commands; their records make the same table."""
    whole = reproduce(env.options(seeds=2, pretrain_per_seed=True))
    assert whole["stages"]["ran"] == 2 + 4
    split_out = tmp_path / "split"
    first = reproduce(env.options(seeds=2, pretrain_per_seed=True, only_seeds=[0], out=split_out / "s0"))
    second = reproduce(env.options(seeds=2, pretrain_per_seed=True, only_seeds=[1], out=split_out / "s1"))
    assert first["stages"]["ran"] == second["stages"]["ran"] == 1 + 2  # one pretraining, one seed's evals
    seeds = {
        name: sorted((r["seed"], r["task"]) for r in eval_records(split_out / name)) for name in ("s0", "s1")
    }
    assert seeds == {"s0": [(0, "fake-cls"), (0, "fake-det")], "s1": [(1, "fake-cls"), (1, "fake-det")]}
    joined = tmp_path / "joined.csv"
    assert main(["table", "--results", str(split_out), "--out", str(joined), "--tasks", *TASKS]) == 0
    whole_csv = tmp_path / "whole.csv"
    whole_runs = str(env.out / "runs")
    assert main(["table", "--results", whole_runs, "--out", str(whole_csv), "--tasks", *TASKS]) == 0
    # the same cells but for the record ids and the wall time (each run's own)
    own = [c for c in pd.read_csv(whole_csv).columns if c.endswith("records") or c == "pretrain_wall_s"]
    assert own and pd.read_csv(joined).drop(columns=own).equals(pd.read_csv(whole_csv).drop(columns=own))
    assert "pretrained once per seed (seeds 1)" in (split_out / "s1" / "REPORT.md").read_text()


def test_only_seeds_outside_the_seeds_is_an_error(capsys):
    assert main(["reproduce", "--seeds", "2", "--only-seeds", "2", "--dry-run"]) == 2
    assert "--only-seeds 2: not among --seeds 2" in capsys.readouterr().err
