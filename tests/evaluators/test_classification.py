"""The fine-tuning classification evaluator: protocol pieces, and ``bench eval --task cls`` end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from ssl_bench.cli import main
from ssl_bench.data.classification import random_scale_crop
from ssl_bench.encoders import create_encoder
from ssl_bench.evaluators.base import EvalContext
from ssl_bench.evaluators.classification import (
    FineTuneClassifier,
    classification_metrics,
    masked_sigmoid_cross_entropy,
)
from ssl_bench.evaluators.engine import data_dependent_init_, param_groups
from ssl_bench.metrics import AP_VARIANTS

# A few iterations on 99-px crops of the session's tiny SynthVOC (tests/conftest.py): seconds on a CPU.
TINY_CLS = [
    "iterations=3",
    "batch_size=4",
    "crop_size=99",
    "test_crops=2",
    "fc_width=32",
    "workers=0",
    "test_batch_size=16",
]


def run_eval(
    task: str, weights: str | Path, root: Path, out: Path, sets: list[str]
) -> tuple[int, dict[str, Any]]:
    """``bench eval`` in this process; returns its exit code and the one record it wrote under ``out``
    (a request refused before the run writes none: use :func:`refused`)."""
    argv = [
        "eval",
        "--task",
        task,
        "--weights",
        str(weights),
        "--data",
        str(root),
        "--out",
        str(out),
        "--no-progress",
    ]
    for s in sets:
        argv += ["--set", s]
    code = main(argv)
    records = sorted(out.glob("*.json"))
    assert len(records) == 1, records
    return code, json.loads(records[0].read_text())


def refused(task: str, weights: str | Path, root: Path, out: Path, sets: list[str], capsys) -> str:
    """``bench eval`` that must be refused as a usage error: exit 2, no record, no traceback; its stderr."""
    argv = ["eval", "--task", task, "--weights", str(weights), "--data", str(root), "--out", str(out)]
    for s in sets:
        argv += ["--set", s]
    capsys.readouterr()
    assert main([*argv, "--no-progress"]) == 2
    assert not list(out.glob("*.json"))  # no record
    err = capsys.readouterr().err
    assert err.startswith("bench eval: error: ") and "Traceback" not in err
    return err


def check_classification_record(record: dict[str, Any], primary: str) -> None:
    """A successful record carries mAP in every AP variant, labelled, and per-class AP of the primary one."""
    assert record["status"] == "ok", record.get("error")
    metrics, extra = record["metrics"], record["extra"]
    for variant in AP_VARIANTS:
        assert 0.0 < metrics[f"map_{variant}"] <= 1.0
    assert extra["primary_metric"] == f"map_{primary}"
    assert set(extra["ap_variants"]) == {f"map_{v}" for v in AP_VARIANTS}
    per_class = {k: v for k, v in metrics.items() if k.startswith("ap_")}
    assert per_class and all(0.0 <= v <= 1.0 for v in per_class.values())
    assert np.mean(list(per_class.values())) == pytest.approx(metrics[f"map_{primary}"])
    assert extra["num_train_images"] > 0 and extra["num_test_images"] > 0
    assert record["images_per_s"] > 0


# ------------------------------------------------------------------------------------------ protocol


def test_loss_ignores_difficult_labels() -> None:
    labels = torch.tensor([[1, -1, 0], [0, 1, -1]], dtype=torch.int8)
    logits = torch.randn(2, 3)
    moved = logits.clone()
    moved[labels == 0] += 100.0  # whatever the net says about a difficult label must not matter
    assert masked_sigmoid_cross_entropy(moved, labels) == pytest.approx(
        masked_sigmoid_cross_entropy(logits, labels).item()
    )
    # per-image mean of the class-summed loss: here the 4 non-difficult terms of log(2) over 2 images
    assert masked_sigmoid_cross_entropy(torch.zeros(2, 3), labels).item() == pytest.approx(4 * np.log(2) / 2)


def test_new_head_is_initialised_and_lr_multipliers_cover_every_weight_once() -> None:
    torch.manual_seed(0)
    model = FineTuneClassifier(create_encoder("caffenet"), 256 * 2 * 2, 20, width=64, dropout=0.5)
    fc8 = model.head[-1]
    assert fc8.weight.std().item() == pytest.approx(0.01, rel=0.1) and not fc8.bias.any()
    groups = param_groups(model.encoder, [model.head], bias_lr_mult=2.0, head_lr_mult=10.0, weight_decay=1e-6)
    grouped = [id(p) for g in groups for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in model.parameters())
    mult = {id(p): g["lr_mult"] for g in groups for p in g["params"]}
    assert mult[id(model.encoder.conv1.weight)] == 1.0 and mult[id(model.encoder.conv1.bias)] == 2.0
    assert mult[id(fc8.weight)] == 10.0 and mult[id(fc8.bias)] == 20.0


@pytest.mark.parametrize("task", ["cls", "cls-fc6-8"])
def test_paper_recipe_initialises_fc8_as_voc_classification(task: str) -> None:
    """train_cls.py re-draws the layers after drop7 (fc8 alone): N(0, 0.01) weights, bias 0.1; fc6/fc7 of the
    paper's run were pre-initialised (a fillerless CaffeNet deploy.prototxt), the data-dependent init here."""
    from ssl_bench.evaluators.runner import resolve_protocol

    p = resolve_protocol(task, "paper", None, None)
    assert (p.fc8_bias, p.head_init, p.head_lr_mult, p.bias_lr_mult) == (0.1, "data", 1.0, 2.0)
    torch.manual_seed(0)
    model = FineTuneClassifier(create_encoder("caffenet"), 256 * 2 * 2, 20, width=64, dropout=0.5,
                               fc8_bias=p.fc8_bias)
    fc8 = model.head[-1]
    assert fc8.weight.std().item() == pytest.approx(0.01, rel=0.1) and torch.all(fc8.bias == 0.1)


def test_random_scale_crop_pads_small_images_and_is_reproducible() -> None:
    from PIL import Image

    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (60, 80, 3), dtype=np.uint8))
    for seed in range(5):
        a = random_scale_crop(image, 99, 0.5, 2.0, torch.Generator().manual_seed(seed))
        b = random_scale_crop(image, 99, 0.5, 2.0, torch.Generator().manual_seed(seed))
        assert a.shape == (3, 99, 99) and torch.equal(a, b)
    # at scale 0.5 the 40×30 image sits inside a 99² crop of mean pixels (0 after normalisation)
    small = random_scale_crop(image, 99, 0.5, 0.5, torch.Generator().manual_seed(0))
    assert (small.abs().sum(0) == 0).float().mean() > 0.8


def test_metrics_carry_every_variant_and_skip_classes_without_positives(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    labels = rng.choice([-1, 1], size=(30, 20)).astype(np.int8)
    labels[:, 3] = -1  # no positive: AP undefined
    ctx = EvalContext(weights="random", arch="caffenet", voc_root=tmp_path)
    metrics = classification_metrics(ctx, labels.astype(float), labels, "sklearn")
    assert [metrics[f"map_{v}"] for v in AP_VARIANTS] == pytest.approx([1.0] * len(AP_VARIANTS))
    assert "ap_boat" not in metrics and "ap_aeroplane" in metrics
    assert ctx.extra["classes_without_test_positives"] == ["boat"]
    assert ctx.extra["primary_metric"] == "map_sklearn"


# ---------------------------------------------------------------------------------------- end to end


def test_data_dependent_head_init_gives_unit_variance_fc6_and_fc7() -> None:
    torch.manual_seed(0)
    model = FineTuneClassifier(create_encoder("caffenet"), 256 * 2 * 2, 20, width=64, dropout=0.5)
    x = torch.randn(24, 3, 99, 99)
    data_dependent_init_(model, model.new_hidden_layers, model.pool5, x)
    assert model.training  # the mode it was in
    with torch.no_grad():
        f = model.encoder(x).flatten(1)
        for fc in (model.head[0], model.head[3]):
            f = fc(f)  # [24, 64] pre-activations
            assert f.mean(0).abs().max() < 1e-4 and (f.std(0) - 1).abs().max() < 1e-3
            f = torch.relu(f)


def test_cls_end_to_end_on_synthvoc(synth_voc_root: Path, tmp_path: Path) -> None:
    # one DataLoader worker: the training batches cross a process boundary, as in the real recipes
    code, record = run_eval("cls", "random", synth_voc_root, tmp_path, [*TINY_CLS, "workers=1"])
    assert code == 0
    check_classification_record(record, "sklearn")
    assert record["extra"]["iterations"] == 3 and record["extra"]["test_crops"] == 2
    assert np.isfinite(record["metrics"]["train_loss"])


def test_cls_refuses_weights_with_wrong_keys(synth_voc_root: Path, tmp_path: Path, capsys) -> None:
    state = create_encoder("caffenet").state_dict()
    state["features.0.weight"] = state.pop("conv1.weight")  # e.g. a torchvision-format file without --arch
    torch.save(state, tmp_path / "encoder.pt")
    capsys.readouterr()
    argv = ["eval", "--task", "cls", "--weights", str(tmp_path / "encoder.pt"), "--data", str(synth_voc_root),
            "--out", str(tmp_path / "runs"), "--no-progress"]  # fmt: skip
    assert main(argv) == 2  # refused before the run: no record
    assert not (tmp_path / "runs").exists()
    err = capsys.readouterr().err
    assert "missing keys: conv1.weight" in err and "unexpected keys: features.0.weight" in err


def test_cls_refuses_overlapping_train_and_test(synth_voc_root: Path, tmp_path: Path) -> None:
    code, record = run_eval("cls", "random", synth_voc_root, tmp_path, [*TINY_CLS, "test_split=val"])
    assert code == 2 and record["status"] == "error"
    assert "also in the training list" in record["error"]


def test_cls_names_a_bad_head_init(synth_voc_root: Path, tmp_path: Path, capsys) -> None:
    err = refused("cls", "random", synth_voc_root, tmp_path, [*TINY_CLS, "head_init=magic"], capsys)
    assert "head_init='magic' in --set is not valid: expected 'filler' | 'data'" in err
