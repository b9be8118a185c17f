"""Qualitative example figures of the evaluators (seg masks, det boxes, inpainting rows): one image grid.

Each is written into the run's own work folder and named in its record (``extra["figure"]``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ssl_bench.atomic import atomic_open
from ssl_bench.data.transforms import denormalize
from ssl_bench.data.voc import VOC_CLASSES, VOC_PALETTE

HEADER = 14  # pixels of column titles
GAP = 2  # pixels between tiles


def save_grid(rows: Sequence[Sequence[Image.Image]], path: Path, titles: Sequence[str] = ()) -> Path:
    """Tiles in rows on a white canvas, column ``titles`` above the first row; written atomically as PNG.

    Rows may be shorter than the widest one (their tiles fill the first columns); titles name columns, so
    there are at most as many as the widest row has tiles.
    """
    columns = max(len(row) for row in rows)
    if len(titles) > columns:
        raise ValueError(f"{len(titles)} titles for {columns} columns")
    widths = [max(row[j].width for row in rows if j < len(row)) for j in range(columns)]
    heights = [max(tile.height for tile in row) for row in rows]
    xs = [sum(widths[:j]) + GAP * j for j in range(columns)]
    top = HEADER if titles else 0
    canvas = Image.new("RGB", (xs[-1] + widths[-1], top + sum(heights) + GAP * (len(rows) - 1)), "white")
    draw = ImageDraw.Draw(canvas)
    for j, title in enumerate(titles):
        draw.text((xs[j] + 2, 1), title, fill="black")
    for i, row in enumerate(rows):
        for j, tile in enumerate(row):
            canvas.paste(tile.convert("RGB"), (xs[j], top + sum(heights[:i]) + GAP * i))
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path, "wb") as f:
        canvas.save(f, format="PNG")
    return path


def to_image(x: torch.Tensor, normalised: bool = False) -> Image.Image:
    """[3, H, W] in [0, 1] (or normalised, with ``normalised``) → an RGB image."""
    x = denormalize(x.float()) if normalised else x.float()
    return Image.fromarray((x.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))


def palette_image(mask: np.ndarray) -> Image.Image:
    """[H, W] class indices → a VOC palette image (void 255 in its cream colour)."""
    image = Image.fromarray(mask.astype(np.uint8), mode="P")
    image.putpalette(VOC_PALETTE)
    return image


def boxes_image(
    image: Image.Image, truth: np.ndarray, det: Mapping[str, np.ndarray], top: int = 3
) -> Image.Image:
    """Ground-truth boxes in green and the ``top`` best detections in red with class and score, whatever
    their score (a weak detector's guesses are visible too). Boxes in VOC 1-based pixel coordinates."""
    image = image.convert("RGB").copy()
    draw = ImageDraw.Draw(image)
    # PIL rectangles take inclusive 0-based pixel corners: VOC 1-based minus one.
    for box in truth:
        draw.rectangle([float(v) - 1 for v in box], outline=(0, 255, 0), width=2)
    for i in np.argsort(-np.asarray(det["scores"]))[:top]:
        x1, y1, x2, y2 = (float(v) - 1 for v in det["boxes"][i])
        draw.rectangle([x1, y1, x2, y2], outline=(255, 0, 0), width=2)
        label = f"{VOC_CLASSES[int(det['labels'][i])]} {float(det['scores'][i]):.2f}"
        draw.text((x1 + 2, y1 + 1), label, fill=(255, 0, 0))
    return image
