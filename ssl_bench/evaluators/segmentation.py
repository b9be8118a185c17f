"""Semantic segmentation transfer: FCN-32s on the AlexNet trunk, scored by mean IU (PAPER.md §3, §5).

Protocol (PAPER.md §3: "FCN-32s with the AlexNet trunk; the same lab's follow-up used VOC2011+SBD train,
seg11valid (736 images) test, lr 1e-4→1e-5→1e-6, 50k iterations each"). The network is Long et al.'s
``voc-fcn-alexnet`` (shelhamer/fcn.berkeleyvision.org ``voc-fcn-alexnet/net.py`` and ``solver.prototxt``):

- trunk conv1…pool5 (the encoder under test, fine-tuned), then fc6 as a 6×6 convolution with 4096 outputs and
  fc7 as a 1×1 convolution with 4096 outputs, each with ReLU and dropout 0.5, a 1×1 score layer with
  21 outputs (20 classes + background), and a stride-32 transposed convolution (kernel 63) initialised to
  bilinear interpolation and kept fixed, as FCN-32s' ``upscore`` (``lr_mult: 0``);
- the input is padded by 100 px on every side (FCN's ``conv1 pad: 100``) so that even small images give a
  score map, and the upsampled map is cropped back to the image at the offset where score cell ``n`` sits
  over its receptive-field centre (FCN's ``crop`` layer; offset 18 for CaffeNet, as in FCN);
- per-pixel softmax cross-entropy that ignores the 255 boundary pixels; SGD, momentum 0.9, weight decay
  5e-4, lr 1e-4 "for normalized softmax" (FCN's AlexNet solver) with 20 images per update (its
  ``iter_size: 20``), dropped ×0.1 after 50k and 100k of 150k iterations (the follow-up's schedule);
- train on ``Segmentation/train`` plus SBD's ``train`` and ``val`` lists when SBD is given (``bench eval
  --sbd DIR`` or ``sbd_root``), minus every test image (``ssl_bench.data.sbd``), test on ``Segmentation/val``
  whole images at full size, batch 1. FCN's AlexNet net trains on SBD (8,498 images); on VOC's 1,464 alone
  mean IU is systematically lower (PAPER.md §3). A recipe that reproduces an SBD protocol sets
  ``sbd_expected: true`` (the ``paper`` profile): without SBD the run then logs a warning and its record
  says ``protocol_deviation``; every record says ``sbd: true|false``;
- scores from one confusion matrix over the whole test set (``SegmentationConfusion``, FCN ``score.py``):
  mean IU (primary), pixel accuracy, mean accuracy, frequency-weighted IU and each class's IU,
  background included.

NOTE: fc6 and fc7 are new layers, not an ImageNet classifier as in FCN: every encoder under test
(``encoder.pt``) is conv1…pool5 only, so they are new for every row alike. They start from He-normal
weights rescaled on 16 training images to zero-mean, unit-variance pre-activations per channel (Krähenbühl
et al.'s within-layer data-dependent init, PAPER.md §2; ``head_init: he`` skips it): pool5 activations differ
by ~100× between encoders (≈1e-3 for the Gaussian std-0.01 trunk), and the head's speed of learning should
not depend on that scale. The score layer starts at zero, as in FCN ("random init yielded neither better
performance nor faster convergence").
NOTE: the loss is the mean over non-ignored pixels of the whole batch (``voc-fcn-alexnet/net.py``:
``SoftmaxWithLoss`` with ``normalize=True``, one image per pass); with 20 images per batch this is the
``iter_size: 20`` average up to per-image pixel-count weighting.
NOTE: training uses fixed-size random crops with horizontal flips instead of FCN's whole images at batch 1,
so that images batch together; crops pad smaller images with the mean pixel and the label 255 (ignored).
At the paper's ``crop_size: 500`` every VOC image (longest side 500) fits whole, so only flips and the
image's placement vary.
NOTE: the paper's seg11valid (VOC2011 val minus SBD train, 736 images) is replaced by the test split the
VOC root names (VOC2012 ``val`` on real data); SBD images of the test split are dropped from training instead,
and SBD's ``val`` list is trained on too (FCN trains on SBD ``train`` only: ``sbd_splits: [train]``).
NOTE: pooling uses PyTorch's floor rounding (Caffe rounds up), so the bottom/right padding grows by up to
one stride where needed to keep the output covering the whole image; the alignment is unchanged.
NOTE: the fixed bilinear ``upscore`` (each class upsampled on its own: FCN's weights are zero off the
diagonal) and its crop are computed as two matrix products, ``A_h @ scores @ A_w.T``, exactly the
transposed convolution since the bilinear kernel is separable; PyTorch's CPU transposed convolution with a
63×63 kernel is about 50× slower. A learned upsampling is not offered (FCN-32s keeps it fixed).
NOTE: gradients are clipped to norm 10, as in Krähenbühl's ``voc-classification`` fine-tuning (PAPER.md §3;
FCN does not clip): the data-dependent init scales the new head to the trunk's activations, so a Gaussian
std-0.01 trunk receives ~100× larger gradients than a trained one, and unclipped SGD diverges on it.
NOTE: ``head_lr_mult`` (default 1, FCN's single lr) multiplies the lr of the new fc6/fc7/score layers; the
smoke recipe raises it so that the new head moves within its few iterations (as the ``cls`` smoke recipe).
NOTE: biases get the same learning rate and weight decay as weights; ``voc-fcn-alexnet/net.py`` does so too
for every layer but ``score_fr``, whose bias has lr ×2 and no decay (``bias_lr_mult`` applies to all layers).
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset, Subset
from tqdm import tqdm

from ssl_bench.data.batches import endless_batches
from ssl_bench.data.sbd import SBD_SPLITS
from ssl_bench.data.segmentation import TrainTransform, segmentation_training_set, test_transform
from ssl_bench.data.voc import VOC_CLASSES, VOCSegmentation, load_segmentation_mask, read_image_set
from ssl_bench.errors import RecipeError
from ssl_bench.evaluators.base import EvalContext, Metrics, check_disjoint, register_evaluator
from ssl_bench.evaluators.engine import (
    TRAIN_LOSS_DEFINITION,
    FinetuneProtocol,
    data_dependent_init_,
    finetune,
    images_to,
    loss_summary,
    make_loader,
    on_device,
    protocol_performance,
    sgd,
    training_loader,
)
from ssl_bench.evaluators.examples import palette_image, save_grid, to_image
from ssl_bench.evaluators.segmentation_model import DROPOUT, FC_WIDTH, INPUT_PAD, NUM_CLASSES, FCN32s
from ssl_bench.metrics import (
    SegmentationConfusion,
    class_pixel_counts,
    constant_prediction_miou,
    pixel_prior_cross_entropy,
)
from ssl_bench.runtime.performance import Performance

log = logging.getLogger(__name__)

IGNORE_INDEX = 255  # VOC object boundaries / void
CLASS_NAMES = ("background", *VOC_CLASSES)


@dataclass(frozen=True)
class Protocol(FinetuneProtocol):
    """``seg`` recipe keys; defaults: FCN's ``voc-fcn-alexnet`` and the follow-up's schedule (docstring)."""

    RENAMED: ClassVar[dict[str, str]] = {**FinetuneProtocol.RENAMED, "head_width": "fc_width",
                                         "head_dropout": "dropout", "flip": "hflip"}  # fmt: skip
    iterations: int = 150_000  # 3 × 50k (PAPER.md §3 follow-up)
    batch_size: int = 20  # FCN iter_size 20 at batch 1
    lr: float = 1e-4  # FCN AlexNet solver, "lr for normalized softmax"
    lr_steps: tuple[int, ...] = (50_000, 100_000)  # ×0.1 at each: 1e-4 → 1e-5 → 1e-6
    lr_gamma: float = 0.1
    weight_decay: float = 5e-4
    head_lr_mult: float = 1.0  # the new fc6/fc7/score layers (FCN: 1; see the NOTE above)
    grad_clip: float | None = 10.0  # Krähenbühl's voc-classification fine-tuning (FCN does not clip: NOTE)
    workers: int = 4
    train_split: str = "train"  # Segmentation/train
    test_split: str = "val"  # Segmentation/val
    sbd_root: str | None = None  # SBD's dataset folder (bench eval --sbd): joins training (docstring)
    sbd_splits: tuple[str, ...] = SBD_SPLITS  # SBD lists trained on (FCN: train only; NOTE above)
    sbd_expected: bool = False  # the protocol trains with SBD: warn and record when it is missing
    max_test_images: int | None = None  # NOTE: a smoke-budget subset, the first ids of the split
    crop_size: int = 500  # VOC's longest side: every image fits whole
    hflip: bool = True
    fc_width: int = FC_WIDTH  # fc6 / fc7 outputs (FCN voc-fcn-alexnet)
    dropout: float = DROPOUT
    input_pad: int = INPUT_PAD  # FCN conv1 pad 100
    head_init: Literal["data", "he"] = "data"  # "data": fc6/fc7 rescaled on training images (NOTE above)
    head_init_images: int = 16
    figure_images: int = 4

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = [s for s in self.sbd_splits if s not in SBD_SPLITS]
        if unknown or not self.sbd_splits:
            raise RecipeError(f"sbd_splits {list(self.sbd_splits)}: choose one or more of {list(SBD_SPLITS)}")


# --- training -----------------------------------------------------------------------------------------------


def segmentation_loss(
    logits: torch.Tensor, target: torch.Tensor, ignore_index: int = IGNORE_INDEX
) -> torch.Tensor:
    """Softmax cross-entropy averaged over the non-ignored pixels of the batch (0 when there are none).

    logits: [N, C, H, W]; target: [N, H, W] int64 with classes or ``ignore_index``.
    """
    total = F.cross_entropy(logits.float(), target, ignore_index=ignore_index, reduction="sum")
    return total / (target != ignore_index).sum().clamp(min=1)


def training_step(
    model: FCN32s, batch: tuple[torch.Tensor, torch.Tensor], device: torch.device, perf: Performance
) -> tuple[torch.Tensor, int]:
    """The loss of one training batch (images [B, 3, S, S], labels [B, S, S]) and its number of images."""
    x, y = batch
    logits = model(images_to(x, device, perf))  # [B, 21, S, S]
    return segmentation_loss(logits, y.to(device, non_blocking=True)), x.shape[0]


def voc_pixel_counts(voc_root: Path, ids: list[str]) -> tuple[np.ndarray, int]:
    """Ground-truth pixels of each class over the ``SegmentationClass`` masks of ``ids`` (255 left out).

    Returns:
        ((21,) int64 counts, number of masks read); ids without a VOC mask (SBD images) are skipped.
    """
    paths = [Path(voc_root) / "SegmentationClass" / f"{i}.png" for i in ids]
    paths = [path for path in paths if path.is_file()]
    masks = (np.asarray(load_segmentation_mask(path)) for path in paths)
    return class_pixel_counts(masks, NUM_CLASSES, IGNORE_INDEX), len(paths)


# --- testing ------------------------------------------------------------------------------------------------


@torch.no_grad()
def _test(
    model: FCN32s, dataset: Dataset, ids: list[str], ctx: EvalContext, perf: Performance, out_dir: Path
) -> tuple[SegmentationConfusion, list[tuple[torch.Tensor, np.ndarray, np.ndarray]]]:
    """Whole test images at full size, batch 1; predictions saved as VOC palette PNGs ``out_dir/<id>.png``."""
    p: Protocol = ctx.protocol
    loader = make_loader(dataset, ctx, 1, p.workers, shuffle=False)
    confusion = SegmentationConfusion(NUM_CLASSES, ignore_index=IGNORE_INDEX)
    shown: list[tuple[torch.Tensor, np.ndarray, np.ndarray]] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    model.eval()
    for i, (x, y) in enumerate(tqdm(loader, desc="seg test", unit="img", disable=not ctx.progress,
                                    dynamic_ncols=True)):
        x = images_to(x, ctx.device, perf)  # [1, 3, H, W]
        with perf.autocast(ctx.device):
            logits = model(x)  # [1, 21, H, W]
        pred = logits.argmax(1)[0].to(torch.uint8).cpu().numpy()  # [H, W]
        target = y[0].numpy()
        confusion.update(pred, target)
        palette_image(pred).save(out_dir / f"{ids[i]}.png")
        ctx.images_processed += 1
        if len(shown) < p.figure_images:
            shown.append((x[0].float().cpu(), target, pred))
    return confusion, shown


@register_evaluator("seg", protocol=Protocol, label="segmentation", metric="miou", order=2,
                    trivial="all background", chance="the pixel-class prior")
def evaluate_segmentation(ctx: EvalContext) -> Metrics:
    """Fine-tune FCN-32s on the encoder and return mean IU and friends on the test split.

    Returns:
        ``miou`` (primary), ``pixel_acc``, ``mean_acc``, ``fwiou`` and ``iou_<class>`` for the 21 classes
        (``iou_background`` included; NaN for a class absent from both ground truth and predictions).
    """
    p: Protocol = ctx.protocol
    torch.manual_seed(ctx.seed)
    perf = protocol_performance(ctx.device, p)
    train_set, train_ids, test_set, test_ids = _datasets(ctx, p)

    model = FCN32s(ctx.load_encoder(), ctx.arch, fc_width=p.fc_width, dropout=p.dropout, pad=p.input_pad)
    model = on_device(model, ctx.device, perf)
    if p.head_init == "data":
        count = min(p.head_init_images, len(train_set))
        images = torch.stack([train_set[i][0] for i in range(count)]).to(ctx.device)
        data_dependent_init_(model, (model.fc6, model.fc7), model.pool5, images)

    loader = training_loader(train_set, ctx, p)
    step = functools.partial(training_step, model, device=ctx.device, perf=perf)
    optimizer = sgd(model.encoder, (model.fc6, model.fc7, model.score), p)
    losses = finetune(ctx, model, optimizer, endless_batches(loader), step, p, perf, "seg train")

    predictions = ctx.work_dir / "predictions"
    confusion, shown = _test(model, test_set, test_ids[: len(test_set)], ctx, perf, predictions)
    rows = [[to_image(x, normalised=True), palette_image(gt), palette_image(pred)] for x, gt, pred in shown]
    titles = ("image", "ground truth", "prediction")
    figure = save_grid(rows, ctx.work_dir / "qualitative.png", titles) if shown else None
    np.save(ctx.work_dir / "confusion.npy", confusion.matrix)

    ctx.extra |= {
        "primary_metric": "miou",
        "metric": "mean IU over 21 classes (background included) from one confusion matrix over the "
                  "test set, 255 ignored (FCN score.py)",
        "train_split": f"Segmentation/{p.train_split}",
        "train_images": len(train_set),
        "test_split": f"Segmentation/{p.test_split}",
        "test_images": len(test_set),
        "model": f"FCN-32s, fc width {model.fc7.out_channels}, input pad {model.pad}, "
                 f"crop offset {model.offset}, fixed bilinear ×32 upsampling",
        "predictions_dir": str(predictions), "confusion": str(ctx.work_dir / "confusion.npy"),
        "figure": str(figure) if figure else None,
    }  # fmt: skip
    return _metrics(ctx, confusion, losses, train_ids)


def _datasets(ctx: EvalContext, p: Protocol) -> tuple[Dataset, list[str], Dataset, list[str]]:
    """The training set (VOC, and SBD where given) and the test set, each with its image ids; checked
    disjoint. A training set without the SBD the protocol expects is logged and recorded as a deviation."""
    test_set: Dataset = VOCSegmentation(ctx.voc_root, p.test_split, transform=test_transform)
    test_ids = read_image_set(ctx.voc_root, p.test_split, "Segmentation")
    if p.max_test_images is not None and p.max_test_images < len(test_ids):
        test_set = Subset(test_set, range(p.max_test_images))
    transform = TrainTransform(p.crop_size, IGNORE_INDEX, p.hflip)
    train_set, train_ids, notes = segmentation_training_set(
        ctx.voc_root, p.train_split, transform, test_ids, p.sbd_root or None, p.sbd_splits
    )
    ctx.extra |= notes
    if p.sbd_expected and not notes["sbd"]:
        deviation = (f"trained on VOC Segmentation/{p.train_split} alone ({len(train_ids)} images): not the "
                     "paper's protocol, which adds SBD (PAPER.md §3; pass --sbd benchmark_RELEASE/dataset)")
        log.warning("seg: %s", deviation)
        ctx.extra["protocol_deviation"] = deviation
    check_disjoint(train_ids, test_ids, "seg")
    return train_set, train_ids, test_set, test_ids


def _metrics(
    ctx: EvalContext, confusion: SegmentationConfusion, losses: list[float], train_ids: list[str]
) -> Metrics:
    """Mean IU and friends from the test confusion, the all-background answer's mean IU, and the final
    training loss beside the pixel-class prior's."""
    scores = confusion.compute()
    metrics: Metrics = {key: float(scores[key]) for key in ("miou", "pixel_acc", "mean_acc", "fwiou")}
    metrics |= {f"iou_{name}": float(v) for name, v in zip(CLASS_NAMES, scores["iou"], strict=True)}
    # Issue #22: the all-background answer's mean IU on the same test pixels (the confusion's rows are the
    # test ground truth), and the final training loss next to the pixel-class prior's loss.
    metrics["trivial_miou"] = constant_prediction_miou(confusion.matrix.sum(axis=1), label=0)
    train_counts, masks_read = voc_pixel_counts(ctx.voc_root, train_ids)
    metrics["train_loss"], curve = loss_summary(losses)
    metrics["chance_loss"] = pixel_prior_cross_entropy(train_counts)
    ctx.extra |= {
        "trivial_level": "trivial_miou: mean IU of predicting background at every test pixel",
        "train_loss_definition": TRAIN_LOSS_DEFINITION,
        "train_loss_curve": curve,
        "chance_loss_definition": f"chance_loss: entropy (nats) of the pixel-class prior of the {masks_read} "
        "VOC training masks (255 left out): the per-pixel loss of the best constant logits; SBD masks "
        "not counted",
    }
    return metrics
