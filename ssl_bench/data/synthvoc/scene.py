"""One SynthVOC image: a structured background and 1–4 coloured, textured objects, their masks and flags."""

from __future__ import annotations

import colorsys
import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from ssl_bench.data.synthvoc.shapes import KINDS, SYMMETRIC_KINDS, Pen
from ssl_bench.data.voc import VOC_CLASSES

# Object scale: sqrt(canvas area) / image side, log-uniform. With the thresholds below, at 227 px and
# seed 0, 12% of the objects come out difficult and 27% truncated, with 2.2 objects per image, and
# background is 77% of the segmentation pixels (VOC2012: about 70%).
# NOTE: version 1 drew scales in (0.09, 0.65): background was 92% of the pixels, and a short FCN schedule
# learnt to call every pixel background whatever the trunk.
SCALE_RANGE = (0.2, 1.0)
# NOTE: VOC's difficult and truncated flags are annotators' judgements; here they are size rules.
DIFFICULT_SIDE = 0.075  # difficult when the pixels off the void band cover less than (0.075 · side)²,
DIFFICULT_SEEN = 0.5  # or less than half of the object is seen (cut by the border and/or occluded)
TRUNCATED_LOST = 0.15  # truncated when more than 15% of the object's pixels fall outside the image
MIN_VISIBLE_OF_OWN = 0.5  # a new object may hide at most half of an earlier one
NUM_OBJECTS_P = (0.35, 0.30, 0.20, 0.15)  # P(1), P(2), P(3), P(4) objects

# Typical colours. Real classes have them (sheep are mostly white, plants green, buses often yellow or
# red), and a network trained with labels picks them up long before it learns shapes. Each class has a
# body hue (classes evenly spaced around the hue circle) and an accent hue (a different order: 7 is
# coprime with 20, so the (body, accent) pairs are all distinct). Most objects wear them; the rest, and
# every object's small details, are coloured at random, so colour is a strong cue, never a certain one.
# Backgrounds are muted (their saturation scaled by BACKGROUND_SATURATION), so that the objects'
# colours stand out from the scene, as a subject usually does from sky, road or wall.
# NOTE: version 1 coloured every part at random over saturated backgrounds (shape was the only cue). A
# trunk trained with labels on the 1,000-image pool then stayed at chance in a CPU budget (as did a
# logistic regression on hue histograms), and the evaluators could not show a good trunk beating a
# random one. With class colours on muted backgrounds, hue histograms alone reach 0.34 mAP on the pool
# (chance 0.10) and AlexNet trained with labels leaves chance after ~300 steps of 16 images.
CLASS_COLOUR_P = 0.9
CLASS_HUES = tuple((c / 20, (7 * c / 20 + 0.5) % 1.0) for c in range(20))  # (body, accent), in turns
HUE_JITTER = 0.02  # uniform ± turns: less than half the 0.05 spacing, so body hue ranges do not overlap
BACKGROUND_SATURATION = 0.3


# --------------------------------------------------------------------------------------------------
# Colour, texture, background.


def _smooth_noise(r: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """[h, w] float32 in [0, 1]: random values on a coarse grid, upsampled bicubically."""
    coarse = r.random((cells, cells)).astype(np.float32)
    out = np.asarray(Image.fromarray(coarse).resize((w, h), Image.Resampling.BICUBIC))
    return np.clip(out, 0.0, 1.0)


def _pattern(r: np.random.Generator, h: int, w: int) -> np.ndarray:
    """[h, w] float32 multiplicative texture around 1 (stripes, blotches or checks)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    a = r.uniform(0, np.pi)
    u = xx * np.cos(a) + yy * np.sin(a)
    period = r.uniform(3, 12)
    kind = r.integers(3)
    if kind == 0:
        t = 0.5 + 0.5 * np.sin(2 * np.pi * u / period)
    elif kind == 1:
        t = _smooth_noise(r, h, w, int(r.integers(3, 7)))
    else:
        v = -xx * np.sin(a) + yy * np.cos(a)
        t = ((np.floor(u / period) + np.floor(v / period)) % 2).astype(np.float32)
    return 1.0 + r.uniform(0.2, 0.5) * (t - 0.5)


def _random_colour(r: np.random.Generator, n: int = 1) -> np.ndarray:
    return r.uniform(0, 255, size=(n, 3)).astype(np.float32)


def _hsv_colour(hue: float, saturation: float, value: float) -> np.ndarray:
    """[3] float32 RGB in [0, 255] of an HSV colour (hue in turns, wrapped)."""
    return np.asarray(colorsys.hsv_to_rgb(hue % 1.0, saturation, value), np.float32) * 255.0


def _part_colours(r: np.random.Generator, cls: int) -> np.ndarray:
    """[3, 3] float32: the colours of slots 1 (body), 2 (accent) and 3 (detail) of one object.

    With probability ``CLASS_COLOUR_P`` body and accent take their class's typical hues (see
    ``CLASS_HUES``), jittered by less than half the spacing between classes, with random saturation and
    brightness; otherwise, and always for details, colours are uniformly random.
    """
    colours = _random_colour(r, 3)
    if r.random() < CLASS_COLOUR_P:
        for slot, hue in enumerate(CLASS_HUES[cls]):
            jitter = r.uniform(-HUE_JITTER, HUE_JITTER)
            colours[slot] = _hsv_colour(hue + jitter, r.uniform(0.45, 1.0), r.uniform(0.45, 1.0))
    return colours


def _background(r: np.random.Generator, s: int) -> np.ndarray:
    """[s, s, 3] float32 in [0, 255]: one or two structured layers plus sensor-like noise."""
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s

    def layer() -> np.ndarray:
        c0, c1 = _random_colour(r, 2)
        a = r.uniform(0, 2 * np.pi)
        u = xx * np.cos(a) + yy * np.sin(a)
        kind = r.integers(5)
        if kind == 0:  # gradient
            t = (u - u.min()) / (u.max() - u.min())
        elif kind == 1:  # stripes, soft or hard
            t = 0.5 + 0.5 * np.sin(2 * np.pi * u * r.uniform(2, 14) + r.uniform(0, 6.3))
            if r.random() < 0.5:
                t = (t > 0.5).astype(np.float32)
        elif kind == 2:  # checkerboard, possibly rotated
            v = -xx * np.sin(a) + yy * np.cos(a)
            f = r.uniform(3, 12)
            t = ((np.floor(u * f) + np.floor(v * f)) % 2).astype(np.float32)
        elif kind == 3:  # blobs: a smooth random colour field
            cells = int(r.integers(2, 7))
            field = np.stack([_smooth_noise(r, s, s, cells) for _ in range(3)], axis=-1)
            return field * 255.0
        else:  # horizon: two regions split by a wavy line
            level = r.uniform(0.3, 0.7) + 0.05 * np.sin(
                2 * np.pi * xx * r.uniform(0.5, 3) + r.uniform(0, 6.3)
            )
            t = (yy > level).astype(np.float32) * (0.7 + 0.3 * yy)
        return c0 + (c1 - c0) * t[..., None]

    bg = layer()
    if r.random() < 0.4:
        alpha = r.uniform(0.25, 0.6)
        bg = (1 - alpha) * bg + alpha * layer()
    grey = bg.mean(axis=-1, keepdims=True)
    bg = grey + BACKGROUND_SATURATION * (bg - grey)
    bg += r.normal(0, r.uniform(2, 10), size=bg.shape).astype(np.float32)
    return bg


# --------------------------------------------------------------------------------------------------
# One image.


@dataclass
class SceneObject:
    cls: int
    pose: str
    truncated: bool
    difficult: bool = False
    box: tuple[int, int, int, int] = (0, 0, 0, 0)  # VOC 1-based inclusive xmin, ymin, xmax, ymax
    drawn: int = 0  # pixels of the whole object as drawn, inside the image or not


@dataclass
class Rendered:
    image: np.ndarray  # [s, s, 3] uint8
    classes: np.ndarray  # [s, s] uint8: 0 background, 1..20
    instances: np.ndarray  # [s, s] uint8: 0 background, 1..K in object order
    objects: list[SceneObject]


def _draw_object(r: np.random.Generator, cls: int, s: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Draw one object on its own canvas: slots [h, w] uint8 (0 = empty), rgb [h, w, 3] float32, pose."""
    drawer, aspect = KINDS[cls]
    scale = math.exp(r.uniform(math.log(SCALE_RANGE[0]), math.log(SCALE_RANGE[1])))
    aspect *= math.exp(r.uniform(-0.15, 0.15))
    w, h = scale * s * math.sqrt(aspect), scale * s / math.sqrt(aspect)
    shrink = min(1.0, 1.15 * s / max(w, h))  # long thin kinds (train) stay within ~the frame
    w, h = max(6, round(w * shrink)), max(6, round(h * shrink))
    pen = Pen(w, h)
    drawer(pen, r)
    img = pen.img
    pose = "Unspecified" if VOC_CLASSES[cls] in SYMMETRIC_KINDS else "Right"
    if r.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        pose = "Unspecified" if pose == "Unspecified" else "Left"
    img = img.rotate(r.uniform(-15, 15), resample=Image.Resampling.NEAREST, expand=True)
    slots = np.asarray(img)
    hh, ww = slots.shape
    colours = np.concatenate([np.zeros((1, 3), np.float32), _part_colours(r, cls)])
    rgb = colours[slots]
    for slot in (1, 2):  # texture on body and accent, independently
        if r.random() < 0.4:
            rgb[slots == slot] *= _pattern(r, hh, ww)[slots == slot][:, None]
    if r.random() < 0.6:  # shading across the object, as under a light from one side
        a = r.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:hh, 0:ww].astype(np.float32)
        u = (xx / ww - 0.5) * np.cos(a) + (yy / hh - 0.5) * np.sin(a)
        rgb *= (1 + r.uniform(0.2, 0.7) * u)[..., None]
    return slots, rgb, pose


def render_image(index: int, seed: int, size: int) -> Rendered:
    """Draw image ``index`` of the dataset with ``seed``; pure function of its arguments."""
    r = np.random.default_rng([seed, 1, index])
    image = _background(r, size)
    classes = np.zeros((size, size), np.uint8)
    instances = np.zeros((size, size), np.uint8)
    own = [0]  # unoccluded in-image pixels of each object when placed (index 0: background)
    visible = [0]
    objects: list[SceneObject] = []
    n_objects = int(r.choice(len(NUM_OBJECTS_P), p=NUM_OBJECTS_P)) + 1
    min_pixels = max(20, round(0.0005 * size * size))
    for _ in range(n_objects):
        cls = int(r.integers(len(VOC_CLASSES)))
        # The first object gets as many tries as it needs (VOC has no empty images); later ones give up
        # after a few, which keeps crowded images from piling objects on top of each other.
        for _attempt in range(100 if not objects else 6):
            slots, rgb, pose = _draw_object(r, cls, size)
            h, w = slots.shape
            # Mostly inside the frame; sometimes anywhere, so that some objects are cut by the border.
            if r.random() < 0.6 and w < size and h < size:
                x0, y0 = int(r.integers(0, size - w + 1)), int(r.integers(0, size - h + 1))
            else:
                x0, y0 = int(r.integers(-w // 2, size - w // 2)), int(r.integers(-h // 2, size - h // 2))
            ix0, iy0, ix1, iy1 = max(0, x0), max(0, y0), min(size, x0 + w), min(size, y0 + h)
            if ix1 <= ix0 or iy1 <= iy0:
                continue
            local = (slice(iy0 - y0, iy1 - y0), slice(ix0 - x0, ix1 - x0))
            region = (slice(iy0, iy1), slice(ix0, ix1))
            mask = slots[local] > 0  # [h', w'] the part of the object inside the image
            full, inside = int((slots > 0).sum()), int(mask.sum())
            if inside < min_pixels or inside < 0.3 * full:
                continue
            hidden = np.bincount(instances[region][mask], minlength=len(own))
            if any(visible[k] - hidden[k] < MIN_VISIBLE_OF_OWN * own[k] for k in range(1, len(own))):
                continue  # would hide too much of an earlier object
            for k in range(1, len(own)):
                visible[k] -= int(hidden[k])
            image[region][mask] = rgb[local][mask]
            classes[region][mask] = cls + 1
            instances[region][mask] = len(own)
            own.append(inside)
            visible.append(inside)
            objects.append(SceneObject(cls, pose, truncated=inside < (1 - TRUNCATED_LOST) * full, drawn=full))
            break

    # Pixels off the void band: what segmentation ground truth will show of each object.
    interior = np.bincount(instances[~void_boundaries(instances)], minlength=len(own))
    for k, obj in enumerate(objects, start=1):
        ys, xs = np.nonzero(instances == k)
        obj.box = (int(xs.min()) + 1, int(ys.min()) + 1, int(xs.max()) + 1, int(ys.max()) + 1)
        small = interior[k] < (DIFFICULT_SIDE * size) ** 2
        obj.difficult = bool(small or len(xs) < DIFFICULT_SEEN * obj.drawn)
    # A slight blur, as a lens would, so that object edges are not aliased staircases.
    rgb8 = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    rgb8 = rgb8.filter(ImageFilter.GaussianBlur(0.6))
    return Rendered(np.asarray(rgb8), classes, instances, objects)

def void_boundaries(instances: np.ndarray) -> np.ndarray:
    """[s, s] bool: pixels whose 3×3 neighbourhood holds two different instances (or object and background).

    VOC marks a band along every object outline as void (255), ~5 px wide at VOC's ~500 px images.
    NOTE: a 3×3 window gives a 2 px band (one pixel each side), about the same fraction at 227 px, for
    any image size. The image border is not a boundary (the padding repeats the edge).
    """
    p = np.pad(instances, 1, mode="edge")
    s0, s1 = instances.shape
    windows = [p[dy : dy + s0, dx : dx + s1] for dy in range(3) for dx in range(3)]
    return np.maximum.reduce(windows) != np.minimum.reduce(windows)
