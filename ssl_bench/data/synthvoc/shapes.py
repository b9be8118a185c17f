"""SynthVOC's 20 object kinds: each draws its parts ("slots") on a canvas; colours come later (scene.py)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw

from ssl_bench.data.voc import VOC_CLASSES

# --------------------------------------------------------------------------------------------------
# Drawing objects. Each kind draws "slots" (1 body, 2 accent, 3 detail) into an L-mode canvas in
# coordinates normalised to the canvas box; colours are given to slots afterwards, at random.


class Pen:
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


Drawer = Callable[[Pen, np.random.Generator], None]


def _aeroplane(p: Pen, r: np.random.Generator) -> None:
    fy, fh = r.uniform(0.45, 0.55), r.uniform(0.07, 0.11)
    p.ellipse(1, 0.5, fy, 0.49, fh)  # fuselage
    wx, sweep = r.uniform(0.45, 0.58), r.uniform(0.0, 0.14)
    p.poly(2, [(wx - 0.07, fy), (wx - sweep - 0.05, 0.0), (wx - sweep + 0.04, 0.0), (wx + 0.1, fy),
               (wx - sweep + 0.04, 1.0), (wx - sweep - 0.05, 1.0)])  # fmt: skip
    p.poly(
        2, [(0.02, fy), (0.0, fy - 0.24), (0.07, fy - 0.24), (0.16, fy), (0.07, fy + 0.24), (0.0, fy + 0.24)]
    )
    p.ellipse(3, 0.92, fy, 0.05, fh * 0.6)  # cockpit


def _bicycle(p: Pen, r: np.random.Generator) -> None:
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


def _bird(p: Pen, r: np.random.Generator) -> None:
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


def _boat(p: Pen, r: np.random.Generator) -> None:
    deck = r.uniform(0.62, 0.72)
    p.poly(1, [(0.0, deck), (1.0, deck), (r.uniform(0.78, 0.88), 0.97), (r.uniform(0.12, 0.22), 0.97)])
    mx = r.uniform(0.42, 0.55)
    p.line(3, [(mx, 0.02), (mx, deck)], 0.035)  # mast
    p.poly(2, [(mx + 0.03, 0.05), (mx + 0.03, deck - 0.05), (r.uniform(0.85, 0.97), deck - 0.05)])
    if r.random() < 0.7:  # jib
        p.poly(2, [(mx - 0.03, 0.12), (mx - 0.03, deck - 0.05), (r.uniform(0.05, 0.2), deck - 0.05)])


def _bottle(p: Pen, r: np.random.Generator) -> None:
    sh = r.uniform(0.35, 0.45)
    p.rect(1, 0.04, sh, 0.96, 1.0, round_frac=0.15)
    neck = r.uniform(0.28, 0.36)
    p.poly(1, [(0.04, sh + 0.03), (neck, sh - 0.15), (1 - neck, sh - 0.15), (0.96, sh + 0.03)])
    p.rect(1, neck, 0.06, 1 - neck, sh - 0.14)
    p.rect(3, neck - 0.04, 0.0, 1 - neck + 0.04, 0.08)  # cap
    ly = r.uniform(sh + 0.12, 0.7)
    p.rect(2, 0.04, ly, 0.96, ly + r.uniform(0.12, 0.22))  # label


def _bus(p: Pen, r: np.random.Generator) -> None:
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


def _car(p: Pen, r: np.random.Generator) -> None:
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


def _cat(p: Pen, r: np.random.Generator) -> None:
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


def _chair(p: Pen, r: np.random.Generator) -> None:
    seat = r.uniform(0.48, 0.58)
    lean = r.uniform(0.0, 0.06)
    p.poly(1, [(0.06, seat + 0.1), (0.06 + lean, 0.0), (0.22 + lean, 0.0), (0.22, seat + 0.1)])  # back
    p.rect(1, 0.06, seat, 0.96, seat + 0.1)
    p.rect(2, 0.08, seat + 0.1, 0.18, 1.0)
    p.rect(2, 0.84, seat + 0.1, 0.94, 1.0)
    p.rect(3, 0.14, r.uniform(0.78, 0.86), 0.88, 0.9)  # stretcher
    p.rect(3, 0.08 + lean, 0.12, 0.2 + lean, 0.2)


def _cow(p: Pen, r: np.random.Generator) -> None:
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


def _diningtable(p: Pen, r: np.random.Generator) -> None:
    top, thick = r.uniform(0.08, 0.16), r.uniform(0.1, 0.16)
    p.rect(1, 0.0, top, 1.0, top + thick)
    p.rect(2, 0.06, top + thick, 0.94, top + thick + 0.1)  # apron
    p.rect(1, 0.06, top + thick, 0.14, 1.0)
    p.rect(1, 0.86, top + thick, 0.94, 1.0)
    p.rect(3, 0.25, top + thick, 0.3, 0.85)  # far legs
    p.rect(3, 0.7, top + thick, 0.75, 0.85)
    if r.random() < 0.6:  # something on the table
        p.ellipse(3, r.uniform(0.2, 0.8), top - 0.02, r.uniform(0.06, 0.12), 0.05)


def _dog(p: Pen, r: np.random.Generator) -> None:
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


def _horse(p: Pen, r: np.random.Generator) -> None:
    p.ellipse(1, 0.42, 0.42, 0.3, 0.13)
    p.poly(1, [(0.58, 0.35), (0.7, 0.48), (0.88, 0.14), (0.76, 0.06)])  # neck
    p.leaf(1, 0.88, 0.14, 0.17, 0.07, r.uniform(1.8, 2.4))  # long head, pointing down-right
    p.line(2, [(0.75, 0.06), (0.6, 0.34)], 0.05)  # mane
    stride = r.uniform(-0.08, 0.08)
    for x in (0.17, 0.27, 0.58, 0.66):
        p.line(1, [(x, 0.45), (x + stride, 0.95)], 0.05)
        p.rect(3, x + stride - 0.03, 0.94, x + stride + 0.03, 1.0)  # hooves
    p.poly(2, [(0.14, 0.35), (0.0, r.uniform(0.65, 0.8)), (0.08, 0.8), (0.16, 0.45)])  # tail


def _motorbike(p: Pen, r: np.random.Generator) -> None:
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


def _person(p: Pen, r: np.random.Generator) -> None:
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


def _pottedplant(p: Pen, r: np.random.Generator) -> None:
    rim = r.uniform(0.58, 0.66)
    for _ in range(int(r.integers(4, 8))):
        a = r.uniform(-1.2, 1.2)
        length = r.uniform(0.18, 0.27)
        cx, cy = 0.5 + np.sin(a) * length * p.kx, rim - np.cos(a) * length * p.ky
        p.line(3, [(0.5, rim), (cx, cy)], 0.03)  # stems
        p.leaf(1, cx, cy, length, length * r.uniform(0.3, 0.45), a)
    p.poly(2, [(0.28, rim), (0.72, rim), (0.66, 1.0), (0.34, 1.0)])  # pot
    p.rect(2, 0.24, rim - 0.03, 0.76, rim + 0.04)


def _sheep(p: Pen, r: np.random.Generator) -> None:
    n = int(r.integers(9, 14))
    for a in np.linspace(0, 2 * np.pi, n, endpoint=False) + r.uniform(0, 1):  # fleece
        p.circle(1, 0.44 + 0.26 * np.cos(a), 0.42 + 0.17 * np.sin(a), r.uniform(0.14, 0.2))
    p.ellipse(1, 0.44, 0.42, 0.28, 0.2)
    p.ellipse(2, 0.86, r.uniform(0.34, 0.44), 0.08, 0.15)  # head
    p.ellipse(2, 0.8, 0.3, 0.05, 0.04)  # ear
    for x in (0.24, 0.32, 0.55, 0.63):
        p.line(2, [(x, 0.6), (x, 1.0)], 0.06)


def _sofa(p: Pen, r: np.random.Generator) -> None:
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


def _train(p: Pen, r: np.random.Generator) -> None:
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


def _tvmonitor(p: Pen, r: np.random.Generator) -> None:
    bottom = r.uniform(0.74, 0.84)
    p.rect(1, 0.0, 0.0, 1.0, bottom, round_frac=0.03)
    border = r.uniform(0.04, 0.08)
    p.rect(2, border, border * 1.2, 1 - border, bottom - border * 1.2)  # screen
    p.rect(1, 0.44, bottom, 0.56, 0.92)  # neck
    p.rect(1, r.uniform(0.22, 0.32), 0.9, r.uniform(0.68, 0.78), 1.0)  # foot


# Drawers and width/height ratios, in VOC_CLASSES order.
KINDS: tuple[tuple[Drawer, float], ...] = (
    (_aeroplane, 1.7), (_bicycle, 1.6), (_bird, 1.2), (_boat, 1.0), (_bottle, 0.38),
    (_bus, 2.2), (_car, 1.9), (_cat, 0.85), (_chair, 0.65), (_cow, 1.5),
    (_diningtable, 1.7), (_dog, 1.3), (_horse, 1.05), (_motorbike, 1.6), (_person, 0.42),
    (_pottedplant, 0.8), (_sheep, 1.4), (_sofa, 2.1), (_train, 3.0), (_tvmonitor, 1.3),
)  # fmt: skip
assert len(KINDS) == len(VOC_CLASSES)
# Kinds drawn facing right get a Left/Right pose from the flip; the others are "Unspecified".
SYMMETRIC_KINDS = {"bottle", "diningtable", "pottedplant", "tvmonitor", "cat", "person", "sofa"}

