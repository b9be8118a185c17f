"""README's "Adding a method", run as written: a method in another package, found through its entry point.

The package is made in a temporary folder with the ``*.dist-info`` that ``pip install`` would write
(``entry_points.txt`` generated from the README's ``pyproject.toml`` lines), and that folder is put on
``sys.path``: ``importlib.metadata`` then finds the entry point exactly as for an installed package.
EXAMPLE, PYPROJECT and RECIPE are the README's text, character for character.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from ssl_bench.cli import main
from ssl_bench.methods import available_methods, registry
from tests.conftest import TINY_SYNTH_IMAGES

EXAMPLE = '''\
# my_package/rotation.py
import torch
import torch.nn.functional as F

from ssl_bench.encoders import create_encoder, pool5_size
from ssl_bench.methods import PretrainMethod
from ssl_bench.methods.base import per_sample_generators


class RotationPrediction(PretrainMethod):
    """Predict by how many quarter turns each image was rotated (a 4-way softmax on pool5)."""

    def __init__(self, image_size: int = 227, encoder: str = "caffenet"):
        super().__init__()
        self.encoder = create_encoder(encoder)  # what encoder.pt will hold
        self.head = torch.nn.Linear(256 * pool5_size(image_size) ** 2, 4)

    def forward(self, batch):
        images = batch["image"]  # [N, 3, S, S]
        # one draw per image from its own seed: the same rotations whatever the number of processes
        gens = per_sample_generators(batch["sample_seed"])
        k = torch.cat([torch.randint(4, (1,), generator=g) for g in gens]).to(images.device)  # [N]
        x = torch.stack([torch.rot90(im, int(r), dims=(1, 2)) for im, r in zip(images, k)])
        logits = self.head(self.encoder(x).flatten(1))  # [N, 4]
        return {"loss": F.cross_entropy(logits, k), "accuracy": (logits.argmax(1) == k).float().mean()}
'''

PYPROJECT = """\
# my_package's pyproject.toml
[project.entry-points."ssl_bench.methods"]
my_rotation = "my_package.rotation:RotationPrediction"
"""

RECIPE = """\
# my_rotation.yaml
method: my_rotation
seed: 0
model:
  encoder: caffenet
data:
  source: synthvoc
  image_size: 128
train:
  steps: 300
  batch_size: 16
  optimizer: adam
  lr: 0.0003
"""

CAFFENET_KEYS = sorted(f"conv{i}.{p}" for i in range(1, 6) for p in ("weight", "bias"))


def entry_points_txt(pyproject: str) -> str:
    """The ``entry_points.txt`` that pip writes for a pyproject's ``[project.entry-points."group"]`` lines."""
    lines = []
    for line in pyproject.splitlines():
        if header := re.fullmatch(r'\[project\.entry-points\."(.+)"\]', line.strip()):
            lines.append(f"[{header[1]}]")
        elif entry := re.fullmatch(r'(\S+) = "(.+)"', line.strip()):
            lines.append(f"{entry[1]} = {entry[2]}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def installed_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``my_package`` as ``pip install`` would leave it in a site folder; gone again after the test."""
    site = tmp_path / "site"
    (site / "my_package").mkdir(parents=True)
    (site / "my_package" / "__init__.py").write_text("")
    (site / "my_package" / "rotation.py").write_text(EXAMPLE)
    dist_info = site / "my_package-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-package\nVersion: 0.1\n")
    text = entry_points_txt(PYPROJECT)
    assert text == "[ssl_bench.methods]\nmy_rotation = my_package.rotation:RotationPrediction\n"
    (dist_info / "entry_points.txt").write_text(text)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(registry, "_METHODS", dict(registry._METHODS))  # the plug-in leaves no trace
    yield site
    for name in [m for m in sys.modules if m == "my_package" or m.startswith("my_package.")]:
        del sys.modules[name]


def test_the_readme_plugin_is_found_by_its_entry_point_and_pretrains(
    installed_package: Path, synth_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "rotation" in available_methods()  # the built-in one: hence the plug-in's other name
    assert "my_rotation" in available_methods()
    recipe = tmp_path / "my_rotation.yaml"
    recipe.write_text(RECIPE)
    out = tmp_path / "run"
    argv = ["pretrain", "--method", "my_rotation", "--recipe", str(recipe), "--out", str(out),
            "--steps", "4", "--image-size", "99", "--batch-size", "4", "--workers", "0", "--no-progress",
            "--set", f"data.synth_images={TINY_SYNTH_IMAGES}", "--set", "train.log_every=2"]  # fmt: skip
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["method"] == "my_rotation"
    state = torch.load(out / "encoder.pt", weights_only=True)
    assert sorted(state) == CAFFENET_KEYS and tuple(state["conv1.weight"].shape) == (96, 3, 11, 11)
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "loss" in r] == [2, 4]
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in logged if "accuracy" in r)


def test_the_readme_plugin_draws_its_rotations_from_the_sample_seeds(installed_package: Path) -> None:
    from my_package.rotation import RotationPrediction

    torch.manual_seed(0)
    method = RotationPrediction(image_size=99)
    batch = {"image": torch.randn(4, 3, 99, 99), "sample_seed": torch.tensor([3, 1, 4, 1])}
    torch.manual_seed(1)  # the global generator must not matter
    first = method(batch)["loss"]
    torch.manual_seed(2)
    assert torch.equal(method(batch)["loss"], first)
