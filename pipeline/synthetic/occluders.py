"""Occluders over the face of a synthetic image: a bar, a hand, a lock of hair, a blob.

Everything random comes from the numpy Generator passed in, so the same
generator state gives the same bytes (OpenCV's own RNG is never used).
Images are RGB uint8 (h, w, 3). Speed (450 x 450, one core, median): about
0.7 ms when drawn.
"""

import cv2
import numpy as np

from prn.pipeline.synthetic.drawing import SHIFT, hsv_to_rgb, random_color, random_polygon, subpixel_points, value_noise
from prn.rendering.raster.composite import blend_patch

OCCLUDER_MARGIN = 0.5
SKIN_HSV = ((10, 35), (0.2, 0.65), (0.3, 0.95))  # hue degrees, saturation, value
HAIR_COLORS = ((20, 15, 10), (45, 30, 20), (80, 50, 30), (120, 80, 40), (170, 130, 80),
               (210, 180, 120), (90, 40, 20), (140, 140, 140))


def occluder_region(face_box, height, width):
    """The pixel box (x0, y0, x1, y1), end-exclusive, that `add_occluders` may change:
    face_box grown by OCCLUDER_MARGIN of its size on each side, clipped to the image."""
    x0, y0, x1, y1 = (float(v) for v in face_box)
    mx, my = OCCLUDER_MARGIN * (x1 - x0), OCCLUDER_MARGIN * (y1 - y0)
    return (max(0, int(np.floor(x0 - mx))), max(0, int(np.floor(y0 - my))),
            min(width, int(np.ceil(x1 + mx)) + 1), min(height, int(np.ceil(y1 + my)) + 1))


# Each occluder draws its (region-sized) uint8 coverage mask and returns it with a
# `paint(x0, y0, x1, y1)` that makes the colours of a sub-box of the region (region
# coordinates, end-exclusive), so colours are computed only where the mask is.


def _coords(region, sub):
    """Image x (1, w) and y (h, 1) float32 coordinates of a region's sub-box."""
    sx0, sy0, sx1, sy1 = sub
    xs = np.arange(sx0 + region[0], sx1 + region[0], dtype=np.float32)[None, :]
    ys = np.arange(sy0 + region[1], sy1 + region[1], dtype=np.float32)[:, None]
    return xs, ys


def _shaded(color, shading):
    """(h, w, 3) uint8: colour (3,) times a shading field (h, w)."""
    return np.clip(shading[:, :, None] * np.asarray(color, np.float32), 0, 255).astype(np.uint8)


def _texture(rng, h, w, color):
    """(h, w, 3) uint8: flat colour, or value-noise texture around it."""
    if rng.random() < 0.5:
        out = np.empty((h, w, 3), np.uint8)
        out[...] = color
        return out
    values = value_noise(rng, max(h // 2, 2), max(w // 2, 2), octaves=3,
                          base_cells=int(rng.integers(2, 6)))
    return _shaded(color, 0.6 + 0.8 * cv2.resize(values, (w, h)))


def _occ_bar(rng, box, region):
    """A rotated thick bar (microphone, pen, stick, finger) across the face, with
    cylindrical shading; sometimes with a ball at its end."""
    x0, y0, x1, y1 = box
    size = max(x1 - x0, y1 - y0)
    cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
    angle = rng.uniform(0, np.pi)
    length = size * rng.uniform(0.5, 1.6)
    half = size * rng.uniform(0.04, 0.13)
    d = np.array([np.cos(angle), np.sin(angle)])
    n = np.array([-d[1], d[0]])
    ends = [np.array([cx, cy]) - d * length * rng.uniform(0.3, 0.7),
            np.array([cx, cy]) + d * length * rng.uniform(0.3, 0.7)]
    corners = np.array([ends[0] + n * half, ends[1] + n * half,
                        ends[1] - n * half, ends[0] - n * half])
    rx0, ry0, rx1, ry1 = region
    mask = np.zeros((ry1 - ry0, rx1 - rx0), np.uint8)
    cv2.fillPoly(mask, subpixel_points(corners - (rx0, ry0)), 255, cv2.LINE_AA, SHIFT)
    ball = rng.random() < 0.3
    radius = half * rng.uniform(1.5, 2.5)
    if ball:
        cv2.circle(mask, tuple(int(round(v * 16)) for v in ends[1] - (rx0, ry0)),
                   int(radius * 16), 255, -1, cv2.LINE_AA, SHIFT)
    highlight = rng.uniform(-0.5, 0.5)
    color = (random_color(rng, (0, 0.9), (0.05, 0.9)) if rng.random() < 0.7
             else random_color(rng, SKIN_HSV[1], SKIN_HSV[2]))

    def paint(*sub):
        xs, ys = _coords(region, sub)
        # Cylindrical shading across the bar: brightest off-centre, darker at the edges.
        t = ((xs - cx) * n[0] + (ys - cy) * n[1]) * (1 / half) - highlight
        shading = np.clip(1.0 - 0.45 * t * t, 0.35, 1.2)
        if ball:
            inside = (xs - ends[1][0]) ** 2 + (ys - ends[1][1]) ** 2 <= (radius * 1.02) ** 2
            shading = np.where(inside, np.float32(1.0), shading)
        return _shaded(color, shading)

    return mask, paint


def _occ_hand(rng, box, region):
    """A hand-like skin blob: palm, 3-4 fingers and a thumb pointing into the face, and
    an arm leaving it outwards; softly shaded."""
    x0, y0, x1, y1 = box
    size = max(x1 - x0, y1 - y0)
    rx0, ry0, rx1, ry1 = region
    mask = np.zeros((ry1 - ry0, rx1 - rx0), np.uint8)
    # Palm near an edge of the face box (the lower half more likely), fingers inwards.
    side = int(rng.choice(4, p=[0.1, 0.4, 0.25, 0.25]))  # top, bottom, left, right
    cx = rng.uniform(x0, x1) if side < 2 else (x0 if side == 2 else x1)
    cy = (y0 if side == 0 else y1) if side < 2 else rng.uniform(y0 + 0.3 * (y1 - y0), y1)
    cx += rng.normal(0, 0.08 * size)
    cy += rng.normal(0, 0.08 * size)
    inward = np.arctan2((y0 + y1) / 2 - cy, (x0 + x1) / 2 - cx) + rng.normal(0, 0.35)
    palm = size * rng.uniform(0.17, 0.27)
    c, s = np.cos(inward), np.sin(inward)

    def ellipse(px, py, along, across, angle):
        cv2.ellipse(mask, (int(round((px - rx0) * 16)), int(round((py - ry0) * 16))),
                    (int(along * 16) + 16, int(across * 16) + 16), np.degrees(angle), 0, 360,
                    255, -1, cv2.LINE_AA, SHIFT)

    ellipse(cx, cy, palm, palm * 0.85, inward)
    # Arm: a thick bar from the palm outwards, past the region's edge.
    arm_half = palm * rng.uniform(0.6, 0.8)
    far = np.array([cx - c * size * 2, cy - s * size * 2])
    nrm = np.array([-s, c])
    corners = np.array([[cx, cy] + nrm * arm_half, far + nrm * arm_half * 1.2,
                        far - nrm * arm_half * 1.2, [cx, cy] - nrm * arm_half])
    cv2.fillPoly(mask, subpixel_points(corners - (rx0, ry0)), 255, cv2.LINE_AA, SHIFT)
    n_fingers = int(rng.integers(3, 5))
    spread = rng.uniform(0.5, 0.9)
    curl = rng.uniform(0.4, 1.0)  # 1 = straight fingers
    for k in range(n_fingers):
        a = inward + (k - (n_fingers - 1) / 2) * spread / n_fingers
        flen = palm * rng.uniform(0.75, 1.0) * (1.0 - 0.25 * abs(k - (n_fingers - 1) / 2)) * curl
        ellipse(cx + np.cos(a) * (palm * 0.75 + flen * 0.55),
                cy + np.sin(a) * (palm * 0.75 + flen * 0.55), flen * 0.6, palm * 0.19, a)
    thumb_side = 1 if rng.random() < 0.5 else -1
    a = inward + thumb_side * rng.uniform(0.9, 1.4)
    ellipse(cx + np.cos(a) * palm * 0.95, cy + np.sin(a) * palm * 0.95, palm * 0.5, palm * 0.22,
            a - thumb_side * 0.5)
    color = hsv_to_rgb(rng.uniform(*SKIN_HSV[0]), rng.uniform(*SKIN_HSV[1]),
                        rng.uniform(*SKIN_HSV[2]))
    light = rng.uniform(0, 2 * np.pi)

    def paint(*sub):
        sx0, sy0, sx1, sy1 = sub
        xs, ys = _coords(region, sub)
        # A linear light falloff, and darkening towards the silhouette (a blurred mask
        # at a quarter of the resolution, which is plenty for a smooth rim).
        t = ((xs - cx) * np.cos(light) + (ys - cy) * np.sin(light)) * (1 / (3 * palm))
        part = mask[sy0:sy1, sx0:sx1]
        small = cv2.resize(part, (max(1, (sx1 - sx0) // 4), max(1, (sy1 - sy0) // 4)),
                           interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), max(0.5, palm * 0.15 / 4))
        rim = cv2.resize(small, (sx1 - sx0, sy1 - sy0)).astype(np.float32) * (1 / 255)
        shading = np.clip(0.9 + 0.2 * t, 0.6, 1.1) * (0.65 + 0.35 * rim)
        return _shaded(color, shading)

    return mask, paint


_HAIR_LEVELS = np.array([90, 150, 200, 255])


def _occ_hair(rng, box, region):
    """A lock of hair: many thin anti-aliased curves falling across the face."""
    x0, y0, x1, y1 = box
    size = max(x1 - x0, y1 - y0)
    rx0, ry0, rx1, ry1 = region
    rh, rw = ry1 - ry0, rx1 - rx0
    mask = np.zeros((rh, rw), np.uint8)
    tone = np.zeros((rh, rw), np.uint8)
    # Strands follow a common guide curve (quadratic Bezier) from above the face downwards.
    start = np.array([rng.uniform(x0, x1), y0 - rng.uniform(0, 0.2) * size])
    end = np.array([rng.uniform(x0 - 0.2 * size, x1 + 0.2 * size),
                    y0 + rng.uniform(0.5, 1.2) * size])
    mid = (start + end) / 2 + rng.normal(0, 0.25 * size, 2)
    width = size * rng.uniform(0.05, 0.25)
    k = int(rng.integers(40, 110))
    off = rng.normal(0, width, (k, 2)) * [1.0, 0.3]
    jitter = rng.normal(0, 0.03 * size, (k, 3, 2))
    p0 = start + off + jitter[:, 0]
    p1 = mid + off + jitter[:, 1]
    p2 = end + off * 1.5 + jitter[:, 2]
    tt = (np.linspace(0, 1, 20)[None, :] * rng.uniform(0.6, 1.0, (k, 1)))[:, :, None]
    curves = (1 - tt) ** 2 * p0[:, None] + 2 * (1 - tt) * tt * p1[:, None] + tt ** 2 * p2[:, None]
    pts = np.round((curves - (rx0, ry0)) * (1 << SHIFT)).astype(np.int32)
    thick = np.where(rng.random(k) < 0.75, 1, 2)
    level = rng.integers(0, len(_HAIR_LEVELS), k)
    for th in (1, 2):
        for lv in range(len(_HAIR_LEVELS)):
            group = [c.reshape(-1, 1, 2) for c in pts[(thick == th) & (level == lv)]]
            if group:
                cv2.polylines(mask, group, False, 255, th, cv2.LINE_AA, SHIFT)
                cv2.polylines(tone, group, False, int(_HAIR_LEVELS[lv]), th, cv2.LINE_AA, SHIFT)
    color = np.asarray(HAIR_COLORS[int(rng.integers(len(HAIR_COLORS)))], np.float32)
    color = color * rng.uniform(0.8, 1.2)

    def paint(sx0, sy0, sx1, sy1):
        return _shaded(color, 0.5 + tone[sy0:sy1, sx0:sx1].astype(np.float32) * (0.8 / 255))

    return mask, paint


def _occ_blob(rng, box, region):
    """A filled ellipse or random polygon, flat or textured."""
    x0, y0, x1, y1 = box
    size = max(x1 - x0, y1 - y0)
    rx0, ry0, rx1, ry1 = region
    mask = np.zeros((ry1 - ry0, rx1 - rx0), np.uint8)
    cx, cy = rng.uniform(x0, x1) - rx0, rng.uniform(y0, y1) - ry0
    radius = size * rng.uniform(0.08, 0.3)
    if rng.random() < 0.5:
        axes = (int(radius * 16) + 16, int(radius * rng.uniform(0.4, 1.0) * 16) + 16)
        cv2.ellipse(mask, (int(round(cx * 16)), int(round(cy * 16))), axes, rng.uniform(0, 180),
                    0, 360, 255, -1, cv2.LINE_AA, SHIFT)
    else:
        cv2.fillPoly(mask, subpixel_points(random_polygon(rng, cx, cy, radius, 4, 10, 0.4)), 255,
                     cv2.LINE_AA, SHIFT)
    color = random_color(rng, (0, 0.9), (0.05, 0.95))

    def paint(sx0, sy0, sx1, sy1):
        return _texture(rng, sy1 - sy0, sx1 - sx0, color)

    return mask, paint


_OCCLUDERS = (_occ_bar, _occ_hand, _occ_hair, _occ_blob)
_OCCLUDER_WEIGHTS = np.array([0.3, 0.2, 0.2, 0.3])


def _edge_ramp(start, stop, size, feather):
    """(stop - start,) float32 weights: 1 inside, falling to 0 over `feather` pixels
    towards an end of [start, stop) that is not an image border (no visible straight cut)."""
    i = np.arange(start, stop, dtype=np.float32) + 0.5
    ramp = np.ones(stop - start, np.float32)
    if start > 0:
        ramp = np.minimum(ramp, (i - start) / feather)
    if stop < size:
        ramp = np.minimum(ramp, (stop - i) / feather)
    return ramp.astype(np.float32)


def add_occluders(image, rng, face_box, probability) -> np.ndarray:
    """With the given probability, draw 1-2 occluders over the face; returns uint8 RGB.

    image: (h, w, 3) uint8 RGB (not modified; a new array is returned).
    face_box: (x0, y0, x1, y1) pixel box of the face (e.g. of its 68 landmarks).
    Occluders: a bar (microphone, pen, finger; cylindrically shaded), a hand with
    an arm reaching in from a side, a lock of hair, a flat or textured blob.
    Edges are anti-aliased and lightly blurred. Only pixels inside
    `occluder_region(face_box, h, w)` (the box grown by 50 % per side, clipped
    to the image) change; occluders fade out towards that region's edges.
    Landmarks are unaffected (the caller keeps the ground truth).
    """
    out = np.array(image, dtype=np.uint8, copy=True)
    h, w = out.shape[:2]
    if rng.random() >= probability:
        return out
    region = occluder_region(face_box, h, w)
    rx0, ry0, rx1, ry1 = region
    if rx1 - rx0 < 2 or ry1 - ry0 < 2:
        return out
    box = tuple(float(v) for v in face_box)
    feather = max(2.0, 0.08 * max(box[2] - box[0], box[3] - box[1]))
    wy = _edge_ramp(ry0, ry1, h, feather)
    wx = _edge_ramp(rx0, rx1, w, feather)
    for _ in range(1 if rng.random() < 0.7 else 2):
        kind = _OCCLUDERS[int(rng.choice(len(_OCCLUDERS), p=_OCCLUDER_WEIGHTS))]
        mask, paint = kind(rng, box, region)
        sigma = rng.uniform(0.5, 1.5)
        opacity = rng.uniform(0.9, 1.0) / 255  # a hint of translucency at most
        bx, by, bw, bh = cv2.boundingRect(mask)
        if bw == 0 or bh == 0:
            continue
        pad = int(np.ceil(3 * sigma)) + 1
        sx0, sy0 = max(bx - pad, 0), max(by - pad, 0)
        sx1, sy1 = min(bx + bw + pad, rx1 - rx0), min(by + bh + pad, ry1 - ry0)
        soft = cv2.GaussianBlur(mask[sy0:sy1, sx0:sx1], (0, 0), sigma)
        blend_patch(out, paint(sx0, sy0, sx1, sy1), soft, rx0 + sx0, ry0 + sy0,
                     opacity, wy[sy0:sy1], wx[sx0:sx1])
    return out
