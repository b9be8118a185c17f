"""``bench reproduce --dry-run``: every stage with its recipe, the data each needs (present and complete?),
and an estimated time per stage on this machine. Exit 0 when everything is there, 1 when data is missing or
a recipe does not resolve (each named, with how to get it); nothing of the reproduction is written.

The data checks are ``bench data check``'s (``cli/data.py``: ``check_voc_layout``, ``check_sbd``, the official
split sizes) plus the proposals reader of the ``det`` evaluator; stage listing and timing are
``results/plan.py``. Official split sizes that differ are warnings, not failures (a subset still runs).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssl_bench.cli.data import EXPECTED_SPLITS, check_sbd
from ssl_bench.errors import BenchError

if TYPE_CHECKING:
    from ssl_bench.results.plan import Plan
    from ssl_bench.results.stages import ReproduceOptions

# Where each dataset comes from (what a user about to rent a GPU must fetch first).
HOW_TO_GET = {
    "imagenet": "ILSVRC2012 train images (image-net.org, ILSVRC2012_img_train.tar, one n0xxxxxx/*.JPEG "
    "folder per class, 1,281,167 images); pass --data-pretrain DIR",
    "VOC2007": "VOCtrainval_06-Nov-2007.tar and VOCtest_06-Nov-2007.tar (host.robots.ox.ac.uk/pascal/VOC/"
    "voc2007) unpacked into one VOCdevkit/VOC2007; pass --data-voc VOCdevkit/VOC2007",
    "VOC2012": "VOCtrainval_11-May-2012.tar (host.robots.ox.ac.uk/pascal/VOC/voc2012); pass "
    "--data-voc seg=VOCdevkit/VOC2012",
    "SBD": "benchmark.tgz of the Semantic Boundaries Dataset (Hariharan et al. 2011, www2.eecs.berkeley.edu/"
    "Research/Projects/CS/vision/grouping/semantic_contours/benchmark.tgz); pass "
    "--set seg.sbd_root=benchmark_RELEASE/dataset",
    "proposals": "Fast R-CNN's selective-search boxes (rbgirshick/fast-rcnn data/scripts/"
    "fetch_selective_search_data.sh), then `bench data proposals voc_2007_trainval.mat voc_2007_test.mat "
    "--out proposals.npz --data VOCdevkit/VOC2007`; pass --set det.proposals=proposals.npz (or "
    "--set det.proposals=selective_search to compute them here with OpenCV's port, or "
    "--set det.detector=faster_rcnn for an RPN, not the paper's setting)",
}
IMAGENET_TRAIN = {"classes": 1000, "images": 1_281_167}  # ILSVRC2012 train
_SIZE_ONLY = re.compile(r": \d+ ids, expected \d+$")  # check_sbd's split-size line: a warning here


@dataclass
class DataCheck:
    """One dataset the reproduction reads: where, for which stages, and what is wrong with it."""

    name: str
    path: str | None
    needed_by: list[str]
    problems: list[str] = field(default_factory=list)  # empty: present and complete
    warnings: list[str] = field(default_factory=list)
    how_to_get: str = ""

    @property
    def ok(self) -> bool:
        return not self.problems


def check_data(plan: Plan, o: ReproduceOptions, workers: int, progress: bool) -> list[DataCheck]:
    """The data of every stage of ``plan`` under options ``o``, each dataset checked once."""
    from ssl_bench.data.selective_search import SELECTIVE_SEARCH  # numpy: not for `bench --help`

    checks: dict[tuple[str, str | None], DataCheck] = {}

    def need(name: str, path: Any, stage: str, how: str) -> tuple[DataCheck, bool]:
        """The check of ``name`` at ``path`` (made on first need: True) with ``stage`` among its users."""
        key = (name, None if path is None else str(path))
        new = key not in checks
        check = checks.setdefault(key, DataCheck(name, key[1], [], how_to_get=how))
        check.needed_by.append(stage)
        return check, new

    for stage in plan.stages:
        config = stage.config or {}
        if stage.kind == "pretrain":
            _pretrain_data(config, stage.name, need)
            continue
        root = o.data_voc.get(stage.task) or o.data_voc.get("")
        year = "VOC2012" if stage.task == "seg" else "VOC2007"
        if root is None and o.profile != "paper":
            need("SynthVOC (generated on first use)", None, stage.name, "")
        elif root is None:
            check, new = need(year, None, stage.name, HOW_TO_GET[year])
            if new:
                check.problems.append(f"no VOC folder given: the paper profile reads {year}")
        else:
            name = Path(root).name if Path(root).name in EXPECTED_SPLITS else "VOC folder"
            check, new = need(name, root, stage.name, HOW_TO_GET.get(name, HOW_TO_GET[year]))
            if new:
                _check_voc(check, Path(root), workers, progress)
            warning = f"task {stage.task} reads {root}; the paper's is {year}"
            if Path(root).name != year and o.profile == "paper" and warning not in check.warnings:
                check.warnings.append(warning)
        if stage.task == "seg" and (config.get("sbd_root") or config.get("sbd_expected")):
            sbd = config.get("sbd_root")
            check, new = need("SBD", sbd, stage.name, HOW_TO_GET["SBD"])
            if new:
                _check_sbd(check, sbd)
        if stage.task == "det" and config.get("detector") == "fast_rcnn":
            path = config.get("proposals")
            if path == SELECTIVE_SEARCH:  # computed on first use, then cached
                need("proposals (selective search, computed on first use)", None, stage.name, "")
                continue
            check, new = need("proposals (selective search)", path, stage.name, HOW_TO_GET["proposals"])
            if new:
                _check_proposals(check, path, root)
    return list(checks.values())


def _pretrain_data(config: dict[str, Any], stage: str, need: Any) -> None:
    from ssl_bench.methods import method_class

    if not config or not method_class(config["method"]).needs_data:
        return
    source = (config.get("data") or {}).get("source")
    if source == "synthvoc":
        need("SynthVOC pool (generated on first use)", None, stage, "")
        return
    check, new = need("ImageNet train folder", source, stage, HOW_TO_GET["imagenet"])
    if new and source is None:
        check.problems.append("no pretraining folder given (the recipe's data.source is null)")
    elif new:
        _check_image_folder(check, Path(source))


def _check_image_folder(check: DataCheck, root: Path) -> None:
    """An ImageNet-style train folder: class folders of images that decode (8 read); official size warned."""
    from ssl_bench.data.folder import ImageFolderIndex, load_image

    try:
        index = ImageFolderIndex(root, labels="auto")
    except BenchError as e:
        check.problems.append(str(e))
        return
    step = max(len(index) // 8, 1)
    for i in range(0, len(index), step):
        try:
            load_image(index.path(i))
        except BenchError as e:
            check.problems.append(str(e))
    classes = len(index.class_names)
    if (classes, len(index)) != (IMAGENET_TRAIN["classes"], IMAGENET_TRAIN["images"]):
        check.warnings.append(
            f"{classes} class folders and {len(index)} images; ILSVRC2012 train has "
            f"{IMAGENET_TRAIN['classes']} and {IMAGENET_TRAIN['images']:,}"
        )


def _check_voc(check: DataCheck, root: Path, workers: int, progress: bool) -> None:
    from ssl_bench.data.voc import read_image_set
    from ssl_bench.data.voc_layout import check_voc_layout

    check.problems += check_voc_layout(root, None, workers=workers, progress=progress)
    for key, size in EXPECTED_SPLITS.get(root.name, {}).items():
        task, split = key.split("/")
        try:
            found = len(read_image_set(root, split, task))
        except BenchError:
            continue  # a missing split file is one of check_voc_layout's problems
        if found != size:
            check.warnings.append(f"{key}: {found} images, the official {root.name} has {size}")


def _check_sbd(check: DataCheck, root: Any) -> None:
    if root is None:
        check.problems.append("no SBD folder: the paper's segmentation trains on VOC + SBD")
        return
    for problem in check_sbd(Path(root)):
        (check.warnings if _SIZE_ONLY.search(problem) else check.problems).append(problem)


def _check_proposals(check: DataCheck, path: Any, voc_root: Any) -> None:
    from ssl_bench.data.detection import check_proposals_cover, load_proposals
    from ssl_bench.data.voc import read_image_set

    if path is None:
        check.problems.append("no proposals file: det runs Fast R-CNN (detector: fast_rcnn)")
        return
    try:
        proposals = load_proposals(path)
        if voc_root is not None and Path(voc_root).is_dir():
            ids = read_image_set(voc_root, "trainval") + read_image_set(voc_root, "test")
            check_proposals_cover(proposals, ids, path)
    except BenchError as e:
        check.problems.append(str(e))


def run_dry(options: ReproduceOptions, timing: bool, workers: int | None = None) -> int:
    """Print the plan of a ``bench reproduce`` (``--dry-run``); returns the exit code."""
    from ssl_bench.results.plan import estimate, plan_stages

    workers = workers or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 2)
    plan = plan_stages(options)
    checks = check_data(plan, options, workers, options.progress)
    if timing:
        roots = {t: (options.data_voc.get(t) or options.data_voc.get("")) for t in options.tasks}
        estimate(plan, options, {t: Path(r) if r else None for t, r in roots.items()})
    print(f"bench reproduce --dry-run: profile {options.profile}, {len(plan.stages)} stages "
          f"(estimates for this machine, device {plan.device})")  # fmt: skip
    for s in plan.stages:
        when = _duration(s.estimate_s) if s.estimate_s is not None else "?"
        sets = " ".join(f"{k}={v}" for k, v in s.overrides.items())
        print(f"  {s.kind:8} {s.name:32} {when:>9}  {s.recipe}{'  --set ' + sets if sets else ''}")
        for line in filter(None, (s.error, s.estimate_note if timing else "")):
            print(f"  {'':8} {'':32} {'':>9}  {line}")
    if timing:
        print(f"  total (estimate): {_duration(plan.total_s)}")
    print("data:")
    for c in checks:
        print(f"  [{'ok' if c.ok else 'MISSING'}] {c.name}: {c.path or '-'} (for {len(c.needed_by)} stages)")
        for p in c.problems[:10]:
            print(f"      - {p}")
        if len(c.problems) > 10:
            print(f"      - … and {len(c.problems) - 10} more")
        for w in c.warnings:
            print(f"      warning: {w}")
        if not c.ok and c.how_to_get:
            print(f"      get it: {c.how_to_get}")
    bad_recipes = [s for s in plan.stages if s.error]
    missing = [c for c in checks if not c.ok]
    summary = {
        "dry_run": True,
        "stages": [{k: v for k, v in asdict(s).items() if k != "config"} for s in plan.stages],
        "data": [asdict(c) | {"ok": c.ok} for c in checks],
        "missing": [c.name for c in missing],
        "recipe_errors": [f"{s.kind} {s.name}: {s.error}" for s in bad_recipes],
        "estimate_s": round(plan.total_s, 1) if timing else None,
    }
    print(json.dumps(summary, default=str))
    return 1 if missing or bad_recipes else 0


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
