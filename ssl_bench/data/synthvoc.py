"""SynthVOC: a procedurally drawn dataset in the exact PASCAL VOCdevkit layout, the suite's embedded default.

Real VOC and ImageNet cannot ship with the suite, yet every pipeline (pretraining, the three transfer
evaluators, ``bench data check``) should run end to end out of the box. SynthVOC is written in the same
folders and file formats as VOC2007 (JPEG images, VOC XML, ``ImageSets``, per-class label files, palette
segmentation PNGs with 255 boundaries), so the code that reads it is the code that reads real VOC.

What the images hold:
- 20 object kinds that borrow the VOC class names as placeholders. A kind is defined by its SHAPE and PART
  STRUCTURE (wheels under a body, a ring pair with spokes, a head with ears, a chain of carriages…) and,
  for nine objects in ten, by its TYPICAL COLOURS (a body hue and an accent hue per class, see
  ``CLASS_HUES``); textures, shading and the remaining colours are random per instance.
- 1–4 objects per image from a fifth of the frame across to all of it; later objects occlude earlier ones
  (boxes and masks cover the visible part only); objects cut by the border are marked ``truncated``,
  small or mostly hidden ones ``difficult``, as in VOC.
- Structured, muted backgrounds (gradients, stripes, checkerboards, blobs, horizons, noise), so that
  filling a hole needs its context, which is what a context encoder learns from.

Splits for ``num_images`` images (sizes scale proportionally; 2000 → 1000 / 250 / 250 / 500):
- ``pool/images``: 50%, the unlabelled pretraining pool (the stand-in for ImageNet), with image-level
  multi-hot labels kept aside in ``pool/labels.csv`` for the supervised baseline only;
- ``Main/trainval``: 25%, split in halves ``train`` / ``val``; ``Main/test``: the remaining 25%.
- ``Segmentation/{train,val,trainval}`` = ``Main/{train,val,trainval}``. Every SynthVOC image has masks,
  so there is no reason to subsample; seg ``train`` and seg ``val`` are disjoint, as in VOC2012.
All these sets are pairwise disjoint where VOC's are, and the pool shares no image with any of them.

Generation is deterministic: image ``i`` is drawn from a generator seeded by ``(seed, i)``, so the bytes
do not depend on the number of worker processes. ``SYNTHVOC.json`` is written last (atomically); its
presence marks a complete dataset.
"""

from __future__ import annotations

import colorsys
import contextlib
import json
import math
import multiprocessing
import os
import shutil
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ssl_bench.atomic import atomic_write_json, atomic_write_text
from ssl_bench.data.voc import MAIN_SPLITS, SEGMENTATION_SPLITS, VOC_CLASSES, VOC_PALETTE, VOID_LABEL
from ssl_bench.errors import DataError

GENERATOR_VERSION = 2
MARKER = "SYNTHVOC.json"
_INCOMPLETE = ".synthvoc-incomplete"

POOL_FRACTION = 0.5
TRAINVAL_FRACTION = 0.25  # the test set takes the rest (also 25%)

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
JPEG_QUALITY = 90

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
# Drawing objects. Each kind draws "slots" (1 body, 2 accent, 3 detail) into an L-mode canvas in
# coordinates normalised to the canvas box; colours are given to slots afterwards, at random.


class _Pen:
    """Draws parts on a canvas of ``w × h`` pixels; ``x, y`` in [0, 1] of the width and height."""

    def __init__(self, w: int, h: int) -> None:
        self.w, self.h = w, h
        self.m = min(w, h)
        self.kx = self.m / w  # a length in units of the shorter side, as a fraction of the width
        self.ky = self.m / h
        self.img = Image.new("L", (w, h), 0)
        self.draw = ImageDraw.Draw(self.img)

    def _p(self, x: float, y: float) -> tuple[float, float]:
        return x * (self.w - 1), y * (self.h - 1)

    def _width(self, frac: float) -> int:
        return max(1, round(frac * self.m))

    def rect(self, slot: int, x0: float, y0: float, x1: float, y1: float, round_frac: float = 0.0) -> None:
        (a, b), (c, d) = self._p(min(x0, x1), min(y0, y1)), self._p(max(x0, x1), max(y0, y1))
        if round_frac > 0:
            self.draw.rounded_rectangle((a, b, c, d), radius=round_frac * self.m, fill=slot)
        else:
            self.draw.rectangle((a, b, c, d), fill=slot)

    def ellipse(self, slot: int, cx: float, cy: float, rx: float, ry: float) -> None:
        """Axis-aligned ellipse; ``rx`` in widths, ``ry`` in heights."""
        self.draw.ellipse((*self._p(cx - rx, cy - ry), *self._p(cx + rx, cy + ry)), fill=slot)

    def circle(self, slot: int, cx: float, cy: float, r: float) -> None:
        """Circle of radius ``r`` shorter sides."""
        self.ellipse(slot, cx, cy, r * self.kx, r * self.ky)

    def ring(self, slot: int, cx: float, cy: float, r: float, width: float) -> None:
        rx, ry = r * self.kx, r * self.ky
        box = (*self._p(cx - rx, cy - ry), *self._p(cx + rx, cy + ry))
        self.draw.ellipse(box, outline=slot, width=self._width(width))

    def poly(self, slot: int, points: list[tuple[float, float]]) -> None:
        self.draw.polygon([self._p(x, y) for x, y in points], fill=slot)

    def line(self, slot: int, points: list[tuple[float, float]], width: float) -> None:
        self.draw.line([self._p(x, y) for x, y in points], fill=slot, width=self._width(width), joint="curve")

    def leaf(self, slot: int, cx: float, cy: float, length: float, thickness: float, angle: float) -> None:
        """Ellipse rotated by ``angle`` (radians from vertical); axes in shorter sides."""
        t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
        u, v = length * np.cos(t), thickness * np.sin(t)  # u along the leaf's axis
        dx, dy = np.sin(angle), -np.cos(angle)
        xs = cx + (u * dx - v * dy) * self.kx
        ys = cy + (u * dy + v * dx) * self.ky
        self.poly(slot, list(zip(xs.tolist(), ys.tolist(), strict=True)))


Drawer = Callable[[_Pen, np.random.Generator], None]


def _aeroplane(p: _Pen, r: np.random.Generator) -> None:
    fy, fh = r.uniform(0.45, 0.55), r.uniform(0.07, 0.11)
    p.ellipse(1, 0.5, fy, 0.49, fh)  # fuselage
    wx, sweep = r.uniform(0.45, 0.58), r.uniform(0.0, 0.14)
    p.poly(2, [(wx - 0.07, fy), (wx - sweep - 0.05, 0.0), (wx - sweep + 0.04, 0.0), (wx + 0.1, fy),
               (wx - sweep + 0.04, 1.0), (wx - sweep - 0.05, 1.0)])  # fmt: skip
    p.poly(
        2, [(0.02, fy), (0.0, fy - 0.24), (0.07, fy - 0.24), (0.16, fy), (0.07, fy + 0.24), (0.0, fy + 0.24)]
    )
    p.ellipse(3, 0.92, fy, 0.05, fh * 0.6)  # cockpit


def _bicycle(p: _Pen, r: np.random.Generator) -> None:
    rad = r.uniform(0.26, 0.33)
    cy = 1 - rad * p.ky - 0.01
    c1, c2 = rad * p.kx + 0.01, 1 - rad * p.kx - 0.01
    seat, head, crank = (r.uniform(0.36, 0.44), 0.3), (r.uniform(0.64, 0.7), 0.3), (0.5, cy)
    frame = [(c1, cy), seat, head, crank, (c1, cy)]
    p.line(1, frame, 0.06)
    p.line(1, [seat, crank], 0.06)
    p.line(1, [head, (c2, cy)], 0.06)
    p.line(3, [(seat[0] - 0.02, 0.3), (seat[0] - 0.04, 0.16)], 0.05)
    p.line(3, [(seat[0] - 0.1, 0.15), (seat[0] + 0.02, 0.15)], 0.07)  # saddle
    p.line(3, [head, (head[0] + 0.03, 0.12), (head[0] + 0.12, 0.1)], 0.05)  # handlebar
    for cx in (c1, c2):
        p.ring(2, cx, cy, rad, 0.06)
        for a in np.linspace(0, np.pi, int(r.integers(2, 5)), endpoint=False) + r.uniform(0, np.pi):
            dx, dy = rad * p.kx * np.cos(a), rad * p.ky * np.sin(a)
            p.line(3, [(cx - dx, cy - dy), (cx + dx, cy + dy)], 0.02)  # spokes


def _bird(p: _Pen, r: np.random.Generator) -> None:
    p.ellipse(1, 0.48, 0.62, 0.3, 0.19)
    hx, hy = r.uniform(0.74, 0.8), r.uniform(0.34, 0.44)
    p.circle(1, hx, hy, 0.14)
    p.poly(3, [(hx + 0.08, hy - 0.05), (1.0, hy + 0.01), (hx + 0.08, hy + 0.06)])  # beak
    p.poly(2, [(0.22, 0.6), (0.0, r.uniform(0.35, 0.5)), (0.0, r.uniform(0.75, 0.85))])  # tail
    if r.random() < 0.5:  # wings raised
        p.poly(2, [(0.35, 0.58), (0.6, 0.58), (r.uniform(0.3, 0.5), 0.0)])
    else:
        p.poly(2, [(0.3, 0.55), (0.62, 0.55), (0.2, 0.78)])
    p.line(3, [(0.42, 0.78), (0.4, 1.0)], 0.04)
    p.line(3, [(0.54, 0.78), (0.56, 1.0)], 0.04)


def _boat(p: _Pen, r: np.random.Generator) -> None:
    deck = r.uniform(0.62, 0.72)
    p.poly(1, [(0.0, deck), (1.0, deck), (r.uniform(0.78, 0.88), 0.97), (r.uniform(0.12, 0.22), 0.97)])
    mx = r.uniform(0.42, 0.55)
    p.line(3, [(mx, 0.02), (mx, deck)], 0.035)  # mast
    p.poly(2, [(mx + 0.03, 0.05), (mx + 0.03, deck - 0.05), (r.uniform(0.85, 0.97), deck - 0.05)])
    if r.random() < 0.7:  # jib
        p.poly(2, [(mx - 0.03, 0.12), (mx - 0.03, deck - 0.05), (r.uniform(0.05, 0.2), deck - 0.05)])


def _bottle(p: _Pen, r: np.random.Generator) -> None:
    sh = r.uniform(0.35, 0.45)
    p.rect(1, 0.04, sh, 0.96, 1.0, round_frac=0.15)
    neck = r.uniform(0.28, 0.36)
    p.poly(1, [(0.04, sh + 0.03), (neck, sh - 0.15), (1 - neck, sh - 0.15), (0.96, sh + 0.03)])
    p.rect(1, neck, 0.06, 1 - neck, sh - 0.14)
    p.rect(3, neck - 0.04, 0.0, 1 - neck + 0.04, 0.08)  # cap
    ly = r.uniform(sh + 0.12, 0.7)
    p.rect(2, 0.04, ly, 0.96, ly + r.uniform(0.12, 0.22))  # label


def _bus(p: _Pen, r: np.random.Generator) -> None:
    p.rect(1, 0.0, 0.02, 1.0, 0.86, round_frac=0.1)
    n = int(r.integers(4, 7))
    x0, x1, wy0, wy1 = 0.04, 0.84, r.uniform(0.1, 0.15), r.uniform(0.38, 0.45)
    step = (x1 - x0) / n
    for k in range(n):
        p.rect(2, x0 + k * step + 0.1 * step, wy0, x0 + (k + 1) * step - 0.1 * step, wy1)
    p.rect(2, 0.88, wy0, 0.985, 0.55)  # windscreen
    p.rect(3, 0.07, 0.5, 0.15, 0.83)  # door
    rad = r.uniform(0.13, 0.16)
    for cx in (0.18, 0.8):
        p.circle(3, cx, 1 - rad * p.ky, rad)
        p.circle(2, cx, 1 - rad * p.ky, rad * 0.4)


def _car(p: _Pen, r: np.random.Generator) -> None:
    top = r.uniform(0.36, 0.44)
    p.rect(1, 0.0, top, 1.0, 0.8, round_frac=0.12)
    a, b = r.uniform(0.15, 0.22), r.uniform(0.78, 0.85)
    p.poly(1, [(a, top + 0.02), (a + 0.13, 0.04), (b - 0.15, 0.04), (b, top + 0.02)])
    p.poly(2, [(a + 0.06, top), (a + 0.15, 0.1), (0.48, 0.1), (0.48, top)])
    p.poly(2, [(0.52, top), (0.52, 0.1), (b - 0.16, 0.1), (b - 0.06, top)])
    rad = r.uniform(0.19, 0.23)
    for cx in (0.22, 0.78):
        p.circle(3, cx, 1 - rad * p.ky, rad)
        p.circle(2, cx, 1 - rad * p.ky, rad * 0.4)
    p.rect(2, 0.95, top + 0.06, 1.0, top + 0.15)  # headlight


def _cat(p: _Pen, r: np.random.Generator) -> None:
    p.ellipse(1, 0.5, 0.72, 0.38, 0.27)  # body
    hy = r.uniform(0.3, 0.36)
    p.circle(1, 0.5, hy, 0.27)
    ear = r.uniform(0.0, 0.06)
    p.poly(1, [(0.2, hy - 0.04), (0.24 - ear, 0.0), (0.44, hy - 0.18)])
    p.poly(1, [(0.8, hy - 0.04), (0.76 + ear, 0.0), (0.56, hy - 0.18)])
    p.poly(2, [(0.26, hy - 0.07), (0.28 - ear, 0.06), (0.39, hy - 0.16)])
    p.poly(2, [(0.74, hy - 0.07), (0.72 + ear, 0.06), (0.61, hy - 0.16)])
    p.circle(3, 0.4, hy, 0.05)
    p.circle(3, 0.6, hy, 0.05)
    p.line(1, [(0.8, 0.92), (0.97, r.uniform(0.7, 0.8)), (0.93, r.uniform(0.45, 0.6))], 0.08)  # tail


def _chair(p: _Pen, r: np.random.Generator) -> None:
    seat = r.uniform(0.48, 0.58)
    lean = r.uniform(0.0, 0.06)
    p.poly(1, [(0.06, seat + 0.1), (0.06 + lean, 0.0), (0.22 + lean, 0.0), (0.22, seat + 0.1)])  # back
    p.rect(1, 0.06, seat, 0.96, seat + 0.1)
    p.rect(2, 0.08, seat + 0.1, 0.18, 1.0)
    p.rect(2, 0.84, seat + 0.1, 0.94, 1.0)
    p.rect(3, 0.14, r.uniform(0.78, 0.86), 0.88, 0.9)  # stretcher
    p.rect(3, 0.08 + lean, 0.12, 0.2 + lean, 0.2)


def _cow(p: _Pen, r: np.random.Generator) -> None:
    p.rect(1, 0.14, 0.25, 0.82, 0.64, round_frac=0.08)
    for x in (0.16, 0.26, 0.66, 0.74):
        p.rect(1, x, 0.55, x + 0.07, 1.0)
    hy = r.uniform(0.08, 0.18)
    p.rect(1, 0.8, hy, 0.98, hy + 0.3, round_frac=0.08)  # head
    p.line(3, [(0.82, hy + 0.02), (0.8, hy - 0.08)], 0.05)  # horns
    p.line(3, [(0.96, hy + 0.02), (0.98, hy - 0.08)], 0.05)
    p.line(1, [(0.15, 0.3), (0.06, r.uniform(0.55, 0.7))], 0.04)  # tail
    for _ in range(int(r.integers(3, 7))):  # patches
        p.ellipse(2, r.uniform(0.22, 0.74), r.uniform(0.3, 0.58), r.uniform(0.04, 0.09), r.uniform(0.04, 0.1))


def _diningtable(p: _Pen, r: np.random.Generator) -> None:
    top, thick = r.uniform(0.08, 0.16), r.uniform(0.1, 0.16)
    p.rect(1, 0.0, top, 1.0, top + thick)
    p.rect(2, 0.06, top + thick, 0.94, top + thick + 0.1)  # apron
    p.rect(1, 0.06, top + thick, 0.14, 1.0)
    p.rect(1, 0.86, top + thick, 0.94, 1.0)
    p.rect(3, 0.25, top + thick, 0.3, 0.85)  # far legs
    p.rect(3, 0.7, top + thick, 0.75, 0.85)
    if r.random() < 0.6:  # something on the table
        p.ellipse(3, r.uniform(0.2, 0.8), top - 0.02, r.uniform(0.06, 0.12), 0.05)


def _dog(p: _Pen, r: np.random.Generator) -> None:
    p.ellipse(1, 0.45, 0.5, 0.3, 0.16)
    hy = r.uniform(0.22, 0.32)
    p.circle(1, 0.8, hy, 0.16)
    p.rect(1, 0.84, hy - 0.02, 1.0, hy + 0.11, round_frac=0.04)  # snout
    p.ellipse(2, 0.72, hy + 0.09, 0.05, 0.15)  # droopy ear
    p.line(1, [(0.72, 0.4), (0.78, hy)], 0.12)  # neck
    stride = r.uniform(-0.06, 0.06)
    for x in (0.24, 0.34, 0.58, 0.66):
        p.line(1, [(x, 0.55), (x + stride, 1.0)], 0.07)
    p.line(1, [(0.17, 0.45), (0.07, r.uniform(0.2, 0.3)), (r.uniform(0.04, 0.14), 0.05)], 0.05)  # tail
    p.circle(3, 0.83, hy - 0.04, 0.03)


def _horse(p: _Pen, r: np.random.Generator) -> None:
    p.ellipse(1, 0.42, 0.42, 0.3, 0.13)
    p.poly(1, [(0.58, 0.35), (0.7, 0.48), (0.88, 0.14), (0.76, 0.06)])  # neck
    p.leaf(1, 0.88, 0.14, 0.17, 0.07, r.uniform(1.8, 2.4))  # long head, pointing down-right
    p.line(2, [(0.75, 0.06), (0.6, 0.34)], 0.05)  # mane
    stride = r.uniform(-0.08, 0.08)
    for x in (0.17, 0.27, 0.58, 0.66):
        p.line(1, [(x, 0.45), (x + stride, 0.95)], 0.05)
        p.rect(3, x + stride - 0.03, 0.94, x + stride + 0.03, 1.0)  # hooves
    p.poly(2, [(0.14, 0.35), (0.0, r.uniform(0.65, 0.8)), (0.08, 0.8), (0.16, 0.45)])  # tail


def _motorbike(p: _Pen, r: np.random.Generator) -> None:
    rad = r.uniform(0.24, 0.29)
    cy = 1 - rad * p.ky
    c1, c2 = rad * p.kx, 1 - rad * p.kx
    for cx in (c1, c2):
        p.circle(3, cx, cy, rad)
        p.circle(2, cx, cy, rad * 0.45)
    p.poly(1, [(0.3, 0.42), (0.62, 0.36), (0.7, 0.52), (0.6, 0.74), (0.36, 0.74)])  # engine block
    p.ellipse(2, 0.55, 0.36, 0.12, 0.09)  # tank
    p.rect(3, 0.26, 0.3, 0.47, 0.38, round_frac=0.03)  # seat
    p.line(1, [(c2, cy), (0.72, 0.16)], 0.07)  # fork
    p.line(1, [(0.66, 0.17), (0.79, r.uniform(0.06, 0.14))], 0.05)  # handlebar
    p.line(2, [(0.34, 0.66), (0.04, r.uniform(0.56, 0.66))], 0.05)  # exhaust


def _person(p: _Pen, r: np.random.Generator) -> None:
    rad = r.uniform(0.17, 0.22)
    hy = rad * p.ky
    p.circle(2, 0.5, hy, rad)  # head
    p.rect(1, 0.25, 2 * hy, 0.75, 0.58, round_frac=0.1)  # torso
    shoulder = 2 * hy + 0.03
    for side in (-1, 1):
        elbow = (0.5 + side * r.uniform(0.3, 0.42), shoulder + r.uniform(0.08, 0.16))
        hand = (0.5 + side * r.uniform(0.25, 0.47), shoulder + r.uniform(-0.12, 0.3))
        p.line(1, [(0.5 + side * 0.2, shoulder), elbow, hand], 0.13)  # arms
        foot = 0.5 + side * r.uniform(0.05, 0.32)
        p.line(3, [(0.5 + side * 0.12, 0.56), (foot, 1.0)], 0.2)  # legs


def _pottedplant(p: _Pen, r: np.random.Generator) -> None:
    rim = r.uniform(0.58, 0.66)
    for _ in range(int(r.integers(4, 8))):
        a = r.uniform(-1.2, 1.2)
        length = r.uniform(0.18, 0.27)
        cx, cy = 0.5 + np.sin(a) * length * p.kx, rim - np.cos(a) * length * p.ky
        p.line(3, [(0.5, rim), (cx, cy)], 0.03)  # stems
        p.leaf(1, cx, cy, length, length * r.uniform(0.3, 0.45), a)
    p.poly(2, [(0.28, rim), (0.72, rim), (0.66, 1.0), (0.34, 1.0)])  # pot
    p.rect(2, 0.24, rim - 0.03, 0.76, rim + 0.04)


def _sheep(p: _Pen, r: np.random.Generator) -> None:
    n = int(r.integers(9, 14))
    for a in np.linspace(0, 2 * np.pi, n, endpoint=False) + r.uniform(0, 1):  # fleece
        p.circle(1, 0.44 + 0.26 * np.cos(a), 0.42 + 0.17 * np.sin(a), r.uniform(0.14, 0.2))
    p.ellipse(1, 0.44, 0.42, 0.28, 0.2)
    p.ellipse(2, 0.86, r.uniform(0.34, 0.44), 0.08, 0.15)  # head
    p.ellipse(2, 0.8, 0.3, 0.05, 0.04)  # ear
    for x in (0.24, 0.32, 0.55, 0.63):
        p.line(2, [(x, 0.6), (x, 1.0)], 0.06)


def _sofa(p: _Pen, r: np.random.Generator) -> None:
    back = r.uniform(0.02, 0.15)
    p.rect(1, 0.04, back, 0.96, 0.58, round_frac=0.06)
    p.rect(1, 0.0, 0.52, 1.0, 0.86)
    arm = r.uniform(0.25, 0.38)
    p.rect(2, 0.0, arm, 0.1, 0.86, round_frac=0.05)
    p.rect(2, 0.9, arm, 1.0, 0.86, round_frac=0.05)
    n = int(r.integers(2, 4))
    for k in range(1, n):
        x = 0.1 + 0.8 * k / n
        p.line(3, [(x, back + 0.05), (x, 0.8)], 0.03)  # cushion seams
    p.rect(3, 0.06, 0.86, 0.11, 1.0)
    p.rect(3, 0.89, 0.86, 0.94, 1.0)


def _train(p: _Pen, r: np.random.Generator) -> None:
    n = int(r.integers(2, 4))
    gap = 0.02
    width = (1 - gap * (n - 1)) / n
    rad = r.uniform(0.08, 0.1)
    for k in range(n):
        x0, x1 = k * (width + gap), k * (width + gap) + width
        if k == n - 1:  # locomotive with a sloped nose
            p.poly(1, [(x0, 0.1), (x1 - 0.07, 0.1), (x1, 0.5), (x1, 0.84), (x0, 0.84)])
        else:
            p.rect(1, x0, 0.1, x1, 0.84)
        w = (x1 - x0 - 0.08) / 3
        for j in range(3):
            p.rect(2, x0 + 0.03 + j * (w + 0.01), 0.22, x0 + 0.03 + j * (w + 0.01) + w * 0.8, 0.45)
        for cx in (x0 + 0.25 * width, x0 + 0.75 * width):
            p.circle(3, cx, 0.95 - rad * p.ky, rad)
        if k < n - 1:
            p.line(3, [(x1, 0.72), (x1 + gap, 0.72)], 0.05)  # coupler
    p.line(3, [(0.0, 0.97), (1.0, 0.97)], 0.05)  # rail


def _tvmonitor(p: _Pen, r: np.random.Generator) -> None:
    bottom = r.uniform(0.74, 0.84)
    p.rect(1, 0.0, 0.0, 1.0, bottom, round_frac=0.03)
    border = r.uniform(0.04, 0.08)
    p.rect(2, border, border * 1.2, 1 - border, bottom - border * 1.2)  # screen
    p.rect(1, 0.44, bottom, 0.56, 0.92)  # neck
    p.rect(1, r.uniform(0.22, 0.32), 0.9, r.uniform(0.68, 0.78), 1.0)  # foot


# Drawers and width/height ratios, in VOC_CLASSES order.
_KINDS: tuple[tuple[Drawer, float], ...] = (
    (_aeroplane, 1.7), (_bicycle, 1.6), (_bird, 1.2), (_boat, 1.0), (_bottle, 0.38),
    (_bus, 2.2), (_car, 1.9), (_cat, 0.85), (_chair, 0.65), (_cow, 1.5),
    (_diningtable, 1.7), (_dog, 1.3), (_horse, 1.05), (_motorbike, 1.6), (_person, 0.42),
    (_pottedplant, 0.8), (_sheep, 1.4), (_sofa, 2.1), (_train, 3.0), (_tvmonitor, 1.3),
)  # fmt: skip
assert len(_KINDS) == len(VOC_CLASSES)
# Kinds drawn facing right get a Left/Right pose from the flip; the others are "Unspecified".
_SYMMETRIC = {"bottle", "diningtable", "pottedplant", "tvmonitor", "cat", "person", "sofa"}


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
class _Object:
    cls: int
    pose: str
    truncated: bool
    difficult: bool = False
    box: tuple[int, int, int, int] = (0, 0, 0, 0)  # VOC 1-based inclusive xmin, ymin, xmax, ymax
    drawn: int = 0  # pixels of the whole object as drawn, inside the image or not


@dataclass
class _Rendered:
    image: np.ndarray  # [s, s, 3] uint8
    classes: np.ndarray  # [s, s] uint8: 0 background, 1..20
    instances: np.ndarray  # [s, s] uint8: 0 background, 1..K in object order
    objects: list[_Object]


def _draw_object(r: np.random.Generator, cls: int, s: int) -> tuple[np.ndarray, np.ndarray, str]:
    """Draw one object on its own canvas: slots [h, w] uint8 (0 = empty), rgb [h, w, 3] float32, pose."""
    drawer, aspect = _KINDS[cls]
    scale = math.exp(r.uniform(math.log(SCALE_RANGE[0]), math.log(SCALE_RANGE[1])))
    aspect *= math.exp(r.uniform(-0.15, 0.15))
    w, h = scale * s * math.sqrt(aspect), scale * s / math.sqrt(aspect)
    shrink = min(1.0, 1.15 * s / max(w, h))  # long thin kinds (train) stay within ~the frame
    w, h = max(6, round(w * shrink)), max(6, round(h * shrink))
    pen = _Pen(w, h)
    drawer(pen, r)
    img = pen.img
    pose = "Unspecified" if VOC_CLASSES[cls] in _SYMMETRIC else "Right"
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


def render_image(index: int, seed: int, size: int) -> _Rendered:
    """Draw image ``index`` of the dataset with ``seed``; pure function of its arguments."""
    r = np.random.default_rng([seed, 1, index])
    image = _background(r, size)
    classes = np.zeros((size, size), np.uint8)
    instances = np.zeros((size, size), np.uint8)
    own = [0]  # unoccluded in-image pixels of each object when placed (index 0: background)
    visible = [0]
    objects: list[_Object] = []
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
            objects.append(_Object(cls, pose, truncated=inside < (1 - TRUNCATED_LOST) * full, drawn=full))
            break

    # Pixels off the void band: what segmentation ground truth will show of each object.
    interior = np.bincount(instances[~_void_boundaries(instances)], minlength=len(own))
    for k, obj in enumerate(objects, start=1):
        ys, xs = np.nonzero(instances == k)
        obj.box = (int(xs.min()) + 1, int(ys.min()) + 1, int(xs.max()) + 1, int(ys.max()) + 1)
        small = interior[k] < (DIFFICULT_SIDE * size) ** 2
        obj.difficult = bool(small or len(xs) < DIFFICULT_SEEN * obj.drawn)
    # A slight blur, as a lens would, so that object edges are not aliased staircases.
    rgb8 = Image.fromarray(np.clip(image, 0, 255).astype(np.uint8))
    rgb8 = rgb8.filter(ImageFilter.GaussianBlur(0.6))
    return _Rendered(np.asarray(rgb8), classes, instances, objects)


def _void_boundaries(instances: np.ndarray) -> np.ndarray:
    """[s, s] bool: pixels whose 3×3 neighbourhood holds two different instances (or object and background).

    VOC marks a band along every object outline as void (255), ~5 px wide at VOC's ~500 px images.
    NOTE: a 3×3 window gives a 2 px band (one pixel each side), about the same fraction at 227 px, for
    any image size. The image border is not a boundary (the padding repeats the edge).
    """
    p = np.pad(instances, 1, mode="edge")
    s0, s1 = instances.shape
    windows = [p[dy : dy + s0, dx : dx + s1] for dy in range(3) for dx in range(3)]
    return np.maximum.reduce(windows) != np.minimum.reduce(windows)


def _palette_png(path: Path, array: np.ndarray) -> None:
    img = Image.fromarray(array)  # [s, s] uint8 → mode L
    img.putpalette(VOC_PALETTE)  # L + palette → P, indices kept
    img.save(path, format="PNG")


def _annotation_xml(image_id: str, size: int, objects: list[_Object]) -> str:
    root = ET.Element("annotation")
    ET.SubElement(root, "folder").text = "VOC2007"
    ET.SubElement(root, "filename").text = f"{image_id}.jpg"
    source = ET.SubElement(root, "source")
    ET.SubElement(source, "database").text = "SynthVOC (procedurally generated by ssl_bench)"
    ET.SubElement(source, "annotation").text = f"SynthVOC v{GENERATOR_VERSION}"
    size_node = ET.SubElement(root, "size")
    for tag, value in (("width", size), ("height", size), ("depth", 3)):
        ET.SubElement(size_node, tag).text = str(value)
    ET.SubElement(root, "segmented").text = "1"
    for obj in objects:
        node = ET.SubElement(root, "object")
        ET.SubElement(node, "name").text = VOC_CLASSES[obj.cls]
        ET.SubElement(node, "pose").text = obj.pose
        ET.SubElement(node, "truncated").text = str(int(obj.truncated))
        ET.SubElement(node, "difficult").text = str(int(obj.difficult))
        box = ET.SubElement(node, "bndbox")
        for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), obj.box, strict=True):
            ET.SubElement(box, tag).text = str(value)
    ET.indent(root, space="\t")
    return ET.tostring(root, encoding="unicode") + "\n"


def _image_id(index: int) -> str:
    return f"{index + 1:06d}"


def _write_image(task: tuple[int, int, int, str, bool]) -> tuple[int, list[tuple[int, bool, bool]]]:
    """Render image ``index`` and write its files; returns ``(index, [(class, difficult, truncated)…])``."""
    index, seed, size, out, in_pool = task
    out_path = Path(out)
    image_id = _image_id(index)
    rendered = render_image(index, seed, size)
    jpeg = Image.fromarray(rendered.image)
    if in_pool:
        jpeg.save(out_path / "pool" / "images" / f"{image_id}.jpg", quality=JPEG_QUALITY)
    else:
        voc = out_path / "VOCdevkit" / "VOC2007"
        jpeg.save(voc / "JPEGImages" / f"{image_id}.jpg", quality=JPEG_QUALITY)
        xml = _annotation_xml(image_id, size, rendered.objects)
        (voc / "Annotations" / f"{image_id}.xml").write_text(xml)
        void = _void_boundaries(rendered.instances)
        for folder, labels in (
            ("SegmentationClass", rendered.classes),
            ("SegmentationObject", rendered.instances),
        ):
            _palette_png(voc / folder / f"{image_id}.png", np.where(void, VOID_LABEL, labels))
    return index, [(o.cls, o.difficult, o.truncated) for o in rendered.objects]


def split_sizes(num_images: int) -> dict[str, int]:
    """Sizes of the pool and of the Main splits for ``num_images`` images (2000 → 1000/250/250/500)."""
    pool = round(POOL_FRACTION * num_images)
    trainval = round(TRAINVAL_FRACTION * num_images)
    train = trainval // 2
    return {"pool": pool, "train": train, "val": trainval - train, "test": num_images - pool - trainval}


def _assign_splits(num_images: int, seed: int) -> dict[str, list[int]]:
    """Image indices of each split, drawn by a seeded permutation so that splits interleave like VOC's."""
    sizes = split_sizes(num_images)
    order = np.random.default_rng([seed, 0]).permutation(num_images)
    out, start = {}, 0
    for name in ("pool", "train", "val", "test"):
        out[name] = sorted(order[start : start + sizes[name]].tolist())
        start += sizes[name]
    return out


def _write_image_sets(voc: Path, splits: dict[str, list[int]], objects: dict[int, list]) -> None:
    main, seg = voc / "ImageSets" / "Main", voc / "ImageSets" / "Segmentation"
    sets = {
        "train": splits["train"],
        "val": splits["val"],
        "trainval": sorted(splits["train"] + splits["val"]),
        "test": splits["test"],
    }
    for split in MAIN_SPLITS:
        indices = sets[split]
        atomic_write_text(main / f"{split}.txt", "".join(f"{_image_id(i)}\n" for i in indices))
        for c, name in enumerate(VOC_CLASSES):
            lines = []
            for i in indices:
                flags = [difficult for cls, difficult, _ in objects[i] if cls == c]
                # devkit convention: 1 present, -1 absent, 0 only difficult instances
                label = -1 if not flags else (0 if all(flags) else 1)
                lines.append(f"{_image_id(i)} {label:2d}\n")
            atomic_write_text(main / f"{name}_{split}.txt", "".join(lines))
    for split in SEGMENTATION_SPLITS:
        atomic_write_text(seg / f"{split}.txt", "".join(f"{_image_id(i)}\n" for i in sets[split]))


def _write_pool_labels(pool: Path, indices: list[int], objects: dict[int, list]) -> None:
    lines = ["image," + ",".join(VOC_CLASSES) + "\n"]
    for i in indices:
        present = {cls for cls, _, _ in objects[i]}
        multi_hot = ",".join("1" if c in present else "0" for c in range(len(VOC_CLASSES)))
        lines.append(f"images/{_image_id(i)}.jpg,{multi_hot}\n")
    atomic_write_text(pool / "labels.csv", "".join(lines))


@contextlib.contextmanager
def _worker_pool(workers: int) -> Iterator[Any]:
    """A process pool, or None for ``workers <= 1``."""
    if workers <= 1:
        yield None
        return
    # fork: workers start in milliseconds and need only numpy and PIL (spawn would re-import torch in
    # each). Where there is no fork, the platform default.
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
    with ctx.Pool(workers) as pool:
        yield pool


def generate_synthvoc(
    out: str | os.PathLike,
    num_images: int = 2000,
    size: int = 227,
    seed: int = 0,
    workers: int = 2,
    progress: bool = True,
) -> Path:
    """Write a SynthVOC dataset under ``out`` (see the module docstring for contents and splits).

    Args:
        out: destination folder; gets ``VOCdevkit/VOC2007``, ``pool`` and ``SYNTHVOC.json``.
            A previous SynthVOC there (complete or interrupted) is replaced; any other ``VOCdevkit`` or
            ``pool`` folder there is left alone and the call fails.
        num_images: total number of images, pool included (at least 8).
        size: side of the square images in pixels (at least 32).
        seed: the same seed gives byte-identical files, for any ``workers``.
        workers: processes drawing images; 0 or 1 draws in this process.
        progress: show a progress bar on stderr.

    Returns:
        The VOC root, ``out/VOCdevkit/VOC2007``.

    Raises:
        DataError: ``out`` holds a ``VOCdevkit`` or ``pool`` folder that SynthVOC did not write.
    """
    if num_images < 8:
        raise ValueError(f"num_images must be at least 8, got {num_images}")
    if size < 32:
        raise ValueError(f"size must be at least 32, got {size}")
    out = Path(out)
    voc, pool = out / "VOCdevkit" / "VOC2007", out / "pool"
    ours = (out / MARKER).exists() or (out / _INCOMPLETE).exists()
    if not ours and ((out / "VOCdevkit").exists() or pool.exists()):
        raise DataError(
            f"{out} holds a VOCdevkit or pool folder that SynthVOC did not write; not overwriting it"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / _INCOMPLETE).touch()
    with contextlib.suppress(FileNotFoundError):
        (out / MARKER).unlink()
    for folder in (out / "VOCdevkit", pool):
        shutil.rmtree(folder, ignore_errors=True)
    for sub in ("JPEGImages", "Annotations", "ImageSets/Main", "ImageSets/Segmentation",
                "SegmentationClass", "SegmentationObject"):  # fmt: skip
        (voc / sub).mkdir(parents=True)
    (pool / "images").mkdir(parents=True)

    splits = _assign_splits(num_images, seed)
    in_pool = set(splits["pool"])
    tasks = [(i, seed, size, str(out), i in in_pool) for i in range(num_images)]
    objects: dict[int, list] = {}
    from tqdm import tqdm

    # The pool starts before the progress bar, whose monitor thread should not be forked.
    with (
        _worker_pool(workers) as workers_pool,
        tqdm(total=num_images, desc="SynthVOC", unit="img", disable=not progress, file=sys.stderr) as bar,
    ):
        results = (
            map(_write_image, tasks)
            if workers_pool is None
            else workers_pool.imap_unordered(_write_image, tasks, chunksize=4)
        )
        for index, objs in results:
            objects[index] = objs
            bar.update()

    _write_image_sets(voc, splits, objects)
    _write_pool_labels(pool, splits["pool"], objects)
    voc_objects = [o for i in range(num_images) if i not in in_pool for o in objects[i]]
    sizes = split_sizes(num_images)
    atomic_write_json(
        out / MARKER,
        {
            "generator": "ssl_bench.data.synthvoc",
            "version": GENERATOR_VERSION,
            "seed": seed,
            "num_images": num_images,
            "size": size,
            "classes": list(VOC_CLASSES),
            "splits": {
                "pool": sizes["pool"],
                "Main/train": sizes["train"],
                "Main/val": sizes["val"],
                "Main/trainval": sizes["train"] + sizes["val"],
                "Main/test": sizes["test"],
                "Segmentation/train": sizes["train"],
                "Segmentation/val": sizes["val"],
                "Segmentation/trainval": sizes["train"] + sizes["val"],
            },
            "objects": {
                "total": len(voc_objects),
                "difficult": sum(o[1] for o in voc_objects),
                "truncated": sum(o[2] for o in voc_objects),
            },
        },
    )
    (out / _INCOMPLETE).unlink()
    return voc


def synthvoc_pool(voc_root: str | os.PathLike) -> Path:
    """The pretraining pool folder (``pool``, with ``images/`` and ``labels.csv``) of a SynthVOC VOC root."""
    return Path(voc_root).parent.parent / "pool"


def _is_complete(folder: Path, num_images: int, size: int, seed: int) -> bool:
    try:
        meta = json.loads((folder / MARKER).read_text())
    except (OSError, ValueError):
        return False
    found = (meta.get("version"), meta.get("num_images"), meta.get("size"), meta.get("seed"))
    return found == (GENERATOR_VERSION, num_images, size, seed)


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    """Exclusive lock, so that two processes (e.g. DDP ranks) do not generate into the same folder."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def default_cache_dir() -> Path:
    """``$SSL_BENCH_CACHE``, else ``~/.cache/ssl_bench``."""
    env = os.environ.get("SSL_BENCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "ssl_bench"


def ensure_synthvoc(
    cache_dir: str | os.PathLike | None = None,
    *,
    num_images: int = 2000,
    size: int = 227,
    seed: int = 0,
    workers: int = 2,
    progress: bool = True,
) -> Path:
    """VOC root of a complete cached SynthVOC, generating it first if missing or incomplete.

    Args:
        cache_dir: cache root (default :func:`default_cache_dir`); the dataset lives in its subfolder
            ``synthvoc-<num_images>-<size>-<seed>``.
        num_images, size, seed, workers, progress: as for :func:`generate_synthvoc`.

    Returns:
        ``<cache_dir>/synthvoc-<num_images>-<size>-<seed>/VOCdevkit/VOC2007``.
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = root / f"synthvoc-{num_images}-{size}-{seed}"
    with _lock(root / f".{folder.name}.lock"):
        if _is_complete(folder, num_images, size, seed):
            print(f"ssl_bench: using the generated default dataset SynthVOC at {folder}", file=sys.stderr)
        else:
            print(
                f"ssl_bench: generating the default dataset SynthVOC ({num_images} images, {size} px, "
                f"seed {seed}) at {folder}",
                file=sys.stderr,
            )
            shutil.rmtree(folder, ignore_errors=True)  # an interrupted or outdated cache entry
            generate_synthvoc(folder, num_images, size, seed, workers=workers, progress=progress)
    return folder / "VOCdevkit" / "VOC2007"


HELDOUT_POOL = "pool_heldout"
_HELDOUT_MARKER = "HELDOUT.json"


def ensure_heldout_pool(pool_root: str | os.PathLike, count: int) -> Path | None:
    """A held-out slice of a SynthVOC pretraining pool: ``count`` images no run has seen (issue #22).

    Pretraining uses every image of ``pool`` and the VOC splits hold the evaluation images, so the held-out
    images are drawn by the same generator beyond the dataset: indices ``num_images … num_images + count - 1``
    of ``render_image`` with the dataset's seed and size, written as the pool is (JPEG of the same quality,
    ``labels.csv`` multi-hot) into ``<dataset>/pool_heldout``, once (a ``HELDOUT.json`` marker records the
    count; a smaller request reuses a larger slice's first images, listed in index order).

    Args:
        pool_root: the ``pool`` folder of a cached SynthVOC (``synthvoc_pool``).
        count: images wanted.

    Returns:
        The held-out folder (``images/`` and ``labels.csv``, as the pool), or None when ``pool_root`` is not a
        SynthVOC pool (no ``SYNTHVOC.json`` beside it): a folder given with ``--data`` has no held-out slice.
    """
    dataset = Path(pool_root).parent
    try:
        meta = json.loads((dataset / MARKER).read_text())
    except (OSError, ValueError):
        return None
    if Path(pool_root).name != "pool":
        return None
    folder = dataset / HELDOUT_POOL
    num_images, size, seed = int(meta["num_images"]), int(meta["size"]), int(meta["seed"])
    with _lock(dataset.parent / f".{dataset.name}.heldout.lock"):
        try:
            have = json.loads((folder / _HELDOUT_MARKER).read_text())["count"]
        except (OSError, ValueError, KeyError):
            have = 0
        if have >= count:
            return folder
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "images").mkdir(parents=True)
        indices = list(range(num_images, num_images + count))
        objects: dict[int, list] = {}
        for index in indices:
            rendered = render_image(index, seed, size)
            jpeg = Image.fromarray(rendered.image)
            jpeg.save(folder / "images" / f"{_image_id(index)}.jpg", quality=JPEG_QUALITY)
            objects[index] = [(o.cls, o.difficult, o.truncated) for o in rendered.objects]
        _write_pool_labels(folder, indices, objects)
        atomic_write_json(
            folder / _HELDOUT_MARKER,
            {"count": count, "first_index": num_images, "seed": seed, "size": size,
             "version": GENERATOR_VERSION},  # fmt: skip
        )
    return folder
