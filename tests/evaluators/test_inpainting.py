"""The inpainting evaluator: metric arithmetic, NN inpainting, ``bench eval --task inpaint`` end to end
(SynthVOC and a Paris StreetView folder)."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ssl_bench.cli import main
from ssl_bench.data.masks import center_mask, fill_holes
from ssl_bench.data.voc import read_image_set
from ssl_bench.evaluators.inpainting_nn import NearestNeighbourInpainter, context_features, hole_box
from ssl_bench.metrics.inpainting import hole_errors, psnr, summarize_hole_errors
from tests.data.test_paris import write_paris_folder

TINY_SYNTH_IMAGES = 64  # the session's tiny SynthVOC (tests/conftest.py)
# The metric prefixes of Table 1's rows besides the network's: NN on its features, NN on HOG, three classic
# fills, the mean fill.
BASELINES = ("nn_", "nn_hog_", "telea_", "ns_", "biharmonic_", "fill_")
METRICS = ("l1_pct", "l2_pct", "psnr_db", "sharpness")


# ---------------------------------------------------------------------------------------------- metrics


def test_metrics_match_hand_computed_values() -> None:
    target = torch.zeros(2, 3, 2, 2)
    mask = torch.zeros(2, 1, 2, 2, dtype=torch.bool)
    mask[:, :, 0, :] = True  # the top row (2 pixels) is the hole
    pred = torch.full((2, 3, 2, 2), 0.9)  # outside the hole: must not count
    pred[0, :, 0, :] = torch.tensor([[0.1, 0.3], [0.2, 0.0], [0.0, 0.4]])
    pred[1, :, 0, :] = 0.05
    l1, mse = hole_errors(pred, target, mask)
    # image 0: |d| sums to 1.0 over 6 values, d² to 0.30; image 1: every d = 0.05
    assert l1.tolist() == pytest.approx([1.0 / 6, 0.05])
    assert mse.tolist() == pytest.approx([0.05, 0.0025])
    assert psnr(mse).tolist() == pytest.approx([10 * math.log10(20), 10 * math.log10(400)])
    m = summarize_hole_errors(l1, mse, "nn_")
    assert m["nn_l1_pct"] == pytest.approx(100 * (1 / 6 + 0.05) / 2)
    assert m["nn_l2_pct"] == pytest.approx(100 * (0.05 + 0.0025) / 2)
    # the mean of per-image PSNRs (19.52 dB), not the PSNR of the mean MSE (15.80 dB)
    assert m["nn_psnr_db"] == pytest.approx((13.0103 + 26.0206) / 2, abs=1e-4)


def test_psnr_of_an_exact_reconstruction_is_capped() -> None:
    assert psnr(torch.tensor([0.0])).item() == pytest.approx(100.0)


def test_hole_errors_refuse_an_empty_hole() -> None:
    with pytest.raises(ValueError, match="non-empty hole"):
        no_hole = torch.zeros(1, 1, 4, 4, dtype=torch.bool)
        hole_errors(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 4), no_hole)


def test_mean_fill_errors_equal_the_direct_computation() -> None:
    g = torch.Generator().manual_seed(0)
    target = torch.randint(0, 256, (3, 3, 12, 12), generator=g).double() / 255  # [3, 3, 12, 12]
    mask = center_mask(12).expand(3, 1, 12, 12)
    fill = torch.tensor([0.2, 0.5, 0.8])
    l1, mse = hole_errors(fill_holes(target, mask, fill), target, mask)
    hole = target[:, :, 3:9, 3:9].numpy()  # centre 6×6 of 12
    d = hole - fill.numpy()[None, :, None, None]
    np.testing.assert_allclose(l1.numpy(), np.abs(d).mean(axis=(1, 2, 3)), rtol=1e-12)
    np.testing.assert_allclose(mse.numpy(), (d**2).mean(axis=(1, 2, 3)), rtol=1e-12)


# ------------------------------------------------------------------------------------ nearest neighbour


def _eight_bit_images(n: int, size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, size, size), generator=g).double() / 255  # [n, 3, S, S], 8-bit levels


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_nn_inpainting_of_a_database_image_returns_its_own_hole(metric: str) -> None:
    images = _eight_bit_images(10, 24, seed=1)
    masks = center_mask(24).expand(10, 1, 24, 24)
    features = context_features(images.float(), masks, torch.zeros(3))  # [10, 3·16·16]
    if metric == "ip":
        features = torch.nn.functional.normalize(features, dim=1)
    nn = NearestNeighbourInpainter(hole_box(masks[0]), metric)
    nn.add(features, images)
    assert len(nn) == 10
    out, nearest = nn.inpaint(features, images, masks)
    assert nearest.tolist() == list(range(10))
    assert torch.equal(out, images)
    l1, mse = hole_errors(out, images, masks)
    assert l1.abs().max() == 0 and mse.abs().max() == 0


def test_nn_inpainting_pastes_the_nearest_hole_and_keeps_the_context() -> None:
    database = _eight_bit_images(5, 16, seed=2)
    masks = center_mask(16).expand(5, 1, 16, 16)
    features = torch.eye(5)  # image k is described by e_k
    nn = NearestNeighbourInpainter(hole_box(masks[0]), "l2")
    nn.add(features[:3], database[:3])
    nn.add(features[3:], database[3:])  # the database grows batch by batch
    query = _eight_bit_images(1, 16, seed=3)
    out, nearest = nn.inpaint(features[[3]] * 0.9, query, masks[:1])
    assert nearest.tolist() == [3]
    hole = masks[:1].expand_as(query)
    assert torch.equal(out[hole], database[3:4][hole])
    assert torch.equal(out[~hole], query[~hole])


# ------------------------------------------------------------------------------------------ end to end


def _eval(args: list[str], out: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    code = main(
        ["eval", "--task", "inpaint", "--no-progress", "--out", str(out), "--set", "workers=0", *args]
    )
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0, record.get("error")
    return record


@pytest.fixture(scope="module")
def context_encoder_run(synth_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 10-step context-encoder run on the tiny SynthVOC pool (SSL_BENCH_CACHE points at synth_cache)."""
    out = tmp_path_factory.mktemp("ce_run")
    code = main(
        [
            "pretrain",
            "--method",
            "context_encoder",
            "--steps",
            "10",
            "--image-size",
            "99",
            "--batch-size",
            "4",
            "--workers",
            "0",
            "--out",
            str(out),
            "--no-progress",
            "--set",
            f"data.synth_images={TINY_SYNTH_IMAGES}",
        ]
    )
    assert code == 0
    return out


def test_bench_eval_inpaint_with_a_context_encoder_run(
    context_encoder_run: Path, synth_voc_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = _eval(
        ["--weights", str(context_encoder_run / "encoder.pt"), "--data", str(synth_voc_root)],
        tmp_path / "records",
        capsys,
    )
    metrics, extra = record["metrics"], record["extra"]
    assert set(metrics) == {f"{p}{m}" for p in ("", *BASELINES) for m in METRICS}
    assert all(math.isfinite(v) for v in metrics.values())
    for prefix in ("", *BASELINES):
        assert 0 < metrics[f"{prefix}l2_pct"] < 100 and metrics[f"{prefix}psnr_db"] > 0, prefix
        # mean L2 % is the mean squared error: the mean of per-image PSNRs is at least 10·log10(1/mean MSE)
        assert metrics[f"{prefix}psnr_db"] >= 10 * math.log10(100 / metrics[f"{prefix}l2_pct"]) - 1e-9
    # sharpness: a flat fill has no detail; NN pastes a real image's hole, as detailed as the originals
    assert metrics["fill_sharpness"] == 0 and 0 < metrics["telea_sharpness"] < metrics["nn_hog_sharpness"]
    assert extra["primary_metric"] == "psnr_db"
    assert extra["model"].startswith("context_encoder")
    assert extra["nn_feature"].startswith("pool5")
    assert extra["nn_hog_feature"].startswith("HOG")
    assert extra["image_size"] == 99  # the run's training size, not the recipe's 227
    assert extra["test_images"] == len(read_image_set(synth_voc_root, "test"))
    assert extra["test_data"].startswith("Main test")
    assert set(extra["seconds"]) == {"network", "nn", "nn_hog", "telea", "ns", "biharmonic", "fill"}
    figure = Path(extra["figure"])
    assert figure.is_file()
    width, height = Image.open(figure).size
    # one row per test image (6), one column per method: masked input, 7 rows of Table 1, original
    assert extra["figure_columns"].split(" / ") == [
        "masked input", "network", "NN HOG", "NN pool5", "Telea", "Navier-Stokes", "biharmonic",
        "mean fill", "original"]  # fmt: skip
    assert width >= 9 * 99 and height >= 6 * 99
    assert record["images_per_s"] is not None


def test_bench_eval_inpaint_refuses_an_encoder_that_is_not_the_checkpoints(
    context_encoder_run: Path, synth_voc_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "run"
    shutil.copytree(context_encoder_run, run)
    state = torch.load(run / "encoder.pt", weights_only=True)
    state["conv1.bias"] = state["conv1.bias"] + 1
    torch.save(state, run / "encoder.pt")
    code = main(
        [
            "eval",
            "--task",
            "inpaint",
            "--no-progress",
            "--out",
            str(tmp_path / "records"),
            "--weights",
            str(run / "encoder.pt"),
            "--data",
            str(synth_voc_root),
        ]
    )
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code != 0 and "differs from the encoder" in record["error"]


def test_bench_eval_inpaint_random_weights_report_the_baselines_only(
    synth_voc_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With no decoder: NN and mean fill only; the fill numbers equal a direct numpy computation."""
    record = _eval(
        ["--weights", "random", "--data", str(synth_voc_root), "--set", "image_size=227"],
        tmp_path / "records",
        capsys,
    )
    metrics, extra = record["metrics"], record["extra"]
    assert set(metrics) == {f"{p}{m}" for p in BASELINES for m in METRICS}  # every row but the network's
    assert extra["model"] == "none (no decoder)"
    assert extra["primary_metric"] == "nn_psnr_db"
    assert extra["nn_feature"].startswith("pixels")
    assert Path(extra["figure"]).is_file()
    assert extra["figure_columns"].split(" / ")[:3] == ["masked input", "NN HOG", "NN pixels"]  # no network

    # SynthVOC images are 227×227, so at 227 px the centre crop is the whole image.
    def load(split: str) -> np.ndarray:
        ids = read_image_set(synth_voc_root, split)
        return (
            np.stack(
                [
                    np.asarray(Image.open(synth_voc_root / "JPEGImages" / f"{i}.jpg").convert("RGB"))
                    for i in ids
                ]
            ).astype(np.float64)
            / 255
        )  # [N, 227, 227, 3]

    mean = np.round(load("trainval").mean(axis=(0, 1, 2)) * 255) / 255  # the database's mean pixel, 8-bit
    hole = load("test")[:, 56:170, 56:170, :]  # centre 114×114 of 227
    d = hole - mean
    mse = (d**2).mean(axis=(1, 2, 3))
    assert metrics["fill_l1_pct"] == pytest.approx(100 * np.abs(d).mean(), rel=1e-9)
    assert metrics["fill_l2_pct"] == pytest.approx(100 * mse.mean(), rel=1e-9)
    assert metrics["fill_psnr_db"] == pytest.approx(np.mean(10 * np.log10(1 / mse)), rel=1e-9)
    # pixel NN search is no better than chance on random SynthVOC scenes, but it must stay finite and sane
    assert 0 < metrics["nn_l2_pct"] < 100


def test_bench_eval_inpaint_pool5_features_from_the_named_encoder(
    synth_voc_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = _eval(
        [
            "--weights",
            "random",
            "--data",
            str(synth_voc_root),
            "--set",
            "image_size=99",
            "--set",
            "nn_feature=pool5",
        ],
        tmp_path / "records",
        capsys,
    )
    assert record["extra"]["nn_feature"].startswith("pool5")
    assert record["extra"]["model"] == "none (no decoder)"
    assert record["images_per_s"] is not None


@pytest.mark.parametrize(("train", "test"), [("paris_train_original", "paris_eval_gt"), ("train", "test")])
def test_bench_eval_inpaint_on_a_paris_streetview_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], train: str, test: str
) -> None:
    """``--data`` a Paris StreetView folder: its test folder held out, its train folder the NN database."""
    root = write_paris_folder(tmp_path / "paris", train, test, n_train=5, n_test=3)
    record = _eval(
        ["--weights", "random", "--data", str(root), "--set", "image_size=32"], tmp_path / "records", capsys
    )
    extra = record["extra"]
    assert extra["test_data"] == f"Paris StreetView {test}/ (3 images)"
    assert extra["nn_database"] == f"Paris StreetView {train}/ (5 images)"
    assert extra["test_images"] == 3 and extra["image_size"] == 32
    assert set(record["metrics"]) == {f"{p}{m}" for p in BASELINES for m in METRICS}
    assert record["data"]["synthvoc"] is False


def test_bench_eval_inpaint_names_the_layouts_it_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "photos" / "holiday").mkdir(parents=True)
    code = main(["eval", "--task", "inpaint", "--no-progress", "--out", str(tmp_path / "records"),
                 "--weights", "random", "--data", str(tmp_path / "photos")])  # fmt: skip
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 2 and record["status"] == "error"
    for name in ("ImageSets/Main/", "paris_train_original/", "paris_eval_gt/", "train/", "test/"):
        assert name in record["error"]


def test_runs_without_a_decoder_report_the_baselines_only(tmp_path: Path) -> None:
    """A supervised run (no decoder) and a bare encoder.pt give no model; the run still fixes the size."""
    from ssl_bench.encoders import create_encoder
    from ssl_bench.evaluators.base import EvalContext
    from ssl_bench.evaluators.inpainting import load_inpainting_model

    run = tmp_path / "supervised"
    run.mkdir()
    torch.save(create_encoder("caffenet").state_dict(), run / "encoder.pt")
    (run / "config.yaml").write_text("method: supervised\ndata: {image_size: 99}\ntrain: {steps: 2}\n")
    ctx = EvalContext(weights=str(run / "encoder.pt"), arch="caffenet", voc_root=tmp_path)
    method, config = load_inpainting_model(ctx)
    assert method is None and config["data"]["image_size"] == 99

    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(run / "encoder.pt", bare / "encoder.pt")
    ctx = EvalContext(weights=str(bare / "encoder.pt"), arch="caffenet", voc_root=tmp_path)
    assert load_inpainting_model(ctx) == (None, None)
