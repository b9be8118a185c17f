"""``alexnet_head``: each of its five users builds the head it built before the builder was shared.

Same layers in the same order, so that the same state-dict keys (checkpoints load with strict key checks)
and, for a fixed seed, bit-identical initial weights: PyTorch's default init draws from the global generator
as each ``nn.Linear`` is made, and each user's own init then runs over the layers in order. Each reference
below is the user's head as it was written out by hand, with the user's init.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

from ssl_bench.encoders import AlexNetHead, alexnet_head, create_encoder, pool5_size
from ssl_bench.encoders.init import gaussian_init_, kaiming_init_
from ssl_bench.evaluators.classification import FC8_STD, FC67_BIAS, FC67_STD, FineTuneClassifier
from ssl_bench.evaluators.detection import NUM_CLASSES, Protocol, build_detector
from ssl_bench.methods.deepcluster import LINEAR_STD, DeepCluster
from ssl_bench.methods.rotation import RotationPrediction
from ssl_bench.methods.supervised import Supervised

POOL5 = 256 * pool5_size(128) ** 2  # CaffeNet's pool5 values at 128 px (2 × 2)
WIDTH = 32


def _model(encoder: nn.Module, head: nn.Module, **more: nn.Module) -> nn.Module:
    model = nn.Module()
    model.encoder, model.head = encoder, head
    for name, module in more.items():
        setattr(model, name, module)
    return model


# --- each user, then its head written out by hand with the user's init ---


def supervised() -> nn.Module:
    return Supervised(num_classes=20, image_size=128, head_width=WIDTH)


def supervised_reference() -> nn.Module:
    head = nn.Sequential(
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(POOL5, WIDTH),  # fc6
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(WIDTH, WIDTH),  # fc7
        nn.ReLU(inplace=True),
        nn.Linear(WIDTH, 20),  # fc8
    )
    return kaiming_init_(_model(create_encoder("caffenet"), head))


def deepcluster() -> nn.Module:
    return DeepCluster(image_size=128, num_clusters=20, pca_dim=8, head_width=WIDTH, sobel=False)


def deepcluster_reference() -> nn.Module:
    encoder = create_encoder("caffenet")
    head = nn.Sequential(
        nn.Flatten(),
        nn.Dropout(0.5),
        nn.Linear(POOL5, WIDTH),  # fc6
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(WIDTH, WIDTH),  # fc7, no ReLU
    )
    top = nn.Linear(WIDTH, 20)
    kaiming_init_(encoder)
    gaussian_init_(head, LINEAR_STD)
    with torch.no_grad():  # DeepCluster._reset_top
        generator = torch.Generator().manual_seed(0)
        top.weight.copy_(torch.randn(top.weight.shape, generator=generator) * LINEAR_STD)
        top.bias.zero_()
    return _model(encoder, head, top=top)


def rotation(batch_norm: bool) -> nn.Module:
    return RotationPrediction(image_size=128, head_width=WIDTH, head_batch_norm=batch_norm)


def rotation_reference(batch_norm: bool) -> nn.Module:
    def fc(cin: int) -> list[nn.Module]:
        norm: list[nn.Module] = [nn.BatchNorm1d(WIDTH)] if batch_norm else []
        return [nn.Linear(cin, WIDTH), *norm, nn.ReLU(inplace=True)]

    head = nn.Sequential(nn.Flatten(), *fc(POOL5), *fc(WIDTH), nn.Linear(WIDTH, 4))
    return kaiming_init_(_model(create_encoder("caffenet"), head))


def classification() -> nn.Module:
    return FineTuneClassifier(create_encoder("caffenet"), 9216, 20, WIDTH, 0.5, fc8_bias=-1.5)


def classification_reference() -> nn.Module:
    encoder = create_encoder("caffenet")
    head = nn.Sequential(
        nn.Linear(9216, WIDTH),  # fc6
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(WIDTH, WIDTH),  # fc7
        nn.ReLU(inplace=True),
        nn.Dropout(0.5),
        nn.Linear(WIDTH, 20),  # fc8
    )
    for fc in (head[0], head[3]):
        nn.init.normal_(fc.weight, 0.0, FC67_STD)
        nn.init.constant_(fc.bias, FC67_BIAS)
    nn.init.normal_(head[6].weight, 0.0, FC8_STD)
    nn.init.constant_(head[6].bias, -1.5)
    return _model(encoder, head)


def detection() -> nn.Module:
    p = Protocol(min_size=227, max_size=300, anchor_sizes=(32, 64, 128), fc_width=WIDTH, dropout=0.0)
    model = build_detector(create_encoder("caffenet"), p)
    return _model(model.backbone.encoder, model.roi_heads.box_head, predictor=model.roi_heads.box_predictor)


def detection_reference() -> nn.Module:
    encoder = create_encoder("caffenet")
    head = nn.Sequential(
        nn.Flatten(),
        nn.Linear(256 * 6 * 6, WIDTH),  # fc6 on the RoI-pooled conv5
        nn.ReLU(inplace=True),
        nn.Dropout(0.0),
        nn.Linear(WIDTH, WIDTH),  # fc7
        nn.ReLU(inplace=True),
        nn.Dropout(0.0),
    )
    predictor = FastRCNNPredictor(WIDTH, NUM_CLASSES)
    nn.init.normal_(predictor.cls_score.weight, std=0.01)
    nn.init.normal_(predictor.bbox_pred.weight, std=0.001)
    nn.init.zeros_(predictor.cls_score.bias)
    nn.init.zeros_(predictor.bbox_pred.bias)
    return _model(encoder, head, predictor=predictor)


USERS = {
    "supervised": (supervised, supervised_reference, ["2", "5", "7"]),
    "deepcluster": (deepcluster, deepcluster_reference, ["2", "5"]),
    "rotation": (lambda: rotation(False), lambda: rotation_reference(False), ["1", "3", "5"]),
    "rotation_bn": (lambda: rotation(True), lambda: rotation_reference(True), ["1", "2", "4", "5", "7"]),
    "cls": (classification, classification_reference, ["0", "3", "6"]),
    "det": (detection, detection_reference, ["1", "4"]),
}


def _seeded(build) -> tuple[nn.Module, torch.Tensor]:
    """The module built under seed 0, and the global generator's next draw after it (same draws used)."""
    torch.manual_seed(0)
    model = build()
    return model, torch.rand(8)


@pytest.mark.parametrize("user", sorted(USERS))
def test_each_user_builds_the_same_layers_and_weights_as_before(user):
    build, reference, parametrised = USERS[user]
    model, next_draw = _seeded(build)
    expected, expected_draw = _seeded(reference)

    assert isinstance(model.head, AlexNetHead)
    assert [type(m) for m in model.head] == [type(m) for m in expected.head]
    # The head's own state-dict keys, exactly (checkpoints and data_dependent_init name them so).
    head_keys = sorted({k.split(".")[0] for k in model.head.state_dict()}, key=int)
    assert head_keys == parametrised
    ours, theirs = model.state_dict(), expected.state_dict()
    assert [k for k in ours if k.startswith(("encoder.", "head.", "top.", "predictor."))] == list(theirs)
    for key, tensor in theirs.items():
        assert ours[key].shape == tensor.shape, key
        assert torch.equal(ours[key], tensor), f"{user}: {key} differs from the hand-written head's"
    if user != "det":  # build_detector goes on to make the RPN, which the reference leaves out
        assert torch.equal(next_draw, expected_draw)  # no more and no fewer random draws than before


def test_names_its_layers_and_leaves_out_what_is_off():
    head = alexnet_head(100, 8)
    assert [type(m) for m in head] == [nn.Flatten, nn.Linear, nn.ReLU, nn.Linear, nn.ReLU]
    assert (head.fc6.in_features, head.fc6.out_features, head.fc7.out_features) == (100, 8, 8)
    assert head.fc8 is None

    head = alexnet_head(
        100, 8, 3, dropout=0.0, dropout_at="input", batch_norm=True, fc7_relu=False, flatten=False
    )
    assert [type(m) for m in head] == [
        nn.Dropout, nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Dropout, nn.Linear, nn.BatchNorm1d, nn.Linear
    ]
    assert head.fc8.out_features == 3
    assert head(torch.randn(4, 100)).shape == (4, 3)
