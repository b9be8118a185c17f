"""Semantic inpainting of a centre hole on held-out images (PAPER.md §4, Table 1), with two baselines.

Protocol (Pathak et al. 2016, Table 1: Paris StreetView, centre hole; "mean L1 loss, mean L2 loss, PSNR"):

- Held-out images: VOC ``Main/test``, centre crops at the pretraining run's image size (the recipe's
  ``image_size`` when there is no run), cut as for the pretraining sample grids: shorter side resized
  to the crop, then the centre. On SynthVOC the pretraining pool shares no image with ``Main/test``.
- Hole: the centre mask (``data/masks.py::center_mask``), one central square of 1/4 of the image
  (114×114 px at 227 px), filled with the model's own fill value before the model sees the image.
- The model: the whole pretraining run (``checkpoint.pt`` next to ``encoder.pt``) rebuilt from its
  ``config.yaml``, ``method.inpaint(image, mask)``; its prediction replaces the hole only.
- NN-inpainting baseline (Table 1, "NN-inpainting with context-encoder features" / "with HOG"): describe
  the VISIBLE context of every database image (hole filled with a constant) and of every test image;
  paste the hole of the nearest database image into the test image's hole. Features: the context
  encoder's pool5 map, L2-normalised, cosine search (``pool5``) when the run has a decoder; otherwise the
  context downsampled to 16×16 pixels, Euclidean search (``pixels``).
- Mean-fill baseline: the hole filled with the database's mean pixel (what a model must beat at least).

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
The same three numbers are reported for the NN baseline (``nn_*``) and the mean fill (``fill_*``).

NOTE: Table 1's numbers come from the authors' SEMANTIC-INPAINTING net (128-px input, 64-px centre hole,
L2 + adversarial loss, PAPER.md §1.1) on Paris StreetView, which is not available here. This suite's
context encoder is the FEATURE-LEARNING net (CaffeNet encoder, reconstruction loss only, random-region
masks by default), evaluated on VOC-layout images: the numbers are not directly comparable to Table 1.
NOTE: the paper does not say whether its L1/L2 numbers use [0, 1] or [-1, 1] pixel values, nor whether
PSNR is averaged per image (unverified); the choices above are documented and fixed here.
NOTE: the paper's NN baseline uses HOG features; scikit-image is not installed, so the feature-free
baseline is raw downsampled pixels of the context (``pixels``), not HOG.
NOTE: the context encoder is trained with random-region masks by default (PAPER.md §1.2), so a centre
hole is not what it learnt to fill; the semantic-inpainting net of Table 1 was trained on centre holes.
NOTE: the NN database is ``Main/trainval`` of the same root (or the SynthVOC pool with
``nn_database: pool``), capped at ``nn_database_max`` evenly spaced images; the paper's NN database is
not described beyond Paris StreetView (unverified).
NOTE: a run whose method has no decoder (supervised, random, datainit), a bare ``encoder.pt`` without its
run folder, or ``--weights random`` reports the baselines only (``ctx.extra["model"]`` says so).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset, Subset
from tqdm import tqdm

from ssl_bench.data.folder import ImageFolderIndex
from ssl_bench.data.masks import center_mask, fill_holes
from ssl_bench.data.pretrain import PretrainDataset, collate
from ssl_bench.data.synthvoc import synthvoc_pool
from ssl_bench.data.transforms import denormalize, normalize_uint8
from ssl_bench.data.voc import read_image_set
from ssl_bench.encoders import exported_encoder_state, read_weights_file
from ssl_bench.errors import CheckpointError, DataError
from ssl_bench.evaluators.base import EvalContext, Metrics, check_disjoint, register_evaluator
from ssl_bench.evaluators.engine import eval_performance, images_to, make_loader
from ssl_bench.evaluators.examples import save_grid, to_image
from ssl_bench.evaluators.features import freeze, frozen, tap_features
from ssl_bench.methods import PretrainMethod
from ssl_bench.metrics.inpainting import hole_errors, summarize_hole_errors
from ssl_bench.training.run_folder import RunFolder

# PAPER.md §1.2 / Table 1: one central square covering 1/4 of the image (64×64 of 128×128 in the paper).
HOLE_AREA = 0.25
TEST_SPLIT = "test"  # PAPER.md Table 1: held-out images
DATABASE_SPLIT = "trainval"  # NOTE: the paper's NN database is not described (unverified)
# NOTE: HOG is not available (no scikit-image); the context downsampled to 16×16 (768 values) stands in.
PIXEL_FEATURE_SIDE = 16
FIGURE_IMAGES = 6
NO_MODEL = "none (no decoder)"


@dataclass(frozen=True)
class Protocol:
    """``inpaint`` recipe keys (module docstring)."""

    image_size: int = 227  # used only when the weights have no run folder (a run fixes its own size)
    nn_database: Literal["trainval", "pool"] = "trainval"  # Main trainval, or the SynthVOC pretraining pool
    nn_database_max: int | None = None  # evenly spaced database images at most (null: all)
    nn_feature: Literal["auto", "pool5", "pixels"] = "auto"  # auto: pool5 with a decoder, else pixels
    max_test_images: int | None = None  # evenly spaced Main test images at most (null: all)
    batch_size: int = 32
    workers: int = 2


# --------------------------------------------------------------------------------------------------
# Nearest-neighbour inpainting.


def to_8bit(x: torch.Tensor) -> torch.Tensor:
    """Normalised images → [0, 1] rounded to 8-bit levels (k / 255), float64 for exact sums."""
    return denormalize(x.float()).double().mul(255.0).round().div(255.0)


def context_features(
    images: torch.Tensor, masks: torch.Tensor, fill: torch.Tensor, encoder: nn.Module | None = None
) -> torch.Tensor:
    """A vector describing what is visible around the hole.

    Args:
        images: normalised [N, 3, H, W]; masks: bool [N, 1, H, W]; fill: (3,) value put into the hole,
            so the hole carries no information (it is the same for every image).
        encoder: given, its pool5 map flattened and L2-normalised (``pool5``, cosine search); None, the
            filled image average-pooled to 16×16 (``pixels``, Euclidean search).

    Returns:
        float32 [N, D].
    """
    visible = fill_holes(images, masks, fill)  # [N, 3, H, W]
    if encoder is None:
        return F.adaptive_avg_pool2d(visible.float(), PIXEL_FEATURE_SIDE).flatten(1)  # [N, 3·16·16]
    return F.normalize(tap_features(encoder, visible, "pool5", None), dim=1)  # [N, 256·s·s]


def hole_box(mask: torch.Tensor) -> tuple[int, int, int, int]:
    """(top, bottom, left, right), bottom/right exclusive, of the hole of one mask [1, H, W]."""
    rows = mask[0].any(1).nonzero()
    cols = mask[0].any(0).nonzero()
    if len(rows) == 0:
        raise ValueError("the mask has no hole")
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


class NearestNeighbourInpainter:
    """Fill a hole with the hole of the database image whose visible context is nearest (faiss, exact).

    Only the hole's bounding box of each database image is kept, as 8-bit values (a 227-px database of
    10,000 images holds 390 MB of holes instead of 6 GB of float images).

    Args:
        box: (top, bottom, left, right) of the hole, the same for every image (the centre mask).
        metric: ``ip`` (inner product: cosine on L2-normalised features) or ``l2``.
    """

    def __init__(self, box: tuple[int, int, int, int], metric: str) -> None:
        if metric not in ("ip", "l2"):
            raise ValueError(f"metric must be 'ip' or 'l2', got {metric!r}")
        self.box, self.metric = box, metric
        self.index: faiss.Index | None = None
        self._holes: list[torch.Tensor] = []
        self.holes: torch.Tensor | None = None

    def __len__(self) -> int:
        return 0 if self.index is None else self.index.ntotal

    def add(self, features: torch.Tensor, images: torch.Tensor) -> None:
        """features: [B, D]; images: [B, 3, H, W] in [0, 1] on 8-bit levels (see ``to_8bit``)."""
        if self.index is None:
            dim = features.shape[1]
            self.index = faiss.IndexFlatIP(dim) if self.metric == "ip" else faiss.IndexFlatL2(dim)
        self.index.add(np.ascontiguousarray(features.detach().cpu().float().numpy()))
        top, bottom, left, right = self.box
        hole = images[..., top:bottom, left:right]  # [B, 3, h, w]
        self._holes.append(hole.mul(255.0).round().to(torch.uint8).cpu())
        self.holes = None

    def search(self, features: torch.Tensor) -> torch.Tensor:
        """Index of the nearest database image for each query: [N] int64."""
        if self.index is None or self.index.ntotal == 0:
            raise RuntimeError("the nearest-neighbour database is empty")
        _, nearest = self.index.search(np.ascontiguousarray(features.detach().cpu().float().numpy()), 1)
        return torch.from_numpy(nearest[:, 0]).long()  # [N]

    def inpaint(
        self, features: torch.Tensor, images: torch.Tensor, masks: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Paste each query's nearest database hole into its hole.

        Args:
            features: [N, D] context features of the queries; images: [N, 3, H, W] in [0, 1];
            masks: bool [N, 1, H, W] (holes inside ``box``).

        Returns:
            (inpainted images [N, 3, H, W] like ``images``, nearest database indices [N]).
        """
        if self.holes is None:
            self.holes = torch.cat(self._holes)  # [M, 3, h, w] uint8
            self._holes = [self.holes]
        nearest = self.search(features)
        rows, cols = slice(self.box[0], self.box[1]), slice(self.box[2], self.box[3])
        pasted = self.holes[nearest].to(images.dtype).div(255.0)  # [N, 3, h, w]
        out = images.clone()
        out[..., rows, cols] = torch.where(masks[..., rows, cols], pasted, images[..., rows, cols])
        return out, nearest


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


# --------------------------------------------------------------------------------------------------
# Data.


def _evenly_spaced(n: int, cap: int | None) -> list[int]:
    if cap is None or cap >= n:
        return list(range(n))
    return np.unique(np.linspace(0, n - 1, cap).round().astype(int)).tolist()


def _centre_crops(index: ImageFolderIndex, positions: list[int], image_size: int) -> Dataset:
    """Items {"image" uint8 [3,S,S], "mask" centre hole [1,S,S], "index"} for the listed images."""
    dataset = PretrainDataset(index, image_size, "center", {"area": HOLE_AREA}, augment=False)
    return Subset(dataset, positions)


def _voc_images(voc_root: Path, ids: list[str], image_size: int) -> Dataset:
    index = ImageFolderIndex(voc_root / "JPEGImages", labels="none")
    position = {index.path(i).stem: i for i in range(len(index))}
    missing = [i for i in ids if i not in position]
    if missing:
        raise DataError(
            f"{voc_root / 'JPEGImages'}: no image for {len(missing)} listed id(s), e.g. {missing[0]}"
        )
    return _centre_crops(index, [position[i] for i in ids], image_size)


def _database(ctx: EvalContext, test_ids: list[str], image_size: int) -> tuple[Dataset, str]:
    """The NN database images and a description; refuses any overlap with the test images."""
    cap = ctx.protocol.nn_database_max
    if ctx.protocol.nn_database == "trainval":
        ids = read_image_set(ctx.voc_root, DATABASE_SPLIT, "Main")
        ids = [ids[i] for i in _evenly_spaced(len(ids), cap)]
        check_disjoint(ids, test_ids, "inpainting NN database (Main trainval) vs Main test")
        return _voc_images(ctx.voc_root, ids, image_size), f"Main {DATABASE_SPLIT} ({len(ids)} images)"
    pool = synthvoc_pool(ctx.voc_root)
    if not pool.is_dir():
        raise DataError(f"nn_database: pool needs a SynthVOC root (no pretraining pool at {pool})")
    index = ImageFolderIndex(pool, labels="none")
    positions = _evenly_spaced(len(index), cap)
    names = [index.path(i).stem for i in positions]
    check_disjoint(names, test_ids, "inpainting NN database (pool) vs Main test")
    return _centre_crops(index, positions, image_size), f"SynthVOC pool ({len(positions)} images)"


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


def _build_database(
    ctx: EvalContext, database: Dataset, encoder: nn.Module | None, fill: torch.Tensor, box: tuple[int, ...]
) -> tuple[NearestNeighbourInpainter, torch.Tensor]:
    """The NN inpainter over ``database`` and the database's mean pixel (3,) in [0, 1] on 8-bit levels."""
    inpainter = NearestNeighbourInpainter(box, "ip" if encoder is not None else "l2")
    pixel_sum, pixel_count = torch.zeros(3, dtype=torch.float64), 0
    perf = eval_performance(ctx.device)
    for images, masks in _batches(database, ctx, "inpaint: NN database"):
        with perf.autocast(ctx.device):
            features = context_features(images, masks, fill, encoder)  # [B, D]
        unit = to_8bit(images.cpu())  # [B, 3, S, S]
        inpainter.add(features, unit)
        pixel_sum += unit.sum(dim=(0, 2, 3))
        pixel_count += unit.shape[0] * unit.shape[2] * unit.shape[3]
        ctx.images_processed += len(images) if encoder is not None else 0
    return inpainter, (pixel_sum / pixel_count).mul(255.0).round().div(255.0)


@register_evaluator("inpaint", protocol=Protocol)
@torch.no_grad()
def evaluate_inpainting(ctx: EvalContext) -> Metrics:
    """Centre-hole inpainting on Main test: the model (if it has a decoder), NN inpainting, mean fill."""
    method, config = load_inpainting_model(ctx)
    # A context encoder's channel-wise layer fixes its input size; without one the recipe says.
    image_size = int(config["data"]["image_size"]) if config else ctx.protocol.image_size
    encoder, context_fill = _context_encoder(ctx, method)
    watched = method if method is not None else encoder  # the networks that must not change
    if watched is not None:
        watched.to(ctx.device)
        if ctx.device.type == "cuda":
            watched.to(memory_format=torch.channels_last)

    test_ids = read_image_set(ctx.voc_root, TEST_SPLIT, "Main")
    test_ids = [test_ids[i] for i in _evenly_spaced(len(test_ids), ctx.protocol.max_test_images)]
    database, database_name = _database(ctx, test_ids, image_size)
    mask = center_mask(image_size, area=HOLE_AREA)  # [1, S, S]
    box = hole_box(mask)
    perf = eval_performance(ctx.device)

    # Inpaint each test image three ways; keep per-image errors and the first few images for the figure.
    errors: dict[str, list[tuple[torch.Tensor, torch.Tensor]]] = {"": [], "nn_": [], "fill_": []}
    rows: dict[str, list[torch.Tensor]] = {"masked input": [], "model": [], "NN": [], "original": []}
    with frozen(watched) if watched is not None else nullcontext():
        nn_inpainter, mean_pixel = _build_database(ctx, database, encoder, context_fill, box)
        for images, masks in _batches(_voc_images(ctx.voc_root, test_ids, image_size), ctx, "inpaint: test"):
            target, masks_cpu = to_8bit(images.cpu()), masks.cpu()  # [B, 3, S, S], [B, 1, S, S]
            with perf.autocast(ctx.device):
                features = context_features(images, masks, context_fill, encoder)  # [B, D]
                predicted = method.inpaint(images, masks) if method is not None else None  # [B, 3, S, S]
            outputs = {"nn_": nn_inpainter.inpaint(features, target, masks_cpu)[0],
                       "fill_": fill_holes(target, masks_cpu, mean_pixel)}  # fmt: skip
            if predicted is not None:
                outputs[""] = to_8bit(predicted.cpu())
            for prefix, output in outputs.items():
                errors[prefix].append(hole_errors(output, target, masks_cpu))
            ctx.images_processed += len(images) if watched is not None else 0
            room = FIGURE_IMAGES - sum(len(x) for x in rows["original"])
            for row, images_of_row in (("masked input", outputs["fill_"]), ("model", outputs.get("")),
                                       ("NN", outputs["nn_"]), ("original", target)):  # fmt: skip
                if room > 0 and images_of_row is not None:
                    rows[row].append(images_of_row[:room])

    metrics: Metrics = {}
    for prefix, per_batch in errors.items():
        if per_batch:
            l1 = torch.cat([e[0] for e in per_batch])  # [N]
            mse = torch.cat([e[1] for e in per_batch])  # [N]
            metrics |= summarize_hole_errors(l1, mse, prefix)
    figure = ctx.work_dir / "inpainting.png"
    save_grid([[to_image(x) for x in torch.cat(r)] for r in rows.values() if r], figure)

    side = PIXEL_FEATURE_SIDE
    ctx.extra |= {
        "primary_metric": "psnr_db" if method is not None else "nn_psnr_db",
        "model": NO_MODEL if method is None else f"{config['method']} ({config['train'].get('steps')} steps)",
        "nn_feature": f"pixels ({side}x{side} context, Euclidean)" if encoder is None
                      else "pool5 (L2-normalised, cosine)",
        "nn_database": database_name,
        "test_images": len(test_ids),
        "image_size": image_size,
        "hole": f"centre {box[1] - box[0]}x{box[3] - box[2]} px of {image_size} px "
                f"({float(mask.float().mean()):.1%} of the image)",
        "fill_pixel": [round(float(v), 4) for v in mean_pixel],
        "metric_convention": "hole pixels only, 8-bit images in [0,1]; l1/l2 = 100*mean abs/squared error; "
                             "psnr = mean over images of 10*log10(1/MSE_i)",
        "figure": str(figure),
        "figure_rows": " / ".join(name for name, r in rows.items() if r),
    }  # fmt: skip
    return metrics
