"""The pretraining data pipeline: image folder → augmented crop + per-sample mask, deterministic per sample.

Every random choice for a sample (crop, flip, mask) comes from a generator seeded by
(seed, epoch, index), drawn inside the DataLoader worker. So the data a step sees does not depend on
the number of workers or processes, a resumed run sees exactly what an uninterrupted one saw, and
two DDP ranks together see exactly the samples one process sees on the combined batch.

A method that plans its epochs (``PretrainMethod.on_epoch_start``, e.g. DeepCluster) reads the whole pool
through ``PoolImages`` and hands the epoch's sample order to ``EpochSampler.set_epoch``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torch.utils.data import DataLoader, Dataset, Sampler

from ssl_bench.data.folder import ImageFolderIndex, collate_skip_none, load_scaled_uint8
from ssl_bench.data.masks import make_mask
from ssl_bench.data.transforms import normalize_uint8
from ssl_bench.errors import DataError

# Resize the shorter side to this multiple of the crop before cropping (256/227, as AlexNet training).
RESIZE_RATIO = 256 / 227


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """An independent, reproducible generator for one sample of one epoch."""
    state = np.random.SeedSequence([seed, epoch, index]).generate_state(2, dtype=np.uint64)
    return torch.Generator().manual_seed(int(state[0] >> np.uint64(1)))


def epoch_seed(seed: int, epoch: int) -> int:
    """A seed for a method's random choices at the start of ``epoch`` (``on_epoch_start``), in [0, 2³¹):
    the same on every DDP rank and after a resume, and independent of every sample's generator."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint32)[0] >> np.uint32(1))


class PretrainDataset(Dataset):
    """Keys are ``(epoch, index)`` pairs (see ``EpochSampler``); items are dicts of tensors.

    Args:
        index: the image listing (``ImageFolderIndex``); holds paths only, so memory stays flat.
        image_size: crop side.
        mask_type / mask_options: masks drawn per sample (``none`` for methods without holes).
        seed: base seed of every per-sample generator.
        with_labels: include ``label`` (multi-hot float or class index) for the supervised baseline.
        augment: random crop + horizontal flip; False gives a centre crop (sample grids, statistics).
        skip_bad: return None for unreadable images (the collate drops and counts them) instead of
            stopping with an error naming the file.
        draft: decode a large JPEG at the size the crop uses (``folder.load_image``'s DCT-domain
            scaling, to no less than the resized shorter side): on full-size photographs several times
            fewer pixels to decode and resize; the crops stay within a few 8-bit levels of full decoding.
    """

    def __init__(
        self,
        index: ImageFolderIndex,
        image_size: int,
        mask_type: str = "none",
        mask_options: dict[str, Any] | None = None,
        seed: int = 0,
        with_labels: bool = False,
        augment: bool = True,
        skip_bad: bool = False,
        draft: bool = True,
    ) -> None:
        if with_labels and index.num_classes == 0:
            raise DataError(
                f"{index.root} has no image-level labels (neither labels.csv nor class subfolders); "
                "the supervised baseline needs them"
            )
        self.index, self.image_size = index, image_size
        self.mask_type, self.mask_options = mask_type, dict(mask_options or {})
        self.seed, self.with_labels, self.augment, self.skip_bad = seed, with_labels, augment, skip_bad
        self.draft = draft

    def __len__(self) -> int:
        return len(self.index)

    def _short_side(self) -> int:
        """The shorter side ``_crop`` resizes an image to."""
        return round(self.image_size * RESIZE_RATIO) if self.augment else self.image_size

    def _crop(self, image: torch.Tensor, stored_size: tuple[int, int], g: torch.Generator) -> torch.Tensor:
        """uint8 [3, h, w] → uint8 [3, size, size]: shorter side resized, random (or centre) crop, flip.

        Placed by the image's stored size ``(W, H)``, so a scaled decode (``draft``) cuts the same region.
        """
        size = self.image_size
        w, h = stored_size
        short = self._short_side()
        scale = short / min(w, h)
        rw, rh = max(size, round(w * scale)), max(size, round(h * scale))
        if self.augment:
            x0 = int(torch.randint(0, rw - size + 1, (1,), generator=g))
            y0 = int(torch.randint(0, rh - size + 1, (1,), generator=g))
        else:
            x0, y0 = (rw - size) // 2, (rh - size) // 2
        # torchvision's uint8 bilinear kernel (antialiased like PIL's): 0.12 ms at 227 px against PIL's
        # 0.37 ms for the crop alone on one core, so resizing the whole image and slicing is still cheaper.
        image = TF.resize(image, [rh, rw], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
        image = image[:, y0 : y0 + size, x0 : x0 + size]
        if self.augment and bool(torch.rand((), generator=g) < 0.5):
            image = image.flip(-1)
        return image.contiguous()  # [3, size, size] uint8, normalised per batch (training.loop.to_device)

    def __getitem__(self, key: tuple[int, int] | int) -> dict[str, Any] | None:
        epoch, i = key if isinstance(key, tuple) else (0, key)
        g = sample_generator(self.seed, epoch, i)
        try:
            short = self._short_side() if self.draft else None
            image, stored_size = load_scaled_uint8(self.index.path(i), short)
        except DataError:
            if self.skip_bad:
                return None
            raise
        item: dict[str, Any] = {"image": self._crop(image, stored_size, g), "index": i}
        item["mask"] = make_mask(self.mask_type, self.image_size, g, **self.mask_options)  # [1, H, W]
        # A seed for the method's own per-sample randomness (a rotation, a permutation…): drawn after the
        # crop and mask, so those are unchanged, and the same for a sample whatever the number of processes.
        item["sample_seed"] = int(torch.randint(0, 2**62, (), generator=g))
        if self.with_labels:
            label = self.index.label(i)
            item["label"] = torch.as_tensor(label, dtype=torch.long if np.ndim(label) == 0 else torch.float32)
        return item


class EpochSampler(Sampler):
    """Shuffled, sharded, resumable: yields ``(epoch, index)`` keys for one rank, whole batches only.

    Epoch e is the permutation of torch.Generator(seed + e), or the ``order`` given to ``set_epoch`` (a
    method's plan of the epoch); rank r takes positions r, r+W, r+2W, … (as ``DistributedSampler``), so the
    first global batch of B·W samples is the same set whichever W. ``start_batch`` skips the first batches
    of ``epoch`` without loading them (resumption).
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, rank: int = 0, world_size: int = 1) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.batches_per_epoch = n // (batch_size * world_size)
        if self.batches_per_epoch == 0:
            raise DataError(
                f"dataset of {n} images is smaller than one global batch "
                f"({batch_size} × {world_size} processes)"
            )
        self.epoch, self.start_batch = 0, 0
        self.order: torch.Tensor | None = None

    def set_epoch(self, epoch: int, start_batch: int = 0, order: torch.Tensor | None = None) -> None:
        """Sample ``epoch`` from its batch ``start_batch`` on, in ``order``: int64 [n] dataset indices
        (repeats allowed; a method's plan, see ``PretrainMethod.on_epoch_start``), or shuffled (None)."""
        if order is not None:
            order = torch.as_tensor(order).cpu()
            if order.shape != (self.n,) or order.dtype != torch.int64:
                raise ValueError(
                    f"an epoch's order must be int64 [{self.n}], got {order.dtype} {list(order.shape)}"
                )
            if self.n and (int(order.min()) < 0 or int(order.max()) >= self.n):
                raise ValueError(f"an epoch's order holds indices outside [0, {self.n})")
        self.epoch, self.start_batch, self.order = epoch, start_batch, order

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.batch_size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        perm = self.order
        if perm is None:
            perm = torch.randperm(self.n, generator=torch.Generator().manual_seed(self.seed + self.epoch))
        used = self.batches_per_epoch * self.batch_size * self.world_size
        mine = perm[:used][self.rank :: self.world_size]
        for i in mine[self.start_batch * self.batch_size :].tolist():
            yield (self.epoch, i)


# Stack samples; drop the Nones that ``skip_bad`` produces and count them under "skipped".
collate = collate_skip_none


class PoolImages:
    """Every image of the pool once, in index order, as batches ``{"image", "index"}``: what a method's
    ``on_epoch_start`` reads (DeepCluster's features). Deterministic: pass a dataset with ``augment=False``
    (centre crops, no flip). Nothing loads until it is iterated; ``len`` is the number of pool images.
    Unreadable images (``skip_bad``) are left out, so an index can be missing from the batches.

    Args:
        dataset: a ``PretrainDataset`` (``augment=False``).
        batch_size / workers: of the DataLoader made at each iteration.
        transform: applied to each batch (the training's ``to_device``: device, memory format, normalising).
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        workers: int = 0,
        transform: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.dataset, self.batch_size, self.workers, self.transform = dataset, batch_size, workers, transform

    def __len__(self) -> int:
        return len(self.dataset)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        loader = DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            num_workers=self.workers,
            collate_fn=collate,
            generator=torch.Generator(),  # its own: the global RNG stays untouched
        )
        for batch in loader:
            if "image" not in batch:  # every image of this batch was unreadable
                continue
            batch = {"image": batch["image"], "index": batch["index"]}
            yield self.transform(batch) if self.transform is not None else batch


PREFETCH_FACTOR = 4  # batches each worker process keeps ready


def make_loader(
    dataset: PretrainDataset, sampler: EpochSampler, workers: int, pin_memory: bool
) -> DataLoader:
    """The pretraining DataLoader: whole batches from ``sampler``, ``workers`` persistent processes."""
    return DataLoader(
        dataset,
        batch_size=sampler.batch_size,
        sampler=sampler,
        num_workers=workers,
        collate_fn=collate,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
        prefetch_factor=PREFETCH_FACTOR if workers > 0 else None,
        generator=torch.Generator(),  # its own: the global RNG stays untouched
    )


# ------------------------------------------------------------------------------------------------------
# Reads before training (``training/pretrain_setup.py``): the probe, the hole's mean fill, the sample grid

PROBE_IMAGES = 64  # images read before anything is written, spread over the folder


def _spread(n: int, count: int) -> list[int]:
    """``count`` evenly spaced indices in [0, n)."""
    return torch.linspace(0, n - 1, min(count, n)).round().long().unique().tolist()


def probe_images(index: ImageFolderIndex, skip_bad: bool) -> None:
    """Read up to PROBE_IMAGES images spread over the folder before anything is written.

    Raises:
        DataError: an unreadable image (without ``skip_bad``), or none readable (with it).
    """
    dataset = PretrainDataset(index, 64, augment=False, skip_bad=skip_bad)
    picks = _spread(len(index), PROBE_IMAGES)
    if any(dataset[i] is not None for i in picks):
        return
    first = index.path(picks[0])
    try:
        PretrainDataset(index, 64, augment=False)[picks[0]]
    except DataError as e:
        reason = str(e)
    else:  # pragma: no cover - it was just unreadable
        reason = f"cannot read {first}"
    checked = "every image" if len(picks) == len(index) else f"{len(picks)} images spread over it"
    raise DataError(
        f"--skip-bad-images: {checked} of {index.root} ({len(index)} image files) could not be read, "
        f"e.g. {reason}; nothing to train on"
    )


def estimate_fill(index: ImageFolderIndex, image_size: int, n: int, skip_bad: bool = False) -> list[float]:
    """The dataset mean pixel in normalised units, from ``n`` evenly spaced centre crops (the hole's fill)."""
    ds = PretrainDataset(index, image_size, augment=False, skip_bad=skip_bad)
    images = [item["image"] for item in map(ds.__getitem__, _spread(len(index), n)) if item is not None]
    if not images:
        raise DataError(f"no readable image among the {n} used for the mean fill in {index.root}")
    total = torch.stack([normalize_uint8(im).double().mean(dim=(1, 2)) for im in images]).mean(0)
    return [round(float(v), 6) for v in total]


def sample_grid_batch(dataset: PretrainDataset, count: int) -> dict[str, Any]:
    """``count`` evenly spaced items of ``dataset`` (``augment=False``), collated on the CPU: the fixed
    images and masks of every sample grid. An unreadable image (``skip_bad``) is passed over for the next
    readable one."""
    n = min(count, len(dataset))
    items = []
    for i in torch.linspace(0, len(dataset) - 1, n).round().long().tolist():
        item, j = dataset[i], i
        while item is None and j + 1 < len(dataset) and j < i + 16:  # an unreadable one: the next readable
            j += 1
            item = dataset[j]
        if item is not None:
            items.append(item)
    if not items:
        raise DataError(f"no readable image for the sample grids in {dataset.index.root}")
    return collate(items)
