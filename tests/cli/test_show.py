"""``bench show``: the sample grids' hole L2, PSNR and detail, from the suite's metrics, printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from ssl_bench.cli import main
from ssl_bench.data.masks import center_mask
from ssl_bench.data.transforms import denormalize
from ssl_bench.methods import create_method
from ssl_bench.metrics.inpainting import hole_metrics
from ssl_bench.metrics.sharpness import gradient_energy
from ssl_bench.training.samples import write_sample_grid

SIZE = 99


@pytest.fixture(scope="module")
def method_and_batch() -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    method = create_method("context_encoder", image_size=SIZE, mask="center")
    image = torch.randn(2, 3, SIZE, SIZE)  # normalised units
    return method, {"image": image, "mask": center_mask(SIZE).expand(2, 1, SIZE, SIZE)}


def test_sample_grid_numbers_are_the_hole_metric_on_0_1_images(method_and_batch, tmp_path):
    method, batch = method_and_batch
    numbers = write_sample_grid(method, batch, tmp_path / "grid.png")
    assert (tmp_path / "grid.png").is_file()
    image, mask = batch["image"], batch["mask"]
    expected = hole_metrics(denormalize(method.inpaint(image, mask)), denormalize(image), mask)
    assert numbers["sample_l2"] == pytest.approx(expected["l2_pct"], rel=1e-12)
    assert numbers["sample_psnr_db"] == pytest.approx(expected["psnr_db"], rel=1e-12)
    fill = method.fill.view(1, 3, 1, 1).expand_as(image)
    expected_fill = hole_metrics(denormalize(torch.where(mask, fill, image)), denormalize(image), mask)
    assert numbers["fill_l2"] == pytest.approx(expected_fill["l2_pct"], rel=1e-12)
    assert numbers["fill_psnr_db"] == pytest.approx(expected_fill["psnr_db"], rel=1e-12)
    output, target = denormalize(method.inpaint(image, mask)), denormalize(image)
    ratio = gradient_energy(output, mask).sum() / gradient_energy(target, mask).sum()
    assert numbers["sample_sharpness"] == pytest.approx(float(ratio), rel=1e-9)


class _FlatFill(torch.nn.Module):
    """Inpaints every hole with one grey: no detail inside the hole."""

    fill = torch.zeros(3)

    def inpaint(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return torch.where(mask, torch.zeros_like(image), image)


def test_sample_grid_detail_is_zero_for_a_flat_fill_and_none_for_flat_originals(method_and_batch, tmp_path):
    _, batch = method_and_batch
    numbers = write_sample_grid(_FlatFill(), batch, tmp_path / "flat.png")
    assert numbers["sample_sharpness"] == 0.0
    flat_originals = {"image": torch.zeros_like(batch["image"]), "mask": batch["mask"]}
    numbers = write_sample_grid(_FlatFill(), flat_originals, tmp_path / "flat_originals.png")
    assert numbers["sample_sharpness"] is None  # not nan: metrics.jsonl is strict JSON


def test_an_image_without_a_hole_is_scored_on_every_pixel(method_and_batch, tmp_path):
    method, batch = method_and_batch
    image = batch["image"]
    no_hole = torch.zeros(2, 1, SIZE, SIZE, dtype=torch.bool)  # what the autoencoder's batches hold
    numbers = write_sample_grid(method, {"image": image, "mask": no_hole}, tmp_path / "grid.png")
    everywhere = torch.ones_like(no_hole)
    expected = hole_metrics(denormalize(method.inpaint(image, no_hole)), denormalize(image), everywhere)
    assert numbers["sample_l2"] == pytest.approx(expected["l2_pct"], rel=1e-12)
    assert numbers["fill_l2"] > 0  # the mean fill over the whole image, not the untouched input


def test_bench_show_prints_hole_l2_psnr_and_detail(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    config = {"method": "context_encoder", "data": {"image_size": SIZE}}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    rows = [
        {"step": 10, "loss": 0.9, "img_s": 5.0},
        {"step": 20, "loss": 0.5, "img_s": 7.0},
        {
            "step": 20,
            "sample_l2": 1.5,
            "fill_l2": 2.5,
            "sample_psnr_db": 19.0,
            "fill_psnr_db": 16.5,
            "sample_sharpness": 0.125,
        },
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["show", str(run)]) == 0
    out = capsys.readouterr().out
    assert "(context_encoder)" in out and "loss 0.9000 → 0.5000" in out
    assert "hole L2:        1.5000 % inpainted vs 2.5000 % mean fill  (better than the fill value)" in out
    assert "hole PSNR:      19.00 dB inpainted vs 16.50 dB mean fill" in out
    assert "hole detail:    0.12 of the original's gradient energy in the hole" in out


def test_bench_show_of_a_folder_without_a_run_is_a_one_line_error(tmp_path: Path, capsys):
    assert main(["show", str(tmp_path)]) == 2
    assert "not a pretraining run folder" in capsys.readouterr().err


def test_bench_show_prints_conv1_structure_and_pretext_accuracy(tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(yaml.safe_dump({"method": "supervised", "data": {"image_size": SIZE}}))
    rows = [{"step": s, "loss": 0.5, "accuracy": a, "img_s": 5.0} for s, a in ((10, 0.2), (20, 0.6))]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    torch.manual_seed(0)
    state = {"conv1.weight": torch.randn(96, 3, 11, 11) * 0.01}  # a Gaussian init: structure about 0
    torch.save(state, run / "encoder.pt")
    assert main(["show", str(run)]) == 0
    out = capsys.readouterr().out
    assert "pretext acc.:   0.400" in out
    value = float(out.split("structure ")[1].split()[0])
    assert abs(value) < 0.02
    assert "memorisation" not in out  # a run from before memorisation.json
    sides = {"train": {"loss": 0.05, "accuracy": 1.0}, "heldout": {"loss": 0.27, "accuracy": 0.84}}
    (run / "memorisation.json").write_text(json.dumps(sides))
    assert main(["show", str(run)]) == 0
    out = capsys.readouterr().out
    assert "pretext loss 0.050 on training images vs 0.270 on held-out" in out
    assert "pretext accuracy 1.000 on training images vs 0.840 on held-out" in out
