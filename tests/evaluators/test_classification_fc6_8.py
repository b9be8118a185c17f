"""Task ``cls-fc6-8``: conv1…conv5 frozen, fc6–fc8 trained (Split-Brain Table 4 / RotNet Table 7 "fc6-8")."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ssl_bench.encoders import create_encoder
from ssl_bench.evaluators import evaluator_protocol
from ssl_bench.evaluators.base import EvalContext
from ssl_bench.evaluators.classification import (
    FineTuneClassifier,
    Protocol,
    check_trunk_unchanged,
    feature_dim,
    masked_sigmoid_cross_entropy,
)
from ssl_bench.evaluators.engine import eval_performance, finetune, sgd
from ssl_bench.evaluators.runner import resolve_protocol
from tests.evaluators.test_classification import TINY_CLS, check_classification_record, run_eval

Trained = tuple[FineTuneClassifier, dict[str, torch.Tensor], torch.optim.SGD]


def train_a_few_steps(frozen_trunk: bool) -> Trained:
    """Five SGD steps of the ``cls`` loop on random 99-px images; returns the model, its state before, the
    optimizer. The trunk is ``caffenet_bn``, so that batch-norm statistics could move if it trained."""
    torch.manual_seed(0)
    encoder = create_encoder("caffenet_bn")
    model = FineTuneClassifier(encoder, feature_dim(encoder, 99), 20, width=32, dropout=0.5,
                               frozen_trunk=frozen_trunk)  # fmt: skip
    p = Protocol(iterations=5, batch_size=4, lr=0.01, lr_steps=(), workers=0, amp=False)
    optimizer = sgd(model.encoder, [model.head], p)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = torch.randn(4, 3, 99, 99)  # [B, 3, 99, 99]
    labels = torch.tensor([[1, -1] * 10, [-1, 1] * 10] * 2, dtype=torch.int8)  # [B, 20]

    def step(batch: tuple[torch.Tensor, torch.Tensor]) -> tuple[torch.Tensor, int]:
        x, y = batch
        return masked_sigmoid_cross_entropy(model(x), y), x.shape[0]

    ctx = EvalContext(weights="random", arch="caffenet_bn", voc_root=Path("."), progress=False)
    batches = iter([(images, labels)] * p.iterations)
    finetune(ctx, model, optimizer, batches, step, p, eval_performance(ctx.device, p.amp), "test")
    return model, before, optimizer


def test_frozen_trunk_keeps_conv_weights_and_batch_norm_statistics_while_the_head_learns() -> None:
    model, before, optimizer = train_a_few_steps(frozen_trunk=True)
    trunk = {f"encoder.{k}": v for k, v in model.encoder.state_dict().items()}
    assert any("running_mean" in k for k in trunk)  # the check covers batch-norm statistics too
    assert all(torch.equal(v, before[k]) for k, v in trunk.items())
    head = {f"head.{k}": v for k, v in model.head.state_dict().items()}
    assert all(not torch.equal(v, before[k]) for k, v in head.items())  # fc6, fc7, fc8: weights and biases
    optimized = {id(p) for g in optimizer.param_groups for p in g["params"]}
    assert optimized == {id(p) for p in model.head.parameters()}  # nothing of the trunk reaches SGD
    assert not any(p.requires_grad for p in model.encoder.parameters())
    assert model.training and model.head.training and not model.encoder.training  # left by the loop


def test_without_freezing_the_same_steps_move_the_trunk() -> None:
    """The control: the check above would notice a trunk that trains."""
    model, before, _ = train_a_few_steps(frozen_trunk=False)
    assert not torch.equal(model.encoder.conv1.weight, before["encoder.conv1.weight"])
    assert model.encoder.training


def test_the_sanity_check_names_a_trunk_tensor_that_moved() -> None:
    encoder = create_encoder("caffenet")
    before = {k: v.clone() for k, v in encoder.state_dict().items()}
    check_trunk_unchanged(encoder, before)  # unchanged: no error
    with torch.no_grad():
        encoder.conv3.bias[0] += 1e-6
    with pytest.raises(RuntimeError, match=r"frozen trunk changed during training \(conv3.bias\)"):
        check_trunk_unchanged(encoder, before)


@pytest.mark.parametrize("profile", ["smoke", "mini", "paper"])
def test_the_recipes_are_cls_recipes_except_for_the_freezing(profile: str) -> None:
    assert evaluator_protocol("cls-fc6-8") is evaluator_protocol("cls") is Protocol
    assert resolve_protocol("cls-fc6-8", profile) == resolve_protocol("cls", profile)


def test_cls_fc6_8_end_to_end_on_synthvoc(synth_voc_root: Path, tmp_path: Path) -> None:
    code, record = run_eval("cls-fc6-8", "random", synth_voc_root, tmp_path, TINY_CLS)
    assert code == 0 and record["task"] == "cls-fc6-8"
    check_classification_record(record, "sklearn")
    assert record["extra"]["trained_layers"] == "fc6-fc8 (conv1-conv5 frozen)"
