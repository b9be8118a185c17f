"""Memorisation measures (issue #22): pretext numbers on training pool images vs held-out pool images."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from ssl_bench.cli import main
from ssl_bench.data.folder import ImageFolderIndex
from ssl_bench.data.synthvoc import ensure_heldout_pool, ensure_synthvoc, synthvoc_pool
from ssl_bench.methods import available_methods, create_method
from ssl_bench.runtime.run_folder import RunFolder
from ssl_bench.training.memorisation import memorisation
from tests.conftest import TINY_SYNTH_IMAGES
from tests.training.test_pretrain_cli import FAST


@pytest.fixture
def pool(synth_cache: Path) -> Path:
    return synthvoc_pool(ensure_synthvoc(num_images=TINY_SYNTH_IMAGES))


def _method(name: str):
    options = {"image_size": 99}
    if name == "supervised":
        options |= {"num_classes": 20, "head_width": 32}
    if name.startswith("semantic_inpainting"):  # a DCGAN encoder by default (PAPER.md §1.1), 4·2^k px
        options.update(image_size=128, encoder="caffenet", width=8, bottleneck_dim=32)
    torch.manual_seed(0)
    return create_method(name, **options), options["image_size"]


def _copy_of_train_picks(pool: Path, picks: list[str], out: Path) -> Path:
    """A 'held-out' folder holding the very images the train side picks, labels.csv included."""
    (out / "images").mkdir(parents=True)
    for name in picks:
        shutil.copy(pool / "images" / name, out / "images" / name)
    header, *rows = (pool / "labels.csv").read_text().splitlines()
    keep = [r for r in rows if r.split(",")[0].removeprefix("images/") in picks]
    (out / "labels.csv").write_text("\n".join([header, *keep]) + "\n")
    return out


@pytest.mark.parametrize("name", available_methods())
def test_the_same_images_on_both_sides_give_the_same_numbers(name, pool, tmp_path):
    """Masks, crops and per-sample seeds are shared position by position: only the images can differ."""
    method, size = _method(name)
    first = memorisation(method, pool, size, torch.device("cpu"), images=4)
    if not method.trains or not method.heldout_pretext:
        assert set(first) == {"skipped"}
        return
    assert first["images"] == {"train": 4, "heldout": 4}
    assert all(math.isfinite(v) for side in ("train", "heldout") for v in first[side].values())
    assert "loss" in first["train"]
    same = _copy_of_train_picks(pool, first["train_images"], tmp_path / "same")
    result = memorisation(method, pool, size, torch.device("cpu"), images=4, heldout_root=same)
    assert result["heldout_images"] == result["train_images"]
    for key, value in result["train"].items():
        assert result["heldout"][key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
    assert method.training  # the mode it was in


def test_heldout_pool_images_are_in_no_split_and_are_made_once(pool):
    folder = ensure_heldout_pool(pool, 8)
    names = sorted(p.name for p in (folder / "images").iterdir())
    # 8, or more when an earlier test's pretraining (sharing the session's SynthVOC) asked for more
    assert len(names) >= 8
    first = TINY_SYNTH_IMAGES + 1  # the generator's next image, then on
    assert [int(n.split(".")[0]) for n in names] == list(range(first, first + len(names)))
    voc = pool.parent / "VOCdevkit" / "VOC2007" / "JPEGImages"
    used = {p.name for p in (pool / "images").iterdir()} | {p.name for p in voc.iterdir()}
    assert not set(names) & used
    assert int(names[0].split(".")[0]) == TINY_SYNTH_IMAGES + 1  # the generator's next image
    assert ImageFolderIndex(folder).num_classes == 20  # labels.csv, as the pool's
    stamp = (folder / "images" / names[0]).stat().st_mtime_ns
    assert ensure_heldout_pool(pool, 4) == folder  # a smaller slice: the same files, not redrawn
    assert (folder / "images" / names[0]).stat().st_mtime_ns == stamp
    assert ensure_heldout_pool(folder, 4) is None  # not a SynthVOC pool: nothing is held out


def test_pretraining_writes_memorisation_and_the_run_evidence_reads_it(synth_cache, tmp_path, capsys):
    out = tmp_path / "ce"
    assert main(["pretrain", "--steps", "3", "--out", str(out), *FAST]) == 0
    data = json.loads((out / "memorisation.json").read_text())
    assert data["method"] == "context_encoder" and data["step"] == 3
    n = data["images"]["train"]
    assert n == min(64, TINY_SYNTH_IMAGES // 2)  # the tiny pool holds half of the images
    pool_names = {p.name for p in Path(data["train_root"], "images").iterdir()}
    assert set(data["train_images"]) <= pool_names and not set(data["heldout_images"]) & pool_names
    assert math.isfinite(data["train"]["loss"]) and math.isfinite(data["heldout"]["loss"])
    evidence = RunFolder(out).learning_evidence()
    assert evidence["memorisation_train_loss"] == data["train"]["loss"]
    assert evidence["memorisation_heldout_loss"] == data["heldout"]["loss"]

    # bench memorisation measures it again (runs made before the file existed), here on 4 images a side.
    capsys.readouterr()
    assert main(["memorisation", str(out), "--images", "4"]) == 0
    again = json.loads((out / "memorisation.json").read_text())
    assert again["images"] == {"train": 4, "heldout": 4}
    assert again["heldout_images"] == data["heldout_images"][:4]
