"""Every ``paper`` recipe runs: each ``pretrain/paper/*.yaml`` and ``eval/paper/*.yaml`` for 2 iterations on
small trees in the real formats (``tests/paper_fixtures.py``): an ImageNet-style train folder, VOCdevkit
VOC2007 + VOC2012, SBD's ``cls/*.mat`` and selective-search proposals converted from Fast R-CNN's ``.mat``.

Only budgets and sizes are overridden, through ``--set`` as a user would (steps, batch sizes, image counts,
widths, scales); every other value is the recipe's, so the paper paths load, train a step, evaluate and write
a record: segmentation on VOC2012 + SBD, detection as Fast R-CNN on converted proposals at two scales.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ssl_bench.cli import main
from ssl_bench.encoders import load_encoder
from ssl_bench.recipes import recipe_dirs
from tests.paper_fixtures import PaperData, write_paper_data

PRETRAIN = sorted(p.stem for d in recipe_dirs("pretrain") for p in (d / "paper").glob("*.yaml"))
EVAL = sorted(p.stem for d in recipe_dirs("eval") for p in (d / "paper").glob("*.yaml"))

# Budgets for 2 CPU cores: a couple of steps of 2 images; counts that fit 8 images in 2 class folders.
PRETRAIN_SETS = ["train.steps=2", "train.batch_size=2", "train.workers=0", "train.log_every=1",
                 "train.sample_every=0", "train.checkpoint_every=0"]  # fmt: skip
PRETRAIN_METHOD_SETS = {
    "datainit": ["model.num_images=4", "model.between_layer_iterations=1"],
    "deepcluster": ["model.num_clusters=2", "model.pca_dim=4", "model.head_width=64"],
    "jigsaw": ["model.num_permutations=10", "model.fc6_width=64", "model.fc7_width=64"],
    "relative_position": ["model.head_width=64"],
    "rotation": ["model.head_width=64"],
    "semantic_inpainting": ["model.width=16", "model.bottleneck_dim=64"],
    "semantic_inpainting_l2": ["model.width=16", "model.bottleneck_dim=64"],
    "supervised": ["model.head_width=64"],
}
EVAL_SETS = {
    "cls": ["iterations=2", "batch_size=2", "test_crops=2", "test_batch_size=4", "fc_width=64",
            "head_init_images=2", "workers=0"],
    "det": ["iterations=2", "min_size=[96,128]", "max_size=160", "fc_width=64", "test_batch_size=2",
            "workers=0"],
    "seg": ["iterations=2", "batch_size=2", "crop_size=128", "fc_width=64", "head_init_images=2",
            "workers=0"],
    "cls-linear": ["batch_size=4", "workers=0", "cv_folds=2", "svm_jobs=1"],
    "knn": ["batch_size=4", "workers=0", "k=3"],
    "inpaint": ["batch_size=4", "workers=0", "nn_database_max=8", "max_test_images=2"],
}  # fmt: skip
EVAL_SETS["cls-fc6-8"] = EVAL_SETS["cls"]


@pytest.fixture(scope="module")
def paper_data(tmp_path_factory: pytest.TempPathFactory) -> PaperData:
    return write_paper_data(tmp_path_factory.mktemp("paper_data"))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("paper_runs")


def _pretrain(method: str, data: PaperData, runs: Path) -> Path:
    out = runs / method
    if not (out / "encoder.pt").is_file():
        args = ["pretrain", "--method", method, "--profile", "paper", "--data", str(data.imagenet_train),
                "--out", str(out), "--device", "cpu", "--no-progress"]  # fmt: skip
        for item in PRETRAIN_SETS + PRETRAIN_METHOD_SETS.get(method, []):
            args += ["--set", item]
        assert main(args) == 0, method
    return out


@pytest.mark.parametrize("method", PRETRAIN)
def test_paper_pretraining_recipe_runs(method: str, paper_data: PaperData, runs: Path) -> None:
    out = _pretrain(method, paper_data, runs)
    config = (out / "config.yaml").read_text()
    assert "steps: 2" in config or method in ("random", "datainit")
    if method.startswith("semantic_inpainting"):  # a DCGAN encoder: only the inpaint task reads it
        assert (out / "encoder.pt").is_file()
    else:  # a CaffeNet every evaluator loads, strictly
        assert isinstance(load_encoder(str(out / "encoder.pt"), "caffenet"), torch.nn.Module)


@pytest.mark.parametrize("task", EVAL)
def test_paper_evaluation_recipe_runs(task: str, paper_data: PaperData, runs: Path) -> None:
    weights = _pretrain("context_encoder", paper_data, runs) / "encoder.pt"
    sets = list(EVAL_SETS[task])
    data = paper_data.voc2012 if task == "seg" else paper_data.voc2007
    if task == "det":
        sets.append(f"proposals={paper_data.proposals}")
    if task == "seg":
        sets.append(f"sbd_root={paper_data.sbd}")
    out = runs / "records" / task
    args = ["eval", "--task", task, "--profile", "paper", "--weights", str(weights), "--data", str(data),
            "--out", str(out), "--device", "cpu", "--no-progress"]  # fmt: skip
    for item in sets:
        args += ["--set", item]
    code = main(args)
    (path,) = out.glob("*.json")
    record = json.loads(path.read_text())
    assert code == 0 and record["status"] == "ok", record.get("error")
    assert record["profile"] == "paper" and record["extra"]["primary_metric"] in record["metrics"]
    if task == "det":
        assert record["extra"]["detector"] == "fast_rcnn" and record["extra"]["proposals"] == str(
            paper_data.proposals
        )
        assert record["extra"]["scales"]["train"] == record["extra"]["scales"]["test"] == [96, 128]
    if task == "seg":
        assert record["extra"]["sbd"] and record["extra"]["sbd_images"] > 0
