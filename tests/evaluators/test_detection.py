"""Detection evaluator: end to end through ``bench eval``, proposals files, metric path.

The box conventions and the proposals-file reader are tested in ``tests/data/test_detection_data.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ssl_bench.cli import main
from ssl_bench.data.detection import detections_to_voc, load_proposals, voc_to_torchvision
from ssl_bench.data.synthvoc import generate_synthvoc
from ssl_bench.data.voc import VOC_CLASSES, load_detection_ground_truth, read_image_set
from ssl_bench.encoders import create_encoder
from ssl_bench.errors import RecipeError
from ssl_bench.evaluators import detection, detection_model, detection_rois
from tests.data.proposals_fixture import voc_selective_search_mats

# Tiny and fast: 128 px images (conv5 8×8, padded batch), a few iterations, small heads, no workers.
TINY = [
    "iterations=3",
    "lr_steps=[2]",
    "min_size=128",
    "max_size=128",
    "fc_width=32",
    "workers=0",
    "rpn_pre_nms_train=200",
    "rpn_post_nms_train=50",
    "rpn_pre_nms_test=100",
    "rpn_post_nms_test=20",
    "test_batch_size=8",
    "test_score_thresh=0.0",
    "figure_images=2",
]


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # 64 images → Main trainval 16, test 16.
    return generate_synthvoc(
        tmp_path_factory.mktemp("det_voc"), num_images=64, size=128, seed=0, workers=1, progress=False
    )


def _bench_eval(root: Path, out: Path, *extra: str) -> dict:
    args = [
        "eval",
        "--task",
        "det",
        "--weights",
        "random",
        "--data",
        str(root),
        "--profile",
        "smoke",
        "--out",
        str(out),
        "--no-progress",
        "--device",
        "cpu",
    ]
    for item in TINY + list(extra):
        args += ["--set", item]
    code = main(args)
    (record_path,) = out.glob("*.json")
    record = json.loads(record_path.read_text())
    assert code == 0, record.get("traceback")
    return record


def test_bench_eval_det_end_to_end(voc_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    real = detection.voc_detection_ap

    def spy(ground_truth, detections, num_classes, variant="voc07_11point", **kw):  # noqa: ANN001, ANN202
        seen.append(ground_truth)
        return real(ground_truth, detections, num_classes, variant, **kw)

    monkeypatch.setattr(detection, "voc_detection_ap", spy)
    record = _bench_eval(voc_root, tmp_path / "runs")

    metrics, extra = record["metrics"], record["extra"]
    assert record["status"] == "ok"
    assert 0.0 <= metrics["map_voc07_11point"] <= 1.0 and 0.0 <= metrics["map_area"] <= 1.0
    assert extra["primary_metric"] == "map_voc07_11point"
    assert "coco_ap" in metrics and "coco_ap50" in metrics  # pycocotools is in the test environment
    assert extra["num_train_images"] == 16 and extra["num_test_images"] == 16
    assert extra["num_detections"] > 0  # score threshold 0: the ranking is scored, not an empty list
    # Issue #22: the constant detector's mAP on the same test images, each box the whole image.
    from ssl_bench.data.voc import parse_annotation
    from ssl_bench.metrics import constant_detector_ap, mean_ap

    truth = load_detection_ground_truth(voc_root, "test")
    sizes = {}
    for i in truth:
        ann = parse_annotation(voc_root / "Annotations" / f"{i}.xml")
        sizes[i] = (ann["width"], ann["height"])
    for variant in ("voc07_11point", "area"):
        expected_trivial = mean_ap(constant_detector_ap(truth, sizes, 20, variant))
        assert metrics[f"trivial_map_{variant}"] == pytest.approx(expected_trivial)
    assert "none" in extra["chance_loss"]
    # The training loss: the mean of the last 10% of iterations, its curve beside it (engine.loss_summary).
    assert np.isfinite(metrics["train_loss"]) and 1 <= len(extra["train_loss_curve"]) <= 20
    assert Image.open(extra["figure"]).size[1] == 128
    assert record["images_per_s"] > 0

    # The ground truth the metric saw is load_detection_ground_truth's for every test image, VOC coordinates.
    expected = load_detection_ground_truth(voc_root, "test")
    assert seen and all(list(gt) == list(expected) for gt in seen)
    for image_id, want in expected.items():
        for key in ("boxes", "labels", "difficult"):
            np.testing.assert_array_equal(seen[0][image_id][key], want[key])


def test_proposals_file_runs_fast_rcnn(voc_root: Path, tmp_path: Path) -> None:
    gt = {
        **load_detection_ground_truth(voc_root, "trainval"),
        **load_detection_ground_truth(voc_root, "test"),
    }
    rng = np.random.default_rng(0)
    proposals = {}
    for image_id, g in gt.items():
        x1y1 = rng.uniform(1, 80, size=(30, 2))
        random_boxes = np.concatenate([x1y1, x1y1 + rng.uniform(8, 48, size=(30, 2))], axis=1)
        proposals[image_id] = np.concatenate([g["boxes"] + rng.normal(0, 2, g["boxes"].shape), random_boxes])
    path = tmp_path / "proposals.npz"
    np.savez(path, **proposals)

    flags = ("detector=fast_rcnn", f"proposals={path}", "head_init=data")
    record = _bench_eval(voc_root, tmp_path / "runs", *flags)
    assert record["extra"]["proposals"] == str(path) and record["extra"]["detector"] == "fast_rcnn"
    assert 0.0 <= record["metrics"]["map_voc07_11point"] <= 1.0
    assert record["recipe"]["head_init"] == "data"
    # Fast R-CNN has a chance loss (a constant box head on the sampled RoIs): the table compares with it.
    assert record["metrics"]["chance_loss"] > 0 and record["extra"]["chance_loss"].startswith("chance_loss:")


def test_chance_loss_is_torchvisions_box_loss_of_the_best_constant_prediction() -> None:
    from torchvision.models.detection.roi_heads import fastrcnn_loss

    g = torch.Generator().manual_seed(0)
    labels = torch.cat([torch.zeros(48, dtype=torch.long), torch.randint(1, 21, (16,), generator=g)])
    targets = torch.randn(64, 4, generator=g) * 0.5  # [R, 4]
    chance = detection_rois.constant_detector_loss(labels, targets)
    counts = torch.bincount(labels, minlength=21).double()
    logits = torch.log(counts.clamp(min=1e-12) / counts.sum()).float().expand(64, 21)  # the class prior
    median = targets[labels > 0].median(dim=0).values
    regression = median.repeat(64, 21)  # [R, 21 * 4]: the same offsets for every class
    cls_loss, box_loss = fastrcnn_loss(logits, regression, [labels], [targets])
    assert chance == pytest.approx(float(cls_loss + box_loss), rel=1e-5)
    # No other constant offset does better (smooth L1 around its median, to within its quadratic zone).
    for shift in (0.05, -0.05):
        _, moved = fastrcnn_loss(logits, regression + shift, [labels], [targets])
        assert float(moved) >= float(box_loss) - 1e-3


@pytest.mark.parametrize("detector", ["faster_rcnn", "fast_rcnn"])
def test_head_init_data_gives_unit_variance_fc6_on_training_rois(voc_root: Path, detector: str) -> None:
    # head_init: data rescales fc6/fc7 on the RoIs training samples (proposals from the RPN or a file), and
    # leaves torch's generator as it was, so the training stream does not move.
    p = detection.Protocol(fc_width=16, detector=detector, min_size=128, max_size=128, head_init="data",
                           proposals="p.npz" if detector == "fast_rcnn" else None)  # fmt: skip
    gt = load_detection_ground_truth(voc_root, "trainval")
    proposals = {i: np.concatenate([g["boxes"], g["boxes"] + 3.0]) for i, g in gt.items()}
    use = detector == "fast_rcnn"
    train_set, _ = detection.voc_detection_set(voc_root, "trainval", True, proposals if use else None)
    model = detection.build_detector(create_encoder("caffenet"), p)
    cpu = torch.device("cpu")
    expected = torch.manual_seed(0).get_state()
    detection_rois.init_box_head_on_data(model, train_set, 4, cpu, use)
    assert torch.equal(torch.get_rng_state(), expected)
    torch.manual_seed(0)  # the same flips and RoIs again: the head's input on them
    with torch.no_grad():
        batch = detection.collate_detection_samples([train_set[i] for i in range(4)])
        pooled = detection_rois.sampled_roi_features(model, *detection.detection_batch_to(batch, cpu, use))
        fc6 = model.roi_heads.box_head.fc6(pooled.flatten(1))  # [R, 16]
    assert torch.allclose(fc6.mean(0), torch.zeros(16), atol=1e-4)
    assert torch.allclose(fc6.std(0), torch.ones(16), atol=1e-3)


def test_selective_search_proposals_are_computed_once_and_cached(
    voc_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``proposals: selective_search`` (the mini recipe's): the suite's own selective search over every
    trainval and test image, computed by the first run into the cache, read from it by the next."""
    monkeypatch.setenv("SSL_BENCH_CACHE", str(tmp_path / "cache"))
    first = _bench_eval(voc_root, tmp_path / "a", "detector=fast_rcnn", "proposals=selective_search")
    assert "selective search by the suite" in first["extra"]["proposals"]
    (cached,) = (tmp_path / "cache" / "proposals").glob("selective_search-fast-*.npz")
    ids = read_image_set(voc_root, "trainval") + read_image_set(voc_root, "test")
    assert sorted(load_proposals(cached)) == sorted(ids)
    stamp = cached.stat().st_mtime_ns
    _bench_eval(voc_root, tmp_path / "b", "detector=fast_rcnn", "proposals=selective_search")
    assert cached.stat().st_mtime_ns == stamp


def test_proposals_file_must_cover_every_image(voc_root: Path, tmp_path: Path) -> None:
    path = tmp_path / "proposals.pt"
    torch.save({read_image_set(voc_root, "test")[0]: torch.tensor([[1.0, 1.0, 20.0, 20.0]])}, path)
    assert len(load_proposals(path)) == 1
    out = tmp_path / "runs"
    assert (
        main(
            [
                "eval",
                "--task",
                "det",
                "--weights",
                "random",
                "--data",
                str(voc_root),
                "--out",
                str(out),
                "--set",
                "detector=fast_rcnn",
                "--set",
                f"proposals={path}",
                "--no-progress",
            ]
        )
        == 2
    )
    (record_path,) = out.glob("*.json")
    assert "lacks" in json.loads(record_path.read_text())["error"]


def test_perfect_detector_scores_one(voc_root: Path) -> None:
    """Ground-truth boxes fed back as torchvision detections pass the evaluator's conversion to AP 1."""
    gt = load_detection_ground_truth(voc_root, "test")
    outputs = [
        {
            "boxes": voc_to_torchvision(torch.from_numpy(g["boxes"])),
            "labels": torch.from_numpy(g["labels"]) + 1,
            "scores": torch.linspace(1.0, 0.5, len(g["labels"])),
        }
        for g in gt.values()
    ]
    metrics = detection.detection_metrics(gt, detections_to_voc(outputs, list(gt)))
    with_positives = {
        VOC_CLASSES[c] for g in gt.values() for c, d in zip(g["labels"], g["difficult"], strict=True) if not d
    }
    assert {k[3:] for k in metrics if k.startswith("ap_")} == with_positives
    assert all(v == pytest.approx(1.0) for v in metrics.values())  # 11-point sums to 1 ± 1 ulp
    # Shifting every box by 0.6 of its width (IoU 0.25) loses the matches: the metric sees these boxes.
    for out in outputs:
        b = out["boxes"]
        out["boxes"] = b + torch.stack([(b[:, 2] - b[:, 0]) * 0.6, torch.zeros(len(b))] * 2, dim=1)
    shifted = detection.detection_metrics(gt, detections_to_voc(outputs, list(gt)))
    assert shifted["map_voc07_11point"] < 0.2


def test_detector_uses_roi_max_pool_on_conv5_and_aligned_anchors() -> None:
    model = detection.build_detector(
        create_encoder("caffenet"), detection.Protocol(fc_width=16, detector="faster_rcnn")
    )
    assert isinstance(model.roi_heads.box_roi_pool, detection.RoIMaxPool)
    assert model.backbone.out_channels == 256
    feature = model.backbone(torch.zeros(1, 3, 131, 131))
    assert feature.shape == (1, 256, 7, 7)  # conv5, no pool5: 131 → 31 → 15 → 7
    from torchvision.models.detection.image_list import ImageList

    anchors = model.rpn.anchor_generator(ImageList(torch.zeros(1, 3, 144, 144), [(131, 131)]), [feature])[0]
    centres = (anchors[:, :2] + anchors[:, 2:]) / 2
    assert torch.allclose(centres[0], torch.tensor([17.5, 17.5]), atol=0.5)  # cell (0, 0), CaffeNet
    assert torch.allclose(centres[-1], torch.tensor([17.5 + 16 * 6, 17.5 + 16 * 6]), atol=0.5)


def test_paper_det_without_proposals_stops_at_its_start(
    voc_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "runs"
    args = ["eval", "--task", "det", "--weights", "random", "--profile", "paper", "--data", str(voc_root)]
    args += ["--out", str(out), "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "bench data proposals" in err and "--set detector=faster_rcnn" in err
    (record_path,) = out.glob("*.json")  # stopped at its start, before reading data or weights
    assert "bench data proposals" in json.loads(record_path.read_text())["error"]
    with pytest.raises(RecipeError, match="the RPN makes its own"):
        detection.Protocol(detector="faster_rcnn", proposals="p.npz")


def test_pyramid_level_is_the_scale_closest_to_224_squared() -> None:
    """Against a transcription of Fast R-CNN's ``_project_im_rois`` (lib/fast_rcnn/test.py), 0-based boxes."""
    rng = np.random.default_rng(0)
    x1y1 = rng.uniform(0, 400, size=(500, 2))
    voc0 = np.concatenate([x1y1, x1y1 + rng.uniform(0, 400, size=(500, 2))], axis=1).round()  # 0-based incl.
    scales = np.array([0.8, 1.0, 1.3, 1.7, 2.4])
    widths, heights = voc0[:, 2] - voc0[:, 0] + 1, voc0[:, 3] - voc0[:, 1] + 1
    want = np.abs((widths * heights)[:, None] * scales[None, :] ** 2 - 224 * 224).argmin(axis=1)
    continuous = torch.from_numpy(voc0 + np.array([0, 0, 1, 1]))  # torchvision: [x1, x2 + 1)
    got = detection_model.pyramid_levels(continuous, torch.from_numpy(scales))
    np.testing.assert_array_equal(got.numpy(), want)
    assert detection_model.pyramid_scale(375, 500, 1200, 2000) == pytest.approx(1200 / 375)
    assert detection_model.pyramid_scale(375, 1000, 1200, 2000) == 2.0  # longer side capped


def test_one_level_pyramid_equals_the_single_scale_path() -> None:
    """A pyramid whose levels are all 128 px sends every RoI to level 0: the same detections as single-scale
    Fast R-CNN at 128 px through torchvision's transform (resize, proposals scaled, NMS)."""
    torch.manual_seed(0)
    p = detection.Protocol(proposals="p.npz", min_size=128, max_size=1000, fc_width=16, test_score_thresh=0.0)
    model = detection.build_detector(create_encoder("caffenet"), p).eval()
    images = [torch.rand(3, 150, 210), torch.rand(3, 180, 120)]
    # Disjoint boxes: NMS must not choose between near-tied scores (the two paths differ by float error).
    proposals = [torch.tensor([[0.0, 0.0, 60.0, 50.0], [70.0, 60.0, 200.0, 140.0], [5.0, 5.0, 9.0, 9.0]]),
                 torch.tensor([[10.0, 30.0, 60.0, 90.0], [70.0, 100.0, 120.0, 180.0]])]  # fmt: skip
    single = detection_model.detector_forward(model, images, None, proposals)
    model.transform.min_size = (128, 128, 128)
    pyramid = detection_model.detector_forward(model, images, None, proposals)
    for a, b in zip(single, pyramid, strict=True):
        assert len(a["scores"]) > 0
        rows = [torch.cat([d["labels"][:, None].float(), d["scores"][:, None], d["boxes"]], 1).detach()
                for d in (a, b)]  # fmt: skip
        rows = [r[np.lexsort(r.round(decimals=2).numpy().T[::-1])] for r in rows]  # near-ties may swap
        torch.testing.assert_close(rows[0], rows[1], rtol=1e-4, atol=1e-3)


def test_fast_rcnn_trains_at_random_scales_and_tests_on_the_pyramid(
    voc_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Converted selective-search boxes (the .mat layout), several scales: training resizes each image to
    one drawn at random, testing pools every RoI from the pyramid."""
    mats = voc_selective_search_mats(voc_root, tmp_path / "ss")
    path = tmp_path / "proposals.npz"
    assert main(["data", "proposals", *map(str, mats), "--out", str(path), "--data", str(voc_root)]) == 0
    train_sizes, pyramid_calls = set(), []
    real_forward, real_pyramid = detection.detector_forward, detection_model.pyramid_detect

    def spy_forward(model, images, targets=None, proposals=None):  # noqa: ANN001, ANN202
        if model.training:
            train_sizes.update(model.transform(images, targets)[0].image_sizes)
        return real_forward(model, images, targets, proposals)

    def spy_pyramid(model, images, proposals):  # noqa: ANN001, ANN202
        pyramid_calls.append(len(images))
        return real_pyramid(model, images, proposals)

    monkeypatch.setattr(detection, "detector_forward", spy_forward)
    monkeypatch.setattr(detection_model, "pyramid_detect", spy_pyramid)
    record = _bench_eval(voc_root, tmp_path / "runs", "detector=fast_rcnn", f"proposals={path}",
                         "min_size=[96,128,160]", "max_size=200", "iterations=4")  # fmt: skip
    assert record["status"] == "ok" and record["extra"]["scales"]["test"] == [96, 128, 160]
    assert len({min(s) for s in train_sizes}) >= 2  # shorter sides drawn from the scales
    assert {min(s) for s in train_sizes} <= {96, 128, 160}
    assert sum(pyramid_calls) == 16  # every test image through the pyramid
