"""VOC2007 multi-label classification by fine-tuning the whole network (task ``cls``, PAPER.md §3).

Protocol source: Krähenbühl et al.'s fine-tuning code ``philkr/voc-classification`` (``train_cls.py``), which
produced the classification column of the paper's Table 2 (ImageNet 78.2, random 53.3, context encoder 56.5):

* the pretrained trunk (conv1…pool5) gets new fc6/fc7 layers (ReLU, dropout 0.5: AlexNet's head) and a
  20-way fc8 initialised N(0, 0.01); every layer is trained;
* Caffe SGD, momentum 0.9, base lr 1e-3 (biases ×2), weight decay 1e-6, gradient L2 norm clipped to 10,
  batch 16, 80k iterations, lr ×0.5 every 10k;
* per-class sigmoid cross-entropy; a difficult label (0 in the devkit files) is left out of the loss;
* augmentation: random scale in [0.5, 2], random 227×227 crop, random mirror;
* test: 10 crops drawn with the training augmentation, fc8 scores summed over crops;
* metric: scikit-learn's non-interpolated AP (the paper's number). The VOC2007 11-point and VOC2010+ area
  variants are reported next to it, each under its own key (PAPER.md §5).

Trained on Main ``trainval``, tested on Main ``test`` (refused if they overlap).

NOTE: fc6/fc7 are initialised with CaffeNet's fillers (N(0, 0.005), bias 0.1); the paper does not say how its
new fc6/fc7 were initialised (**unverified**); fc8 follows voc-classification (N(0, 0.01), bias 0).
``head_init: data`` (the smoke recipe) rescales fc6/fc7 instead, on a few training images, to zero-mean,
unit-variance pre-activations (Krähenbühl et al.'s within-layer init, PAPER.md §2, as the ``seg`` head):
pool5 activations of different trunks differ in scale by orders of magnitude, and with the fillers a trunk
whose pool5 is small feeds fc8 an almost constant vector that a short schedule cannot move.
NOTE: the scale factor is drawn uniformly in [min_scale, max_scale] and applied to the image as stored
(optionally after resizing its shorter side to ``resize``); where the scaled image is smaller than the crop,
the crop is padded with the mean pixel (0 after normalisation). The Caffe data layer's exact sampling of the
scale and its padding are **unverified**.
NOTE: PyTorch SGD keeps ``v = m·v + g`` and steps ``lr·v``; Caffe keeps ``v = m·v + lr·g``. The two agree
except right after an lr drop (PyTorch's momentum is rescaled at once, Caffe's decays in).
NOTE: whether voc-classification raises the lr of the new fc layers is **unverified** (a public fork of it
multiplies fc6/fc7/fc8's lr by 10); ``head_lr_mult`` (default 1, the solver's base lr everywhere) switches it.
NOTE: the loss is summed over classes and averaged over the images of the batch, as Caffe's sigmoid
cross-entropy layer normalises by the batch size.
NOTE: voc-classification breaks score ties pessimistically (it subtracts 1e-5 from positives' scores before
scikit-learn's AP); ``map_sklearn`` here groups tied scores as scikit-learn does. Summed fc8 scores are
practically never tied, so the two agree.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ssl_bench.data.pretrain import EpochSampler, sample_generator
from ssl_bench.data.transforms import normalize, to_tensor
from ssl_bench.data.voc import VOC_CLASSES, VOCClassification
from ssl_bench.errors import RecipeError
from ssl_bench.evaluators.base import EvalContext, Metrics, check_disjoint, register_evaluator
from ssl_bench.metrics import AP_VARIANTS, mean_ap, voc_classification_ap
from ssl_bench.training.loop import endless_batches

# Protocol constants (voc-classification train_cls.py and its Caffe solver); recipes may override each one.
ITERATIONS = 80_000
BATCH_SIZE = 16
BASE_LR = 1e-3
BIAS_LR_MULT = 2.0  # Caffe convention, lr_mult 1 for weights and 2 for biases
HEAD_LR_MULT = 1.0  # lr multiplier of the new fc6/fc7/fc8 (see the NOTE above)
HEAD_INIT = "filler"  # "filler": CaffeNet's N(0, 0.005) / 0.1; "data": rescaled on training images (NOTE)
HEAD_INIT_IMAGES = 32
MOMENTUM = 0.9
WEIGHT_DECAY = 1e-6
LR_STEP = 10_000
LR_GAMMA = 0.5
GRAD_CLIP_NORM = 10.0  # Caffe clip_gradients: the global L2 norm of all gradients
MIN_SCALE, MAX_SCALE = 0.5, 2.0
CROP_SIZE = 227
TEST_CROPS = 10
FC_WIDTH = 4096
DROPOUT = 0.5
FC8_STD = 0.01
FC67_STD, FC67_BIAS = 0.005, 0.1  # CaffeNet's fc6/fc7 fillers (see the NOTE above)
TRAIN_SPLIT, TEST_SPLIT = "trainval", "test"
PRIMARY_AP = "sklearn"

# Test crops draw from per-sample generators of "epochs" far beyond any training epoch, so a test crop
# never repeats a training draw of the same image.
_TEST_EPOCH_OFFSET = 1_000_000
_HEAD_INIT_EPOCH = 2_000_000  # the crops that set a data-dependent head init


# ------------------------------------------------------------------------------------------------------
# Metrics shared by the three classification evaluators (cls, cls-linear, knn).


def classification_metrics(ctx: EvalContext, scores: np.ndarray, labels: np.ndarray, primary: str) -> Metrics:
    """mAP in every AP variant, and per-class AP of the primary one; names the variants in ``ctx.extra``.

    Args:
        ctx: the evaluation context (its ``extra`` gets ``primary_metric``, ``ap_variants`` and the classes
            that have no positive test image).
        scores: (N, 20) scores, higher = more confident.
        labels: (N, 20) devkit labels (1 present, -1 absent, 0 difficult, ignored).
        primary: the AP variant the protocol's headline number uses (a key of ``AP_VARIANTS``).

    Returns:
        ``map_<variant>`` for each variant and ``ap_<class>`` (primary variant) for each class that has a
        positive test image; a class without one has no defined AP and is left out (and listed in extra).
    """
    if primary not in AP_VARIANTS:
        raise ValueError(f"unknown AP variant {primary!r}")
    metrics: Metrics = {}
    per_class: dict[str, np.ndarray] = {}
    for variant in AP_VARIANTS:
        per_class[variant] = voc_classification_ap(scores, labels, variant)
        metrics[f"map_{variant}"] = mean_ap(per_class[variant])
    for name, ap in zip(VOC_CLASSES, per_class[primary], strict=True):
        if not math.isnan(ap):
            metrics[f"ap_{name}"] = float(ap)
    ctx.extra["primary_metric"] = f"map_{primary}"
    ctx.extra["ap_variants"] = {f"map_{v}": d for v, d in AP_VARIANTS.items()}
    ctx.extra["per_class_ap_variant"] = primary
    missing = [name for name, ap in zip(VOC_CLASSES, per_class[primary], strict=True) if math.isnan(ap)]
    if missing:
        ctx.extra["classes_without_test_positives"] = missing
    return metrics


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA; a no-op elsewhere (the CPU path runs in fp32)."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


# ------------------------------------------------------------------------------------------------------
# Data: voc-classification's augmentation, one reproducible generator per (epoch, image).


def random_scale_crop(
    image: Image.Image,
    crop: int,
    min_scale: float,
    max_scale: float,
    g: torch.Generator,
    resize: int | None = None,
) -> torch.Tensor:
    """Random scale, random ``crop``×``crop`` crop (mean-padded where the image is smaller), random mirror.

    Args:
        image: RGB image.
        crop: crop side in pixels.
        min_scale, max_scale: the scale factor is uniform in this range.
        g: the sample's generator (all random choices come from it).
        resize: resize the shorter side to this before scaling (None: use the image as stored).

    Returns:
        Normalised image [3, crop, crop].
    """
    w, h = image.size
    base = resize / min(w, h) if resize else 1.0
    scale = base * (min_scale + (max_scale - min_scale) * float(torch.rand((), generator=g)))
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    x = normalize(to_tensor(image.resize((sw, sh), resample=Image.BILINEAR)))  # [3, sh, sw]
    if sw < crop or sh < crop:
        # Place the small image at a random offset inside a mean-valued (zero) canvas of at least crop².
        cw, ch = max(sw, crop), max(sh, crop)
        px = int(torch.randint(0, cw - sw + 1, (1,), generator=g))
        py = int(torch.randint(0, ch - sh + 1, (1,), generator=g))
        x = F.pad(x, (px, cw - sw - px, py, ch - sh - py))  # [3, ch, cw]
    _, ch, cw = x.shape
    x0 = int(torch.randint(0, cw - crop + 1, (1,), generator=g))
    y0 = int(torch.randint(0, ch - crop + 1, (1,), generator=g))
    x = x[:, y0 : y0 + crop, x0 : x0 + crop]  # [3, crop, crop]
    if bool(torch.rand((), generator=g) < 0.5):
        x = x.flip(-1)
    return x.contiguous()


class AugmentedVOCClassification(Dataset):
    """VOC classification images under :func:`random_scale_crop`; keys are ``(epoch, index)`` pairs.

    The crop of image ``i`` in epoch ``e`` depends only on ``(seed, e, i)``, not on the number of workers.
    Items: ``{"image": [3, crop, crop], "label": int8 [20]}`` (the suite's batch convention).
    """

    def __init__(
        self,
        voc: VOCClassification,
        crop: int,
        min_scale: float,
        max_scale: float,
        resize: int | None,
        seed: int,
    ) -> None:
        self.voc, self.crop, self.seed = voc, crop, seed
        self.min_scale, self.max_scale, self.resize = min_scale, max_scale, resize

    def __len__(self) -> int:
        return len(self.voc)

    def __getitem__(self, key: tuple[int, int]) -> dict[str, torch.Tensor]:
        epoch, i = key
        image, labels = self.voc[i]
        g = sample_generator(self.seed, epoch, i)
        crop = random_scale_crop(image, self.crop, self.min_scale, self.max_scale, g, self.resize)
        return {"image": crop, "label": labels}


# ------------------------------------------------------------------------------------------------------
# Model, loss and schedule.


class FineTuneClassifier(nn.Module):
    """Trunk + AlexNet head (fc6, ReLU, dropout, fc7, ReLU, dropout, fc8); every layer trains.

    Args:
        encoder: the pretrained trunk; ``encoder(x)`` gives its last feature map (pool5 for AlexNets).
        feature_dim: number of values in that map for one image (9216 at 227 px for CaffeNet).
        num_classes: 20 for VOC.
        width: fc6/fc7 width (4096 in AlexNet).
        dropout: dropout probability after fc6 and fc7.
    """

    def __init__(
        self, encoder: nn.Module, feature_dim: int, num_classes: int, width: int, dropout: float
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = nn.Sequential(
            nn.Linear(feature_dim, width),  # fc6
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(width, width),  # fc7
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(width, num_classes),  # fc8
        )
        fc6, fc7, fc8 = self.head[0], self.head[3], self.head[6]
        for fc in (fc6, fc7):
            nn.init.normal_(fc.weight, 0.0, FC67_STD)
            nn.init.constant_(fc.bias, FC67_BIAS)
        nn.init.normal_(fc8.weight, 0.0, FC8_STD)
        nn.init.zeros_(fc8.bias)

    @torch.no_grad()
    def data_dependent_init_(self, x: torch.Tensor) -> None:
        """Rescale fc6 and fc7 to zero-mean, unit-variance pre-activations per unit on images ``x``.

        x: [N, 3, H, W] normalised training crops.
        """
        was_training = self.training
        self.eval()
        f = self.encoder(x).flatten(1)  # [N, feature_dim]
        for fc in (self.head[0], self.head[3]):
            f = fc(f)  # [N, width]
            mean, std = f.mean(0), f.std(0).clamp(min=1e-8)
            fc.weight.div_(std.view(-1, 1))
            fc.bias.sub_(mean).div_(std)
            f = F.relu((f - mean) / std)
        self.train(was_training)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, 3, H, W] → fc8 scores [N, num_classes]."""
        features = self.encoder(x)  # [N, 256, 6, 6] for CaffeNet at 227 px
        return self.head(features.flatten(1))


def feature_dim(encoder: nn.Module, image_size: int) -> int:
    """Values in ``encoder``'s output for one ``image_size`` image (one dry forward pass in eval mode)."""
    was_training = encoder.training
    encoder.eval()  # keep batch-norm statistics untouched by the dry run
    with torch.no_grad():
        dim = encoder(torch.zeros(1, 3, image_size, image_size)).numel()
    encoder.train(was_training)
    return dim


def masked_sigmoid_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-class sigmoid cross-entropy; label 0 (difficult) contributes nothing.

    Args:
        logits: [N, C] scores.
        labels: [N, C] devkit labels, 1 present / -1 absent / 0 difficult.

    Returns:
        The loss summed over classes and averaged over the N images (Caffe's normalisation).
    """
    target = (labels > 0).to(logits.dtype)
    valid = (labels != 0).to(logits.dtype)
    loss = F.binary_cross_entropy_with_logits(logits, target, reduction="none")  # [N, C]
    return (loss * valid).sum() / logits.shape[0]


def step_lr(base_lr: float, iteration: int, step: int, gamma: float) -> float:
    """Caffe's "step" policy: ``base_lr · gamma^floor(iteration / step)``."""
    return base_lr * gamma ** (iteration // step)


def param_groups(model: FineTuneClassifier, bias_lr_mult: float, head_lr_mult: float) -> list[dict[str, Any]]:
    """SGD groups with Caffe-style lr multipliers: weights 1 and biases ``bias_lr_mult``, times
    ``head_lr_mult`` in the new fc layers."""
    groups = []
    for part, mult in ((model.encoder, 1.0), (model.head, head_lr_mult)):
        named = list(part.named_parameters())
        groups.append({"params": [p for n, p in named if not n.endswith("bias")], "lr_mult": mult})
        groups.append({"params": [p for n, p in named if n.endswith("bias")], "lr_mult": mult * bias_lr_mult})
    return groups


def images_to(device: torch.device, x: torch.Tensor) -> torch.Tensor:
    """A batch of images [N, 3, H, W] on ``device``; channels-last on CUDA (faster convolutions there)."""
    x = x.to(device, non_blocking=True)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def fine_tune(
    ctx: EvalContext,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterator[dict[str, torch.Tensor]],
    iterations: int,
    schedule: tuple[float, int, float],
    clip: float,
) -> list[float]:
    """The fine-tuning loop: step lr, masked sigmoid cross-entropy, global-norm clipping, SGD.

    Args:
        ctx: evaluation context (device, progress, image counter).
        model: classifier in training mode.
        optimizer: SGD whose parameter groups carry an ``lr_mult``.
        batches: endless ``{"image": [B, 3, S, S], "label": [B, 20]}`` batches.
        iterations: number of SGD steps.
        schedule: ``(base_lr, step, gamma)`` of :func:`step_lr`.
        clip: bound on the global gradient L2 norm.

    Returns:
        The loss of every iteration.
    """
    base_lr, step, gamma = schedule
    losses: list[float] = []
    model.train()
    with tqdm(desc="cls fine-tune", unit="img", disable=not ctx.progress) as bar:  # rate in img/s
        for it in range(iterations):
            batch = next(batches)
            images, labels = batch["image"], batch["label"]  # [B, 3, S, S], [B, 20] in {1, -1, 0}
            if it == 0:
                bar.reset(total=iterations * images.shape[0])  # the batch size is known now
            lr = step_lr(base_lr, it, step, gamma)
            for group in optimizer.param_groups:
                group["lr"] = lr * group["lr_mult"]
            with autocast(ctx.device):
                logits = model(images_to(ctx.device, images))  # [B, 20]
            loss = masked_sigmoid_cross_entropy(logits.float(), labels.to(ctx.device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), clip)
            optimizer.step()
            losses.append(loss.item())
            ctx.images_processed += images.shape[0]
            bar.update(images.shape[0])
            bar.set_postfix(it=f"{it + 1}/{iterations}", loss=f"{np.mean(losses[-10:]):.3f}", lr=f"{lr:.2g}")
    return losses


# ------------------------------------------------------------------------------------------------------
# The evaluator.


@register_evaluator("cls")
def evaluate_classification(ctx: EvalContext) -> Metrics:
    """Fine-tune the encoder for VOC multi-label classification; mAP on the test split (see module docstring).

    Recipe keys (defaults = the protocol constants above): ``iterations``, ``batch_size``, ``lr``,
    ``bias_lr_mult``, ``head_lr_mult``, ``momentum``, ``weight_decay``, ``lr_step``, ``lr_gamma``,
    ``grad_clip``, ``min_scale``, ``max_scale``, ``crop_size``, ``resize``, ``test_crops``, ``fc_width``,
    ``dropout``, ``head_init``, ``head_init_images``, ``train_split``, ``test_split``, ``workers``,
    ``test_batch_size``.
    """
    o = ctx.option
    iterations, batch_size = int(o("iterations", ITERATIONS)), int(o("batch_size", BATCH_SIZE))
    crop, resize = int(o("crop_size", CROP_SIZE)), o("resize", None)
    min_scale, max_scale = float(o("min_scale", MIN_SCALE)), float(o("max_scale", MAX_SCALE))
    test_crops, workers = int(o("test_crops", TEST_CROPS)), int(o("workers", 2))
    train_split, test_split = o("train_split", TRAIN_SPLIT), o("test_split", TEST_SPLIT)
    if iterations < 1 or test_crops < 1 or not 0 < min_scale <= max_scale:
        raise RecipeError("cls recipe: need iterations >= 1, test_crops >= 1 and 0 < min_scale <= max_scale")

    train_voc, test_voc = (
        VOCClassification(ctx.voc_root, train_split),
        VOCClassification(ctx.voc_root, test_split),
    )
    train_ids = [train_voc.image_id(i) for i in range(len(train_voc))]
    test_ids = [test_voc.image_id(i) for i in range(len(test_voc))]
    check_disjoint(train_ids, test_ids, f"cls: Main/{train_split} vs Main/{test_split}")

    encoder = ctx.load_encoder()
    model = FineTuneClassifier(
        encoder,
        feature_dim(encoder, crop),
        len(VOC_CLASSES),
        int(o("fc_width", FC_WIDTH)),
        float(o("dropout", DROPOUT)),
    ).to(ctx.device)
    if ctx.device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    base_lr = float(o("lr", BASE_LR))
    optimizer = torch.optim.SGD(
        param_groups(model, float(o("bias_lr_mult", BIAS_LR_MULT)), float(o("head_lr_mult", HEAD_LR_MULT))),
        lr=base_lr,
        momentum=float(o("momentum", MOMENTUM)),
        weight_decay=float(o("weight_decay", WEIGHT_DECAY)),
    )

    train_set = AugmentedVOCClassification(train_voc, crop, min_scale, max_scale, resize, ctx.seed)
    head_init = o("head_init", HEAD_INIT)
    if head_init == "data":
        count = min(int(o("head_init_images", HEAD_INIT_IMAGES)), len(train_set))
        # Crops from an epoch no training or test batch uses: the training stream stays as it was.
        images = torch.stack([train_set[(_HEAD_INIT_EPOCH, i)]["image"] for i in range(count)])
        model.data_dependent_init_(images.to(ctx.device))
    elif head_init != "filler":
        raise RecipeError(f"cls: head_init must be 'filler' or 'data', got {head_init!r}")
    sampler = EpochSampler(len(train_set), batch_size, seed=ctx.seed)
    loader = DataLoader(
        train_set,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        pin_memory=ctx.device.type == "cuda",
        persistent_workers=workers > 0,
    )
    schedule = (base_lr, int(o("lr_step", LR_STEP)), float(o("lr_gamma", LR_GAMMA)))
    losses = fine_tune(
        ctx,
        model,
        optimizer,
        endless_batches(loader, sampler, start_step=0),
        iterations,
        schedule,
        float(o("grad_clip", GRAD_CLIP_NORM)),
    )
    del loader  # stops the persistent training workers before testing

    scores = predict_crops(ctx, model, test_voc, crop, min_scale, max_scale, resize, test_crops, workers)
    metrics = classification_metrics(ctx, scores, test_voc.labels, PRIMARY_AP)
    metrics["train_loss"] = float(np.mean(losses[-max(1, iterations // 10) :]))
    ctx.extra |= {
        "train_split": train_split,
        "test_split": test_split,
        "num_train_images": len(train_voc),
        "num_test_images": len(test_voc),
        "iterations": iterations,
        "test_crops": test_crops,
        "crop_size": crop,
        "train_loss_definition": "mean training loss over the last 10% of iterations",
    }
    return metrics


@torch.no_grad()
def predict_crops(
    ctx: EvalContext,
    model: nn.Module,
    voc: VOCClassification,
    crop: int,
    min_scale: float,
    max_scale: float,
    resize: int | None,
    crops: int,
    workers: int,
) -> np.ndarray:
    """fc8 scores summed over ``crops`` augmented crops per image (voc-classification's test rule).

    Returns:
        (N, 20) float64 scores in the order of ``voc``.
    """
    model.eval()
    dataset = AugmentedVOCClassification(voc, crop, min_scale, max_scale, resize, ctx.seed)
    n = len(voc)
    keys = [(_TEST_EPOCH_OFFSET + c, i) for c in range(crops) for i in range(n)]
    loader = DataLoader(
        dataset,
        batch_size=int(ctx.option("test_batch_size", 64)),
        sampler=keys,
        num_workers=workers,
        pin_memory=ctx.device.type == "cuda",
    )
    scores = np.zeros((n, len(VOC_CLASSES)), dtype=np.float64)
    done = 0
    with tqdm(total=len(keys), desc=f"cls test ({crops} crops)", unit="img", disable=not ctx.progress) as bar:
        for batch in loader:
            images = batch["image"]  # [B, 3, crop, crop]
            with autocast(ctx.device):
                logits = model(images_to(ctx.device, images)).float()  # [B, 20]
            index = np.arange(done, done + images.shape[0]) % n
            np.add.at(scores, index, logits.cpu().numpy())  # an index repeats when a batch spans two crops
            done += images.shape[0]
            ctx.images_processed += images.shape[0]
            bar.update(images.shape[0])
    return scores
