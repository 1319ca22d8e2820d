"""Drawing primitives of the synthetic scenery: random colours and palettes, value noise, anti-aliased shapes.

Everything random comes from the numpy Generator passed in (OpenCV's own RNG
is never used). Images are RGB uint8 (h, w, 3).
"""

import cv2
import numpy as np


def hsv_to_rgb(h, s, v):
    """h in degrees [0, 360), s, v in [0, 1] -> RGB 0-255 ints."""
    rgb = cv2.cvtColor(np.array([[[h, s, v]]], np.float32), cv2.COLOR_HSV2RGB)[0, 0] * 255
    return tuple(int(c) for c in np.clip(rgb + 0.5, 0, 255))


def random_color(rng, saturation=(0.0, 0.8), value=(0.1, 0.95)):
    """RGB 0-255 ints of a uniformly random hue, saturation and value in the given ranges."""
    return hsv_to_rgb(rng.uniform(0, 360), rng.uniform(*saturation), rng.uniform(*value))


def palette_lut(rng, n_colors=None) -> np.ndarray:
    """(256, 1, 3) uint8 LUT: a ramp through 2-4 random colours of a loose scheme."""
    n = int(rng.integers(2, 5)) if n_colors is None else n_colors
    hue = rng.uniform(0, 360)
    spread = rng.choice([20.0, 60.0, 180.0])
    sat_hi = rng.uniform(0.1, 0.8)
    colors = [hsv_to_rgb((hue + rng.uniform(-spread, spread)) % 360, rng.uniform(0, sat_hi),
                          rng.uniform(0.05, 0.95)) for _ in range(n)]
    stops = np.linspace(0, 255, n)
    x = np.arange(256)
    lut = np.stack([np.interp(x, stops, [c[k] for c in colors]) for k in range(3)], axis=1)
    return np.ascontiguousarray(lut.astype(np.uint8).reshape(256, 1, 3))


def apply_lut(values, lut):
    """values (h, w) float32 in [0, 1] -> (h, w, 3) uint8 through a (256, 1, 3) LUT."""
    index = cv2.convertScaleAbs(values, alpha=255.0)
    return cv2.LUT(cv2.merge([index, index, index]), lut)


def normalise01(values):
    """values stretched linearly to [0, 1] (constant values give 0)."""
    lo, hi = float(values.min()), float(values.max())
    return (values - lo) * (1.0 / max(hi - lo, 1e-6))


def value_noise(rng, h, w, octaves=4, base_cells=3, persistence=0.55):
    """(h, w) float32 in [0, 1]: multi-octave value noise (bicubic-upsampled random grids)."""
    out = np.zeros((h, w), np.float32)
    amplitude, aspect = 1.0, w / h
    for k in range(octaves):
        rows = base_cells * 2 ** k
        cols = max(2, int(round(rows * aspect)))
        grid = rng.random((rows, cols), dtype=np.float32)
        out += amplitude * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        amplitude *= persistence
    return normalise01(out)


SHIFT = 4  # sub-pixel bits for cv2 drawing with LINE_AA


def subpixel_points(points):
    """(k, 2) pixel coordinates as a cv2 point list: [(k, 1, 2) int32 at SHIFT sub-pixel bits]."""
    return [np.round(np.asarray(points) * (1 << SHIFT)).astype(np.int32).reshape(-1, 1, 2)]


def random_polygon(rng, cx, cy, radius, n_min=3, n_max=9, irregularity=0.5):
    """(k, 2) float64 corners of a random star-shaped polygon around (cx, cy), n_min <= k <= n_max."""
    n = int(rng.integers(n_min, n_max + 1))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = radius * rng.uniform(1 - irregularity, 1 + irregularity * 0.5, n)
    return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)


def draw_shape(image, rng, color, scale):
    """One random filled or outlined shape, drawn anti-aliased at a random place."""
    h, w = image.shape[:2]
    cx, cy = rng.uniform(-0.1, 1.1) * w, rng.uniform(-0.1, 1.1) * h
    size = scale * min(h, w) * rng.uniform(0.03, 0.35)
    kind = rng.random()
    aa = cv2.LINE_AA
    if kind < 0.3:  # rectangle, maybe rotated
        angle = rng.uniform(0, np.pi) if rng.random() < 0.5 else 0.0
        hw, hh = size * rng.uniform(0.3, 1.5), size * rng.uniform(0.3, 1.5)
        c, s = np.cos(angle), np.sin(angle)
        corners = np.array([[-hw, -hh], [hw, -hh], [hw, hh], [-hw, hh]]) @ [[c, s], [-s, c]]
        corners += (cx, cy)
        if rng.random() < 0.8:
            cv2.fillPoly(image, subpixel_points(corners), color, aa, SHIFT)
        else:
            cv2.polylines(image, subpixel_points(corners), True, color, int(rng.integers(1, 6)), aa, SHIFT)
    elif kind < 0.55:  # ellipse
        axes = (int(size * rng.uniform(0.3, 1.2)) + 1, int(size * rng.uniform(0.3, 1.2)) + 1)
        thickness = -1 if rng.random() < 0.75 else int(rng.integers(1, 6))
        cv2.ellipse(image, (int(cx), int(cy)), axes, rng.uniform(0, 180), 0, 360, color,
                    thickness, aa)
    elif kind < 0.8:  # polygon
        cv2.fillPoly(image, subpixel_points(random_polygon(rng, cx, cy, size)), color, aa, SHIFT)
    else:  # line(s)
        length = size * rng.uniform(1, 4)
        angle = rng.uniform(0, np.pi)
        p0 = (cx - length * np.cos(angle), cy - length * np.sin(angle))
        p1 = (cx + length * np.cos(angle), cy + length * np.sin(angle))
        cv2.polylines(image, subpixel_points([p0, p1]), False, color, int(rng.integers(1, 8)), aa, SHIFT)
