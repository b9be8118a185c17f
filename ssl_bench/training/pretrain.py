"""``bench pretrain``: turn a resolved recipe into a trained encoder in ``--out``.

Output folder::

    checkpoint.pt    resumable state (whole method, optimizer, RNG, step, config)
    encoder.pt       encoder weights only, a plain state dict (``torch.load(..., weights_only=True)``)
    config.yaml      the resolved recipe plus provenance (data, fill value, versions, commit)
    metrics.jsonl    one JSON row per logged step (loss, img/s) and per sample grid (sample_l2, fill_l2)
    samples/         step_XXXXXX.png grids: masked input / output / original
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import torch
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from ssl_bench.atomic import atomic_write_text
from ssl_bench.data.folder import ImageFolderIndex
from ssl_bench.data.pretrain import EpochSampler, PretrainDataset, collate, make_loader
from ssl_bench.data.transforms import normalize_uint8
from ssl_bench.errors import RecipeError
from ssl_bench.methods import PretrainMethod, create_method, method_class
from ssl_bench.provenance import git_commit, package_versions
from ssl_bench.recipes import check_keys
from ssl_bench.training.checkpoint import load_checkpoint, restore_rng, save_checkpoint, save_encoder
from ssl_bench.training.distributed import DistInfo, barrier, cleanup_distributed, init_distributed
from ssl_bench.training.loop import endless_batches, to_device, train_loop, training_batches
from ssl_bench.training.performance import (
    maybe_compile,
    resolve_loader_thread,
    resolve_performance,
    resolve_workers,
)
from ssl_bench.training.samples import write_sample_grid

DATA_KEYS = {"source", "image_size", "synth_images", "skip_bad", "stats_images"}
TRAIN_KEYS = {
    "steps",
    "batch_size",
    "optimizer",
    "lr",
    "betas",
    "weight_decay",
    "workers",
    "log_every",
    "sample_every",
    "checkpoint_every",
    "amp",
    "channels_last",
    "compile",
    "fused_adam",
    "loader_thread",
    "sample_images",
}
SAMPLE_IMAGES = 8


def resolve_data_root(data: dict[str, Any], info: DistInfo) -> Path:
    """``source: synthvoc`` → the cached SynthVOC pretraining pool (generated once, by rank 0)."""
    source = data.get("source", "synthvoc")
    if source is None:
        raise RecipeError("this recipe has no data source: pass --data FOLDER (e.g. /data/imagenet/train)")
    if source != "synthvoc":
        if not Path(source).is_dir():
            raise RecipeError(f"--data {source}: no such folder")
        return Path(source)
    from ssl_bench.data.synthvoc import ensure_synthvoc, synthvoc_pool

    kwargs = {"num_images": data.get("synth_images", 2000)}
    if info.is_main:
        ensure_synthvoc(**kwargs)
    barrier(info)
    return synthvoc_pool(ensure_synthvoc(**kwargs))


def estimate_fill(index: ImageFolderIndex, image_size: int, n: int, skip_bad: bool = False) -> list[float]:
    """The dataset mean pixel in normalised units, from ``n`` evenly spaced centre crops (the hole's fill)."""
    ds = PretrainDataset(index, image_size, augment=False, skip_bad=skip_bad)
    picks = torch.linspace(0, len(index) - 1, min(n, len(index))).round().long().unique().tolist()
    images = [item["image"] for item in map(ds.__getitem__, picks) if item is not None]
    total = torch.stack([normalize_uint8(im).double().mean(dim=(1, 2)) for im in images]).mean(0)
    return [round(float(v), 6) for v in total]


def build_method(config: dict[str, Any], index: ImageFolderIndex | None) -> PretrainMethod:
    options = dict(config.get("model", {}))
    options["image_size"] = config["data"]["image_size"]
    if method_class(config["method"]).needs_labels:
        options["num_classes"] = index.num_classes if index is not None else 0
    return create_method(config["method"], **options)


def build_optimizer(params: Any, train: dict[str, Any], fused: bool) -> torch.optim.Optimizer:
    name = train.get("optimizer", "adam")
    if name == "adam":
        return torch.optim.Adam(
            params,
            lr=train["lr"],
            betas=tuple(train.get("betas", (0.9, 0.999))),
            weight_decay=train.get("weight_decay", 0.0),
            fused=fused or None,
        )
    if name == "sgd":
        return torch.optim.SGD(
            params, lr=train["lr"], momentum=0.9, weight_decay=train.get("weight_decay", 0.0)
        )
    raise RecipeError(f"unknown optimizer '{name}' (train.optimizer); choose adam or sgd")


def _truncate_metrics(path: Path, step: int) -> None:
    """On resume, drop rows logged after the checkpoint: those steps are run again."""
    if not path.is_file():
        return
    rows = [
        line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step
    ]
    atomic_write_text(path, "".join(r + "\n" for r in rows))


def run_pretraining(
    config: dict[str, Any], out: Path, resume: bool = False, device: str | None = None, progress: bool = True
) -> dict[str, Any]:
    """Pretrain ``config['method']``; returns a summary (final loss, steps, wall time, img/s)."""
    check_keys(config.get("data", {}), DATA_KEYS, "data")
    check_keys(config.get("train", {}), TRAIN_KEYS, "train")
    info = init_distributed(device)
    try:
        return _run(config, Path(out), resume, info, progress)
    finally:
        cleanup_distributed()


def _run(config: dict[str, Any], out: Path, resume: bool, info: DistInfo, progress: bool) -> dict[str, Any]:
    started = time.perf_counter()
    ckpt_path = out / "checkpoint.pt"
    state = None
    if resume:
        state = load_checkpoint(ckpt_path)
        steps = config["train"]["steps"]
        config = state["config"]
        config["train"]["steps"] = steps  # the one value a resumed run may change (to train longer)
    torch.manual_seed(config["seed"])  # identical initial weights on every rank
    cls = method_class(config["method"])
    data, train = config["data"], config["train"]
    index = None
    if cls.needs_data:
        root = resolve_data_root(data, info)
        index = ImageFolderIndex(root, labels="auto" if cls.needs_labels else "none")
        data["resolved_root"] = str(root)
        data["num_images"] = len(index)
        if config.get("model", {}).get("fill") == "dataset_mean":
            config["model"]["fill"] = estimate_fill(
                index, data["image_size"], data.get("stats_images", 256), data.get("skip_bad", False)
            )
    method = build_method(config, index)
    config.setdefault("provenance", {}).update(
        {
            "git_commit": git_commit(),
            "versions": package_versions(),
            "world_size": info.world_size,
            "device": str(info.device),
        }
    )
    if info.is_main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    method.to(info.device)
    cuda = info.device.type == "cuda"
    perf = resolve_performance(train, info.device)
    config["provenance"]["performance"] = dataclasses.asdict(perf)
    if perf.channels_last:
        method.to(memory_format=torch.channels_last)

    if not method.trains:
        if index is not None:
            loader, sampler = _loader(method, index, config, info)
            method.prepare(
                to_device(b, info.device, perf.channels_last) for b in endless_batches(loader, sampler, 0)
            )
        if info.is_main:
            save_checkpoint(ckpt_path, 0, method, None, config)
            save_encoder(out / "encoder.pt", method.encoder)
        return {"method": config["method"], "steps": 0, "wall_s": time.perf_counter() - started}

    optimizer = build_optimizer(method.parameters(), train, fused=perf.fused_adam)
    start_step = 0
    if state is not None:
        method.load_state_dict(state["model"], strict=True)
        optimizer.load_state_dict(state["optimizer"])
        restore_rng(state)
        start_step = state["step"]
        if info.is_main:
            _truncate_metrics(out / "metrics.jsonl", start_step)
    elif info.is_main:
        (out / "metrics.jsonl").unlink(missing_ok=True)
    model = (
        DistributedDataParallel(method, device_ids=[info.device.index] if cuda else None)
        if info.enabled
        else method
    )
    model = maybe_compile(model, perf.compile)
    loader, sampler = _loader(method, index, config, info)
    sample_batch = _sample_batch(method, index, config, info)

    def on_checkpoint(step: int) -> None:
        if info.is_main:
            save_checkpoint(ckpt_path, step, method, optimizer, config)
        barrier(info)

    def on_sample(step: int) -> dict[str, float] | None:
        return write_sample_grid(method, sample_batch, out / "samples" / f"step_{step:06d}.png")

    steps = train["steps"]
    thread = resolve_loader_thread(train.get("loader_thread"), loader.num_workers)
    with contextlib.closing(
        training_batches(loader, sampler, start_step, info.device, perf.channels_last, thread)
    ) as batches:
        train_loop(
            model,
            optimizer,
            batches,
            start_step=start_step,
            steps=steps,
            info=info,
            out=out,
            perf=perf,
            log_every=train.get("log_every", 10),
            on_checkpoint=on_checkpoint,
            checkpoint_every=train.get("checkpoint_every", 0),
            on_sample=on_sample,
            sample_every=train.get("sample_every", 0),
            progress=progress,
        )
    if info.is_main:
        if start_step < steps and (not train.get("checkpoint_every") or steps % train["checkpoint_every"]):
            save_checkpoint(ckpt_path, steps, method, optimizer, config)
        save_encoder(out / "encoder.pt", method.encoder)
        if train.get("sample_every") and steps % train["sample_every"]:
            on_sample(steps)  # the final state, when the last periodic grid came earlier
    barrier(info)
    return {"method": config["method"], "steps": steps, "wall_s": time.perf_counter() - started}


def _loader(
    method: PretrainMethod, index: ImageFolderIndex, config: dict[str, Any], info: DistInfo
) -> tuple[DataLoader, EpochSampler]:
    data, train = config["data"], config["train"]
    dataset = PretrainDataset(
        index,
        data["image_size"],
        method.mask_type,
        method.mask_options,
        seed=config["seed"],
        with_labels=method.needs_labels,
        skip_bad=data.get("skip_bad", False),
    )
    sampler = EpochSampler(
        len(dataset), train["batch_size"], seed=config["seed"], rank=info.rank, world_size=info.world_size
    )
    workers = resolve_workers(train.get("workers"), info.device)
    loader = make_loader(dataset, sampler, workers, pin_memory=info.device.type == "cuda")
    return loader, sampler


def _sample_batch(
    method: PretrainMethod, index: ImageFolderIndex, config: dict[str, Any], info: DistInfo
) -> dict[str, Any]:
    """A fixed set of centre-cropped images and masks, the same at every step (and across resumes)."""
    n = min(config["train"].get("sample_images", SAMPLE_IMAGES), len(index))
    ds = PretrainDataset(
        index,
        config["data"]["image_size"],
        method.mask_type,
        method.mask_options,
        seed=config["seed"] + 1,
        augment=False,
        skip_bad=config["data"].get("skip_bad", False),
    )
    picks = torch.linspace(0, len(index) - 1, n).round().long().tolist()
    return to_device(collate([ds[i] for i in picks]), info.device, False)
