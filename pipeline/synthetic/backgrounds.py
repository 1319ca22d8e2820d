"""Random backgrounds for synthetic face images, and the natural images some of them use.

Everything random comes from the numpy Generator passed in, so the same
generator state gives the same bytes (OpenCV's own RNG is never used).
Images are RGB uint8 (h, w, 3).

Backgrounds (`make_background`) are drawn from several kinds, see
`BACKGROUND_KINDS`; most get extra `layers` on top (clutter shapes, defocus,
uneven lighting, grain, black padding bands like the padded crops of
300W-LP / AFLW2000-3D). Natural images come from the sample data matplotlib
ships (mpl-data/sample_data: grace_hopper.jpg, Minduka_Present_Blue_Pack.png,
jacksboro_fault_dem.npz, topobathy.npz), loaded once per process; a kind whose
file is missing is never chosen. Nothing is downloaded.

Speed (450 x 450, one core, median): a background about 1.5 ms (0.7-2.5 by kind).
"""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numpy as np

from prn.pipeline.synthetic.drawing import apply_lut, normalise01, palette_lut, random_color, value_noise
from prn.pipeline.synthetic.layers import clutter, defocus, grain, padding_bands, recolor, uneven_light
from prn.rendering.raster.composite import blend_patch

# Relative weights of the background kinds (natural kinds drop out when their
# sample file is missing).
BACKGROUND_KINDS = {
    "photo": 0.22,       # crops of grace_hopper.jpg (avoiding her face), warped, recoloured
    "terrain": 0.08,     # colour-mapped, hill-shaded elevation grids
    "sticker": 0.07,     # the gift-box picture pasted over another background
    "clutter": 0.20,     # many random shapes over a smooth base
    "value_noise": 0.15,  # multi-octave value noise through a colour ramp
    "pattern": 0.10,     # warped stripes / checks / rings
    "gradient": 0.10,    # smooth linear or radial colour gradient
    "noise": 0.05,       # blotchy coloured noise
}
NATURAL_KINDS = ("photo", "terrain", "sticker")

# Grace Hopper's head in grace_hopper.jpg (x0, y0, x1, y1), kept out of crops so
# that no real face appears in the background.
_HOPPER_FACE = (135, 15, 390, 405)
_HOPPER_PARTS = ((0, 0, 140, 600), (385, 0, 512, 330), (0, 405, 512, 600))
_TERRAIN_CMAPS = ("terrain", "gist_earth", "copper", "bone", "pink", "summer", "autumn",
                  "YlOrBr", "BrBG", "ocean", "cividis", "PuBuGn")


# ---------------------------------------------------------------------------
# Natural image assets (loaded once per process)


def sample_data_dir() -> Path | None:
    """matplotlib's mpl-data/sample_data folder, or None if matplotlib lacks it."""
    try:
        import matplotlib
        path = Path(matplotlib.get_data_path()) / "sample_data"
    except Exception:  # pragma: no cover - matplotlib is a dependency
        return None
    return path if path.is_dir() else None


def _hillshade(elevation, azimuth_deg=315.0, altitude_deg=45.0):
    z = elevation.astype(np.float64)
    z = (z - z.min()) / max(np.ptp(z), 1e-9) * 60.0  # vertical exaggeration
    dy, dx = np.gradient(z)
    slope = np.pi / 2 - np.arctan(np.hypot(dx, dy))
    aspect = np.arctan2(-dx, dy)
    az, alt = np.radians(azimuth_deg), np.radians(altitude_deg)
    shade = np.sin(alt) * np.sin(slope) + np.cos(alt) * np.cos(slope) * np.cos(az - aspect)
    return np.clip(shade, 0, 1)


@functools.lru_cache(maxsize=1)
def natural_assets() -> dict:
    """The natural sample images found, by kind: {'photo': [rgb], 'sticker': [rgba],
    'terrain': [(index uint8 (h, w), shade float32 (h, w))]}; kinds without a file are absent."""
    folder = sample_data_dir()
    assets: dict = {}
    if folder is None:
        return assets
    hopper = folder / "grace_hopper.jpg"
    if hopper.is_file():
        image = cv2.imread(str(hopper), cv2.IMREAD_COLOR)
        if image is not None:
            assets["photo"] = [np.ascontiguousarray(image[:, :, ::-1])]
    gift = folder / "Minduka_Present_Blue_Pack.png"
    if gift.is_file():
        image = cv2.imread(str(gift), cv2.IMREAD_UNCHANGED)
        if image is not None and image.ndim == 3 and image.shape[2] == 4:
            rgba = image[:, :, [2, 1, 0, 3]]
            ys, xs = np.nonzero(rgba[:, :, 3] > 8)
            if len(ys):
                rgba = rgba[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
            assets["sticker"] = [np.ascontiguousarray(rgba)]
    grids = []
    for name, key in (("jacksboro_fault_dem.npz", "elevation"), ("topobathy.npz", "topo")):
        path = folder / name
        if not path.is_file():
            continue
        try:
            with np.load(path) as data:
                z = np.asarray(data[key], dtype=np.float64)
        except (OSError, KeyError, ValueError):
            continue
        if z.ndim != 2 or min(z.shape) < 16 or not np.isfinite(z).all():
            continue
        lo, hi = np.percentile(z, [1, 99])
        index = np.clip((z - lo) / max(hi - lo, 1e-9) * 255, 0, 255).astype(np.uint8)
        grids.append((index, (0.35 + 0.65 * _hillshade(z)).astype(np.float32)))
    if grids:
        assets["terrain"] = grids
    return assets


@functools.cache
def _cmap_lut(name) -> np.ndarray:
    """(256, 1, 3) uint8 LUT of a matplotlib colour map."""
    import matplotlib
    rgb = matplotlib.colormaps[name](np.linspace(0, 1, 256))[:, :3]
    return np.ascontiguousarray((rgb * 255 + 0.5).astype(np.uint8).reshape(256, 1, 3))


def available_kinds() -> dict:
    """BACKGROUND_KINDS without the natural kinds whose sample file is missing."""
    assets = natural_assets()
    return {k: p for k, p in BACKGROUND_KINDS.items() if k not in NATURAL_KINDS or k in assets}


# ---------------------------------------------------------------------------
# Background kinds; each returns (h, w, 3) uint8 RGB.


@functools.lru_cache(maxsize=8)
def _grid(h, w):
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return ys, xs


def _upscale(image, h, w):
    if image.shape[:2] == (h, w):
        return image
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)


def _bg_gradient(rng, h, w):
    cells = 6
    ys, xs = np.mgrid[0:cells, 0:cells].astype(np.float32) / (cells - 1)
    if rng.random() < 0.6:
        angle = rng.uniform(0, 2 * np.pi)
        t = xs * np.cos(angle) + ys * np.sin(angle)
    else:
        cx, cy = rng.uniform(-0.2, 1.2, size=2)
        t = np.hypot(xs - cx, ys - cy)
    t = normalise01(t)
    small = apply_lut(t, palette_lut(rng, int(rng.integers(2, 4))))
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _bg_value_noise(rng, h, w):
    h2, w2 = (h + 2) // 3, (w + 2) // 3
    values = value_noise(rng, h2, w2, octaves=int(rng.integers(3, 6)),
                          base_cells=int(rng.integers(2, 6)), persistence=rng.uniform(0.4, 0.7))
    if rng.random() < 0.3:  # ridged / marbled variant
        values = normalise01(np.abs(values - 0.5))
    return _upscale(apply_lut(values, palette_lut(rng)), h, w)


def _bg_pattern(rng, h, w):
    h2, w2 = (h + 2) // 3, (w + 2) // 3
    ys, xs = _grid(h2, w2)
    period = rng.uniform(4, 30)
    warp = rng.uniform(0, 2.5)
    du = (value_noise(rng, h2, w2, octaves=2, base_cells=2) - 0.5) * warp
    angle = rng.uniform(0, np.pi)
    u = (xs * np.cos(angle) + ys * np.sin(angle)) / period + du
    choice = rng.random()
    if choice < 0.45:  # stripes
        s = np.sin(2 * np.pi * u)
    elif choice < 0.8:  # checks
        dv = (value_noise(rng, h2, w2, octaves=2, base_cells=2) - 0.5) * warp
        v = (-xs * np.sin(angle) + ys * np.cos(angle)) / (period * rng.uniform(0.6, 1.6)) + dv
        s = np.sin(2 * np.pi * u) * np.sin(2 * np.pi * v)
    else:  # rings (wood grain)
        cx, cy = rng.uniform(-0.5, 1.5) * w2, rng.uniform(-0.5, 1.5) * h2
        s = np.sin(2 * np.pi * (np.hypot(xs - cx, ys - cy) / period + du * 2))
    sharp = rng.uniform(1, 8)
    s = np.clip(s * sharp * 0.5 + 0.5, 0, 1).astype(np.float32)
    return _upscale(apply_lut(s, palette_lut(rng, 2)), h, w)


def _bg_noise(rng, h, w):
    cell = int(rng.integers(3, 12))
    small = rng.integers(0, 256, size=((h + cell - 1) // cell, (w + cell - 1) // cell, 3),
                         dtype=np.uint8)
    image = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    base = np.array(random_color(rng, (0, 0.7), (0.2, 0.8)), np.float32)
    amount = rng.uniform(0.2, 0.6)
    # base + amount * (noise - 128), via a LUT per channel
    x = np.arange(256, dtype=np.float32)
    lut = np.clip(base[None, :] + amount * (x[:, None] - 128), 0, 255).astype(np.uint8)
    return cv2.LUT(image, lut.reshape(256, 1, 3))


def _bg_clutter(rng, h, w):
    base = _bg_gradient(rng, h, w) if rng.random() < 0.5 else _bg_value_noise(rng, h, w)
    return clutter(base, rng, int(rng.integers(15, 45)))


def _bg_photo(rng, h, w):
    source = natural_assets()["photo"][0]
    sh, sw = source.shape[:2]
    fx0, fy0, fx1, fy1 = _HOPPER_FACE
    for _ in range(30):
        # A part of the picture clear of her head: flag, backdrop or uniform.
        ax0, ay0, ax1, ay1 = _HOPPER_PARTS[int(rng.integers(len(_HOPPER_PARTS)))]
        ax1, ay1 = min(ax1, sw), min(ay1, sh)
        size = rng.uniform(60, 1.3 * min(ax1 - ax0, ay1 - ay0))
        cw = size * np.sqrt(w / h) * rng.uniform(0.85, 1.15)
        ch = size * np.sqrt(h / w) * rng.uniform(0.85, 1.15)
        x0 = rng.uniform(ax0, max(ax1 - cw, ax0 + 1))
        y0 = rng.uniform(ay0, max(ay1 - ch, ay0 + 1))
        # Similarity from the crop to the output, with a rotation about its centre and a flip.
        angle = rng.uniform(-25, 25) if rng.random() < 0.5 else 0.0
        scale = max(w / cw, h / ch)
        m = cv2.getRotationMatrix2D((x0 + cw / 2, y0 + ch / 2), angle, scale)
        m[:, 2] += (w / 2 - (x0 + cw / 2), h / 2 - (y0 + ch / 2))
        # The output's footprint in the source must stay clear of her head.
        corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], np.float64)
        src = corners @ cv2.invertAffineTransform(m).T
        (sx0, sy0), (sx1, sy1) = src.min(axis=0), src.max(axis=0)
        overlap_x = max(0.0, min(sx1, fx1) - max(sx0, fx0))
        overlap_y = max(0.0, min(sy1, fy1) - max(sy0, fy0))
        if overlap_x * overlap_y <= 0.02 * (sx1 - sx0) * (sy1 - sy0):
            break
    else:  # the flag on the left
        m = cv2.getRotationMatrix2D((65.0, 150.0), 0.0, max(w / 130, h / 240))
        m[:, 2] += (w / 2 - 65.0, h / 2 - 150.0)
    if rng.random() < 0.5:
        m[0] = -m[0]
        m[0, 2] += w - 1
    image = cv2.warpAffine(source, m, (w, h), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REFLECT_101)
    if rng.random() < 0.4:  # channel swap: a blue backdrop becomes green, red, ...
        image = np.ascontiguousarray(image[:, :, rng.permutation(3)])
    return recolor(image, rng)


def _bg_terrain(rng, h, w):
    grids = natural_assets()["terrain"]
    index, shade = grids[int(rng.integers(len(grids)))]
    gh, gw = index.shape
    frac = rng.uniform(0.35, 1.0)
    ch, cw = max(8, int(gh * frac)), max(8, int(gw * frac * rng.uniform(0.8, 1.2)))
    cw = min(cw, gw)
    y0 = int(rng.integers(0, gh - ch + 1))
    x0 = int(rng.integers(0, gw - cw + 1))
    lut = _cmap_lut(str(rng.choice(_TERRAIN_CMAPS)))
    if rng.random() < 0.5:
        lut = lut[::-1].copy()
    crop = index[y0:y0 + ch, x0:x0 + cw]
    rgb = cv2.LUT(cv2.merge([crop, crop, crop]), lut)
    rgb = (rgb * shade[y0:y0 + ch, x0:x0 + cw, None]).astype(np.uint8)
    k = int(rng.integers(4))
    rgb = np.ascontiguousarray(np.rot90(rgb, k))
    if rng.random() < 0.5:
        rgb = np.ascontiguousarray(rgb[:, ::-1])
    return recolor(cv2.resize(rgb, (w, h), interpolation=cv2.INTER_CUBIC), rng, 0.6)


def _bg_sticker(rng, h, w):
    base_kind = rng.choice(["gradient", "value_noise", "photo", "pattern"])
    if base_kind == "photo" and "photo" not in natural_assets():
        base_kind = "gradient"
    image = _KIND_FUNCTIONS[str(base_kind)](rng, h, w)
    sticker = natural_assets()["sticker"][0]
    for _ in range(int(rng.integers(1, 3))):
        _paste_sticker(image, rng, sticker)
    return image


def _paste_sticker(image, rng, rgba):
    h, w = image.shape[:2]
    size = rng.uniform(0.15, 0.7) * min(h, w)
    sh, sw = rgba.shape[:2]
    scale = size / max(sh, sw)
    angle = rng.uniform(-40, 40)
    m = cv2.getRotationMatrix2D((sw / 2, sh / 2), angle, scale)
    out_w = out_h = int(np.ceil(size * 1.45))
    m[:, 2] += (out_w / 2 - sw / 2, out_h / 2 - sh / 2)
    if rng.random() < 0.5:
        m[0] = -m[0]
        m[0, 2] += out_w - 1
    warped = cv2.warpAffine(rgba, m, (out_w, out_h), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    rgb = np.ascontiguousarray(warped[:, :, rng.permutation(3)])
    x0 = int(rng.integers(-out_w // 3, w - out_w // 2))
    y0 = int(rng.integers(-out_h // 3, h - out_h // 2))
    blend_patch(image, recolor(rgb, rng, 0.5), np.ascontiguousarray(warped[:, :, 3]), x0, y0)


_KIND_FUNCTIONS = {
    "photo": _bg_photo,
    "terrain": _bg_terrain,
    "sticker": _bg_sticker,
    "clutter": _bg_clutter,
    "value_noise": _bg_value_noise,
    "pattern": _bg_pattern,
    "gradient": _bg_gradient,
    "noise": _bg_noise,
}


# ---------------------------------------------------------------------------
# Public API


def background_with_kind(rng, height, width, kind=None):
    """(background (h, w, 3) uint8 RGB, kind name); kind None draws one from
    `available_kinds()` with their weights (a missing natural kind raises KeyError)."""
    h, w = int(height), int(width)
    if h <= 0 or w <= 0:
        raise ValueError(f"background size must be positive, got {height} x {width}")
    if kind is None:
        kinds = available_kinds()
        names = list(kinds)
        p = np.array([kinds[k] for k in names])
        kind = names[int(rng.choice(len(names), p=p / p.sum()))]
    elif kind in NATURAL_KINDS and kind not in natural_assets():
        raise KeyError(f"background kind {kind!r} needs a matplotlib sample file that is missing")
    image = _KIND_FUNCTIONS[kind](rng, h, w)
    if kind not in ("clutter", "noise") and rng.random() < (0.25 if kind == "photo" else 0.4):
        image = clutter(image, rng, int(rng.integers(3, 16)))
    if rng.random() < 0.45:
        image = defocus(image, rng)
    if rng.random() < 0.5:
        image = uneven_light(image, rng)
    if rng.random() < 0.5:
        image = grain(image, rng)
    if rng.random() < 0.1:
        image = padding_bands(np.array(image), rng)
    return np.ascontiguousarray(image, dtype=np.uint8), kind


def make_background(rng, height, width) -> np.ndarray:
    """A random cluttered-photo-like background, (height, width, 3) uint8 RGB.

    The kind (see `BACKGROUND_KINDS`) and all its details are drawn from rng.
    """
    return background_with_kind(rng, height, width)[0]
