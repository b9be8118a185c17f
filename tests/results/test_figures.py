"""Figures drawn from tiny inputs: an untrained 99-px context encoder, a random encoder, 64-image SynthVOC;
the analyses behind them (``results/analyses.py``) saved, and the figures drawn back from what they saved."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from ssl_bench.methods import create_method
from ssl_bench.results import analyses as A
from ssl_bench.results import figures as F
from ssl_bench.results.analyses import ImageGrid
from ssl_bench.results.table import build_table
from ssl_bench.runtime.checkpoint import save_checkpoint, save_encoder
from tests.results.test_table import record

PNG = b"\x89PNG\r\n\x1a\n"


def fake_run(folder: Path, method: str, image_size: int = 99) -> Path:
    """A run folder as ``bench pretrain`` leaves it: config.yaml, checkpoint.pt, encoder.pt, metrics.jsonl."""
    folder.mkdir(parents=True)
    config = {
        "method": method,
        "seed": 0,
        "model": {"encoder": "caffenet"},
        "data": {"image_size": image_size},
        "train": {"steps": 20, "batch_size": 4},
    }
    torch.manual_seed(0)
    model = create_method(method, image_size=image_size, encoder="caffenet")
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    save_checkpoint(folder / "checkpoint.pt", 0, model, None, config)
    save_encoder(folder / "encoder.pt", model.encoder)
    rows = [{"step": s, "loss": 1.0 / s, "img_s": 10.0} for s in (10, 20)] + [
        {"step": 20, "sample_l2": 0.4, "fill_l2": 0.6}
    ]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fig_runs")
    return {m: fake_run(root / m, m) for m in ("context_encoder", "random")}


def fake_semantic_run(folder: Path, method: str = "semantic_inpainting", image_size: int = 32) -> Path:
    """A tiny semantic-inpainting run folder (DCGAN encoder, 16-d code) with G and D metrics."""
    folder.mkdir(parents=True)
    model_options = {"encoder": "dcgan", "width": 4, "bottleneck_dim": 16, "overlap": 0}
    config = {"method": method, "seed": 0, "model": model_options, "data": {"image_size": image_size},
              "train": {"steps": 20, "batch_size": 4}}  # fmt: skip
    torch.manual_seed(0)
    model = create_method(method, image_size=image_size, **model_options)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    save_checkpoint(folder / "checkpoint.pt", 0, model, None, config)
    save_encoder(folder / "encoder.pt", model.encoder)
    gan = {"loss_discriminator": 1.2, "d_accuracy_real": 0.6, "d_accuracy_fake": 0.4, "adversarial": 0.7}
    gan = gan if model.discriminator is not None else {}
    rows = [{"step": s, "loss": 1.0 / s, "l2": 0.9 / s, **gan} for s in (10, 20)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def check_png(path: Path) -> tuple[int, int]:
    assert path.is_file() and path.read_bytes()[:8] == PNG
    with Image.open(path) as im:
        assert im.width > 100 and im.height > 50
        return im.size


def test_inpainting_examples_and_layer_randomisation(runs, synth_voc_root, tmp_path):
    check_png(F.inpainting_examples(runs, synth_voc_root, tmp_path / "inpaint.png", num_images=3))
    path, numbers = F.layer_randomisation(
        runs, synth_voc_root, tmp_path / "layers.png", num_images=3, draws=1, progress=False
    )
    check_png(path)
    entry = numbers["methods"]["context_encoder"]
    assert list(entry["layers"]) == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    assert "random" not in numbers["methods"]  # no decoder: it cannot inpaint
    assert entry["trained"] > 0 and entry["mean_fill"] > 0 and numbers["num_images"] == 3
    assert json.loads((tmp_path / "layers.json").read_text()) == numbers


def test_conv1_filters_tsne_and_loss_curves(runs, synth_voc_root, tmp_path):
    weights = {m: r / "encoder.pt" for m, r in runs.items()}
    width, _ = check_png(F.conv1_filters(weights, tmp_path / "conv1.png"))
    assert width > 300  # two panels
    check_png(F.tsne_pool5(weights, synth_voc_root, tmp_path / "tsne.png", max_images=10, progress=False))
    check_png(F.loss_curves(runs, tmp_path / "loss.png"))
    mosaic = A.filter_mosaic(torch.randn(96, 3, 11, 11))
    assert mosaic.shape == (8 * 12 - 1, 12 * 12 - 1, 3) and mosaic.min() >= 0 and mosaic.max() <= 1


def test_table_bars_from_records_and_placeholders(tmp_path):
    recs = [
        record("cls", "context_encoder", 0, 0.50),
        record("cls", "context_encoder", 1, 0.52),
        record("det", "random", 0, status="error"),
    ]
    table = build_table(recs)
    check_png(F.table_bars(table.numeric_frame(), tmp_path / "bars.png", table.tasks, table.metrics))
    # Nothing to draw still gives a file the report can link, saying why.
    check_png(F.inpainting_examples({}, tmp_path, tmp_path / "none.png"))
    check_png(F.loss_curves({}, tmp_path / "none_loss.png"))


def test_same_inputs_give_the_same_bytes(tmp_path):
    recs = [record("cls", "context_encoder", 0, 0.50)]
    frame = build_table(recs).numeric_frame()
    a = F.table_bars(frame, tmp_path / "a.png").read_bytes()
    b = F.table_bars(frame, tmp_path / "b.png").read_bytes()
    assert a == b


def test_the_semantic_inpainting_figures(synth_voc_root, tmp_path):
    """Issue #15: layer randomisation over every conv layer (outputs and errors), the code's t-SNE, the G/D
    curves, the inpainting grid with the classic inpainters, conv1 filters of the DCGAN encoder."""
    runs = {m: fake_semantic_run(tmp_path / m, m) for m in ("semantic_inpainting", "semantic_inpainting_l2")}
    _, numbers = F.layer_randomisation(runs, synth_voc_root, tmp_path / "layers.png", num_images=2, draws=1,
                                       progress=False)  # fmt: skip
    layers = list(numbers["methods"]["semantic_inpainting"]["layers"])
    # 32 px: three stride-2 convs to 4×4, the code, the head and two up-convs to the 16-px centre
    assert layers == ["conv1", "conv2", "conv3", "bottleneck", "deconv1", "deconv2", "deconv3"]
    trained = numbers["methods"]["semantic_inpainting"]["trained"]
    assert all(v["mean"] != trained for v in numbers["methods"]["semantic_inpainting"]["layers"].values())
    _, height = check_png(F.layer_randomisation_outputs(runs["semantic_inpainting"], synth_voc_root,
                                                        tmp_path / "outputs.png", num_images=2))  # fmt: skip
    assert height > 10 * 50  # masked input, trained, 7 layers, original
    check_png(F.tsne_code(runs, synth_voc_root, tmp_path / "tsne_code.png", max_images=10, progress=False))
    weights = {m: r / "encoder.pt" for m, r in runs.items()}
    check_png(F.tsne_pool5(weights, synth_voc_root, tmp_path / "tsne.png", max_images=10, progress=False))
    check_png(F.gan_curves(runs, tmp_path / "gan.png"))  # the L2-only twin has no D: one row
    check_png(F.gan_curves({"l2": runs["semantic_inpainting_l2"]}, tmp_path / "no_gan.png"))
    check_png(F.conv1_filters(weights, tmp_path / "conv1.png"))
    with_baselines = F.inpainting_examples(runs, synth_voc_root, tmp_path / "grid.png", num_images=2,
                                           baselines=list(F.GRID_BASELINES))  # fmt: skip
    without = F.inpainting_examples(runs, synth_voc_root, tmp_path / "grid0.png", num_images=2)
    assert check_png(with_baselines)[1] > check_png(without)[1]  # three more rows


def test_analyses_save_their_data_and_figures_draw_it_back_to_the_same_bytes(runs, synth_voc_root, tmp_path):
    """Issue #24: the analyses compute and save (.npz, JSON); the figures only draw, from saved data as from
    live, and a figure function (compute, then draw) gives the same PNG."""
    grid = A.inpainting_example_grid(runs, synth_voc_root, num_images=2)
    assert [label for label, _ in grid.rows] == ["masked input", "context_encoder\noutput", "original"]
    assert grid.rows[0][1].shape == (2, 99, 99, 3) and "no decoder: random" in grid.title
    saved = ImageGrid.load(grid.save(tmp_path / "grid.npz"))
    assert saved.title == grid.title
    assert all(a == b and np.array_equal(x, y) for (a, x), (b, y) in zip(saved.rows, grid.rows, strict=True))
    live = F.inpainting_examples(runs, synth_voc_root, tmp_path / "grid.png", num_images=2).read_bytes()
    assert F.draw_image_grid(saved, tmp_path / "grid_saved.png").read_bytes() == live

    errors = A.layer_randomisation_errors(runs, synth_voc_root, num_images=2, draws=1, progress=False)
    saved_json = json.loads(A.write_json(tmp_path / "errors.json", errors).read_text())
    live_png, _ = F.layer_randomisation(runs, synth_voc_root, tmp_path / "layers.png", num_images=2, draws=1,
                                       progress=False)  # fmt: skip
    assert F.draw_layer_randomisation(saved_json, tmp_path / "layers_saved.png").read_bytes() == (
        live_png.read_bytes()
    )

    weights = {m: r / "encoder.pt" for m, r in runs.items()}
    tsne = A.tsne_pool5_panels(weights, synth_voc_root, max_images=8, progress=False)
    assert len(tsne["classes"]) == 8 and all(len(xy) == 8 for xy in tsne["panels"].values())
    saved_json = json.loads(A.write_json(tmp_path / "tsne.json", tsne).read_text())
    live = F.tsne_pool5(weights, synth_voc_root, tmp_path / "tsne.png", max_images=8, progress=False)
    assert F.draw_tsne(saved_json, tmp_path / "tsne_saved.png").read_bytes() == live.read_bytes()


def test_the_figures_draw_hand_written_data_without_any_model(tmp_path):
    """Nothing to load or run: each ``draw_*`` takes numbers and arrays, and says so when there are none."""
    errors = {"num_images": 4, "draws": 2, "methods": {"net": {
        "trained": 1.0, "mean_fill": 3.0,
        "layers": {"conv1": {"mean": 2.0, "std": 0.1}, "conv2": {"mean": 1.5, "std": 0.2}}}}}  # fmt: skip
    check_png(F.draw_layer_randomisation(errors, tmp_path / "layers.png"))
    check_png(F.draw_layer_randomisation({**errors, "methods": {}}, tmp_path / "layers_none.png"))
    tsne = {"title": "t", "classes": [0, 1, -1], "panels": {"a": [[0, 0], [1, 1], [2, 0]], "b": "no pool5"}}
    check_png(F.draw_tsne(tsne, tmp_path / "tsne.png"))
    grid = ImageGrid("rows", [("noise", np.random.default_rng(0).random((3, 8, 8, 3), dtype=np.float32)),
                              ("grey", np.full((3, 8, 8, 3), 0.5, dtype=np.float32))])  # fmt: skip
    check_png(F.draw_image_grid(grid, tmp_path / "grid.png"))
    conv1 = {"a": (np.zeros((23, 35, 3)), 0.5), "b": "no RGB conv1"}
    check_png(F.draw_conv1_filters(conv1, tmp_path / "conv1.png"))
