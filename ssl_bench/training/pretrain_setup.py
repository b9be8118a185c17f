"""The steps of ``bench pretrain`` before its loop: prepare the data, then build the run.

``prepare_data`` finds the data folder, lists it (a resumed run's listing checked), reads some of its images
and resolves the hole's mean fill. ``build_run`` builds the method, its optimisers (a resumed run's state
loaded) and the DDP wrapper. Neither writes to the run folder. The loop's data (``run_loader``,
``epoch_planner``) is made from the built run.

The order of the calls is the order of the random draws, which a run's weights depend on: the seed (set by the
caller), the method's initial weights, then a resumed run's saved RNG state. The data draws from per-sample
generators of its own (``data/pretrain.py``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from ssl_bench.data.batches import endless_batches
from ssl_bench.data.folder import ImageFolderIndex
from ssl_bench.data.pretrain import (
    EpochSampler,
    PoolImages,
    PretrainDataset,
    epoch_seed,
    estimate_fill,
    make_loader,
    probe_images,
    sample_grid_batch,
)
from ssl_bench.data.synthvoc import ensure_synthvoc, synthvoc_pool
from ssl_bench.errors import RecipeError
from ssl_bench.methods import PretrainMethod, create_method, method_class
from ssl_bench.methods.base import plans_epochs
from ssl_bench.provenance import git_commit, package_versions
from ssl_bench.runtime.checkpoint import restore_rng
from ssl_bench.runtime.distributed import DistInfo, barrier, broadcast_state
from ssl_bench.runtime.performance import Performance, maybe_compile, resolve_performance, resolve_workers
from ssl_bench.runtime.run_folder import RunFolder
from ssl_bench.training.loop import to_device
from ssl_bench.training.optimizers import Optimizers
from ssl_bench.training.recipe import DATASET_MEAN, DataOptions, PretrainRecipe, TrainOptions

# ------------------------------------------------------------------------------------------------------
# Prepare the data


@dataclass
class PretrainData:
    """What the data folder resolved: the listing (None for a method that reads no images), and the recipe
    as ``config.yaml`` will hold it (``data`` with the folder, its size and listing hash; the numbers of a
    ``dataset_mean`` fill) with the provenance so far (where the fill came from)."""

    config: dict[str, Any]
    index: ImageFolderIndex | None
    provenance: dict[str, Any]


def prepare_data(
    recipe: PretrainRecipe, saved_config: dict[str, Any] | None, info: DistInfo, progress: bool = True
) -> PretrainData:
    """List the data folder and read some of it, before anything is written.

    Args:
        recipe: the checked recipe (for a resumed run, the saved one with the allowed changes).
        saved_config: a resumed run's config.yaml, else None.
        info: the processes (rank 0 alone generates SynthVOC).
        progress: progress bars while SynthVOC or its enlarged pool is generated.

    Raises:
        RecipeError: no or no such data folder; a resumed run's folder moved to one listing other files.
        DataError: unreadable images (``probe_images``, ``estimate_fill``).
    """
    cls = method_class(recipe.method)
    data = recipe.data
    config = recipe.to_config()
    saved_provenance = (saved_config or {}).get("provenance") or {}
    # A resumed run's fill is the saved numbers; where they came from is kept for the next resume.
    provenance = {k: v for k, v in saved_provenance.items() if k == "fill_from"}
    if not cls.needs_data:
        return PretrainData(config, None, provenance)
    root = resolve_data_root(data, info, progress)
    index = ImageFolderIndex(root, labels="auto" if cls.needs_labels else "none")
    listing = index.listing_hash()
    saved_data = (saved_config or {}).get("data") or {}
    if saved_config is not None and data.source != saved_data.get("source"):
        if saved_data.get("listing_sha256") != listing:
            raise RecipeError(
                f"--resume: --data {data.source} does not list the files of the saved run's folder "
                f"{saved_data.get('resolved_root') or saved_data.get('source')}; resume with that folder"
            )
    probe_images(index, data.skip_bad)
    config["data"].update(
        resolved_root=str(root),
        num_images=len(index),
        num_classes=index.num_classes,
        listing_sha256=listing,
    )
    if recipe.model.get("fill") == DATASET_MEAN:
        config["model"]["fill"] = estimate_fill(index, data.image_size, data.stats_images, data.skip_bad)
        provenance["fill_from"] = DATASET_MEAN
    return PretrainData(config, index, provenance)


def resolve_data_root(data: DataOptions, info: DistInfo, progress: bool = True) -> Path:
    """``source: synthvoc`` → the cached SynthVOC pretraining pool (generated once, by rank 0)."""
    if data.source is None:
        raise RecipeError("this recipe has no data source: pass --data FOLDER (e.g. /data/imagenet/train)")
    if data.source != "synthvoc":
        path = Path(data.source)
        if path.is_file():
            raise RecipeError(f"--data {data.source}: this is a file; pass the folder that holds the images")
        if not path.is_dir():
            raise RecipeError(f"--data {data.source}: no such folder")
        return path
    def pool() -> Path:
        voc = ensure_synthvoc(num_images=data.synth_images, progress=progress)
        return synthvoc_pool(voc, data.synth_pool, progress=progress)

    root = pool() if info.is_main else None
    barrier(info)  # rank 0 generates it once; the others find it complete
    return root or pool()


# ------------------------------------------------------------------------------------------------------
# Build the run: method, optimisers, DDP


@dataclass
class PretrainRun:
    """A run built and checked, before its folder is written: what the loop and the final saves need."""

    recipe: PretrainRecipe
    out: Path
    info: DistInfo
    config: dict[str, Any]  # config.yaml: the resolved recipe and its provenance
    index: ImageFolderIndex | None
    perf: Performance
    method: PretrainMethod
    sample_batch: dict[str, Any] | None  # the fixed images and masks of the sample grids
    model: torch.nn.Module | None = None  # what the loop calls: the method, wrapped in DDP and/or compiled
    optimizers: Optimizers | None = None  # None for a method that does not train
    resumed: bool = False
    start_step: int = 0
    skipped: int = 0  # unreadable images skipped before start_step

    @property
    def checkpoint_path(self) -> Path:
        return self.out / RunFolder.CHECKPOINT


def build_run(
    recipe: PretrainRecipe, data: PretrainData, state: dict[str, Any] | None, out: Path, info: DistInfo
) -> PretrainRun:
    """The method (on its device, with the resolved fill), the sample grids' batch, the provenance, and for a
    method that trains its optimisers (``state``: a resumed run's checkpoint, loaded into both) and DDP."""
    num_classes = data.config["data"].get("num_classes", 0)
    method = build_method(dataclasses.replace(recipe, model=data.config["model"]), num_classes)
    method.to(info.device)
    perf = resolve_performance(data.config["train"], info.device)
    if perf.channels_last:
        method.to(memory_format=torch.channels_last)
    sample_batch = (
        _sample_batch(method, data.index, recipe, info) if method.trains and data.index is not None else None
    )
    config = data.config
    config["provenance"] = {
        **data.provenance,
        "git_commit": git_commit(),
        "versions": package_versions(),
        "world_size": info.world_size,
        "device": str(info.device),
        "performance": dataclasses.asdict(perf),
    }
    run = PretrainRun(recipe, out, info, config, data.index, perf, method, sample_batch, model=method)
    if method.trains:
        _add_optimizers(run, state)
    return run


def build_method(recipe: PretrainRecipe, num_classes: int) -> PretrainMethod:
    options = dict(recipe.model)
    options["image_size"] = recipe.data.image_size
    if method_class(recipe.method).needs_labels:
        options["num_classes"] = num_classes
    try:
        return create_method(recipe.method, **options)
    except ValueError as e:  # a constructor's own check of an option's value (mask kind, loss, …)
        raise RecipeError(f"model options of method '{recipe.method}': {e}") from None


def build_optimizer(params: Any, train: TrainOptions, fused: bool) -> torch.optim.Optimizer:
    if train.optimizer == "adam":
        return torch.optim.Adam(
            params,
            lr=train.lr,
            betas=tuple(train.betas),
            weight_decay=train.weight_decay,
            fused=fused or None,
        )
    return torch.optim.SGD(params, lr=train.lr, momentum=0.9, weight_decay=train.weight_decay)


def _add_optimizers(run: PretrainRun, state: dict[str, Any] | None) -> None:
    """The optimisers, a resumed run's state (weights, optimisers, RNG, step), then DDP and compiling."""
    method, info = run.method, run.info
    # One optimiser per group of the method (methods/base.py). A method with one group is wrapped in DDP; one
    # with several averages each group's gradients after that group's backward (training/optimizers.py).
    several = len(method.optimizer_groups()) > 1
    run.optimizers = Optimizers(
        method,
        functools.partial(build_optimizer, train=run.recipe.train, fused=run.perf.fused_adam),
        average_gradients=info.enabled and several,
    )
    if state is not None:
        method.load_state_dict(state["model"], strict=True)
        run.optimizers.load_state_dict(state["optimizer"], str(run.checkpoint_path))
        restore_rng(state)
        run.resumed, run.start_step, run.skipped = True, state["step"], int(state.get("skipped", 0))
    if info.enabled and several:
        broadcast_state(method)  # what DDP's wrapper does for the others
    model = (
        DistributedDataParallel(
            method, device_ids=[info.device.index] if info.device.type == "cuda" else None
        )
        if info.enabled and not several
        else method
    )
    run.model = maybe_compile(model, run.perf.compile)


# ------------------------------------------------------------------------------------------------------
# The run's data: training batches, the pool a method plans its epochs on, the sample grids' batch


def run_loader(run: PretrainRun) -> tuple[DataLoader, EpochSampler]:
    """The training DataLoader and its sampler (this rank's share of each batch)."""
    data, train, method = run.recipe.data, run.recipe.train, run.method
    dataset = PretrainDataset(
        run.index,
        data.image_size,
        method.mask_type,
        method.mask_options,
        seed=run.recipe.seed,
        with_labels=method.needs_labels,
        skip_bad=data.skip_bad,
    )
    sampler = EpochSampler(
        len(dataset),
        train.batch_size,
        seed=run.recipe.seed,
        rank=run.info.rank,
        world_size=run.info.world_size,
    )
    workers = resolve_workers(train.workers, run.info.device)
    loader = make_loader(dataset, sampler, workers, pin_memory=run.info.device.type == "cuda")
    return loader, sampler


def untrained_batches(run: PretrainRun) -> Iterator[dict[str, Any]]:
    """Training batches, on the device, for a method that does not train but reads data (``prepare``)."""
    loader, sampler = run_loader(run)
    return (
        to_device(b, run.info.device, run.perf.channels_last) for b in endless_batches(loader, sampler, 0)
    )


def epoch_planner(run: PretrainRun, workers: int) -> Callable[[int], torch.Tensor | None] | None:
    """``plan_epoch(epoch)`` for ``training_batches``: the method's ``on_epoch_start`` over every pool image
    (centre crops at the training size); None for a method that does not plan its epochs."""
    if not plans_epochs(run.method):
        return None
    recipe = run.recipe
    dataset = PretrainDataset(run.index, recipe.data.image_size, augment=False, skip_bad=recipe.data.skip_bad)
    transform = functools.partial(to_device, device=run.info.device, channels_last=run.perf.channels_last)
    pool = PoolImages(dataset, recipe.train.batch_size, workers, transform)

    def plan_epoch(epoch: int) -> torch.Tensor | None:
        return run.method.on_epoch_start(epoch, pool, epoch_seed(recipe.seed, epoch))

    return plan_epoch


def _sample_batch(
    method: PretrainMethod, index: ImageFolderIndex, recipe: PretrainRecipe, info: DistInfo
) -> dict[str, Any]:
    """A fixed set of centre-cropped images and masks, the same at every step (and across resumes)."""
    dataset = PretrainDataset(
        index,
        recipe.data.image_size,
        method.mask_type,
        method.mask_options,
        seed=recipe.seed + 1,
        augment=False,
        skip_bad=recipe.data.skip_bad,
    )
    return to_device(sample_grid_batch(dataset, recipe.train.sample_images), info.device, False)
