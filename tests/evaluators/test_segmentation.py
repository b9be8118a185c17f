"""The segmentation evaluator: FCN-32s geometry, bilinear upsampling, the loss, `bench eval --task seg`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from ssl_bench.encoders import create_encoder
from ssl_bench.errors import DataError, RecipeError
from ssl_bench.evaluators.engine import data_dependent_init_
from ssl_bench.evaluators.segmentation import CLASS_NAMES, Protocol, segmentation_loss
from ssl_bench.evaluators.segmentation_model import FCN32s, bilinear_kernel, bilinear_upsampling_matrix
from ssl_bench.metrics import SegmentationConfusion

# Each test here is small: FCN pads every input by 200 px, so even a 99 px image costs a 299 px forward pass.
TINY = dict(num_images=64, size=128)  # Segmentation train 8 / val 8 images of 128 px


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ssl_bench.data.synthvoc import generate_synthvoc

    return generate_synthvoc(tmp_path_factory.mktemp("synthvoc"), seed=0, workers=1, progress=False, **TINY)


@pytest.mark.parametrize("arch", ["caffenet", "torchvision_alexnet"])
def test_fcn_output_covers_the_input(arch: str) -> None:
    model = FCN32s(create_encoder(arch), arch, fc_width=8).eval()
    for size in [(99, 99), (128, 128), (227, 227), (300, 200), (67, 131)]:
        with torch.no_grad():
            out = model(torch.randn(1, 3, *size))
        assert out.shape == (1, 21, *size)


def test_fcn_crop_offset_matches_fcn() -> None:
    # FCN voc-fcn-alexnet crops its upsampled scores at offset 18 for a 100 px input pad.
    assert FCN32s(create_encoder("caffenet"), "caffenet", fc_width=8).offset == 18


def test_score_cell_sits_over_its_receptive_field_centre() -> None:
    """Score cell n's receptive field is centred where the crop puts its bilinear peak (32n + 31 - offset)."""
    torch.manual_seed(0)
    model = FCN32s(create_encoder("caffenet"), "caffenet", fc_width=4).eval()
    with torch.no_grad():  # positive weights, zero biases: an impulse reaches every cell whose field holds it
        for p in model.parameters():
            p.copy_(p.abs() + 1e-3)
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d) and m.bias is not None:
                m.bias.zero_()
    cell = 6
    centre = 32 * cell + (63 - 1) // 2 - model.offset  # in image pixels
    half = 177  # CaffeNet fc6 receptive field: 355 px

    def reaches_cell(x: int) -> bool:
        image = torch.zeros(1, 3, 67, 420)
        image[..., 33, x] = 1.0
        padded = F.pad(image, (model.pad, model.far_pad(420), model.pad, model.far_pad(67)))
        with torch.no_grad():
            return bool(model.fc6(model.encoder(padded))[0, 0, :, cell].abs().max() > 0)

    edges = (centre - half - 1, centre - half, centre + half, centre + half + 1)
    assert [reaches_cell(x) for x in edges] == [False, True, True, False]


def test_unknown_arch_fails_loudly() -> None:
    with pytest.raises(RecipeError, match="no FCN alignment"):
        FCN32s(create_encoder("caffenet"), "resnet50", fc_width=8)


def test_bilinear_upsampling_is_exact_on_constant_and_linear_maps() -> None:
    n = 5
    extent = 32 * (n - 1) + 63  # the transposed convolution's full output
    a = bilinear_upsampling_matrix(n, extent, offset=0)  # [extent, n]
    rows = torch.arange(n, dtype=torch.float32).view(n, 1).expand(n, n)
    cols = torch.arange(n, dtype=torch.float32).view(1, n).expand(n, n)
    maps = torch.stack([torch.full((n, n), 3.0), 2.0 * rows - 1.0, 0.5 * cols + 0.25 * rows])  # [3, n, n]
    up = a @ maps @ a.T  # [3, extent, extent]
    # Between the first and last cell centres (upsampled pixels 31 … 31 + 32(n-1)) interpolation is exact.
    t = torch.arange(0, 32 * (n - 1) + 1, dtype=torch.float32) / 32  # cell coordinates
    inner = up[:, 31 : 31 + 32 * (n - 1) + 1, 31 : 31 + 32 * (n - 1) + 1]
    r, c = t.view(-1, 1), t.view(1, -1)
    torch.testing.assert_close(inner[0], torch.full_like(inner[0], 3.0))
    torch.testing.assert_close(inner[1], (2.0 * r - 1.0).expand_as(inner[1]))
    torch.testing.assert_close(inner[2], 0.5 * c + 0.25 * r)


def test_upsampling_equals_fcn_transposed_convolution_and_crop() -> None:
    """FCN-32s: depthwise ConvTranspose2d(kernel 63, stride 32), bilinear weights, then crop at the offset."""
    torch.manual_seed(0)
    model = FCN32s(create_encoder("caffenet"), "caffenet", fc_width=8)
    scores = torch.randn(2, 21, 4, 6)
    weight = bilinear_kernel(63).expand(21, 1, 63, 63)
    full = F.conv_transpose2d(scores, weight, stride=32, groups=21)  # [2, 21, 159, 223]
    h, w = 120, 190
    reference = full[:, :, model.offset : model.offset + h, model.offset : model.offset + w]
    torch.testing.assert_close(model.upsample(scores, h, w), reference)
    assert not any("upscore" in name for name, _ in model.named_parameters())  # fixed, as in FCN-32s


def test_data_dependent_init_gives_unit_variance_head_on_a_gaussian_trunk() -> None:
    """The std-0.01 Gaussian trunk's pool5 is ~1e-3; the rescaled fc6/fc7 still start at unit scale."""
    from ssl_bench.encoders import load_encoder

    torch.manual_seed(0)
    model = FCN32s(load_encoder("random", "caffenet"), "caffenet", fc_width=16)
    x = torch.randn(4, 3, 99, 99)
    data_dependent_init_(model, (model.fc6, model.fc7), model.pool5, x)
    assert model.training  # the train/eval mode is restored
    model.eval()
    with torch.no_grad():
        padded = F.pad(x, (model.pad, model.far_pad(99), model.pad, model.far_pad(99)))
        fc6 = model.fc6(model.encoder(padded))  # [4, 16, h, w]
        fc7 = model.fc7(F.relu(fc6))
    for pre in (fc6, fc7):
        torch.testing.assert_close(pre.mean(dim=(0, 2, 3)), torch.zeros(16), atol=1e-4, rtol=0)
        torch.testing.assert_close(pre.std(dim=(0, 2, 3)), torch.ones(16), atol=1e-3, rtol=0)


def test_loss_ignores_255_pixels() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 21, 8, 8, requires_grad=True)
    target = torch.randint(0, 21, (2, 8, 8))
    target[:, :3] = 255
    loss = segmentation_loss(logits, target)
    valid = target != 255
    expected = F.cross_entropy(logits.permute(0, 2, 3, 1)[valid], target[valid])
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert logits.grad[:, :, :3].abs().max() == 0  # ignored pixels get no gradient
    everything_ignored = segmentation_loss(logits, torch.full((2, 8, 8), 255))
    assert everything_ignored.item() == 0.0


def _bench_eval(argv: list[str]) -> int:
    from ssl_bench.cli import eval as eval_cli

    parser = argparse.ArgumentParser()
    eval_cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["eval", *argv])
    return args.func(args)


@pytest.fixture(scope="module")
def seg_record(voc_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    out = tmp_path_factory.mktemp("seg_eval")
    weights = out / "encoder.pt"
    torch.manual_seed(0)
    torch.save(create_encoder("caffenet").state_dict(), weights)
    code = _bench_eval([
        "--task", "seg", "--weights", str(weights), "--data", str(voc_root), "--profile", "smoke",
        "--out", str(out / "records"), "--no-progress", "--device", "cpu",
        "--set", "iterations=3", "--set", "batch_size=2", "--set", "crop_size=99", "--set", "fc_width=16",
        "--set", "workers=0", "--set", "lr_steps=[2]",
    ])  # fmt: skip
    assert code == 0
    (path,) = (out / "records").glob("*.json")
    return json.loads(path.read_text())


def test_bench_eval_seg_end_to_end(seg_record: dict, voc_root: Path) -> None:
    from ssl_bench.data.voc import read_image_set

    assert seg_record["status"] == "ok", seg_record.get("error")
    metrics = seg_record["metrics"]
    assert 0.0 <= metrics["miou"] <= 1.0
    assert {"miou", "pixel_acc", "mean_acc", "fwiou"} | {f"iou_{c}" for c in CLASS_NAMES} == set(metrics)
    extra = seg_record["extra"]
    assert extra["primary_metric"] == "miou"
    assert extra["train_images"] == len(read_image_set(voc_root, "train", "Segmentation"))
    assert extra["test_images"] == len(read_image_set(voc_root, "val", "Segmentation"))
    figure = Image.open(extra["figure"])
    assert figure.width >= 3 * 128 and figure.height >= 4 * 128  # 4 rows of image / truth / prediction
    assert seg_record["images_per_s"] > 0


def test_miou_equals_segmentation_confusion_on_stored_predictions(seg_record: dict, voc_root: Path) -> None:
    from ssl_bench.data.voc import load_segmentation_mask, read_image_set

    predictions = Path(seg_record["extra"]["predictions_dir"])
    ids = read_image_set(voc_root, "val", "Segmentation")
    assert sorted(p.stem for p in predictions.glob("*.png")) == sorted(ids)
    confusion = SegmentationConfusion(21, ignore_index=255)
    for image_id in ids:
        pred = np.asarray(Image.open(predictions / f"{image_id}.png"))  # palette indices = classes
        truth = np.asarray(load_segmentation_mask(voc_root / "SegmentationClass" / f"{image_id}.png"))
        confusion.update(pred, truth)
    scores = confusion.compute()
    assert seg_record["metrics"]["miou"] == pytest.approx(scores["miou"], abs=1e-12)
    assert seg_record["metrics"]["pixel_acc"] == pytest.approx(scores["pixel_acc"], abs=1e-12)
    np.testing.assert_array_equal(np.load(seg_record["extra"]["confusion"]), confusion.matrix)


def _context(voc_root: Path, tmp_path: Path, **recipe: object):
    from ssl_bench.evaluators import EvalContext

    return EvalContext(
        weights="random",
        arch="caffenet",
        voc_root=voc_root,
        protocol=Protocol(**recipe),
        progress=False,
        work_dir=tmp_path / "work",
    )


def test_overlapping_train_and_test_images_are_refused(voc_root: Path, tmp_path: Path) -> None:
    from ssl_bench.evaluators.segmentation import evaluate_segmentation

    with pytest.raises(DataError, match="also in the training list"):
        evaluate_segmentation(_context(voc_root, tmp_path, train_split="trainval", test_split="val"))


def test_smoke_recipe_runs_on_default_synthvoc(tmp_path: Path) -> None:
    """The whole smoke recipe on the default SynthVOC, as `make demo` runs it (~1 min; +1 min to generate)."""
    assert _bench_eval(["--task", "seg", "--weights", "random", "--out", str(tmp_path), "--no-progress"]) == 0


def _paper_seg(voc_root: Path, out: Path, *extra: str) -> dict:
    """``bench eval --task seg --profile paper`` at a test's size; returns the record."""
    code = _bench_eval([
        "--task", "seg", "--weights", "random", "--data", str(voc_root), "--profile", "paper",
        "--out", str(out), "--no-progress", "--device", "cpu", "--set", "iterations=2",
        "--set", "batch_size=2", "--set", "crop_size=99", "--set", "fc_width=16", "--set", "workers=0",
        "--set", "max_test_images=1", "--set", "figure_images=0", *extra,
    ])  # fmt: skip
    assert code == 0
    (path,) = out.glob("*.json")
    return json.loads(path.read_text())


def test_paper_profile_trains_with_sbd_given_and_says_so_without(
    voc_root: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from ssl_bench.data.voc import read_image_set
    from tests.data.sbd_fixture import write_sbd

    train_ids = read_image_set(voc_root, "train", "Segmentation")
    test_ids = read_image_set(voc_root, "val", "Segmentation")
    sbd = write_sbd(tmp_path / "benchmark_RELEASE" / "dataset",
                    {"train": ["2008_000002", test_ids[0]], "val": ["2008_000003", train_ids[0]]})
    record = _paper_seg(voc_root, tmp_path / "with", "--sbd", str(sbd.parent))  # the release folder works too
    extra = record["extra"]
    assert record["status"] == "ok" and extra["sbd"] is True and "protocol_deviation" not in extra
    assert record["recipe"]["sbd_root"] == str(sbd) and record["recipe"]["sbd_splits"] == ["train", "val"]
    assert (extra["sbd_images"], extra["sbd_dropped_test_overlap"]) == (2, 1)
    assert extra["train_images"] == len(train_ids) + 2

    with caplog.at_level("WARNING", logger="ssl_bench.evaluators.segmentation"):
        record = _paper_seg(voc_root, tmp_path / "without")
    extra = record["extra"]
    assert extra["sbd"] is False and extra["train_images"] == len(train_ids)
    assert "not the paper's protocol" in extra["protocol_deviation"]
    assert any("not the paper's protocol" in r.getMessage() for r in caplog.records)


def test_sbd_flag_is_refused_for_other_tasks_and_missing_folders(tmp_path: Path) -> None:
    from ssl_bench.cli import main

    base = ["eval", "--weights", "random", "--out", str(tmp_path), "--no-progress"]
    assert main([*base, "--task", "cls", "--sbd", str(tmp_path)]) == 2
    assert main([*base, "--task", "seg", "--sbd", str(tmp_path / "nowhere")]) == 2
    assert not list(tmp_path.glob("*.json"))
