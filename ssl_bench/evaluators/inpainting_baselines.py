"""Inpainting baselines that need no network: HOG context features, and three classic image inpainters.

Pathak et al. 2016, Table 1 compares the context encoder with nearest-neighbour (NN) inpainting on HOG
features of the context; the classic inpainters are the issue's additions (not in the paper), from
well-kept libraries and with their published algorithms:

- **HOG** of the visible context (Dalal & Triggs, CVPR 2005; ``skimage.feature.hog``): the image with its
  hole set to a constant grey, 9 unsigned orientations, a grid of 16×16 cells (8-px cells at the paper's
  128 px), blocks of 2×2 cells with L2-Hys normalisation; only the blocks that do not overlap the hole's
  bounding box are kept, so the vector describes the context alone. Searched with Euclidean distance.
- **Telea** (Telea, J. Graphics Tools 2004, "An image inpainting technique based on the fast marching
  method") and **Navier–Stokes** (Bertalmío, Bertozzi & Sapiro, CVPR 2001): ``cv2.inpaint`` with
  ``INPAINT_TELEA`` / ``INPAINT_NS`` on the 8-bit image, neighbourhood radius ``OPENCV_RADIUS``.
- **Biharmonic** (Damelin & Hoang 2018; ``skimage.restoration.inpaint_biharmonic``, ``channel_axis=-1``):
  the hole filled by the solution of the biharmonic equation with the context as boundary values.

Every function takes and returns images in [0, 1] on 8-bit levels (the evaluator's ``to_8bit``), [N, 3, H, W]
float64, and a bool hole mask [N, 1, H, W]; outputs keep every visible pixel exactly and are rounded to 8-bit
levels, as the network's and the NN baseline's outputs are, so all rows are scored alike.

NOTE: the paper gives no HOG parameters (unverified): the ones above are Dalal & Triggs' defaults (9 bins,
2×2-cell blocks, L2-Hys) with the cell size scaled so that every image size has the same 16×16 grid; the
grey fill only matters for the gradients of the context pixels next to the hole (the same for every image).
NOTE: ``OPENCV_RADIUS`` = 3 px is the value of OpenCV's own inpainting tutorial (``tutorial_py_inpainting``:
``cv.inpaint(img, mask, 3, cv.INPAINT_TELEA)``); nothing fixes it for a 64-px hole (unverified).
NOTE: OpenCV's inpainters treat the three channels alike, so the images are given in RGB order, not BGR.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import torch
from skimage.feature import hog
from skimage.restoration import inpaint_biharmonic

# Dalal & Triggs 2005 defaults; the cell grid is fixed instead of the cell size (module NOTE).
HOG_ORIENTATIONS = 9
HOG_CELL_GRID = 16  # cells per image side: 8-px cells at 128 px, 14-px cells at 227 px
HOG_BLOCK_CELLS = 2
HOG_BLOCK_NORM = "L2-Hys"
HOG_FILL = 0.5  # grey put into the hole before the gradients are taken (module NOTE)
OPENCV_RADIUS = 3  # px; OpenCV's inpainting tutorial (module NOTE)

CLASSIC_BASELINES = ("telea", "ns", "biharmonic")  # metric prefixes ``telea_``, ``ns_``, ``biharmonic_``


def to_uint8_hwc(images: torch.Tensor) -> np.ndarray:
    """[N, 3, H, W] in [0, 1] → uint8 [N, H, W, 3]."""
    return images.double().clamp(0, 1).mul(255.0).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def from_uint8_hwc(array: np.ndarray) -> torch.Tensor:
    """uint8 [N, H, W, 3] → float64 [N, 3, H, W] in [0, 1] on 8-bit levels."""
    return torch.from_numpy(np.ascontiguousarray(array)).permute(0, 3, 1, 2).double().div(255.0)


def _map(fn: Callable[[int], np.ndarray], n: int, threads: int) -> list[np.ndarray]:
    """``[fn(0), …, fn(n-1)]``, on ``threads`` threads when above 1 (the libraries' compiled parts run
    outside the GIL for much of their work: OpenCV, SciPy's sparse solver under the biharmonic fill)."""
    if threads <= 1 or n <= 1:
        return [fn(i) for i in range(n)]
    with ThreadPoolExecutor(min(threads, n)) as pool:
        return list(pool.map(fn, range(n)))


# --------------------------------------------------------------------------------------------------
# HOG features of the visible context.


def hog_cell_size(image_size: int) -> int:
    """Pixels per HOG cell side for an image side: ``image_size // HOG_CELL_GRID`` (8 at 128 px)."""
    if image_size < HOG_CELL_GRID:
        raise ValueError(f"HOG needs images of at least {HOG_CELL_GRID} px, not {image_size}")
    return image_size // HOG_CELL_GRID


def visible_hog_blocks(image_size: int, box: tuple[int, int, int, int]) -> np.ndarray:
    """bool [B, B] over HOG's blocks (B = grid − 1 with 2×2-cell blocks): True where the block's pixels
    do not overlap the hole's bounding box ``box`` = (top, bottom, left, right), bottom/right exclusive."""
    cell = hog_cell_size(image_size)
    blocks = HOG_CELL_GRID - HOG_BLOCK_CELLS + 1
    start = np.arange(blocks) * cell  # [B] first pixel of each block, rows and columns alike
    end = start + HOG_BLOCK_CELLS * cell  # [B] exclusive
    top, bottom, left, right = box
    rows_overlap = (start < bottom) & (end > top)  # [B]
    cols_overlap = (start < right) & (end > left)  # [B]
    visible = ~(rows_overlap[:, None] & cols_overlap[None, :])  # [B, B]
    if not visible.any():
        raise ValueError(f"every HOG block of a {image_size}-px image overlaps the hole {box}")
    return visible


def hog_context_features(
    images: torch.Tensor, masks: torch.Tensor, box: tuple[int, int, int, int], threads: int = 1
) -> torch.Tensor:
    """HOG of the visible context of each image (module docstring): float32 [N, D].

    Args:
        images: [N, 3, S, S] in [0, 1]; masks: bool [N, 1, S, S], the hole (set to ``HOG_FILL``);
        box: the hole's bounding box (top, bottom, left, right), the same for every image;
        threads: images described in parallel.

    Returns:
        [N, D] with D = (blocks outside the hole) · 2 · 2 · 9 (5,184 at 128 px with the centre hole).
    """
    size = images.shape[-1]
    cell = hog_cell_size(size)
    keep = visible_hog_blocks(size, box)  # [B, B]
    filled = torch.where(masks.expand_as(images), torch.full_like(images, HOG_FILL), images)
    pixels = filled.double().permute(0, 2, 3, 1).cpu().numpy()  # [N, S, S, 3]

    def describe(i: int) -> np.ndarray:
        blocks = hog(pixels[i], orientations=HOG_ORIENTATIONS, pixels_per_cell=(cell, cell),
                     cells_per_block=(HOG_BLOCK_CELLS, HOG_BLOCK_CELLS), block_norm=HOG_BLOCK_NORM,
                     feature_vector=False, channel_axis=-1)  # [B, B, 2, 2, 9]  # fmt: skip
        return blocks[keep].reshape(-1)  # [D]

    return torch.from_numpy(np.stack(_map(describe, len(pixels), threads))).float()  # [N, D]


# --------------------------------------------------------------------------------------------------
# Classic inpainting.


def _keep_visible(out: torch.Tensor, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The inpainter's output in the hole, the input's exact pixels elsewhere."""
    return torch.where(masks.expand_as(images), out.to(images.dtype), images)


def opencv_inpaint(
    images: torch.Tensor, masks: torch.Tensor, method: str, radius: int = OPENCV_RADIUS, threads: int = 1
) -> torch.Tensor:
    """``cv2.inpaint`` of each image's hole: ``method`` ``telea`` or ``ns`` (Navier–Stokes).

    Args:
        images: [N, 3, H, W] in [0, 1] (rounded to 8 bits for OpenCV); masks: bool [N, 1, H, W];
        radius: the inpainting neighbourhood in px; threads: images inpainted in parallel.

    Returns:
        float64 [N, 3, H, W] on 8-bit levels; visible pixels equal the input's.
    """
    flags = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}
    if method not in flags:
        raise ValueError(f"method must be one of {sorted(flags)}, got {method!r}")
    pixels = to_uint8_hwc(images)  # [N, H, W, 3]
    holes = masks[:, 0].cpu().numpy().astype(np.uint8)  # [N, H, W], nonzero = to inpaint

    def fill(i: int) -> np.ndarray:
        return cv2.inpaint(pixels[i], holes[i], radius, flags[method])  # [H, W, 3] uint8

    out = from_uint8_hwc(np.stack(_map(fill, len(pixels), threads)))  # [N, 3, H, W]
    return _keep_visible(out, images, masks.cpu())


def biharmonic_inpaint(images: torch.Tensor, masks: torch.Tensor, threads: int = 1) -> torch.Tensor:
    """``skimage.restoration.inpaint_biharmonic`` of each image's hole, all channels at once.

    Args:
        images: [N, 3, H, W] in [0, 1]; masks: bool [N, 1, H, W]; threads: images inpainted in parallel.

    Returns:
        float64 [N, 3, H, W], clamped to [0, 1] and rounded to 8-bit levels; visible pixels equal the input's.
    """
    pixels = images.double().permute(0, 2, 3, 1).cpu().numpy()  # [N, H, W, 3]
    holes = masks[:, 0].cpu().numpy()  # [N, H, W] bool

    def fill(i: int) -> np.ndarray:
        return inpaint_biharmonic(pixels[i], holes[i], channel_axis=-1)  # [H, W, 3] float64

    out = torch.from_numpy(np.stack(_map(fill, len(pixels), threads))).permute(0, 3, 1, 2)  # [N, 3, H, W]
    return _keep_visible(out.clamp(0, 1).mul(255.0).round().div(255.0), images, masks.cpu())


def classic_inpaint(images: torch.Tensor, masks: torch.Tensor, name: str, threads: int = 1) -> torch.Tensor:
    """One of ``CLASSIC_BASELINES`` by name (its metric prefix): ``telea``, ``ns`` or ``biharmonic``."""
    if name == "biharmonic":
        return biharmonic_inpaint(images, masks, threads)
    if name in ("telea", "ns"):
        return opencv_inpaint(images, masks, name, threads=threads)
    raise ValueError(f"unknown classic inpainting baseline {name!r}; known: {', '.join(CLASSIC_BASELINES)}")
