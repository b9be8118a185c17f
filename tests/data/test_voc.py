"""VOC readers: correct values on hand-written files, and a DataError naming the file on every bad one."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ssl_bench.data import voc, voc_layout
from ssl_bench.data.synthvoc import generate_synthvoc
from ssl_bench.errors import DataError

GOOD_XML = """<annotation>
  <folder>VOC2007</folder><filename>000007.jpg</filename>
  <size><width>500</width><height>333</height><depth>3</depth></size>
  <object><name>car</name><pose>Left</pose><truncated>1</truncated><difficult>0</difficult>
    <bndbox><xmin>141</xmin><ymin>50</ymin><xmax>500</xmax><ymax>330</ymax></bndbox></object>
  <object><name>person</name><difficult>1</difficult>
    <bndbox><xmin>12.5</xmin><ymin>3</ymin><xmax>40</xmax><ymax>90</ymax></bndbox>
    <part><name>head</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>2</xmax><ymax>2</ymax></bndbox></part>
  </object>
</annotation>
"""


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("voc")
    return generate_synthvoc(out, num_images=24, size=64, seed=2, workers=1, progress=False)


@pytest.fixture()
def root(synth: Path, tmp_path: Path) -> Path:
    """A private copy of the small SynthVOC that a test may break."""
    return Path(shutil.copytree(synth, tmp_path / "VOC2007"))


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_parse_annotation_reads_voc_fields(tmp_path: Path) -> None:
    ann = voc.parse_annotation(write(tmp_path / "a.xml", GOOD_XML))
    assert (ann["width"], ann["height"], ann["filename"]) == (500, 333, "000007.jpg")
    assert ann["boxes"].dtype == np.float32 and ann["boxes"].tolist() == [
        [141, 50, 500, 330],
        [12.5, 3, 40, 90],
    ]
    assert ann["labels"].dtype == np.int64 and ann["labels"].tolist() == [6, 14]
    assert ann["difficult"].tolist() == [False, True]
    assert ann["truncated"].tolist() == [True, False]  # missing <truncated> reads as 0, as in the devkit


def test_annotation_without_objects_gives_empty_arrays(tmp_path: Path) -> None:
    xml = "<annotation><size><width>5</width><height>4</height></size></annotation>"
    ann = voc.parse_annotation(write(tmp_path / "a.xml", xml))
    assert ann["boxes"].shape == (0, 4) and ann["labels"].shape == (0,) and ann["difficult"].shape == (0,)


@pytest.mark.parametrize(
    "text, problem",
    [
        (GOOD_XML[: len(GOOD_XML) // 2], "malformed XML"),
        (GOOD_XML.replace("<name>car</name>", "<name>spaceship</name>"), "unknown class 'spaceship'"),
        (GOOD_XML.replace("<size><width>500</width>", "<size>"), "no <width>"),
        (GOOD_XML.replace("<xmin>141</xmin>", ""), "no <xmin>"),
        (GOOD_XML.replace("<ymax>330</ymax>", "<ymax>abc</ymax>"), "not a number"),
        (GOOD_XML.replace("<difficult>0</difficult>", "<difficult>yes</difficult>"), "must be 0 or 1"),
    ],
)
def test_bad_annotations_raise_data_error_naming_the_file(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path / "000007.xml", text)
    with pytest.raises(DataError, match=problem) as err:
        voc.parse_annotation(path)
    assert str(path) in str(err.value)


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<annotation><filename>&lol4;</filename><size><width>1</width><height>1</height></size></annotation>
"""

EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE annotation [ <!ENTITY secret SYSTEM "file:///etc/passwd"> ]>
<annotation><filename>&secret;</filename><size><width>1</width><height>1</height></size></annotation>
"""


@pytest.mark.parametrize("text", [BILLION_LAUGHS, EXTERNAL_ENTITY], ids=["billion-laughs", "external-entity"])
def test_unsafe_xml_is_refused_not_expanded(tmp_path: Path, text: str) -> None:
    path = write(tmp_path / "evil.xml", text)
    with pytest.raises(DataError, match="refused unsafe XML") as err:
        voc.parse_annotation(path)
    assert str(path) in str(err.value) and "root:" not in str(err.value)


def test_corrupt_and_missing_images_raise_data_error_naming_the_file(root: Path) -> None:
    ds = voc.VOCClassification(root, "train")
    path = root / "JPEGImages" / f"{ds.image_id(0)}.jpg"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # truncated JPEG
    with pytest.raises(DataError, match="cannot read image") as err:
        ds[0]
    assert str(path) in str(err.value)
    path.write_bytes(b"this is not a jpeg")
    with pytest.raises(DataError, match=str(path)):
        voc.load_image(path)
    path.unlink()
    with pytest.raises(DataError, match=str(path)):
        ds[0]


def test_missing_image_set_and_inconsistent_class_files(root: Path) -> None:
    with pytest.raises(DataError, match=str(root / "ImageSets" / "Main" / "nosuch.txt")):
        voc.read_image_set(root, "nosuch")
    dog = root / "ImageSets" / "Main" / "dog_val.txt"
    dog.write_text("".join(dog.read_text().splitlines(keepends=True)[1:]))
    with pytest.raises(DataError, match=str(dog)):
        voc.read_classification_labels(root, "val")
    dog.write_text("000001 2\n")
    with pytest.raises(DataError, match=str(dog)):
        voc.read_classification_labels(root, "val")


def test_datasets_return_documented_types_and_pickle_small(root: Path) -> None:
    cls = voc.VOCClassification(root, "test", transform=lambda im: torch.zeros(3, 8, 8))
    image, labels = cls[0]
    assert image.shape == (3, 8, 8) and labels.dtype == torch.int8 and labels.shape == (20,)
    assert set(labels.tolist()) <= {-1, 0, 1} and (labels == 1).any()

    det = voc.VOCDetection(root, "test")
    image, target = det[1]
    assert isinstance(image, Image.Image) and image.mode == "RGB"
    assert target["boxes"].dtype == torch.float32 and target["boxes"].shape[1] == 4
    assert target["labels"].dtype == torch.int64 and target["difficult"].dtype == torch.bool
    assert target["image_id"] == det.image_id(1)

    seg = voc.VOCSegmentation(root, "train", transform=lambda im, m: (im.size, np.asarray(m)))
    size, mask = seg[0]
    assert mask.dtype == np.uint8 and mask.shape == size[::-1] and 255 in mask

    for ds in (cls, det, seg):
        ds.transform = None
        assert len(pickle.dumps(ds)) < 4000  # ids and paths only, never images


def test_detection_ground_truth_keeps_images_without_objects(root: Path) -> None:
    image_id = voc.read_image_set(root, "test")[0]
    write(root / "Annotations" / f"{image_id}.xml",
          "<annotation><size><width>64</width><height>64</height></size></annotation>")  # fmt: skip
    gt = voc.load_detection_ground_truth(root, "test")
    assert list(gt) == voc.read_image_set(root, "test")
    assert gt[image_id]["boxes"].shape == (0, 4) and gt[image_id]["difficult"].dtype == bool


def test_check_voc_layout_reports_problems(root: Path, tmp_path: Path) -> None:
    assert voc_layout.check_voc_layout(root) == []
    assert voc_layout.check_voc_layout(tmp_path / "nowhere") == [
        f"VOC root {tmp_path / 'nowhere'} does not exist or is not a folder"
    ]

    problems = voc_layout.check_voc_layout(root, expected={"trainval": 5011, "Main/test": 6})
    assert problems == ["Main/trainval: 6 images, expected 5011"]

    test_ids = voc.read_image_set(root, "test")
    (root / "JPEGImages" / f"{test_ids[0]}.jpg").unlink()
    write(root / "Annotations" / f"{test_ids[1]}.xml", "<annotation><size>")
    (root / "SegmentationClass" / f"{voc.read_image_set(root, 'val', 'Segmentation')[0]}.png").write_bytes(
        b"x"
    )
    with open(root / "ImageSets" / "Main" / "val.txt", "a") as f:
        f.write(f"{test_ids[2]}\n")
    text = "\n".join(voc_layout.check_voc_layout(root))
    assert f"ids without JPEGImages/<id>.jpg: 1 ({test_ids[0]})" in text
    assert f"{test_ids[1]}.xml: malformed XML" in text
    assert "cannot read segmentation mask" in text
    assert f"Main: ids in both val and test: 1 ({test_ids[2]})" in text
    assert "per-class files" in text and "trainval is not the union" in text

    shutil.rmtree(root / "Annotations")
    assert voc_layout.check_voc_layout(root) == [f"missing folder {root / 'Annotations'}"]


def test_segmentation_mask_must_be_a_palette_png(root: Path) -> None:
    image_id = voc.read_image_set(root, "train", "Segmentation")[0]
    path = root / "SegmentationClass" / f"{image_id}.png"
    Image.new("RGB", (64, 64)).save(path)
    with pytest.raises(DataError, match="expected a palette PNG"):
        voc.VOCSegmentation(root, "train")[0]
