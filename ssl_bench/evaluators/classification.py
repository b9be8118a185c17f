"""VOC2007 multi-label classification by fine-tuning the whole network (task ``cls``, PAPER.md §3).

Protocol source: Krähenbühl et al.'s fine-tuning code ``philkr/voc-classification`` (``train_cls.py``), which
produced the classification column of the paper's Table 2 (ImageNet 78.2, random 53.3, context encoder 56.5):

* the pretrained trunk (conv1…pool5) gets new fc6/fc7 layers (ReLU, dropout 0.5: AlexNet's head) and a
  20-way fc8; every layer is trained. ``train_cls.py`` clips the model at ``drop7`` (``--clip``), adds
  ``fc8_cls`` and, after copying the weights, re-draws every layer after ``drop7`` (``--random-from``):
  weights N(0, 0.01), biases 0.1, which is fc8 alone;
* Caffe SGD, momentum 0.9 (``solver.py``), base lr 1e-3, lr_mult 1 / 2 and decay_mult 1 / 1 for the weights
  / biases of every trained layer, new or not (``setLR(t, 1, 2)``, ``setDecay(t, 1, 1)``), weight decay 1e-6,
  gradient L2 norm clipped to 10, batch 16, 80k iterations, lr ×0.5 every 10k;
* per-class sigmoid cross-entropy; a difficult label (0 in the devkit files) is left out of the loss;
* augmentation: random scale in [0.5, 2], random 227×227 crop, random mirror;
* test: 10 crops drawn with the training augmentation, fc8 scores summed over crops;
* metric: scikit-learn's non-interpolated AP (the paper's number). The VOC2007 11-point and VOC2010+ area
  variants are reported next to it, each under its own key (PAPER.md §5).

Trained on Main ``trainval``, tested on Main ``test`` (refused if they overlap).

Task ``cls-fc6-8``: the same protocol with conv1…conv5 frozen (no gradient, eval mode, checked unchanged after
training as moco's ``sanity_check``) and only fc6-fc8 trained: the "fc6-8" column of Split-Brain's Table 4
(Zhang et al., CVPR 2017) and RotNet's Table 7, with the same code and solver (voc-classification's
``--train-from pool5``, its ``fc678`` experiment in ``experiments/ALL_PARAMS``).
NOTE: voc-classification keeps a model's pretrained fc6/fc7 (only fc8 new); ``encoder.pt`` ends at pool5, so
here they are always new (which published fc6-8 rows started from pretrained fc6/fc7 is **unverified**).

NOTE: fc6/fc7 start from fillers (N(0, 0.005), bias 0.1: ``head_init: filler``, the default; the std is
CaffeNet's, its bias filler **unverified**: the BVLC train_val.prototxt read here gives 0.4) or
rescaled on a few training images to zero-mean, unit-variance pre-activations (``head_init: data``:
Krähenbühl et al.'s within-layer init, PAPER.md §2, as the ``seg`` head). The paper's context-encoder row
did not start from fillers: voc-classification's ``experiments/ALL_MODELS`` loads the released weights
(``pascalDrop_long.caffemodel``) into ``bvlc_reference_caffenet/deploy.prototxt`` (BVLC/caffe), which
declares no fillers, so a layer the caffemodel lacks starts at Caffe's default filler, constant 0; an fc6/fc7
of zeros never trains (Caffe's ReLU passes no gradient at 0) and could not give 56.5 mAP, so the released
caffemodel carries fc6/fc7 weights of its own. How they were set is **unverified**; Krähenbühl's
``philkr/magic_init`` (``magic_init.py``) initialises exactly the layers whose weights are all zero (Gaussian
weights rescaled to unit-variance pre-activations, mean 0.1 with its default ``-b 0.1``), so the ``paper``
recipes use ``head_init: data``, its within-layer step (NOTE: mean 0, not 0.1; 32 crops, not its 10 × 16).
With the fillers a trunk whose pool5 is small also feeds fc8 an almost constant vector that a short
schedule cannot move (the smoke recipe).
NOTE: fc8's bias is ``fc8_bias``: voc-classification's 0.1 in the ``paper`` recipes; the default 0 keeps the
committed smoke and mini records reproducible.
NOTE: the scale factor is drawn uniformly in [min_scale, max_scale] and applied to the image as stored
(optionally after resizing its shorter side to ``resize``); where the scaled image is smaller than the crop,
the crop is padded with the mean pixel (0 after normalisation). The Caffe data layer's exact sampling of the
scale and its padding are **unverified**.
NOTE: voc-classification's "step" policy halves the lr every 10k iterations; the recipe lists those drops
(``lr_steps``: 10k … 70k), the same rates over the protocol's 80k iterations.
NOTE: PyTorch SGD keeps ``v = m·v + g`` and steps ``lr·v``; Caffe keeps ``v = m·v + lr·g``. The two agree
except right after an lr drop (PyTorch's momentum is rescaled at once, Caffe's decays in).
``head_lr_mult`` (default 1): voc-classification gives the new fc8 the same lr_mult as every other layer
(``setLR(t, 1, 2)`` for all trained tops; a public fork multiplies fc6/fc7/fc8's lr by 10).
NOTE: the loss is summed over classes and averaged over the images of the batch, as Caffe's sigmoid
cross-entropy layer normalises by the batch size.
``map_sklearn`` is voc-classification's AP exactly, near-ties included (positives' scores nudged down by 1e-5
before scikit-learn's AP: ``ssl_bench.metrics.classification``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ssl_bench.data.batches import endless_batches
from ssl_bench.data.classification import AugmentedVOCClassification
from ssl_bench.data.pretrain import EpochSampler
from ssl_bench.data.voc import VOC_CLASSES, VOCClassification
from ssl_bench.encoders import alexnet_head
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
)
from ssl_bench.metrics import (
    AP_VARIANTS,
    constant_scorer_ap,
    label_prior_cross_entropy,
    mean_ap,
    voc_classification_ap,
)

PRIMARY_AP = "sklearn"
FC8_STD = 0.01  # voc-classification train_cls.py: layers after --random-from drop7 get N(0, 0.01) weights
FC8_BIAS_SOURCE = 0.1  # ... and bias 0.1 (the paper recipes' fc8_bias; NOTE above on the default 0)
FC67_STD, FC67_BIAS = 0.005, 0.1  # fc6/fc7 fillers: CaffeNet's std; the bias unverified (NOTE above)
# Test crops draw from per-sample generators of "epochs" far beyond any training epoch, so a test crop
# never repeats a training draw of the same image.
_TEST_EPOCH_OFFSET = 1_000_000
_HEAD_INIT_EPOCH = 2_000_000  # the crops that set a data-dependent head init


@dataclass(frozen=True)
class Protocol(FinetuneProtocol):
    """``cls`` recipe keys; the defaults are voc-classification's ``train_cls.py`` and its Caffe solver."""

    RENAMED: ClassVar[dict[str, str]] = {**FinetuneProtocol.RENAMED, "head_width": "fc_width",
                                         "head_dropout": "dropout"}  # fmt: skip
    iterations: int = 80_000
    batch_size: int = 16
    lr: float = 1e-3
    lr_steps: tuple[int, ...] = tuple(range(10_000, 80_000, 10_000))  # ×0.5 every 10k (NOTE above)
    lr_gamma: float = 0.5
    weight_decay: float = 1e-6
    bias_lr_mult: float = 2.0  # Caffe convention, lr_mult 1 for weights and 2 for biases
    head_lr_mult: float = 1.0  # the new fc6/fc7/fc8 (see the NOTE above)
    grad_clip: float | None = 10.0  # Caffe clip_gradients: the global L2 norm of all gradients
    train_split: str = "trainval"
    test_split: str = "test"
    min_scale: float = 0.5
    max_scale: float = 2.0
    crop_size: int = 227
    resize: int | None = None  # shorter side before scaling (null: the image as stored)
    test_crops: int = 10
    test_batch_size: int = 64
    fc_width: int = 4096
    dropout: float = 0.5
    head_init: Literal["filler", "data"] = "filler"  # "data": rescaled on training crops (NOTE above)
    fc8_bias: float = 0.0  # NOTE: voc-classification's is 0.1 (FC8_BIAS_SOURCE, the paper recipes)
    head_init_images: int = 32

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.test_crops < 1 or not 0 < self.min_scale <= self.max_scale:
            raise RecipeError("cls: need test_crops >= 1 and 0 < min_scale <= max_scale")


# ------------------------------------------------------------------------------------------------------
# Metrics shared by the classification evaluators (cls, cls-fc6-8, cls-linear, knn).

TRIVIAL_CLASSIFIER = (
    "trivial_map_<variant>: mAP of a constant scorer (every test image the same score per class) under the "
    "same AP rule; sklearn: each class's positive fraction; VOC rules: the test list's own order"
)
CHANCE_LOSS = (
    "chance_loss: the training loss of the best constant logits (the training labels' per-class prior): "
    "sum over classes of the binary entropy, difficult labels left out; train_loss not below it learnt "
    "nothing beyond label frequencies"
)


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
        ``trivial_map_<variant>``: the trivial level of each, the mAP of a constant scorer on the same test
        labels (``metrics.constant_scorer_ap``, issue #22): a score at or below it ranks no better than
        the label prior.
    """
    if primary not in AP_VARIANTS:
        raise ValueError(f"unknown AP variant {primary!r}")
    metrics: Metrics = {}
    per_class: dict[str, np.ndarray] = {}
    for variant in AP_VARIANTS:
        per_class[variant] = voc_classification_ap(scores, labels, variant)
        metrics[f"map_{variant}"] = mean_ap(per_class[variant])
        metrics[f"trivial_map_{variant}"] = mean_ap(constant_scorer_ap(labels, variant))
    for name, ap in zip(VOC_CLASSES, per_class[primary], strict=True):
        if not math.isnan(ap):
            metrics[f"ap_{name}"] = float(ap)
    ctx.extra["primary_metric"] = f"map_{primary}"
    ctx.extra["ap_variants"] = {f"map_{v}": d for v, d in AP_VARIANTS.items()}
    ctx.extra["per_class_ap_variant"] = primary
    ctx.extra["trivial_level"] = TRIVIAL_CLASSIFIER
    missing = [name for name, ap in zip(VOC_CLASSES, per_class[primary], strict=True) if math.isnan(ap)]
    if missing:
        ctx.extra["classes_without_test_positives"] = missing
    return metrics


# ------------------------------------------------------------------------------------------------------
# Model and loss.


class FineTuneClassifier(nn.Module):
    """Trunk + AlexNet head (fc6, ReLU, dropout, fc7, ReLU, dropout, fc8); all train, or the head only.

    Args:
        encoder: the pretrained trunk; ``encoder(x)`` gives its last feature map (pool5 for AlexNets).
        feature_dim: number of values in that map for one image (9216 at 227 px for CaffeNet).
        num_classes: 20 for VOC.
        width: fc6/fc7 width (4096 in AlexNet).
        dropout: dropout probability after fc6 and fc7.
        frozen_trunk: no gradient to the trunk, which stays in eval mode even when the model trains
            (task ``cls-fc6-8``).
        fc8_bias: fc8's initial bias (fc8's weights: N(0, 0.01²), voc-classification's).
    """

    def __init__(self, encoder: nn.Module, feature_dim: int, num_classes: int, width: int, dropout: float,
                 frozen_trunk: bool = False, fc8_bias: float = 0.0) -> None:  # fmt: skip
        super().__init__()
        self.encoder = encoder.requires_grad_(not frozen_trunk)
        self.frozen_trunk = frozen_trunk
        # CaffeNet's fc6/fc7 (dropout after each ReLU) on the flattened pool5 that ``pool5`` gives
        self.head = alexnet_head(feature_dim, width, num_classes, dropout=dropout, dropout_at="output",
                                 flatten=False)  # fmt: skip
        for fc in self.new_hidden_layers:
            nn.init.normal_(fc.weight, 0.0, FC67_STD)
            nn.init.constant_(fc.bias, FC67_BIAS)
        nn.init.normal_(self.head.fc8.weight, 0.0, FC8_STD)
        nn.init.constant_(self.head.fc8.bias, fc8_bias)

    @property
    def new_hidden_layers(self) -> tuple[nn.Linear, nn.Linear]:
        """fc6 and fc7 (the layers ``head_init: data`` rescales)."""
        return self.head.fc6, self.head.fc7

    def train(self, mode: bool = True) -> FineTuneClassifier:
        super().train(mode)
        if self.frozen_trunk:
            self.encoder.eval()  # batch-norm statistics (and any trunk dropout) stay as pretrained
        return self

    def pool5(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, 3, H, W] → the trunk's output, flattened [N, feature_dim]."""
        return self.encoder(x).flatten(1)  # [N, 256·6·6] for CaffeNet at 227 px

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [N, 3, H, W] → fc8 scores [N, num_classes]."""
        return self.head(self.pool5(x))


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


# ------------------------------------------------------------------------------------------------------
# The evaluator.


@register_evaluator("cls", protocol=Protocol, label="classification", metric="map_sklearn", order=0,
                    short="cls", trivial="a constant scorer (same AP rule)", chance="the label prior")
def evaluate_classification(ctx: EvalContext) -> Metrics:
    """Fine-tune the encoder for VOC multi-label classification; mAP on the test split (module docstring)."""
    return classify(ctx, frozen_trunk=False)


@register_evaluator("cls-fc6-8", protocol=Protocol, label="classification, fc6-8 (conv frozen)",
                    metric="map_sklearn", order=3, short="cls", trivial="a constant scorer (same AP rule)",
                    chance="the label prior")
def evaluate_classification_fc6_8(ctx: EvalContext) -> Metrics:
    """``cls`` with conv1…conv5 frozen: only the new fc6, fc7 and fc8 train (module docstring)."""
    return classify(ctx, frozen_trunk=True)


def classify(ctx: EvalContext, frozen_trunk: bool) -> Metrics:
    """The ``cls`` protocol, training every layer or (``frozen_trunk``) only fc6-fc8."""
    p: Protocol = ctx.protocol
    train_voc, test_voc = (
        VOCClassification(ctx.voc_root, p.train_split),
        VOCClassification(ctx.voc_root, p.test_split),
    )
    check_disjoint(
        [train_voc.image_id(i) for i in range(len(train_voc))],
        [test_voc.image_id(i) for i in range(len(test_voc))],
        f"cls: Main/{p.train_split} vs Main/{p.test_split}",
    )

    encoder = ctx.load_encoder()
    dim = feature_dim(encoder, p.crop_size)
    model = FineTuneClassifier(encoder, dim, len(VOC_CLASSES), p.fc_width, p.dropout, frozen_trunk,
                               fc8_bias=p.fc8_bias)
    perf = protocol_performance(ctx.device, p)
    model = on_device(model, ctx.device, perf)
    optimizer = sgd(model.encoder, [model.head], p)  # a frozen trunk has no parameter to give it
    trunk_before = {k: v.clone() for k, v in model.encoder.state_dict().items()} if frozen_trunk else {}

    augment = (p.crop_size, p.min_scale, p.max_scale, p.resize)
    train_set = AugmentedVOCClassification(train_voc, *augment, ctx.seed)
    if p.head_init == "data":
        count = min(p.head_init_images, len(train_set))
        # Crops from an epoch no training or test batch uses: the training stream stays as it was.
        images = torch.stack([train_set[(_HEAD_INIT_EPOCH, i)]["image"] for i in range(count)])
        data_dependent_init_(model, model.new_hidden_layers, model.pool5, images.to(ctx.device))
    sampler = EpochSampler(len(train_set), p.batch_size, seed=ctx.seed)
    loader = make_loader(train_set, ctx, p.batch_size, p.workers, persistent=True, sampler=sampler)

    def step(batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        images, labels = batch["image"], batch["label"]  # [B, 3, S, S], [B, 20] in {1, -1, 0}
        logits = model(images_to(images, ctx.device, perf))  # [B, 20]
        return masked_sigmoid_cross_entropy(logits.float(), labels.to(ctx.device)), images.shape[0]

    losses = finetune(ctx, model, optimizer, endless_batches(loader, sampler), step, p, perf, "cls fine-tune")
    del loader  # stops the persistent training workers before testing
    if frozen_trunk:
        check_trunk_unchanged(model.encoder, trunk_before)

    scores = predict_crops(ctx, model, test_voc, p)
    metrics = classification_metrics(ctx, scores, test_voc.labels, PRIMARY_AP)
    metrics["train_loss"], curve = loss_summary(losses)
    metrics["chance_loss"] = label_prior_cross_entropy(train_voc.labels)
    ctx.extra |= {
        "train_split": p.train_split,
        "test_split": p.test_split,
        "num_train_images": len(train_voc),
        "num_test_images": len(test_voc),
        "iterations": p.iterations,
        "test_crops": p.test_crops,
        "crop_size": p.crop_size,
        "train_loss_definition": TRAIN_LOSS_DEFINITION,
        "train_loss_curve": curve,
        "chance_loss_definition": CHANCE_LOSS,
        "trained_layers": "fc6-fc8 (conv1-conv5 frozen)" if frozen_trunk else "all",
    }
    return metrics


def check_trunk_unchanged(trunk: nn.Module, before: dict[str, torch.Tensor]) -> None:
    """Raise if a frozen trunk's weights or batch-norm statistics moved while the head trained."""
    changed = [k for k, v in trunk.state_dict().items() if not torch.equal(v, before[k])]
    if changed:
        raise RuntimeError(f"cls-fc6-8: the frozen trunk changed during training ({', '.join(changed)})")


@torch.no_grad()
def predict_crops(ctx: EvalContext, model: nn.Module, voc: VOCClassification, p: Protocol) -> np.ndarray:
    """fc8 scores summed over ``test_crops`` augmented crops per image (voc-classification's test rule).

    Returns:
        (N, 20) float64 scores in the order of ``voc``.
    """
    model.eval()
    perf = protocol_performance(ctx.device, p)
    n = len(voc)
    keys = [(_TEST_EPOCH_OFFSET + c, i) for c in range(p.test_crops) for i in range(n)]
    dataset = AugmentedVOCClassification(voc, p.crop_size, p.min_scale, p.max_scale, p.resize, ctx.seed)
    loader = make_loader(dataset, ctx, p.test_batch_size, p.workers, sampler=keys)
    scores = np.zeros((n, len(VOC_CLASSES)), dtype=np.float64)
    done = 0
    desc = f"cls test ({p.test_crops} crops)"
    with tqdm(total=len(keys), desc=desc, unit="img", disable=not ctx.progress) as bar:
        for batch in loader:
            images = batch["image"]  # [B, 3, crop, crop]
            with perf.autocast(ctx.device):
                logits = model(images_to(images, ctx.device, perf)).float()  # [B, 20]
            index = np.arange(done, done + images.shape[0]) % n
            np.add.at(scores, index, logits.cpu().numpy())  # an index repeats when a batch spans two crops
            done += images.shape[0]
            ctx.images_processed += images.shape[0]
            bar.update(images.shape[0])
    return scores
