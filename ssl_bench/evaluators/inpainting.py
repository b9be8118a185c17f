"""Semantic inpainting of a centre hole on held-out images: every row of Pathak et al. 2016, Table 1.

Protocol (Pathak et al. 2016, Table 1: Paris StreetView, centre hole; "mean L1 loss, mean L2 loss, PSNR"):

- Held-out images and NN database, by what ``--data`` holds:
  - a VOC year folder (``ImageSets/Main``; SynthVOC by default): ``Main/test`` held out, ``Main/trainval``
    the NN database (or the SynthVOC pretraining pool with ``nn_database: pool``);
  - a Paris StreetView folder (``data/paris.py``: ``paris_train_original/`` + ``paris_eval_gt/``, the
    public release, or ``train/`` + ``test/``): the test folder held out, the train folder the database.
  Centre crops at the pretraining run's image size (the recipe's ``image_size`` when there is no run;
  128 px for the semantic-inpainting net), cut as for the pretraining sample grids: shorter side resized
  to the crop, then the centre. On SynthVOC the pretraining pool shares no image with ``Main/test``.
- Hole: the centre mask (``data/masks.py::center_mask``), one central square of 1/4 of the image
  (64×64 px at 128 px, 114×114 px at 227 px), filled with the model's own fill value before the model
  sees the image.

Rows, all on the same images and the same hole, scored with the same metric (metric-key prefix in brackets):

- the network [no prefix]: the whole pretraining run (``checkpoint.pt`` next to ``encoder.pt``) rebuilt
  from its ``config.yaml``, ``method.inpaint(image, mask)``; its prediction replaces the hole only;
- NN-inpainting with network features [``nn_``] (Table 1, "NN-inpainting with context-encoder
  features"): describe the VISIBLE context of every database image (hole filled with a constant) and of
  every test image; paste the hole of the nearest database image into the test image's hole. Features:
  the run's encoder at its deepest tap (``pool5`` for CaffeNet; the last conv of a DCGAN encoder),
  L2-normalised, cosine search, when the run has a decoder (or with ``nn_feature: pool5``); otherwise the
  context downsampled to 16×16 pixels, Euclidean search (``pixels``: a raw-pixel NN row, kept so that
  records of runs without a decoder keep their ``nn_*`` numbers);
- NN-inpainting with HOG features [``nn_hog_``] (Table 1, "NN-inpainting with HOG"): the same search
  and paste over HOG of the visible context (``inpainting_baselines.py``: parameters and NOTE there);
- classic inpainting, no training and no database [``telea_``, ``ns_``, ``biharmonic_``]: OpenCV's
  Telea and Navier–Stokes, scikit-image's biharmonic (``inpainting_baselines.py``); not in the paper;
- the mean fill [``fill_``]: the hole filled with the database's mean pixel (what a model must beat).

Metrics (percentages and dB over the HOLE pixels only, on images in [0, 1]; ``ssl_bench.metrics.inpainting``):

- ``l1_pct`` = 100 · mean |prediction − original| over hole pixels and the 3 channels, averaged over
  images;
- ``l2_pct`` = 100 · mean (prediction − original)² (the mean squared error, not its root), averaged over
  images;
- ``psnr_db`` = mean over images of 10 · log10(1 / MSE_i), MSE_i the image's hole MSE (peak value 1).
  Per-image PSNR then averaged: Table 1's numbers only fit that reading (1.96% L2 would give 17.1 dB
  as 10·log10(1/mean MSE); the table says 18.58 dB, higher as Jensen's inequality requires of a mean of
  per-image PSNRs; the NN rows agree likewise).
- Every image (prediction and original) is compared as an 8-bit image (values k/255, predictions
  clamped to [0, 1]): originals are 8-bit JPEGs anyway, and the NN baseline then reproduces a database
  image exactly.
- ``sharpness`` (not in the paper; issue #15): the gradient energy of the fills inside the hole over the
  originals' (``ssl_bench.metrics.sharpness``): 1 as detailed as the originals, 0 flat, < 1 blurred.
The same four numbers are reported for every row, with the row's prefix (``nn_hog_psnr_db`` …).
Where the parts live: the held-out images and the NN database in ``inpainting_data.py``, the NN search
and paste in ``inpainting_nn.py``, HOG and the classic inpainters in ``inpainting_baselines.py``.
``extra["seconds"]`` holds each row's wall time (its database features included).

NOTE: Table 1's numbers come from the authors' SEMANTIC-INPAINTING net (128-px input, 64-px centre hole,
L2 + adversarial loss, PAPER.md §1.1, the ``semantic_inpainting`` method) on Paris StreetView. This
suite's ``context_encoder`` is the FEATURE-LEARNING net (CaffeNet encoder, reconstruction loss only,
random-region masks by default); and SynthVOC or VOC images are not Paris StreetView: only a
``semantic_inpainting`` run evaluated on a Paris StreetView folder is Table 1's setting.
NOTE: the paper does not say whether its L1/L2 numbers use [0, 1] or [-1, 1] pixel values, nor whether
PSNR is averaged per image (unverified); the choices above are documented and fixed here.
NOTE: the context encoder is trained with random-region masks by default (PAPER.md §1.2), so a centre
hole is not what it learnt to fill; the semantic-inpainting net of Table 1 was trained on centre holes.
NOTE: the NN database is the root's training images (Main ``trainval``, the SynthVOC pool with
``nn_database: pool``, or the Paris train folder), capped at ``nn_database_max`` evenly spaced images;
the paper's NN database is not described beyond Paris StreetView (unverified). Database images are
centre-cropped like the test images (one crop per image; the paper does not say how it cut them).
NOTE: a run whose method has no decoder (supervised, random, datainit), a bare ``encoder.pt`` without its
run folder, or ``--weights random`` reports the baselines only (``ctx.extra["model"]`` says so).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm import tqdm

from ssl_bench.data.masks import center_mask, fill_holes
from ssl_bench.data.pretrain import collate
from ssl_bench.data.transforms import normalize_uint8
from ssl_bench.encoders import exported_encoder_state, read_weights_file
from ssl_bench.errors import CheckpointError
from ssl_bench.evaluators.base import EvalContext, Metrics, register_evaluator
from ssl_bench.evaluators.engine import eval_performance, images_to, make_loader, on_device
from ssl_bench.evaluators.examples import save_grid, to_image
from ssl_bench.evaluators.features import freeze, frozen
from ssl_bench.evaluators.inpainting_baselines import CLASSIC_BASELINES, classic_inpaint, hog_context_features
from ssl_bench.evaluators.inpainting_data import HOLE_AREA, held_out_images
from ssl_bench.evaluators.inpainting_nn import (
    PIXEL_FEATURE_SIDE,
    NearestNeighbourInpainter,
    context_features,
    feature_tap,
    hole_box,
    to_8bit,
)
from ssl_bench.methods import PretrainMethod
from ssl_bench.metrics.inpainting import hole_errors, summarize_hole_errors
from ssl_bench.metrics.sharpness import gradient_energy, sharpness_ratio
from ssl_bench.runtime.performance import Performance
from ssl_bench.runtime.run_folder import RunFolder

FIGURE_IMAGES = 6
NO_MODEL = "none (no decoder)"
# Table 1's rows in the figure's and the record's order: (metric prefix, figure column title).
# ``nn_``'s title names its features ("NN pool5", "NN pixels").
ROWS = (("", "network"), ("nn_hog_", "NN HOG"), ("nn_", "NN {}"), ("telea_", "Telea"),
        ("ns_", "Navier-Stokes"), ("biharmonic_", "biharmonic"), ("fill_", "mean fill"))  # fmt: skip


@dataclass(frozen=True)
class Protocol:
    """``inpaint`` recipe keys (module docstring)."""

    image_size: int = 227  # used only when the weights have no run folder (a run fixes its own size)
    # the root's training images: Main trainval (VOC) or the train folder (Paris StreetView); or the
    # SynthVOC pretraining pool
    nn_database: Literal["trainval", "pool"] = "trainval"
    nn_database_max: int | None = None  # evenly spaced database images at most (null: all)
    # auto: the run's encoder (deepest tap, "pool5") with a decoder, else raw pixels
    nn_feature: Literal["auto", "pool5", "pixels"] = "auto"
    max_test_images: int | None = None  # evenly spaced held-out images at most (null: all)
    batch_size: int = 32
    workers: int = 2  # DataLoader workers, and threads for HOG and the classic inpainters


# --------------------------------------------------------------------------------------------------
# The model: the whole pretraining run, decoder included.


def load_inpainting_model(ctx: EvalContext) -> tuple[PretrainMethod | None, dict[str, Any] | None]:
    """The pretraining run's method with its decoder, rebuilt and loaded strictly; (None, config) if none.

    Returns:
        (method or None, the run's config or None when there is no run folder). The method is None for
        ``random``, a bare ``encoder.pt`` and methods that do not override ``inpaint`` (no decoder).
    """
    run = RunFolder.of_weights(ctx.weights)
    if run is None:
        return None, None
    if not run.has_decoder:
        return None, run.config
    method = run.load_method()  # checkpoint.pt, weights_only, loaded strictly
    # The record names encoder.pt: make sure the checkpoint's encoder is that one.
    encoder_state = read_weights_file(ctx.weights, "encoder weights")
    fold_bn = bool(((run.config or {}).get("train") or {}).get("fold_batch_norm", False))
    own = exported_encoder_state(method.encoder, fold_bn)
    if set(own) != set(encoder_state) or any(not torch.equal(own[k], encoder_state[k]) for k in own):
        raise CheckpointError(f"{ctx.weights} differs from the encoder in {run.checkpoint_path}")
    return freeze(method), run.config


def _batches(dataset: Dataset, ctx: EvalContext, desc: str) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(images [B,3,S,S] normalised, masks [B,1,S,S] bool) on ``ctx.device``, with a progress bar."""
    p: Protocol = ctx.protocol
    loader = make_loader(dataset, ctx, p.batch_size, p.workers, shuffle=False, collate_fn=collate)
    perf = eval_performance(ctx.device)
    with tqdm(total=len(dataset), desc=desc, unit="img", disable=not ctx.progress) as bar:
        for batch in loader:
            images = images_to(batch["image"], ctx.device, perf)
            if images.dtype == torch.uint8:  # the pretraining pipeline ships pixels, normalised per batch
                images = normalize_uint8(images)
            yield images, batch["mask"].to(ctx.device)
            bar.update(len(batch["index"]))


# --------------------------------------------------------------------------------------------------


@contextmanager
def _timed(seconds: dict[str, float], row: str) -> Iterator[None]:
    """Add the block's wall time to ``seconds[row]``."""
    start = time.perf_counter()
    yield
    seconds[row] = seconds.get(row, 0.0) + time.perf_counter() - start


def _context_encoder(
    ctx: EvalContext, method: PretrainMethod | None
) -> tuple[nn.Module | None, torch.Tensor]:
    """The network describing the context for the NN search (None: pixels), and the hole's fill value."""
    feature = ctx.protocol.nn_feature
    if feature == "pixels" or (feature == "auto" and method is None):
        # Any constant would do: it is the same in every image, so it cancels in the distances.
        return None, torch.zeros(3, device=ctx.device)
    if method is not None:  # the context encoder's own encoder, fed the way it was trained
        return method.encoder, method.fill.to(ctx.device)
    # nn_feature: pool5 without a decoder: the named encoder weights, holes filled with the suite's mean
    # pixel (0 in normalised units).
    return ctx.load_encoder(), torch.zeros(3, device=ctx.device)


@dataclass
class Databases:
    """The two NN inpainters over the same database images, and the database's mean pixel."""

    features: NearestNeighbourInpainter  # the network's features (or raw pixels)
    hog: NearestNeighbourInpainter
    mean_pixel: torch.Tensor  # (3,) in [0, 1] on 8-bit levels


def _build_databases(
    ctx: EvalContext,
    database: Dataset,
    encoder: nn.Module | None,
    fill: torch.Tensor,
    box: tuple[int, int, int, int],
    seconds: dict[str, float],
) -> Databases:
    """Both NN inpainters over ``database`` (features and HOG of every image's context) and its mean pixel."""
    features_nn = NearestNeighbourInpainter(box, "ip" if encoder is not None else "l2")
    hog_nn = NearestNeighbourInpainter(box, "l2")
    pixel_sum, pixel_count = torch.zeros(3, dtype=torch.float64), 0
    perf = eval_performance(ctx.device)
    threads = max(1, ctx.protocol.workers)
    for images, masks in _batches(database, ctx, "inpaint: NN database"):
        unit, masks_cpu = to_8bit(images.cpu()), masks.cpu()  # [B, 3, S, S], [B, 1, S, S]
        with _timed(seconds, "nn_"):
            with perf.autocast(ctx.device):
                features = context_features(images, masks, fill, encoder)  # [B, D]
            features_nn.add(features, unit)
        with _timed(seconds, "nn_hog_"):
            hog_nn.add(hog_context_features(unit, masks_cpu, box, threads), unit)
        pixel_sum += unit.sum(dim=(0, 2, 3))
        pixel_count += unit.shape[0] * unit.shape[2] * unit.shape[3]
        ctx.images_processed += len(images) if encoder is not None else 0
    return Databases(features_nn, hog_nn, (pixel_sum / pixel_count).mul(255.0).round().div(255.0))


@dataclass
class Inpainters:
    """Every row's way of filling the hole of a batch of test images (the network's when there is one)."""

    method: PretrainMethod | None
    encoder: nn.Module | None  # describes the context for the NN search (None: pixels)
    context_fill: torch.Tensor  # the hole's fill before the encoder sees it
    db: Databases
    box: tuple[int, int, int, int]  # the hole
    threads: int  # for HOG and the classic inpainters
    device: torch.device
    perf: Performance
    seconds: dict[str, float]  # each row's wall time, added up

    def __call__(
        self, images: torch.Tensor, masks: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """images [B, 3, S, S] normalised, masks [B, 1, S, S] on the device → the originals as 8-bit images
        and the masks, on the CPU, and each row's output {prefix: [B, 3, S, S]} in ``ROWS``' prefixes."""
        seconds, perf = self.seconds, self.perf
        target, masks_cpu = to_8bit(images.cpu()), masks.cpu()  # [B, 3, S, S], [B, 1, S, S]
        outputs: dict[str, torch.Tensor] = {}
        if self.method is not None:
            with _timed(seconds, ""):
                with perf.autocast(self.device):
                    predicted = self.method.inpaint(images, masks)  # [B, 3, S, S] normalised
                outputs[""] = to_8bit(predicted.cpu())
        with _timed(seconds, "nn_"):
            with perf.autocast(self.device):
                features = context_features(images, masks, self.context_fill, self.encoder)  # [B, D]
            outputs["nn_"] = self.db.features.inpaint(features, target, masks_cpu)[0]
        with _timed(seconds, "nn_hog_"):
            hog = hog_context_features(target, masks_cpu, self.box, self.threads)  # [B, D_hog]
            outputs["nn_hog_"] = self.db.hog.inpaint(hog, target, masks_cpu)[0]
        for name in CLASSIC_BASELINES:
            with _timed(seconds, f"{name}_"):
                outputs[f"{name}_"] = classic_inpaint(target, masks_cpu, name, self.threads)
        with _timed(seconds, "fill_"):
            outputs["fill_"] = fill_holes(target, masks_cpu, self.db.mean_pixel)
        return target, masks_cpu, outputs


class RowResults:
    """Per-image hole errors and fill detail of every row, and the first test images for the figure."""

    def __init__(self, titles: dict[str, str]) -> None:
        self.titles = titles  # prefix → figure column title, in ``ROWS``' order
        self.errors: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {prefix: [] for prefix in titles}
        self.energy: dict[str, list[torch.Tensor]] = {prefix: [] for prefix in titles}  # each [B] per batch
        self.original_energy: list[torch.Tensor] = []
        columns = ("masked input", *titles.values(), "original")
        self.columns: dict[str, list[torch.Tensor]] = {t: [] for t in columns}
        self.images = 0

    def add(self, outputs: dict[str, torch.Tensor], target: torch.Tensor, masks: torch.Tensor) -> None:
        """One batch: each row's outputs, the originals (8-bit, [B, 3, S, S]) and the masks [B, 1, S, S]."""
        for prefix, output in outputs.items():
            self.errors[prefix].append(hole_errors(output, target, masks))
            self.energy[prefix].append(gradient_energy(output, masks))
        self.original_energy.append(gradient_energy(target, masks))
        room = FIGURE_IMAGES - self.images
        if room > 0:
            white = fill_holes(target[:room], masks[:room], torch.ones(3, dtype=target.dtype))
            self.columns["masked input"].append(white)
            for prefix, output in outputs.items():
                self.columns[self.titles[prefix]].append(output[:room])
            self.columns["original"].append(target[:room])
        self.images += len(target)

    def metrics(self) -> Metrics:
        """Each row's L1 %, L2 %, PSNR and sharpness, under its prefix."""
        metrics: Metrics = {}
        for prefix, per_batch in self.errors.items():
            if per_batch:
                l1 = torch.cat([e[0] for e in per_batch])  # [N]
                mse = torch.cat([e[1] for e in per_batch])  # [N]
                metrics |= summarize_hole_errors(l1, mse, prefix)
                fills, originals = torch.cat(self.energy[prefix]), torch.cat(self.original_energy)  # [N] each
                metrics[f"{prefix}sharpness"] = sharpness_ratio(fills, originals)
        return metrics

    def save_figure(self, path: Path) -> list[str]:
        """One row per test image, one column per method: masked input, each method's output, original.

        Returns:
            The column titles.
        """
        shown = {title: torch.cat(images) for title, images in self.columns.items() if images}  # [n, 3, S, S]
        grid = [[to_image(column[i]) for column in shown.values()] for i in range(len(shown["original"]))]
        save_grid(grid, path, list(shown))
        return list(shown)


@register_evaluator("inpaint", protocol=Protocol, own_model=True,  # the run itself: load_inpainting_model
                    label="inpainting", metric="psnr_db", order=6)
@torch.no_grad()
def evaluate_inpainting(ctx: EvalContext) -> Metrics:
    """Centre-hole inpainting on held-out images: the network (if it has a decoder) and every baseline."""
    method, config = load_inpainting_model(ctx)
    # A context encoder's channel-wise layer fixes its input size; without one the recipe says.
    image_size = int(config["data"]["image_size"]) if config else ctx.protocol.image_size
    encoder, context_fill = _context_encoder(ctx, method)
    watched = method if method is not None else encoder  # the networks that must not change
    perf = eval_performance(ctx.device)
    if watched is not None:
        on_device(watched, ctx.device, perf)  # in place: ``method`` and ``encoder`` are the same modules

    data = held_out_images(ctx, image_size)
    mask = center_mask(image_size, area=HOLE_AREA)  # [1, S, S]
    box = hole_box(mask)
    nn_name = "pixels" if encoder is None else feature_tap(encoder)
    results = RowResults({prefix: title.format(nn_name) for prefix, title in ROWS})
    seconds: dict[str, float] = {}
    with frozen(watched) if watched is not None else nullcontext():
        db = _build_databases(ctx, data.database, encoder, context_fill, box, seconds)
        threads = max(1, ctx.protocol.workers)
        inpaint = Inpainters(method, encoder, context_fill, db, box, threads, ctx.device, perf, seconds)
        for images, masks in _batches(data.test, ctx, "inpaint: test"):
            target, masks_cpu, outputs = inpaint(images, masks)
            results.add(outputs, target, masks_cpu)
            ctx.images_processed += len(images) if watched is not None else 0

    metrics = results.metrics()
    figure = ctx.work_dir / "inpainting.png"
    shown = results.save_figure(figure)
    side = PIXEL_FEATURE_SIDE
    ctx.extra |= {
        "primary_metric": "psnr_db" if method is not None else "nn_psnr_db",
        "model": NO_MODEL if method is None else f"{config['method']} ({config['train'].get('steps')} steps)",
        "nn_feature": f"pixels ({side}x{side} context, Euclidean)" if encoder is None
                      else f"{feature_tap(encoder)} (L2-normalised, cosine)",
        "nn_hog_feature": "HOG of the context (9 orientations, 16x16 cells, 2x2-cell blocks, L2-Hys; "
                          "blocks overlapping the hole dropped), Euclidean",
        "nn_database": data.database_name,
        "test_data": data.test_name,
        "test_images": results.images,
        "image_size": image_size,
        "hole": f"centre {box[1] - box[0]}x{box[3] - box[2]} px of {image_size} px "
                f"({float(mask.float().mean()):.1%} of the image)",
        "fill_pixel": [round(float(v), 4) for v in db.mean_pixel],
        "metric_convention": "hole pixels only, 8-bit images in [0,1]; l1/l2 = 100*mean abs/squared error; "
                             "psnr = mean over images of 10*log10(1/MSE_i); sharpness = gradient energy of "
                             "the fills inside the hole / the originals' (metrics/sharpness.py)",
        "seconds": {(prefix or "network").rstrip("_"): round(t, 3) for prefix, t in seconds.items()},
        "figure": str(figure),
        "figure_columns": " / ".join(shown),
    }  # fmt: skip
    return metrics
