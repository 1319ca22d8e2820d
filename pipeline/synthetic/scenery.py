"""Scenery for synthetic face images: backgrounds, occluders and compositing.

Everything random comes from the numpy Generator passed in, so the same
generator state gives the same bytes (OpenCV's own RNG is never used).
Images are RGB uint8 (h, w, 3).

Backgrounds (`make_background`) are drawn from several kinds, see
`BACKGROUND_KINDS`; most get extra layers on top (clutter shapes, defocus,
uneven lighting, grain, black padding bands like the padded crops of
300W-LP / AFLW2000-3D). Natural images come from the sample data matplotlib
ships (mpl-data/sample_data: grace_hopper.jpg, Minduka_Present_Blue_Pack.png,
jacksboro_fault_dem.npz, topobathy.npz), loaded once per process; a kind whose
file is missing is never chosen. Nothing is downloaded.

Speed (450 x 450, one core, median): a background about 1.5 ms (0.7-2.5 by
kind), occluders about 0.7 ms when drawn, compositing about 0.25 ms.
Numba kernels (cache=True) do the per-pixel blends; `blend_reference` and
`composite_reference` are their plain NumPy twins, for the tests.
"""

from __future__ import annotations

import functools
from pathlib import Path

import cv2
import numba
import numpy as np

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
# Small helpers


def _hsv_to_rgb(h, s, v):
    """h in degrees [0, 360), s, v in [0, 1] -> RGB 0-255 ints."""
    rgb = cv2.cvtColor(np.array([[[h, s, v]]], np.float32), cv2.COLOR_HSV2RGB)[0, 0] * 255
    return tuple(int(c) for c in np.clip(rgb + 0.5, 0, 255))


def _random_color(rng, saturation=(0.0, 0.8), value=(0.1, 0.95)):
    return _hsv_to_rgb(rng.uniform(0, 360), rng.uniform(*saturation), rng.uniform(*value))


def _palette_lut(rng, n_colors=None) -> np.ndarray:
    """(256, 1, 3) uint8 LUT: a ramp through 2-4 random colours of a loose scheme."""
    n = int(rng.integers(2, 5)) if n_colors is None else n_colors
    hue = rng.uniform(0, 360)
    spread = rng.choice([20.0, 60.0, 180.0])
    sat_hi = rng.uniform(0.1, 0.8)
    colors = [_hsv_to_rgb((hue + rng.uniform(-spread, spread)) % 360, rng.uniform(0, sat_hi),
                          rng.uniform(0.05, 0.95)) for _ in range(n)]
    stops = np.linspace(0, 255, n)
    x = np.arange(256)
    lut = np.stack([np.interp(x, stops, [c[k] for c in colors]) for k in range(3)], axis=1)
    return np.ascontiguousarray(lut.astype(np.uint8).reshape(256, 1, 3))


def _apply_lut(values, lut):
    """values (h, w) float32 in [0, 1] -> (h, w, 3) uint8 through a (256, 1, 3) LUT."""
    index = cv2.convertScaleAbs(values, alpha=255.0)
    return cv2.LUT(cv2.merge([index, index, index]), lut)


def _normalise01(values):
    lo, hi = float(values.min()), float(values.max())
    return (values - lo) * (1.0 / max(hi - lo, 1e-6))


def _value_noise(rng, h, w, octaves=4, base_cells=3, persistence=0.55):
    """(h, w) float32 in [0, 1]: multi-octave value noise (bicubic-upsampled random grids)."""
    out = np.zeros((h, w), np.float32)
    amplitude, aspect = 1.0, w / h
    for k in range(octaves):
        rows = base_cells * 2 ** k
        cols = max(2, int(round(rows * aspect)))
        grid = rng.random((rows, cols), dtype=np.float32)
        out += amplitude * cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)
        amplitude *= persistence
    return _normalise01(out)


@functools.lru_cache(maxsize=8)
def _grid(h, w):
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return ys, xs


def _upscale(image, h, w):
    if image.shape[:2] == (h, w):
        return image
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)


def _recolor(image, rng, strength=1.0):
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


# ---------------------------------------------------------------------------
# Background kinds; each returns (h, w, 3) uint8 RGB.


def _bg_gradient(rng, h, w):
    cells = 6
    ys, xs = np.mgrid[0:cells, 0:cells].astype(np.float32) / (cells - 1)
    if rng.random() < 0.6:
        angle = rng.uniform(0, 2 * np.pi)
        t = xs * np.cos(angle) + ys * np.sin(angle)
    else:
        cx, cy = rng.uniform(-0.2, 1.2, size=2)
        t = np.hypot(xs - cx, ys - cy)
    t = _normalise01(t)
    small = _apply_lut(t, _palette_lut(rng, int(rng.integers(2, 4))))
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def _bg_value_noise(rng, h, w):
    h2, w2 = (h + 2) // 3, (w + 2) // 3
    values = _value_noise(rng, h2, w2, octaves=int(rng.integers(3, 6)),
                          base_cells=int(rng.integers(2, 6)), persistence=rng.uniform(0.4, 0.7))
    if rng.random() < 0.3:  # ridged / marbled variant
        values = _normalise01(np.abs(values - 0.5))
    return _upscale(_apply_lut(values, _palette_lut(rng)), h, w)


def _bg_pattern(rng, h, w):
    h2, w2 = (h + 2) // 3, (w + 2) // 3
    ys, xs = _grid(h2, w2)
    period = rng.uniform(4, 30)
    warp = rng.uniform(0, 2.5)
    du = (_value_noise(rng, h2, w2, octaves=2, base_cells=2) - 0.5) * warp
    angle = rng.uniform(0, np.pi)
    u = (xs * np.cos(angle) + ys * np.sin(angle)) / period + du
    choice = rng.random()
    if choice < 0.45:  # stripes
        s = np.sin(2 * np.pi * u)
    elif choice < 0.8:  # checks
        dv = (_value_noise(rng, h2, w2, octaves=2, base_cells=2) - 0.5) * warp
        v = (-xs * np.sin(angle) + ys * np.cos(angle)) / (period * rng.uniform(0.6, 1.6)) + dv
        s = np.sin(2 * np.pi * u) * np.sin(2 * np.pi * v)
    else:  # rings (wood grain)
        cx, cy = rng.uniform(-0.5, 1.5) * w2, rng.uniform(-0.5, 1.5) * h2
        s = np.sin(2 * np.pi * (np.hypot(xs - cx, ys - cy) / period + du * 2))
    sharp = rng.uniform(1, 8)
    s = np.clip(s * sharp * 0.5 + 0.5, 0, 1).astype(np.float32)
    return _upscale(_apply_lut(s, _palette_lut(rng, 2)), h, w)


def _bg_noise(rng, h, w):
    cell = int(rng.integers(3, 12))
    small = rng.integers(0, 256, size=((h + cell - 1) // cell, (w + cell - 1) // cell, 3),
                         dtype=np.uint8)
    image = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    base = np.array(_random_color(rng, (0, 0.7), (0.2, 0.8)), np.float32)
    amount = rng.uniform(0.2, 0.6)
    # base + amount * (noise - 128), via a LUT per channel
    x = np.arange(256, dtype=np.float32)
    lut = np.clip(base[None, :] + amount * (x[:, None] - 128), 0, 255).astype(np.uint8)
    return cv2.LUT(image, lut.reshape(256, 1, 3))


def _bg_clutter(rng, h, w):
    base = _bg_gradient(rng, h, w) if rng.random() < 0.5 else _bg_value_noise(rng, h, w)
    return _clutter(base, rng, int(rng.integers(15, 45)))


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
    return _recolor(image, rng)


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
    return _recolor(cv2.resize(rgb, (w, h), interpolation=cv2.INTER_CUBIC), rng, 0.6)


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
    _blend_patch(image, _recolor(rgb, rng, 0.5), np.ascontiguousarray(warped[:, :, 3]), x0, y0)


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
# Layers


@numba.njit(cache=True, nogil=True)
def _blend_kernel(dst, rgb, mask, scale, wy, wx):
    """dst (h, w, 3) uint8 in place: dst + a (rgb - dst), rounded, with the per-pixel
    opacity a = mask * scale * wy[row] * wx[col]; mask (h, w) uint8, wy (h,), wx (w,)
    float32. See `blend_reference`."""
    for i in range(dst.shape[0]):
        for j in range(dst.shape[1]):
            m = mask[i, j]
            if m == 0:
                continue
            a = np.float32(m) * scale * wy[i] * wx[j]
            for k in range(3):
                d = np.float32(dst[i, j, k])
                v = d + a * (np.float32(rgb[i, j, k]) - d)
                dst[i, j, k] = np.uint8(min(max(np.floor(v + np.float32(0.5)), 0.0), 255.0))


def blend_reference(dst, rgb, mask, scale, wy, wx):
    """Plain NumPy version of `_blend_kernel` (returns the new dst), for tests."""
    a = (mask.astype(np.float32) * np.float32(scale) * wy[:, None] * wx[None, :])[:, :, None]
    d = dst.astype(np.float32)
    v = d + a * (rgb.astype(np.float32) - d)
    return np.clip(np.floor(v + np.float32(0.5)), 0, 255).astype(np.uint8)


def _blend_patch(image, rgb, mask, x0, y0, scale=1.0 / 255, wy=None, wx=None):
    """Blend rgb (ph, pw, 3) uint8 into image at (x0, y0) in place, opacity
    mask (ph, pw) uint8 * scale (* wy[row] * wx[col]); the patch may stick out."""
    h, w = image.shape[:2]
    ph, pw = mask.shape
    ix0, iy0 = max(x0, 0), max(y0, 0)
    ix1, iy1 = min(x0 + pw, w), min(y0 + ph, h)
    if ix0 >= ix1 or iy0 >= iy1:
        return
    py0, px0 = iy0 - y0, ix0 - x0
    rows, cols = slice(py0, py0 + iy1 - iy0), slice(px0, px0 + ix1 - ix0)
    wy = np.ones(ph, np.float32) if wy is None else np.asarray(wy, np.float32)
    wx = np.ones(pw, np.float32) if wx is None else np.asarray(wx, np.float32)
    _blend_kernel(image[iy0:iy1, ix0:ix1], rgb[rows, cols], mask[rows, cols],
                  np.float32(scale), wy[rows], wx[cols])


def _random_polygon(rng, cx, cy, radius, n_min=3, n_max=9, irregularity=0.5):
    n = int(rng.integers(n_min, n_max + 1))
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = radius * rng.uniform(1 - irregularity, 1 + irregularity * 0.5, n)
    return np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)


_SHIFT = 4  # sub-pixel bits for cv2 drawing with LINE_AA


def _pts(points):
    return [np.round(np.asarray(points) * (1 << _SHIFT)).astype(np.int32).reshape(-1, 1, 2)]


def _draw_shape(image, rng, color, scale):
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
            cv2.fillPoly(image, _pts(corners), color, aa, _SHIFT)
        else:
            cv2.polylines(image, _pts(corners), True, color, int(rng.integers(1, 6)), aa, _SHIFT)
    elif kind < 0.55:  # ellipse
        axes = (int(size * rng.uniform(0.3, 1.2)) + 1, int(size * rng.uniform(0.3, 1.2)) + 1)
        thickness = -1 if rng.random() < 0.75 else int(rng.integers(1, 6))
        cv2.ellipse(image, (int(cx), int(cy)), axes, rng.uniform(0, 180), 0, 360, color,
                    thickness, aa)
    elif kind < 0.8:  # polygon
        cv2.fillPoly(image, _pts(_random_polygon(rng, cx, cy, size)), color, aa, _SHIFT)
    else:  # line(s)
        length = size * rng.uniform(1, 4)
        angle = rng.uniform(0, np.pi)
        p0 = (cx - length * np.cos(angle), cy - length * np.sin(angle))
        p1 = (cx + length * np.cos(angle), cy + length * np.sin(angle))
        cv2.polylines(image, _pts([p0, p1]), False, color, int(rng.integers(1, 8)), aa, _SHIFT)


def _clutter(image, rng, n_shapes):
    """Shapes in two layers: a defocused back layer, then a few sharp ones on top."""
    h, w = image.shape[:2]
    small = _shrink(image, int(rng.integers(2, 5)))
    lut_colors = rng.random() < 0.5
    palette = _palette_lut(rng, 4) if lut_colors else None

    def color():
        if palette is not None and rng.random() < 0.7:
            return tuple(int(c) for c in palette[int(rng.integers(256)), 0])
        return _random_color(rng)

    n_back = int(n_shapes * rng.uniform(0.5, 0.9))
    for _ in range(n_back):
        _draw_shape(small, rng, color(), 1.3)
    image = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    for _ in range(n_shapes - n_back):
        _draw_shape(image, rng, color(), 1.0)
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


def _defocus(image, rng):
    h, w = image.shape[:2]
    return cv2.resize(_shrink(image, rng.uniform(1.5, 5.0)), (w, h), interpolation=cv2.INTER_LINEAR)


def _uneven_light(image, rng):
    """Multiply by a smooth, slightly tinted gain field (vignette / light falloff)."""
    h, w = image.shape[:2]
    gain = 0.55 + 0.75 * rng.random((3, 3), dtype=np.float32)
    tint = rng.uniform(0.85, 1.15, size=3).astype(np.float32)
    field = np.clip(gain[:, :, None] * tint * 128, 0, 255).astype(np.uint8)
    field = cv2.resize(field, (w, h), interpolation=cv2.INTER_CUBIC)
    return cv2.multiply(image, field, scale=1 / 128)


_GRAIN_TILE = 96


def _grain(image, rng):
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


def _padding_bands(image, rng):
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
        image = _clutter(image, rng, int(rng.integers(3, 16)))
    if rng.random() < 0.45:
        image = _defocus(image, rng)
    if rng.random() < 0.5:
        image = _uneven_light(image, rng)
    if rng.random() < 0.5:
        image = _grain(image, rng)
    if rng.random() < 0.1:
        image = _padding_bands(np.array(image), rng)
    return np.ascontiguousarray(image, dtype=np.uint8), kind


def make_background(rng, height, width) -> np.ndarray:
    """A random cluttered-photo-like background, (height, width, 3) uint8 RGB.

    The kind (see `BACKGROUND_KINDS`) and all its details are drawn from rng.
    """
    return background_with_kind(rng, height, width)[0]


def occluder_region(face_box, height, width):
    """The pixel box (x0, y0, x1, y1), end-exclusive, that `add_occluders` may change:
    face_box grown by OCCLUDER_MARGIN of its size on each side, clipped to the image."""
    x0, y0, x1, y1 = (float(v) for v in face_box)
    mx, my = OCCLUDER_MARGIN * (x1 - x0), OCCLUDER_MARGIN * (y1 - y0)
    return (max(0, int(np.floor(x0 - mx))), max(0, int(np.floor(y0 - my))),
            min(width, int(np.ceil(x1 + mx)) + 1), min(height, int(np.ceil(y1 + my)) + 1))


OCCLUDER_MARGIN = 0.5
SKIN_HSV = ((10, 35), (0.2, 0.65), (0.3, 0.95))  # hue degrees, saturation, value
HAIR_COLORS = ((20, 15, 10), (45, 30, 20), (80, 50, 30), (120, 80, 40), (170, 130, 80),
               (210, 180, 120), (90, 40, 20), (140, 140, 140))

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
    values = _value_noise(rng, max(h // 2, 2), max(w // 2, 2), octaves=3,
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
    cv2.fillPoly(mask, _pts(corners - (rx0, ry0)), 255, cv2.LINE_AA, _SHIFT)
    ball = rng.random() < 0.3
    radius = half * rng.uniform(1.5, 2.5)
    if ball:
        cv2.circle(mask, tuple(int(round(v * 16)) for v in ends[1] - (rx0, ry0)),
                   int(radius * 16), 255, -1, cv2.LINE_AA, _SHIFT)
    highlight = rng.uniform(-0.5, 0.5)
    color = (_random_color(rng, (0, 0.9), (0.05, 0.9)) if rng.random() < 0.7
             else _random_color(rng, SKIN_HSV[1], SKIN_HSV[2]))

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
                    255, -1, cv2.LINE_AA, _SHIFT)

    ellipse(cx, cy, palm, palm * 0.85, inward)
    # Arm: a thick bar from the palm outwards, past the region's edge.
    arm_half = palm * rng.uniform(0.6, 0.8)
    far = np.array([cx - c * size * 2, cy - s * size * 2])
    nrm = np.array([-s, c])
    corners = np.array([[cx, cy] + nrm * arm_half, far + nrm * arm_half * 1.2,
                        far - nrm * arm_half * 1.2, [cx, cy] - nrm * arm_half])
    cv2.fillPoly(mask, _pts(corners - (rx0, ry0)), 255, cv2.LINE_AA, _SHIFT)
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
    color = _hsv_to_rgb(rng.uniform(*SKIN_HSV[0]), rng.uniform(*SKIN_HSV[1]),
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
    pts = np.round((curves - (rx0, ry0)) * (1 << _SHIFT)).astype(np.int32)
    thick = np.where(rng.random(k) < 0.75, 1, 2)
    level = rng.integers(0, len(_HAIR_LEVELS), k)
    for th in (1, 2):
        for lv in range(len(_HAIR_LEVELS)):
            group = [c.reshape(-1, 1, 2) for c in pts[(thick == th) & (level == lv)]]
            if group:
                cv2.polylines(mask, group, False, 255, th, cv2.LINE_AA, _SHIFT)
                cv2.polylines(tone, group, False, int(_HAIR_LEVELS[lv]), th, cv2.LINE_AA, _SHIFT)
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
                    0, 360, 255, -1, cv2.LINE_AA, _SHIFT)
    else:
        cv2.fillPoly(mask, _pts(_random_polygon(rng, cx, cy, radius, 4, 10, 0.4)), 255,
                     cv2.LINE_AA, _SHIFT)
    color = _random_color(rng, (0, 0.9), (0.05, 0.95))

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
        _blend_patch(out, paint(sx0, sy0, sx1, sy1), soft, rx0 + sx0, ry0 + sy0,
                     opacity, wy[sy0:sy1], wx[sx0:sx1])
    return out


# ---------------------------------------------------------------------------
# Compositing


@numba.njit(cache=True, nogil=True, inline="always")
def _clip255(v):
    return min(max(v, np.float32(0.0)), np.float32(255.0))


@numba.njit(cache=True, nogil=True)
def _composite_kernel(face, coverage, alpha, out, r0, r1, c0, c1):
    """Blend face over out (a copy of the background) in rows r0:r1, cols c0:c1 in place.

    alpha (h, w) float32: the 3 x 3 binomial blur of coverage. Colour: the
    clipped face colour on covered pixels, the mean of the clipped colours of
    the covered 8-neighbours elsewhere. See `composite_reference`.
    """
    h, w = coverage.shape
    for i in range(r0, r1):
        for j in range(c0, c1):
            a = alpha[i, j]
            if a <= 0.0:
                continue
            if coverage[i, j]:
                r = _clip255(face[i, j, 0])
                g = _clip255(face[i, j, 1])
                b = _clip255(face[i, j, 2])
                if a >= 1.0:
                    out[i, j, 0] = np.uint8(np.floor(r + np.float32(0.5)))
                    out[i, j, 1] = np.uint8(np.floor(g + np.float32(0.5)))
                    out[i, j, 2] = np.uint8(np.floor(b + np.float32(0.5)))
                    continue
            else:
                r = np.float32(0.0)
                g = np.float32(0.0)
                b = np.float32(0.0)
                count = 0
                for ii in range(max(i - 1, 0), min(i + 2, h)):
                    for jj in range(max(j - 1, 0), min(j + 2, w)):
                        if coverage[ii, jj]:
                            r += _clip255(face[ii, jj, 0])
                            g += _clip255(face[ii, jj, 1])
                            b += _clip255(face[ii, jj, 2])
                            count += 1
                if count == 0:
                    continue
                inv = np.float32(1.0) / np.float32(count)
                r *= inv
                g *= inv
                b *= inv
            d = np.float32(out[i, j, 0])
            out[i, j, 0] = np.uint8(_clip255(np.floor(d + a * (r - d) + np.float32(0.5))))
            d = np.float32(out[i, j, 1])
            out[i, j, 1] = np.uint8(_clip255(np.floor(d + a * (g - d) + np.float32(0.5))))
            d = np.float32(out[i, j, 2])
            out[i, j, 2] = np.uint8(_clip255(np.floor(d + a * (b - d) + np.float32(0.5))))


def _coverage_alpha(cov):
    """3 x 3 binomial ([1, 2, 1] / 4 each way) blur of a bool mask, replicated borders,
    float32 (exact multiples of 1 / 16)."""
    return cv2.sepFilter2D(cov.view(np.uint8).astype(np.float32), -1, _BINOMIAL, _BINOMIAL,
                           borderType=cv2.BORDER_REPLICATE)


_BINOMIAL = np.array([0.25, 0.5, 0.25], np.float32)


def _check_composite(face_rgb, coverage, background):
    # No copies of strided views (e.g. rgba[..., :3] of a render): the kernels take them.
    face = np.asarray(face_rgb, dtype=np.float32)
    cov = np.ascontiguousarray(coverage, dtype=bool)
    bg = np.asarray(background, dtype=np.uint8)
    if face.ndim != 3 or face.shape[2] != 3 or face.shape != bg.shape or cov.shape != bg.shape[:2]:
        raise ValueError(f"composite: face {face.shape}, coverage {cov.shape} and background "
                         f"{bg.shape} must be (h, w, 3), (h, w), (h, w, 3)")
    return face, cov, bg


def composite(face_rgb, coverage, background) -> np.ndarray:
    """Put a rendered face over a background, with a soft 1-pixel edge.

    face_rgb: (h, w, 3) float32 on the 0-255 scale (values outside are clipped;
        values where coverage is False are ignored).
    coverage: (h, w) bool, pixels the face covers.
    background: (h, w, 3) uint8 RGB (not modified).
    Alpha is the coverage mask blurred with a 3 x 3 binomial kernel: covered
    pixels on the silhouette get about 0.75, uncovered pixels next to it about
    0.25 (with the mean colour of their covered neighbours), interior pixels 1.
    Pixels with no covered 8-neighbour keep the background exactly.
    Returns (h, w, 3) uint8 RGB.
    """
    face, cov, bg = _check_composite(face_rgb, coverage, background)
    out = bg.copy()
    x, y, w, h = cv2.boundingRect(cov.view(np.uint8))
    if w == 0 or h == 0:
        return out
    r0, r1 = max(y - 1, 0), min(y + h + 1, cov.shape[0])
    c0, c1 = max(x - 1, 0), min(x + w + 1, cov.shape[1])
    alpha = _coverage_alpha(cov)
    _composite_kernel(face, cov, alpha, out, r0, r1, c0, c1)
    return out


def composite_reference(face_rgb, coverage, background) -> np.ndarray:
    """Plain NumPy version of `composite` (the same result up to float rounding), for tests."""
    face, cov, bg = _check_composite(face_rgb, coverage, background)
    h, w = cov.shape
    covf = cov.astype(np.float32)
    # alpha: binomial blur with clamped (replicated) borders
    padded = np.pad(covf, 1, mode="edge")
    k = np.array([1.0, 2.0, 1.0], np.float32)
    alpha = sum(k[di] * k[dj] * padded[di:di + h, dj:dj + w]
                for di in range(3) for dj in range(3)) / 16.0
    clipped = np.clip(face, 0, 255) * covf[:, :, None]
    pc = np.pad(clipped, ((1, 1), (1, 1), (0, 0)))
    pn = np.pad(covf, 1)
    sums = sum(pc[di:di + h, dj:dj + w] for di in range(3) for dj in range(3))
    counts = sum(pn[di:di + h, dj:dj + w] for di in range(3) for dj in range(3))
    mean = sums / np.maximum(counts, 1)[:, :, None]
    color = np.where(cov[:, :, None], np.clip(face, 0, 255), mean)
    use = (alpha > 0) & (cov | (counts > 0))
    d = bg.astype(np.float32)
    v = np.clip(np.floor(d + alpha[:, :, None] * (color - d) + 0.5), 0, 255).astype(np.uint8)
    return np.where(use[:, :, None], v, bg)
