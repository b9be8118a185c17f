"""Memorisation: a trained method's pretext loss and accuracy on its training images and on held-out ones.

Issue #22: a pretext that fits its 1,000 pool images without learning anything that transfers shows it as
a gap between the two. :func:`memorisation` runs the method's own ``forward`` (the loss dict the training
loop minimises) in eval mode, without gradients, on

* ``train``: ``images`` pool images spread evenly over the pretraining pool (every one of them was trained
  on: the pool is small and each run makes many passes over it);
* ``heldout``: the first ``images`` of a held-out slice of the pool that no run has seen and that is in no
  evaluation split (``data.synthvoc.ensure_heldout_pool``: images drawn by the pool's generator beyond the
  dataset), or a folder given to ``bench memorisation --heldout``.

Both sides are scored alike: centre crops at the training size, and the k-th image of each side gets the
same mask and the same per-sample seed (rotations, permutations…), drawn from ``MEMORISATION_SEED``. So the
numbers differ only by the images. For the context encoder and the autoencoder the loss is the
reconstruction (hole) loss; for the supervised baseline, the label loss and hit@1 accuracy; for the other
pretexts, their loss and accuracy. NOTE: eval mode (dropout off, batch-norm running statistics), so the
train numbers are not the logged training loss, which had dropout and batch statistics.

A method whose targets exist only for its training images (DeepCluster's pseudo-labels, looked up by pool
index: ``heldout_pretext = False``) and a method that does not train get ``skipped`` with the reason.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ssl_bench.atomic import atomic_write_json
from ssl_bench.data.folder import ImageFolderIndex
from ssl_bench.data.masks import make_mask
from ssl_bench.data.pretrain import PretrainDataset, collate, sample_generator
from ssl_bench.data.synthvoc import ensure_heldout_pool
from ssl_bench.data.transforms import normalize_uint8
from ssl_bench.methods import PretrainMethod
from ssl_bench.methods.base import MAIN_GROUP
from ssl_bench.runtime.checkpoint import checkpoint_step
from ssl_bench.runtime.run_folder import RunFolder

MEMORISATION_IMAGES = 64  # per side: ~1 s of forward passes at 128 px on a CPU
MEMORISATION_SEED = 22  # masks and per-sample seeds, the same for both sides (issue #22)
BATCH_SIZE = 32


def _fixed_draws(method: PretrainMethod, image_size: int, count: int) -> list[tuple[torch.Tensor, int]]:
    """(mask [1, S, S], sample seed) for positions 0…count-1: shared by the train and held-out images."""
    draws = []
    for k in range(count):
        g = sample_generator(MEMORISATION_SEED, 0, k)
        mask = make_mask(method.mask_type, image_size, g, **method.mask_options)
        draws.append((mask, int(torch.randint(0, 2**62, (), generator=g))))
    return draws


@torch.no_grad()
def pretext_measures(
    method: PretrainMethod,
    index: ImageFolderIndex,
    picks: list[int],
    draws: list[tuple[torch.Tensor, int]],
    image_size: int,
    device: torch.device,
) -> dict[str, float]:
    """Mean over the ``picks`` images of every scalar the method's forward returns (each group's forward,
    for a method with several optimisers), with ``draws[k]`` as the k-th image's mask and sample seed."""
    dataset = PretrainDataset(index, image_size, "none", seed=MEMORISATION_SEED,
                              with_labels=method.needs_labels, augment=False)  # fmt: skip
    groups = [g.name for g in method.optimizer_groups()]
    sums: dict[str, float] = {}
    count = 0
    for start in range(0, len(picks), BATCH_SIZE):
        items = []
        for k in range(start, min(start + BATCH_SIZE, len(picks))):
            item = dataset[picks[k]]
            item["mask"], item["sample_seed"] = draws[k]
            items.append(item)
        batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in collate(items).items()}
        batch["image"] = normalize_uint8(batch["image"])  # [B, 3, S, S] as the training loop feeds it
        n = len(items)
        for group in groups:
            out = method(batch) if group == MAIN_GROUP and len(groups) == 1 else method(batch, group=group)
            for key, value in out.items():
                if isinstance(value, torch.Tensor) and value.numel() == 1:
                    sums[key] = sums.get(key, 0.0) + float(value) * n
        count += n
    return {key: total / count for key, total in sums.items()}


def memorisation(
    method: PretrainMethod,
    train_root: str | Path,
    image_size: int,
    device: torch.device,
    images: int = MEMORISATION_IMAGES,
    heldout_root: str | Path | None = None,
) -> dict[str, Any]:
    """The method's pretext measures on ``images`` training pool images and ``images`` held-out ones.

    Args:
        method: the trained method (its mode is restored afterwards).
        train_root: the pretraining pool folder the run trained on (``config.data.resolved_root``).
        image_size: the run's training crop size.
        device: where to run the forward passes.
        images: images per side (fewer where a folder holds fewer).
        heldout_root: a folder of held-out images; default: the SynthVOC pool's held-out slice.

    Returns:
        ``{"train": {key: mean}, "heldout": {key: mean}, "images": {...}, ...}``, or ``{"skipped": reason}``.
    """
    if not method.trains:
        return {"skipped": "the method does not train: it has no pretext to measure"}
    if not method.heldout_pretext:
        return {"skipped": f"{type(method).__name__}'s targets exist only for its training images"}
    if heldout_root is None:
        heldout_root = ensure_heldout_pool(train_root, images)
        if heldout_root is None:
            return {"skipped": f"{train_root} is not a SynthVOC pool and no held-out folder was given: "
                               "every image of the pretraining folder was trained on"}  # fmt: skip
    labels = "auto" if method.needs_labels else "none"
    train_index, heldout_index = ImageFolderIndex(train_root, labels), ImageFolderIndex(heldout_root, labels)
    n = min(images, len(train_index), len(heldout_index))
    train_picks = torch.linspace(0, len(train_index) - 1, n).round().long().tolist()  # spread over the pool
    heldout_picks = list(range(n))
    draws = _fixed_draws(method, image_size, n)
    was_training = method.training
    method.eval()
    try:
        train = pretext_measures(method, train_index, train_picks, draws, image_size, device)
        heldout = pretext_measures(method, heldout_index, heldout_picks, draws, image_size, device)
    finally:
        method.train(was_training)
    return {
        "train": train,
        "heldout": heldout,
        "images": {"train": n, "heldout": n},
        "train_root": str(train_root),
        "heldout_root": str(heldout_root),
        "train_images": [train_index.path(i).name for i in train_picks],
        "heldout_images": [heldout_index.path(i).name for i in heldout_picks],
        "protocol": f"eval mode, no gradients, centre crops of {image_size} px; the k-th image of each side "
        f"gets the same mask and sample seed (seed {MEMORISATION_SEED})",
    }


def measure_run(
    run: RunFolder,
    method: PretrainMethod | None = None,
    device: torch.device | None = None,
    images: int = MEMORISATION_IMAGES,
    heldout_root: str | Path | None = None,
) -> dict[str, Any]:
    """:func:`memorisation` of a run folder's method, written to its ``memorisation.json`` (and returned).

    Args:
        run: the pretraining run (its config names the pool and the crop size).
        method: the trained method; default: loaded from the run's checkpoint.
        device: default CPU.
        images, heldout_root: as :func:`memorisation`.
    """
    config = run.config
    data = config.get("data") or {}
    method = run.load_method() if method is None else method
    device = device or torch.device("cpu")
    root = data.get("resolved_root")
    if root is None:
        result: dict[str, Any] = {"skipped": "the run read no images"}
    else:
        result = memorisation(method, root, int(data["image_size"]), device, images, heldout_root)
    step = checkpoint_step(run.checkpoint_path) if run.checkpoint_path.is_file() else None
    result = {"format": 1, "method": config.get("method"), "step": step, **result}
    atomic_write_json(run.memorisation_path, result)
    return result
