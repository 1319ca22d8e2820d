"""Layers over a background: clutter shapes, recolouring, defocus, uneven light, sensor grain, padding bands.

Each takes an RGB uint8 (h, w, 3) image and the numpy Generator that draws its
details, and returns the new image.
"""

import cv2
import numpy as np

from prn.pipeline.synthetic.drawing import draw_shape, palette_lut, random_color


def clutter(image, rng, n_shapes):
    """Shapes in two layers: a defocused back layer, then a few sharp ones on top."""
    h, w = image.shape[:2]
    small = _shrink(image, int(rng.integers(2, 5)))
    lut_colors = rng.random() < 0.5
    palette = palette_lut(rng, 4) if lut_colors else None

    def color():
        if palette is not None and rng.random() < 0.7:
            return tuple(int(c) for c in palette[int(rng.integers(256)), 0])
        return random_color(rng)

    n_back = int(n_shapes * rng.uniform(0.5, 0.9))
    for _ in range(n_back):
        draw_shape(small, rng, color(), 1.3)
    image = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    for _ in range(n_shapes - n_back):
        draw_shape(image, rng, color(), 1.0)
    return image


def _shrink(image, factor):
    """Downscale by `factor` >= 1, cheaply: Gaussian pyramid steps, then a bilinear rest."""
    while factor >= 2.0 and min(image.shape[:2]) >= 4:
        image = cv2.pyrDown(image)
        factor /= 2.0
    if factor > 1.0:
        h, w = image.shape[:2]
        image = cv2.resize(image, (max(1, int(w / factor)), max(1, int(h / factor))),
                           interpolation=cv2.INTER_LINEAR)
    return image


def recolor(image, rng, strength=1.0):
    """Random per-channel gain / gamma / offset (a colour cast and exposure change)."""
    x = np.arange(256, dtype=np.float64) / 255.0
    channels = []
    exposure = rng.uniform(0.7, 1.3) ** strength
    for _ in range(3):
        gamma = np.exp(rng.normal(0, 0.25 * strength))
        gain = exposure * rng.uniform(1 - 0.2 * strength, 1 + 0.2 * strength)
        offset = rng.uniform(-0.06, 0.06) * strength
        channels.append(np.clip((x ** gamma) * gain + offset, 0, 1) * 255 + 0.5)
    lut = np.stack(channels, axis=1).astype(np.uint8).reshape(256, 1, 3)
    return cv2.LUT(image, lut)


def defocus(image, rng):
    """Blur by shrinking 1.5-5 times and enlarging back (a cheap, lens-like defocus)."""
    h, w = image.shape[:2]
    return cv2.resize(_shrink(image, rng.uniform(1.5, 5.0)), (w, h), interpolation=cv2.INTER_LINEAR)


def uneven_light(image, rng):
    """Multiply by a smooth, slightly tinted gain field (vignette / light falloff)."""
    h, w = image.shape[:2]
    gain = 0.55 + 0.75 * rng.random((3, 3), dtype=np.float32)
    tint = rng.uniform(0.85, 1.15, size=3).astype(np.float32)
    field = np.clip(gain[:, :, None] * tint * 128, 0, 255).astype(np.uint8)
    field = cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC)
    return cv2.multiply(image, field, scale=1 / 128)


_GRAIN_TILE = 96


def grain(image, rng):
    """Sensor-like noise: a random tile of grey or colour noise, repeated (the repeat
    is invisible at this period), added with saturation."""
    h, w = image.shape[:2]
    sigma = rng.uniform(2, 9)
    channels = 1 if rng.random() < 0.5 else 3
    tile = rng.standard_normal((_GRAIN_TILE, _GRAIN_TILE, channels), dtype=np.float32)
    tile = np.clip(tile * sigma + 128.5, 0, 255).astype(np.uint8)
    oy, ox = int(rng.integers(_GRAIN_TILE)), int(rng.integers(_GRAIN_TILE))
    noise = np.tile(tile, (h // _GRAIN_TILE + 2, w // _GRAIN_TILE + 2, 3 // channels))
    noise = np.ascontiguousarray(noise[oy:oy + h, ox:ox + w])
    return cv2.addWeighted(image, 1.0, noise, 1.0, -128.0)


def padding_bands(image, rng):
    """Black bands along 1-2 image edges, like the padded crops of 300W-LP / AFLW2000-3D."""
    h, w = image.shape[:2]
    for side in rng.choice(4, size=int(rng.integers(1, 3)), replace=False):
        k = int(rng.uniform(0.03, 0.25) * (h if side < 2 else w))
        if side == 0:
            image[:k] = 0
        elif side == 1:
            image[h - k:] = 0
        elif side == 2:
            image[:, :k] = 0
        else:
            image[:, w - k:] = 0
    return image
