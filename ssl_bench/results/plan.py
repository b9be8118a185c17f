"""``bench reproduce --dry-run``: the stages a reproduction would run, each with its recipe and an estimate of
its time on this machine, before a GPU is rented. Nothing of the reproduction is written.

The stages are :class:`~ssl_bench.results.reproduce.Reproduction`'s, resolved by the same planner
(``stage_plan.StagePlanner``: profile recipes, ``--set`` overrides, seeds). The data each stage needs is
checked by ``bench data check``'s code (``cli/plan.py``); this module lists the stages and measures.

Estimates — estimates, not promises — come from a short probe of each stage's own code on generated data
in a temporary folder, on this machine's device:

* pretraining: ``run_pretraining`` with the method's recipe for :data:`PROBE_STEPS` steps at the recipe's
  batch size up to :data:`PROBE_PRETRAIN_BATCH_MAX`, on generated images; the stage's time is
  ``steps × batch_size / img/s``, img/s the probe's median logged throughput. A probe at 2 images per step
  read 3× too long on a 2-core CPU (one step's fixed costs over 2 images); a larger batch still costs less
  per image, so above the cap (on a GPU) the number is an upper bound. Set-up (indexing ImageNet,
  clustering epochs) is not included.
* evaluations with ``iterations`` (the fine-tuning tasks): ``bench eval``'s own run with random weights
  on a generated VOC of :data:`PROBE_VOC_IMAGES` images, at 1 iteration (twice: before and after, the faster
  counts, so that one-time costs of the first run fall out) and at :data:`PROBE_EXTRA_ITERATIONS` more, of
  :data:`PROBE_BATCH` images each: one iteration costs that share of the difference (no estimate where the
  difference is lost in timing noise), scaled by ``batch_size / PROBE_BATCH``; the rest of the 1-iteration
  probe (set-up and testing its test images) is scaled by the real test split's size (when the VOC folder is
  given; else it is left out and the estimate says so).
* other evaluations (frozen features, inpainting): one probe, scaled by the real test split's size.

A task costs the same for every method (measured once per task), a method the same for every seed. A probe
still running after :data:`PROBE_TIMEOUT_S` is stopped (then: no estimate, and why).
"""

from __future__ import annotations

import copy
import signal
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from ssl_bench.data.synthvoc import generate_synthvoc
from ssl_bench.data.voc import load_detection_ground_truth, read_image_set
from ssl_bench.errors import BenchError
from ssl_bench.evaluators.base import evaluator_protocol
from ssl_bench.evaluators.runner import evaluate, resolve_eval_recipe
from ssl_bench.methods import method_class
from ssl_bench.options import option_names
from ssl_bench.recipes import find_recipe
from ssl_bench.results.stage_plan import StagePlanner
from ssl_bench.results.stages import ReproduceOptions
from ssl_bench.runtime.run_folder import RunFolder
from ssl_bench.training.pretrain import run_pretraining

PROBE_STEPS = 4  # pretraining steps of the probe (the first one warms up; the median img/s is used)
PROBE_BATCH = 2  # images per iteration in every evaluation probe
PROBE_EXTRA_ITERATIONS = 5  # a fine-tuning probe's second run: 2 extra iterations were lost in set-up noise
PROBE_PRETRAIN_BATCH_MAX = 32  # images per pretraining probe step: the recipe's batch size, at most this
PROBE_VOC_IMAGES = 40  # generated VOC: 10 trainval, 10 test (and a 20-image pool)
PROBE_FOLDER_IMAGES = PROBE_PRETRAIN_BATCH_MAX  # generated ImageNet-style folder: 2 classes × 16
PROBE_TIMEOUT_S = 180  # a probe still running then is stopped, its stage left without an estimate
# Keys every probe shrinks, where the task has them: the schedule and sizes that only cost time.
_PROBE_EVAL_KEYS = {"batch_size": PROBE_BATCH, "test_batch_size": PROBE_BATCH, "workers": 0,
                    "figure_images": 1, "head_init_images": PROBE_BATCH, "sbd_root": None,
                    "max_test_images": None, "nn_database_max": 64}  # fmt: skip


@dataclass
class StagePlan:
    """One stage of the reproduction: what runs, from which recipe, and how long it should take here."""

    kind: str  # "pretrain" or "eval"
    name: str  # e.g. "context_encoder s0", "det context_encoder s0"
    method: str
    task: str | None
    seed: int
    recipe: str  # the recipe file
    overrides: dict[str, Any]  # --set values for this method / task
    config: dict[str, Any] | None = None  # the resolved recipe (None: it does not resolve)
    error: str | None = None  # why the recipe does not resolve
    estimate_s: float | None = None
    estimate_note: str = ""


@dataclass
class Plan:
    """Every stage, in the order ``bench reproduce`` runs them, and the device the estimates are for."""

    stages: list[StagePlan]
    device: str = "cpu"
    notes: list[str] = field(default_factory=list)

    @property
    def total_s(self) -> float:
        return sum(s.estimate_s or 0.0 for s in self.stages)


def plan_stages(o: ReproduceOptions) -> Plan:
    """The stages of ``bench reproduce`` with options ``o``, each with its resolved recipe (no estimates)."""
    planner = StagePlanner(o)  # the recipes resolved as bench reproduce resolves them
    stages: list[StagePlan] = []
    for method in o.methods:
        for seed in o.pretrain_seeds():
            recipe = o.pretrain_recipes.get(method) or _recipe_path("pretrain", o.profile, method)
            stage = StagePlan("pretrain", f"{method} s{seed}", method, None, seed, str(recipe),
                              dict(o.pretrain_overrides.get(method, {})))  # fmt: skip
            try:
                stage.config = planner.pretrain_config(method, seed)
            except BenchError as e:
                stage.error = str(e)
            stages.append(stage)
    for method in o.methods:
        for task in o.tasks:
            for seed in o.seed_list():
                recipe = o.eval_recipes.get(task) or _recipe_path("eval", o.profile, task)
                stage = StagePlan("eval", f"{task} {method} s{seed}", method, task, seed, str(recipe),
                                  dict(o.eval_overrides.get(task, {})))  # fmt: skip
                try:
                    stage.config = resolve_eval_recipe(
                        task, o.profile, o.eval_recipes.get(task), o.eval_overrides.get(task)
                    )
                except BenchError as e:
                    stage.error = str(e)
                stages.append(stage)
    return Plan(stages, device=o.device or "auto")


def _recipe_path(kind: str, profile: str, name: str) -> str:
    try:
        return str(find_recipe(kind, profile, name))
    except BenchError as e:
        return f"(none: {e})"


# --- Estimates ---------------------------------------------------------------------------------------------


def estimate(plan: Plan, o: ReproduceOptions, voc_roots: dict[str, Path | None]) -> Plan:
    """Fill each stage's ``estimate_s`` from probes (module docstring); a probe that fails says why.

    Args:
        voc_roots: task → the VOC folder it will read (None: not given; the test part is then left out).
    """
    pretrain_cache: dict[str, tuple[float | None, str]] = {}
    eval_cache: dict[str, tuple[float | None, str]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
        work = Path(tmp)
        folder = _probe_image_folder(work / "images")
        voc: Path | None = None
        for stage in plan.stages:
            if stage.config is None:
                stage.estimate_note = "no estimate: the recipe does not resolve"
                continue
            if stage.kind == "pretrain":
                if stage.method not in pretrain_cache:
                    pretrain_cache[stage.method] = _pretrain_estimate(stage.config, folder, work, o.device)
                stage.estimate_s, stage.estimate_note = pretrain_cache[stage.method]
            else:
                assert stage.task is not None
                if stage.task not in eval_cache:
                    voc = voc or generate_synthvoc(work / "voc", num_images=PROBE_VOC_IMAGES, size=160,
                                                   seed=0, workers=1, progress=False)  # fmt: skip
                    eval_cache[stage.task] = _eval_estimate(
                        stage.task, stage.config, voc, voc_roots.get(stage.task), work, o.device
                    )
                stage.estimate_s, stage.estimate_note = eval_cache[stage.task]
    return plan


def _probe_image_folder(root: Path) -> Path:
    """An ImageNet-style train folder (``n0000000k/*.JPEG``) of noise images: pretraining probes read it."""
    rng = np.random.default_rng(0)
    for i in range(PROBE_FOLDER_IMAGES):
        folder = root / f"n{i % 2:08d}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, size=(256, 256, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"n{i % 2:08d}_{i}.JPEG", quality=90)
    return root


def _pretrain_estimate(
    config: dict[str, Any], folder: Path, work: Path, device: str | None
) -> tuple[float | None, str]:
    cfg = copy.deepcopy(config)
    train = cfg.setdefault("train", {})
    steps, batch = train.get("steps"), train.get("batch_size")
    probe_batch = min(batch or PROBE_BATCH, PROBE_PRETRAIN_BATCH_MAX)
    needs_data = method_class(cfg["method"]).needs_data
    if needs_data:
        cfg.setdefault("data", {})["source"] = str(folder)
    train.update(steps=PROBE_STEPS, batch_size=probe_batch, log_every=1, sample_every=0, checkpoint_every=0,
                 workers=0)  # fmt: skip
    out = work / "pretrain" / cfg["method"]
    try:
        wall = _bounded(_pretraining_probe, cfg, out, device)
    except Exception as e:  # noqa: BLE001 - a probe that fails leaves the stage without an estimate
        return None, f"not measured: the probe failed ({type(e).__name__}: {e})"
    img_s = RunFolder(out).learning_evidence().get("img_s")
    if not steps or not img_s:  # a method that does not train (random, datainit): its probe is the stage
        return wall, "estimate: the probe's wall time (no training steps)"
    return steps * (batch or PROBE_BATCH) / img_s, (
        f"estimate: {steps} steps × {batch} images at {img_s:.1f} img/s "
        f"({PROBE_STEPS}-step probe at batch {probe_batch})"
    )


def _eval_estimate(
    task: str, config: dict[str, Any], voc: Path, real_root: Path | None, work: Path, device: str | None
) -> tuple[float | None, str]:
    keys = set(option_names(evaluator_protocol(task)))
    base = {k: v for k, v in _PROBE_EVAL_KEYS.items() if k in keys}
    if config.get("detector") == "fast_rcnn":
        base["proposals"] = str(_probe_proposals(voc, work / "proposals.npz"))
    split = config.get("test_split")
    probe_test = _split_size(voc, task, split)
    real_test = _split_size(real_root, task, split) if real_root is not None else None
    scale = real_test / probe_test if real_test and probe_test else None
    try:
        if "iterations" not in keys:
            wall = _probe_eval(task, config, base, voc, work, device)
            if scale is None:
                return None, "not estimated: the test split's size is unknown (no VOC folder given)"
            return wall * scale, f"estimate: a probe on {probe_test} test images × {real_test}/{probe_test}"
        # The 1-iteration probe runs before and after the longer one and the faster of the two counts: the
        # first run of a task pays one-time costs (a library's first import, caches) that the others do not.
        one = _probe_eval(task, config, {**base, "iterations": 1}, voc, work, device)
        more = _probe_eval(task, config, {**base, "iterations": 1 + PROBE_EXTRA_ITERATIONS}, voc, work,
                           device)  # fmt: skip
        one = min(one, _probe_eval(task, config, {**base, "iterations": 1}, voc, work, device))
    except Exception as e:  # noqa: BLE001 - a probe that fails leaves the stage without an estimate
        return None, f"not measured: the probe failed ({type(e).__name__}: {e})"
    if more <= one:  # the extra iterations were lost in timing noise: no number rather than "0.00 s"
        return None, (f"not measured: {PROBE_EXTRA_ITERATIONS} extra iterations took no measurable time "
                      f"({more:.2f} s against {one:.2f} s for 1)")  # fmt: skip
    scale_batch = config.get("batch_size", PROBE_BATCH) / PROBE_BATCH
    per_iteration = (more - one) / PROBE_EXTRA_ITERATIONS * scale_batch
    training = per_iteration * config["iterations"]
    rest = max(one - per_iteration / scale_batch, 0.0)
    if scale is None:
        return training, (f"estimate of training only: {config['iterations']} iterations × "
                          f"{per_iteration:.2f} s (no VOC folder given: testing not included)")  # fmt: skip
    return training + rest * scale, (
        f"estimate: {config['iterations']} iterations × {per_iteration:.2f} s + set-up and test "
        f"({real_test} images, probe on {probe_test})"
    )


def _probe_eval(
    task: str, config: dict[str, Any], overrides: dict[str, Any], voc: Path, work: Path, device: str | None
) -> float:
    recipe = work / f"{task}.yaml"
    recipe.write_text(yaml.safe_dump(config))
    return _bounded(_evaluation_probe, task, recipe, overrides, voc, work / "runs", device)


class ProbeTimeout(Exception):
    """A probe ran past :data:`PROBE_TIMEOUT_S`."""


def _bounded(fn: Any, *args: Any) -> Any:
    """``fn(*args)``, stopped by :class:`ProbeTimeout` after :data:`PROBE_TIMEOUT_S` so that a slow stage
    cannot hang the dry run (a timer signal: main thread on POSIX; elsewhere unbounded). In-process: a fresh
    process would spend longer importing torch than a probe runs."""
    if not hasattr(signal, "setitimer") or threading.current_thread() is not threading.main_thread():
        return fn(*args)

    def stop(signum: int, frame: Any) -> None:
        raise ProbeTimeout(f"it ran past {PROBE_TIMEOUT_S} s: the stage takes longer here")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, PROBE_TIMEOUT_S)
    try:
        return fn(*args)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _pretraining_probe(config: dict[str, Any], out: Path, device: str | None) -> float:
    """Wall seconds of ``run_pretraining``."""
    t0 = time.perf_counter()
    run_pretraining(config, out, device=device, progress=False, overwrite=True)
    return time.perf_counter() - t0


def _evaluation_probe(
    task: str, recipe: Path, overrides: dict[str, Any], voc: Path, out: Path, device: str | None
) -> float:
    """Wall seconds of ``bench eval``'s run with random weights (its failures come back as records)."""
    t0 = time.perf_counter()
    record = evaluate(task, "random", "caffenet", data=voc, seed=0, out=out, device=device, progress=False,
                      recipe=recipe, recipe_overrides=overrides)  # fmt: skip
    if record.get("status") != "ok":
        raise RuntimeError(record.get("error"))
    return time.perf_counter() - t0


def _split_size(root: Path | None, task: str, split: str | None) -> int | None:
    if root is None or not split:
        return None
    try:
        return len(read_image_set(root, split, "Segmentation" if task == "seg" else "Main"))
    except BenchError:
        return None


def _probe_proposals(voc: Path, path: Path) -> Path:
    """A proposals file for the probe VOC: each ground-truth box and a few around it (timing only)."""
    boxes = {}
    rng = np.random.default_rng(0)
    for split in ("trainval", "test"):
        for image_id, gt in load_detection_ground_truth(voc, split).items():
            b = gt["boxes"].astype(np.float32).reshape(-1, 4)
            jitter = np.concatenate([b + rng.normal(0, 3, b.shape).astype(np.float32) for _ in range(8)])
            jitter[:, 2:] = np.maximum(jitter[:, 2:], jitter[:, :2] + 1)
            boxes[image_id] = np.clip(np.concatenate([b, jitter]), 1, None)
    np.savez(path, **boxes)
    return path
