"""Per-vertex colours of a face taken from an image, with the hidden side filled.

The visible vertices are sampled from the image; a hidden vertex takes the
colour of its mirror vertex (left-right in UV) when that one is visible; the
rest are filled smoothly in the model's UV texture (push-pull) and read back.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial import cKDTree

from .errors import InputError
from .rasterizer import PixelTable, gather, rasterize, vertex_visibility

# A UV texel counts as known when most of its interpolation weight comes from
# vertices whose colour is known.
KNOWN_TEXEL_WEIGHT = 0.5
# cv2.remap needs maps narrower than 32767 columns: points are laid out in rows of this width.
_REMAP_WIDTH = 1024
# Weight gain per pyramid level of `fill_holes` (see `_push`).
PUSH_GAIN = 2.0


def fill_holes(image, known) -> np.ndarray:
    """Fill the unknown pixels of an image smoothly from the known ones (push-pull).

    image: (h, w, c) float32; known: (h, w) bool.
    Returns a new (h, w, c) float32 image: known pixels unchanged exactly,
    unknown ones interpolated; zeros when nothing is known.

    Push: the known colours, premultiplied by a 0/1 weight, are carried in an
    extra channel and averaged down a Gaussian pyramid to 1 x 1, so each coarse
    texel holds the weighted mean of the known pixels below it. Pull: from the
    coarsest level down, each level keeps its own weighted colour and takes the
    missing part (1 - weight) from the upsampled coarser level.
    """
    image = np.asarray(image, dtype=np.float32)
    known = np.asarray(known, dtype=bool)
    if image.ndim != 3 or known.shape != image.shape[:2]:
        raise InputError(f"image (h, w, c) and known (h, w) do not match: {image.shape}, {known.shape}")
    channels = image.shape[2]
    height, width = known.shape
    if not known.any():
        return np.zeros_like(image)
    if min(height, width) < 2:
        out = image.copy()
        out[~known] = image[known].mean(axis=0)
        return out
    # Full-size work is done with OpenCV calls only (NumPy broadcasting over a
    # whole image costs more than the pyramid itself).
    mask = np.ascontiguousarray(known).view(np.uint8)
    masked = cv2.copyTo(image, mask, np.zeros_like(image))
    level0 = cv2.merge([masked, mask.astype(np.float32)])
    levels = [_push(cv2.pyrDown(level0), channels)]
    while min(levels[-1].shape[:2]) > 1:
        levels.append(_push(cv2.pyrDown(levels[-1]), channels))
    # The coarsest level (1 x 1 for a square image): texels with no known
    # pixel below take the mean of all known pixels.
    top = levels[-1]
    top_weight = top[..., channels:]
    mean = top[..., :channels].sum(axis=(0, 1)) / max(float(top_weight.sum()), 1e-30)
    top[..., :channels] = np.where(top_weight > 0, top[..., :channels] / np.maximum(top_weight, 1e-30), mean)
    top[..., channels] = 1.0
    filled = top
    for level in levels[-2::-1]:
        up = cv2.pyrUp(filled, dstsize=level.shape[1::-1]).reshape(level.shape)
        filled = level + (1.0 - level[..., channels:]) * up
    # Every filled level has weight 1 (up to rounding): normalise once at half size.
    colors = np.ascontiguousarray(filled[..., :channels] / filled[..., channels:])
    out = cv2.pyrUp(colors, dstsize=(width, height)).reshape(image.shape)
    return cv2.copyTo(image, mask, out)


def _push(level, channels, gain=PUSH_GAIN):
    """Raise the weights of a pyramid level (h, w, c + 1), premultiplied colours with them.

    A texel's weight becomes min(1, gain * weight): a texel with some known
    pixels below counts as known at this level, so the colours filled in come
    from the nearest known pixels rather than from wide averages.
    """
    level = level.reshape(level.shape[:2] + (channels + 1,))
    weight = level[..., channels:]
    scale = np.minimum(1.0, gain * weight) / np.maximum(weight, 1e-30)
    return level * scale


def mirror_vertices(uv) -> np.ndarray:
    """For each vertex, the vertex nearest to its mirror image (1 - u, v) in UV.

    uv: (n, 2) in [0, 1], for a UV unwrap that is left-right symmetric.
    Returns (n,) int64 vertex indices.
    """
    uv = np.asarray(uv, dtype=np.float64)
    if uv.ndim != 2 or uv.shape[1] != 2 or len(uv) == 0:
        raise InputError(f"uv must have shape (n, 2), got {uv.shape}")
    mirrored = np.stack([1.0 - uv[:, 0], uv[:, 1]], axis=1)
    _, index = cKDTree(uv).query(mirrored)
    return index.astype(np.int64)


def sample_bilinear(image, points) -> np.ndarray:
    """Bilinear samples of an (h, w, c) image at (k, 2) points (x column, y row).

    Points outside the image are clamped to its border. Returns (k, c) float32.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    channels = image.shape[2]
    points = np.asarray(points, dtype=np.float32).reshape(-1, 2)
    count = len(points)
    if count == 0:
        return np.zeros((0, channels), np.float32)
    rows = -(-count // _REMAP_WIDTH)
    width = min(count, _REMAP_WIDTH)
    maps = np.zeros((rows * width, 2), np.float32)
    maps[:count] = points
    maps = maps.reshape(rows, width, 2)
    source = image if image.dtype == np.float32 else image.astype(np.float32)
    out = cv2.remap(source, maps, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(-1, channels)[:count]


def vertex_colors(image, vertices, triangles, uv_table_: PixelTable, uv_pixels, mirror,
                  tolerance=1.5) -> np.ndarray:
    """Per-vertex colours of a mesh seen in an image, hidden vertices filled.

    image: (h, w, 3) uint8 RGB (any (h, w, c) numeric works).
    vertices: (n, 3) float32 in the image's coordinates (x column, y row,
        z larger = nearer, z in pixels like x and y).
    triangles: (m, 3) int, used for the z-buffer (e.g. full_triangles(model)).
    uv_table_: the model's UV PixelTable at a size S (uv_table(model, S)).
    uv_pixels: (n, 2) the vertices' UV pixel coordinates at that size
        (uv_pixel_coords(model.uv, S)).
    mirror: (n,) int from mirror_vertices(model.uv).
    tolerance: depth below the z-buffer surface, in pixels, that still counts as visible.
    Returns (n, 3) float32 (c channels in general), 0-255.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    vertices = np.asarray(vertices, dtype=np.float32)
    mirror = np.asarray(mirror)
    height, width = image.shape[:2]
    n = len(vertices)
    if len(mirror) != n or len(uv_pixels) != n:
        raise InputError(f"vertices ({n}), mirror ({len(mirror)}) and uv_pixels ({len(uv_pixels)}) differ in length")

    raster = rasterize(vertices, triangles, height, width)
    x, y = vertices[:, 0], vertices[:, 1]
    inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    visible = vertex_visibility(vertices, raster.depth, tolerance) & inside

    colors = np.zeros((n, image.shape[2]), np.float32)
    colors[visible] = sample_bilinear(image, vertices[visible, :2])

    from_mirror = ~visible & visible[mirror]
    colors[from_mirror] = colors[mirror[from_mirror]]
    known = visible | from_mirror

    rest = ~known
    if rest.any():
        weight = known.astype(np.float32)[:, None]
        texture = gather(uv_table_, np.concatenate([colors * weight, weight], axis=1))
        texel_weight = texture[..., -1]
        texel_known = texel_weight > KNOWN_TEXEL_WEIGHT
        texel_colors = texture[..., :-1] / np.maximum(texel_weight, 1e-12)[..., None]
        filled = fill_holes(texel_colors, texel_known)
        colors[rest] = sample_bilinear(filled, np.asarray(uv_pixels)[rest])
    return np.clip(colors, 0.0, 255.0)
