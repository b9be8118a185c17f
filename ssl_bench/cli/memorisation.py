"""``bench memorisation RUN_DIR``: a run's pretext loss / accuracy on training vs held-out pool images.

Writes the run's ``memorisation.json`` (``ssl_bench/training/memorisation.py``), which ``bench pretrain``
writes at the end of every run; this command measures runs made before it did, or against another held-out
folder (``--heldout``, e.g. for a run on a real image folder, whose every image was trained on).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "memorisation",
        help="pretext loss / accuracy of a pretraining run on its training images vs held-out pool images",
    )
    p.add_argument("run", type=Path, help="a `bench pretrain --out` folder")
    p.add_argument("--images", type=int, default=None, help="images per side (default: 64)")
    p.add_argument(
        "--heldout",
        type=Path,
        help="folder of held-out images (default: the SynthVOC pool's held-out slice, generated once)",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, … (default: cpu)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import torch  # not for `bench --help`

    from ssl_bench.errors import RecipeError
    from ssl_bench.runtime.run_folder import RunFolder
    from ssl_bench.training.memorisation import MEMORISATION_IMAGES, measure_run

    images = MEMORISATION_IMAGES if args.images is None else args.images
    if images < 1:
        raise RecipeError(f"--images {images}: need at least 1")
    if args.heldout is not None and not args.heldout.is_dir():
        raise RecipeError(f"--heldout {args.heldout}: no such folder")
    folder = RunFolder(args.run)
    folder.config  # a one-line error when it is no run folder  # noqa: B018
    result = measure_run(folder, device=torch.device(args.device), images=images, heldout_root=args.heldout)
    print(json.dumps({k: v for k, v in result.items() if not k.endswith("_images")}, indent=1))
    print(f"written: {folder.memorisation_path}")
    return 0
