"""SynthVOC: deterministic, VOC-shaped, splits disjoint, labels and masks consistent with the annotations.

The checks read the files with plain ``xml.etree`` and PIL, not through ``ssl_bench.data.voc``, so that a
bug shared by writer and reader cannot hide itself; one test then compares the two.
"""

from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ssl_bench.data import voc, voc_layout
from ssl_bench.data.folder import ImageFolderIndex
from ssl_bench.data.synthvoc import ensure_synthvoc, generate_synthvoc, split_sizes, synthvoc_pool
from ssl_bench.data.synthvoc.cache import HELDOUT_RESERVE, ensure_heldout_pool
from ssl_bench.errors import DataError

CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)  # fmt: skip
N, SIZE, SEED = 64, 96, 5


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synthvoc")
    generate_synthvoc(out, num_images=N, size=SIZE, seed=SEED, workers=2, progress=False)
    return out


def voc_root(out: Path) -> Path:
    return out / "VOCdevkit" / "VOC2007"


def ids_of(path: Path) -> list[str]:
    return path.read_text().split()


def read_xml(path: Path) -> list[dict]:
    """Objects of an annotation, read independently of voc.py."""
    root = ET.parse(path).getroot()
    assert root.findtext("size/width") == str(SIZE) and root.findtext("size/height") == str(SIZE)
    return [
        {
            "name": o.findtext("name"),
            "difficult": o.findtext("difficult") == "1",
            "truncated": o.findtext("truncated") == "1",
            "box": [int(o.findtext(f"bndbox/{t}")) for t in ("xmin", "ymin", "xmax", "ymax")],
        }
        for o in root.findall("object")
    ]


def all_files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes_whatever_the_worker_count(out: Path, tmp_path: Path) -> None:
    generate_synthvoc(tmp_path / "serial", num_images=N, size=SIZE, seed=SEED, workers=1, progress=False)
    first, again = all_files(out), all_files(tmp_path / "serial")
    assert first.keys() == again.keys()
    assert [k for k in first if first[k] != again[k]] == []
    generate_synthvoc(tmp_path / "other", num_images=N, size=SIZE, seed=SEED + 1, workers=1, progress=False)
    other = all_files(tmp_path / "other")
    jpegs = [k for k in first if k.endswith(".jpg")]
    assert sum(first[k] != other.get(k) for k in jpegs) == len(jpegs)


def test_layout_and_split_sizes(out: Path) -> None:
    root = voc_root(out)
    meta = json.loads((out / "SYNTHVOC.json").read_text())
    assert (meta["seed"], meta["num_images"], meta["size"]) == (SEED, N, SIZE)
    sizes = split_sizes(N)
    assert sizes == {"pool": 32, "train": 8, "val": 8, "test": 16}
    assert split_sizes(2000) == {"pool": 1000, "train": 250, "val": 250, "test": 500}
    for split in ("train", "val", "test"):
        assert len(ids_of(root / "ImageSets" / "Main" / f"{split}.txt")) == sizes[split]
        assert meta["splits"][f"Main/{split}"] == sizes[split]
    assert meta["splits"]["pool"] == len(list((out / "pool" / "images").iterdir())) == 32
    for sub in ("JPEGImages", "Annotations", "SegmentationClass", "SegmentationObject"):
        assert len(list((root / sub).iterdir())) == N - sizes["pool"]
    for split in ("train", "val", "trainval", "test"):
        for name in CLASSES:
            assert (root / "ImageSets" / "Main" / f"{name}_{split}.txt").is_file()
    expected = {"trainval": 16, "test": 16, "Segmentation/val": 8}
    assert voc_layout.check_voc_layout(root, expected=expected) == []


def test_splits_are_disjoint_and_the_pool_is_apart(out: Path) -> None:
    root = voc_root(out)
    main = {s: ids_of(root / "ImageSets" / "Main" / f"{s}.txt") for s in ("train", "val", "trainval", "test")}
    seg = {s: ids_of(root / "ImageSets" / "Segmentation" / f"{s}.txt") for s in ("train", "val", "trainval")}
    pool = {p.stem for p in (out / "pool" / "images").iterdir()}
    assert not set(main["train"]) & set(main["val"])
    assert not set(main["trainval"]) & set(main["test"])
    assert sorted(main["train"] + main["val"]) == main["trainval"]
    assert not set(seg["train"]) & set(seg["val"])
    everything_voc = set(main["trainval"]) | set(main["test"]) | set(seg["trainval"])
    assert not pool & everything_voc
    assert {p.stem for p in (root / "JPEGImages").iterdir()} == everything_voc
    assert len(pool) + len(everything_voc) == N


def test_class_files_follow_the_annotations(out: Path) -> None:
    root = voc_root(out)
    seen = set()
    for split in ("train", "val", "trainval", "test"):
        ids = ids_of(root / "ImageSets" / "Main" / f"{split}.txt")
        objects = {i: read_xml(root / "Annotations" / f"{i}.xml") for i in ids}
        for name in CLASSES:
            lines = (root / "ImageSets" / "Main" / f"{name}_{split}.txt").read_text().splitlines()
            assert [line.split()[0] for line in lines] == ids
            for line in lines:
                assert re.fullmatch(r"\d{6} (-1| 1| 0)", line), line  # devkit alignment: '000005 -1'
                image_id, label = line.split()
                flags = [o["difficult"] for o in objects[image_id] if o["name"] == name]
                expected = -1 if not flags else (0 if all(flags) else 1)
                assert int(label) == expected, (name, split, image_id)
                seen.add(int(label))
    # The seed is chosen so that the difficult-only case (label 0) really occurs.
    assert seen == {-1, 0, 1}


def test_annotations_look_like_voc(out: Path) -> None:
    root = voc_root(out)
    objects = [o for p in sorted((root / "Annotations").iterdir()) for o in read_xml(p)]
    for image in (root / "Annotations").iterdir():
        assert len(read_xml(image)) >= 1
    assert {o["name"] for o in objects} <= set(CLASSES)
    for o in objects:
        x1, y1, x2, y2 = o["box"]
        assert 1 <= x1 <= x2 <= SIZE and 1 <= y1 <= y2 <= SIZE
    assert any(o["difficult"] for o in objects) and any(o["truncated"] for o in objects)
    assert not all(o["difficult"] for o in objects)


def test_segmentation_pngs_are_voc_palette_pngs_with_void_boundaries(out: Path) -> None:
    root = voc_root(out)
    assert voc.VOC_PALETTE[3:6] == [128, 0, 0] and voc.VOC_PALETTE[15 * 3 : 16 * 3] == [192, 128, 128]
    assert voc.VOC_PALETTE[-3:] == [224, 224, 192]
    for image_id in ids_of(root / "ImageSets" / "Segmentation" / "trainval.txt"):
        objects = read_xml(root / "Annotations" / f"{image_id}.xml")
        cls_img = Image.open(root / "SegmentationClass" / f"{image_id}.png")
        obj_img = Image.open(root / "SegmentationObject" / f"{image_id}.png")
        assert cls_img.mode == obj_img.mode == "P" and cls_img.size == (SIZE, SIZE)
        assert cls_img.getpalette()[:768] == voc.VOC_PALETTE
        cls, inst = np.array(cls_img), np.array(obj_img)
        assert (cls == 255).sum() > 0 and (cls == 255).mean() < 0.3
        assert np.array_equal(cls == 255, inst == 255)
        # Two different labels never touch: a void band separates every object from what is around it.
        for a, b in ((cls[:, 1:], cls[:, :-1]), (cls[1:], cls[:-1])):
            touching = (a != b) & (a != 255) & (b != 255)
            assert not touching.any(), image_id
        # Instance k is XML object k: its pixels carry that object's class and lie inside its box.
        assert set(np.unique(inst)) <= {0, 255, *range(1, len(objects) + 1)}
        for k, o in enumerate(objects, start=1):
            ys, xs = np.nonzero(inst == k)
            if o["difficult"] and len(xs) == 0:
                continue  # a tiny object may be all boundary
            assert len(xs) > 0, (image_id, k)
            assert set(np.unique(cls[inst == k])) == {CLASSES.index(o["name"]) + 1}
            x1, y1, x2, y2 = o["box"]
            assert x1 - 1 <= xs.min() and xs.max() <= x2 - 1 and y1 - 1 <= ys.min() and ys.max() <= y2 - 1
        assert set(np.unique(cls)) <= {0, 255} | {CLASSES.index(o["name"]) + 1 for o in objects}


def test_independent_read_agrees_with_voc_readers(out: Path) -> None:
    root = voc_root(out)
    ids, labels = voc.read_classification_labels(root, "trainval")
    assert ids == ids_of(root / "ImageSets" / "Main" / "trainval.txt") == voc.read_image_set(root, "trainval")
    for c, name in enumerate(CLASSES):
        lines = (root / "ImageSets" / "Main" / f"{name}_trainval.txt").read_text().splitlines()
        assert [int(line.split()[1]) for line in lines] == labels[:, c].tolist()
    gt = voc.load_detection_ground_truth(root, "test")
    assert sorted(gt) == ids_of(root / "ImageSets" / "Main" / "test.txt")
    for image_id, g in gt.items():
        objects = read_xml(root / "Annotations" / f"{image_id}.xml")
        assert g["boxes"].tolist() == [o["box"] for o in objects]
        assert g["labels"].tolist() == [CLASSES.index(o["name"]) for o in objects]
        assert g["difficult"].tolist() == [o["difficult"] for o in objects]
    seg = voc.VOCSegmentation(root, "val")
    image, mask = seg[0]
    png = np.array(Image.open(root / "SegmentationClass" / f"{seg.image_id(0)}.png"))
    assert np.array_equal(np.asarray(mask), png) and image.size == (SIZE, SIZE) and image.mode == "RGB"
    det = voc.VOCDetection(root, "train")
    image, target = det[0]
    objects = read_xml(root / "Annotations" / f"{target['image_id']}.xml")
    assert target["boxes"].tolist() == [o["box"] for o in objects]
    jpeg = np.array(Image.open(root / "JPEGImages" / f"{target['image_id']}.jpg").convert("RGB"))
    assert np.array_equal(np.asarray(image), jpeg)


def test_pool_labels_are_readable_by_the_folder_index(out: Path) -> None:
    index = ImageFolderIndex(synthvoc_pool(voc_root(out)))
    assert len(index) == 32 and index.class_names == CLASSES and index.multi_label
    labels = np.stack([index.label(i) for i in range(len(index))])
    assert labels.dtype == np.float32 and set(np.unique(labels)) <= {0.0, 1.0}
    assert (labels.sum(1) >= 1).all()
    assert index.path(0).parent == out / "pool" / "images"


def test_marker_is_written_last(out: Path) -> None:
    marker = (out / "SYNTHVOC.json").stat().st_mtime_ns
    newest = max(p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file() and p.name != "SYNTHVOC.json")
    assert marker >= newest
    assert not (out / ".synthvoc-incomplete").exists()


def test_ensure_reuses_a_complete_cache_and_regenerates_an_incomplete_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("SSL_BENCH_CACHE", str(tmp_path / "cache"))
    kw = {"num_images": 16, "size": 48, "seed": 1, "workers": 1, "progress": False}
    root = ensure_synthvoc(**kw)
    folder = tmp_path / "cache" / "synthvoc-16-48-1"
    assert root == folder / "VOCdevkit" / "VOC2007" and (folder / "SYNTHVOC.json").is_file()
    assert "generating" in capsys.readouterr().err

    stamp = (folder / "SYNTHVOC.json").stat().st_mtime_ns
    assert ensure_synthvoc(**kw) == root
    assert (folder / "SYNTHVOC.json").stat().st_mtime_ns == stamp
    assert "using the generated default" in capsys.readouterr().err

    # An interrupted run: no marker, some files missing, a stray file left over.
    (folder / "SYNTHVOC.json").unlink()
    victim = next((root / "JPEGImages").iterdir())
    victim.unlink()
    (root / "JPEGImages" / "999999.jpg").write_bytes(b"partial")
    assert ensure_synthvoc(cache_dir=tmp_path / "cache", **kw) == root
    assert (folder / "SYNTHVOC.json").is_file() and victim.is_file()
    assert not (root / "JPEGImages" / "999999.jpg").exists()
    assert "generating" in capsys.readouterr().err


def test_does_not_overwrite_a_foreign_vocdevkit(tmp_path: Path) -> None:
    (tmp_path / "VOCdevkit" / "VOC2012").mkdir(parents=True)
    with pytest.raises(DataError, match="SynthVOC did not write"):
        generate_synthvoc(tmp_path, num_images=8, size=32, workers=1, progress=False)
    assert os.listdir(tmp_path / "VOCdevkit") == ["VOC2012"]


def test_an_enlarged_pool_is_drawn_without_a_bar_when_asked(out: Path, capsys: pytest.CaptureFixture) -> None:
    own = len(list((out / "pool" / "images").iterdir()))
    synthvoc_pool(voc_root(out), own + 2, progress=False)  # --no-progress reaches the pool's draw
    err = capsys.readouterr().err
    assert "drawing a SynthVOC pool" in err and "SynthVOC pool:" not in err  # the notice, no bar


def test_an_enlarged_pool_keeps_the_dataset_and_adds_images_no_split_or_heldout_slice_holds(
    out: Path,
) -> None:
    own = sorted(p.name for p in (out / "pool" / "images").iterdir())
    voc_images = {p.name for p in (voc_root(out) / "JPEGImages").iterdir()}
    before = {p: p.read_bytes() for p in sorted((voc_root(out) / "ImageSets" / "Main").iterdir())[:5]}
    folder = synthvoc_pool(voc_root(out), len(own) + 8)
    assert folder == out / f"pool-{len(own) + 8}"
    names = sorted(p.name for p in (folder / "images").iterdir())
    assert len(names) == len(own) + 8 and names[: len(own)] == own
    for name in own:  # the dataset's own pool, byte for byte
        assert (folder / "images" / name).read_bytes() == (out / "pool" / "images" / name).read_bytes()
    extra = [int(n.split(".")[0]) - 1 for n in names[len(own) :]]  # file n is image n - 1
    assert extra == list(range(N + HELDOUT_RESERVE, N + HELDOUT_RESERVE + 8))  # past the held-out slice
    assert not set(names) & voc_images
    heldout = ensure_heldout_pool(folder, 4)  # the enlarged pool has the dataset's held-out slice
    assert heldout == out / "pool_heldout"
    assert not {p.name for p in (heldout / "images").iterdir()} & set(names)
    index = ImageFolderIndex(folder)
    assert len(index) == len(own) + 8 and index.num_classes == 20
    own_index = ImageFolderIndex(out / "pool")
    for i in range(len(own)):  # the copied images keep their labels
        assert index.path(i).name == own_index.path(i).name
        assert np.array_equal(index.label(i), own_index.label(i))
    assert all(np.asarray(index.label(i)).sum() >= 1 for i in range(len(index)))  # every image has an object
    stamp = (folder / "images" / names[-1]).stat().st_mtime_ns
    assert synthvoc_pool(voc_root(out), len(own) + 8) == folder  # made once
    assert (folder / "images" / names[-1]).stat().st_mtime_ns == stamp
    assert synthvoc_pool(voc_root(out), len(own)) == out / "pool"
    assert synthvoc_pool(voc_root(out)) == out / "pool"
    with pytest.raises(DataError, match="below the dataset's own pool"):
        synthvoc_pool(voc_root(out), len(own) - 1)
    assert {p: p.read_bytes() for p in before} == before  # the VOC part is untouched
