"""``bench data``: generate the SynthVOC default dataset; check a real VOC / SBD layout before evaluating."""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from ssl_bench.errors import RecipeError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="datasets: generate SynthVOC, check VOC/SBD layouts")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    s = dsub.add_parser("synth", help="write the procedurally generated VOC-format dataset (SynthVOC)")
    s.add_argument(
        "--out", type=Path, required=True, help="folder to write (VOCdevkit/VOC2007 and pool/ inside)"
    )
    s.add_argument("--images", type=int, default=2000, help="total images, pool included (default 2000)")
    s.add_argument("--size", type=int, default=227, help="image side in pixels (default 227)")
    s.add_argument("--seed", type=int, default=0, help="generator seed (default 0)")
    s.add_argument("--workers", type=int, default=2, help="processes drawing images (default 2)")
    s.set_defaults(func=run_synth)
    c = dsub.add_parser(
        "check",
        help="verify a VOCdevkit year folder (and SBD) before evaluating on it",
        description="Check a VOC year folder: split files, that every listed image has its JPEG, annotation "
        "and mask, that annotations parse, and that every listed JPEG and segmentation PNG decodes (PNG "
        "sizes matching their JPEGs). Exit 0 when complete, 1 when problems are found (each named).",
    )
    c.add_argument("--data", type=Path, required=True, help="VOC year folder, e.g. VOCdevkit/VOC2007")
    c.add_argument(
        "--year",
        choices=sorted(EXPECTED_SPLITS),
        help="check the official split sizes of this "
        "year (default: guessed from the folder name; none for other folders)",
    )
    c.add_argument("--sbd", type=Path, help="SBD root (benchmark_RELEASE/dataset) to check as well")
    c.add_argument(
        "--workers",
        type=int,
        default=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1,
        metavar="N",
        help="threads decoding images (default: every core, %(default)s here)",
    )
    c.add_argument("--no-progress", action="store_true", help="no progress bar while decoding")
    c.set_defaults(func=run_check)
    _add_proposals_parser(dsub)


# Official split sizes (PASCAL VOC devkit image sets; SBD's: ssl_bench.data.sbd.SBD_SPLIT_SIZES).
EXPECTED_SPLITS = {
    "VOC2007": {"Main/trainval": 5011, "Main/test": 4952, "Main/train": 2501, "Main/val": 2510},
    "VOC2012": {"Main/trainval": 11540, "Segmentation/train": 1464, "Segmentation/val": 1449},
}


def run_synth(args: argparse.Namespace) -> int:
    from ssl_bench.data.synthvoc import generate_synthvoc

    t0 = time.perf_counter()
    root = generate_synthvoc(
        args.out, num_images=args.images, size=args.size, seed=args.seed, workers=args.workers
    )
    elapsed = time.perf_counter() - t0
    print(
        json.dumps(
            {
                "voc_root": str(root),
                "images": args.images,
                "wall_s": round(elapsed, 1),
                "img_s": round(args.images / elapsed, 1),
            }
        )
    )
    return 0


def check_sbd(root: Path) -> list[str]:
    """SBD (``dataset/``): ``img/*.jpg``, ``cls/*.mat`` and ``train.txt`` / ``val.txt`` of the right sizes.

    Every listed id needs its JPEG and its ``.mat``; the first ``.mat`` of each list is read as the evaluator
    reads them (``ssl_bench.data.sbd.read_sbd_mask``), so a wrong format shows here, before a GPU run.
    """
    from ssl_bench.data.sbd import SBD_SPLIT_SIZES, read_sbd_ids, read_sbd_mask
    from ssl_bench.errors import DataError

    problems = []
    for folder in ("img", "cls"):
        if not (root / folder).is_dir():
            problems.append(f"missing folder {root / folder}")
    for split, size in SBD_SPLIT_SIZES.items():
        path = root / f"{split}.txt"
        if not path.is_file():
            problems.append(f"missing SBD split {path}")
            continue
        ids = read_sbd_ids(root, split)
        if len(ids) != size:
            problems.append(f"{path}: {len(ids)} ids, expected {size}")
        for sub, ext in (("cls", ".mat"), ("img", ".jpg")):
            missing = [i for i in ids if not (root / sub / f"{i}{ext}").is_file()]
            if missing:
                problems.append(f"{path}: {len(missing)} ids without {sub}/<id>{ext}, e.g. {missing[0]}")
        if ids and (root / "cls" / f"{ids[0]}.mat").is_file():
            try:
                read_sbd_mask(root / "cls" / f"{ids[0]}.mat")
            except DataError as e:
                problems.append(str(e))
    return problems


def run_check(args: argparse.Namespace) -> int:
    from ssl_bench.data.voc_layout import check_voc_layout

    synthetic = (
        args.data.parent.parent / "SYNTHVOC.json"
    ).is_file()  # SynthVOC also names its folder VOC2007
    guessed = args.data.name if args.data.name in EXPECTED_SPLITS and not synthetic else None
    year = args.year or guessed
    if args.workers < 1:
        raise RecipeError(f"--workers {args.workers}: must be at least 1")
    problems = check_voc_layout(
        args.data, EXPECTED_SPLITS.get(year), workers=args.workers, progress=not args.no_progress
    )
    if args.sbd is not None:
        problems += check_sbd(args.sbd)
    where = f"{args.data}" + (f" (checked against {year}'s official split sizes)" if year else "")
    if problems:
        print(f"bench data check: {len(problems)} problem(s) in {where}:")
        for p in problems:
            print(f"  - {p}")
        return 1
    print(f"bench data check: {where} looks complete")
    return 0


def _add_proposals_parser(dsub: argparse._SubParsersAction) -> None:
    p = dsub.add_parser(
        "proposals",
        help="the det evaluator's proposals file: from Fast R-CNN's selective-search .mat files, or computed "
        "by selective search on a VOC folder's images",
        description="Read selective-search proposals as distributed for Fast R-CNN (rbgirshick/fast-rcnn "
        "data/scripts/fetch_selective_search_data.sh: selective_search_data/voc_2007_trainval.mat and "
        "voc_2007_test.mat; 'boxes' a cell of (K,4) 1-based [y1 x1 y2 x2] arrays, 'images' their names) and "
        "write one .npz of VOC 1-based x1,y1,x2,y2 boxes per image id, for --set proposals=OUT. "
        "With --data, every trainval and test image of that VOC year must have proposals. "
        "With --selective-search (and --data, no .mat files), compute them instead with OpenCV's selective "
        "search on every trainval and test image (data/selective_search.py; what `--set "
        "proposals=selective_search` does once, cached).",
    )
    p.add_argument("mat", type=Path, nargs="*", help="selective-search .mat file(s)")
    p.add_argument("--out", type=Path, required=True, help="proposals file to write (.npz)")
    p.add_argument("--data", type=Path, help="VOC year folder whose Main trainval + test ids must be covered")
    p.add_argument("--selective-search", choices=("fast", "quality"), metavar="MODE",
                   help="compute the proposals of --data's images with selective search (fast: Fast R-CNN's "
                   "setting; quality: more boxes) instead of reading .mat files")  # fmt: skip
    p.add_argument("--workers", type=int, help="processes for --selective-search (default: every core)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_proposals)


def run_proposals(args: argparse.Namespace) -> int:
    from ssl_bench.data.proposals import convert_selective_search
    from ssl_bench.data.voc import read_image_set

    if bool(args.mat) == bool(args.selective_search):
        raise RecipeError("bench data proposals: give either .mat files or --selective-search MODE, not both")
    ids = None
    if args.data is not None:
        ids = read_image_set(args.data, "trainval") + read_image_set(args.data, "test")
    if args.selective_search:
        from ssl_bench.data.selective_search import compute_selective_search

        if ids is None:
            raise RecipeError("bench data proposals --selective-search needs --data (the VOC year folder)")
        summary = compute_selective_search(args.data, ids, args.out, args.selective_search, args.workers,
                                           progress=not args.no_progress)  # fmt: skip
    else:
        summary = convert_selective_search(args.mat, args.out, ids)
    print(json.dumps({"proposals": str(args.out), **summary}))
    return 0
