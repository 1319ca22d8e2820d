"""Per-vertex colours of a face taken from an image, with the hidden side filled.

The visible vertices are sampled from the image; a hidden vertex takes the
colour of its mirror vertex (left-right in UV) when that one is visible; the
rest are filled smoothly in the model's UV texture (push-pull) and read back.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.spatial import cKDTree

from prn.rendering.raster.rasterizer import PixelTable, gather, rasterize
from prn.rendering.raster.shading import vertex_normals
from prn.rendering.util.errors import InputError

# cv2.remap needs maps narrower than 32767 columns: points are laid out in rows of this width.
_REMAP_WIDTH = 1024
# Weight gain per pyramid level of `fill_holes` (see `_push`).
PUSH_GAIN = 2.0
_NEIGHBOURS = np.ones((3, 3), np.uint8)


# cos(75 degrees): vertices whose surface turns further from the viewer do not sample the image.
MIN_FACING = 0.26


def fill_holes(image, known) -> np.ndarray:
    """Fill the unknown pixels of an image smoothly from the known ones (push-pull).

    image: (h, w, c) float32; known: (h, w) bool.
    Returns a new (h, w, c) float32 image: known pixels unchanged exactly,
    unknown ones interpolated; zeros when nothing is known.
    """
    image = np.asarray(image, dtype=np.float32)
    known = np.asarray(known, dtype=bool)
    if image.ndim != 3 or known.shape != image.shape[:2]:
        raise InputError(f"image (h, w, c) and known (h, w) do not match: {image.shape}, {known.shape}")
    if not known.any():
        return np.zeros_like(image)
    if min(known.shape) < 2:
        out = image.copy()
        out[~known] = image[known].mean(axis=0)
        return out
    # Full-size work is done with OpenCV calls only: NumPy broadcasting over a
    # whole image costs more than the pyramid itself.
    mask = np.ascontiguousarray(known).view(np.uint8)
    masked = cv2.copyTo(image, mask, np.zeros_like(image))
    premultiplied = cv2.merge([masked, mask.astype(np.float32)])
    return cv2.copyTo(image, mask, _pulled(premultiplied))


def _pulled(premultiplied) -> np.ndarray:
    """The colours that push-pull fills in from coarser levels, at full size.

    premultiplied: (h, w, c + 1) float32, h, w >= 2: colours times their
    weight in [0, 1], then the weight; some weight must be positive.
    Returns (h, w, c) float32 U; the filled image is then P + (1 - weight) * U
    (that is, U where the weight is 0 and the colour where it is 1).

    Push: the premultiplied colours and weights are averaged down a Gaussian
    pyramid to ~1 x 1, so each coarse texel holds the weighted mean of the
    colours below it. Pull: from the coarsest level down, each level keeps its
    own weighted colour and takes the missing part (1 - weight) from the
    upsampled coarser level.
    """
    height, width, channels = premultiplied.shape[0], premultiplied.shape[1], premultiplied.shape[2] - 1
    levels = [_push(cv2.pyrDown(premultiplied))]
    while min(levels[-1].shape[:2]) > 1:
        levels.append(_push(cv2.pyrDown(levels[-1])))
    # The coarsest level (1 x 1 for a square image): texels with no weight
    # below take the mean of all.
    top = levels[-1]
    top_weight = top[..., channels:]
    mean = top[..., :channels].sum(axis=(0, 1)) / max(float(top_weight.sum()), 1e-30)
    top[..., :channels] = np.where(top_weight > 0, top[..., :channels] / np.maximum(top_weight, 1e-30), mean)
    top[..., channels] = 1.0
    filled = top
    for level in levels[-2::-1]:
        up = cv2.pyrUp(filled, dstsize=level.shape[1::-1])
        filled = cv2.add(level, _scaled(up, 1.0 - cv2.extractChannel(level, channels)))
    # The weight of every filled level is 1 (to rounding): no division needed.
    colors = np.ascontiguousarray(filled[..., :channels])
    return cv2.pyrUp(colors, dstsize=(width, height)).reshape(height, width, channels)


def _push(level, gain=PUSH_GAIN):
    """Raise the weights of a pyramid level (h, w, c + 1) of premultiplied colours, weight last.

    A texel's weight becomes min(1, gain * weight), its colours scaled alike:
    a texel with enough weight below counts as known at this level, so the
    colours filled in come from the nearest known pixels rather than from
    wide averages.
    """
    weight = cv2.extractChannel(level, level.shape[2] - 1)
    return _scaled(level, np.minimum(1.0, gain * weight) / np.maximum(weight, 1e-30))


def _scaled(image, factor):
    """(h, w, c) image times an (h, w) factor, with OpenCV (NumPy broadcasting is slow here)."""
    return cv2.multiply(image, cv2.merge([factor.astype(np.float32)] * image.shape[2]))


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
    points = np.asarray(points, dtype=np.float32)
    map_x, map_y = _remap_maps(points, np.arange(len(points)))
    return _remap(image, map_x, map_y, len(points), cv2.BORDER_REPLICATE)


def _remap_maps(points, index):
    """cv2.remap maps (rows, width) float32 x and y of points[index] (points (n, 2+) float32).

    cv2.remap takes maps narrower than 32767 columns, so the k points are laid
    out in rows of `_REMAP_WIDTH`; the padding repeats the last point.
    """
    count = len(index)
    rows = max(1, -(-count // _REMAP_WIDTH))
    width = max(1, min(count, _REMAP_WIDTH))
    padded = np.full(rows * width, index[-1] if count else 0, np.int64)
    padded[:count] = index
    # np.take and cv2.extractChannel: NumPy's strided column copies are slow.
    picked = np.take(points, padded, axis=0).reshape(rows, width, points.shape[1])
    return cv2.extractChannel(picked, 0), cv2.extractChannel(picked, 1)


def _remap(image, map_x, map_y, count, border):
    """Bilinear samples (count, c) float32 of an (h, w, c) image at the maps' first count points."""
    channels = image.shape[2]
    if count == 0:
        return np.zeros((0, channels), np.float32)
    source = image if image.dtype == np.float32 else image.astype(np.float32)
    out = cv2.remap(source, map_x, map_y, cv2.INTER_LINEAR, borderMode=border, borderValue=0)
    return out.reshape(-1, channels)[:count]


def visible_vertices(vertices, depth, tolerance=1.5) -> np.ndarray:
    """(n,) bool: vertex_visibility(vertices, depth, tolerance) and 0 <= x <= w - 1, 0 <= y <= h - 1.

    vertices (n, 3) float32 image coordinates; depth (h, w) from `rasterize`.
    The same test as `vertex_visibility` on contiguous columns, several
    times faster (NumPy's strided column arithmetic is slow).
    """
    height, width = depth.shape
    x, y, z = np.ascontiguousarray(np.asarray(vertices, dtype=np.float32).T)
    inside = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
    col = np.floor(np.where(inside, x, 0).astype(np.float64) + 0.5).astype(np.int64)
    row = np.floor(np.where(inside, y, 0).astype(np.float64) + 0.5).astype(np.int64)
    surface = np.take(depth.ravel(), row * width + col)
    return inside & (surface > -np.inf) & (z >= surface - tolerance)


def vertex_colors(image, vertices, triangles, uv_table_: PixelTable, uv_pixels, mirror,
                  tolerance=1.5, depth=None) -> np.ndarray:
    """Per-vertex colours of a mesh seen in an image, hidden vertices filled.

    image: (h, w, 3) uint8 RGB (any (h, w, c) numeric works).
    vertices: (n, 3) float32 in the image's coordinates (x column, y row,
        z larger = nearer, z in pixels like x and y).
    triangles: (m, 3) int, used for the z-buffer (e.g. full_triangles(model)).
    uv_table_: the model's UV PixelTable at a size S >= 2 (uv_table(model, S)).
    uv_pixels: (n, 2) the vertices' UV pixel coordinates at that size
        (uv_pixel_coords(model.uv, S)).
    mirror: (n,) int from mirror_vertices(model.uv).
    tolerance: depth below the z-buffer surface, in pixels, that still counts as visible.
    depth: the mesh's (h, w) depth buffer when the caller already rasterized it.
    Returns (n, 3) float32 (c channels in general), 0-255.

    A vertex is visible when it is inside the image and not behind the
    z-buffer; it takes the image's colour there. A hidden vertex whose mirror
    is visible takes the mirror's colour. The rest are filled by push-pull in
    the UV texture of the known colours, and read back at their UV pixels.
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    vertices = np.ascontiguousarray(vertices, dtype=np.float32)
    mirror = np.asarray(mirror)
    height, width = image.shape[:2]
    n = len(vertices)
    if vertices.ndim != 2 or vertices.shape[1] != 3 or len(mirror) != n or len(uv_pixels) != n:
        raise InputError(f"vertices {vertices.shape}, mirror ({len(mirror)},) and uv_pixels "
                         f"({len(uv_pixels)}, 2) do not match")

    depth = rasterize(vertices, triangles, height, width).depth if depth is None else depth.copy()
    # A vertex samples the 2 x 2 pixels around it: all of them must show the
    # mesh, not the background.
    covered = cv2.erode((depth > -np.inf).view(np.uint8), _NEIGHBOURS)
    depth[covered == 0] = -np.inf
    visible = visible_vertices(vertices, depth, tolerance)
    # Surfaces seen edge-on smear a few pixels over many vertices: their
    # colours come from the mirror side or the fill instead.
    visible &= vertex_normals(vertices, triangles)[:, 2] > MIN_FACING
    known = visible | visible[mirror]
    rest = np.flatnonzero(~known)
    # Each known vertex samples the image at itself or at its mirror.
    source = np.where(visible, np.arange(n), mirror)
    map_x, map_y = _remap_maps(vertices, source)
    image = image.astype(np.float32)
    colors = _remap(image, map_x, map_y, n, cv2.BORDER_REPLICATE)
    if len(rest) == 0 or len(rest) == n:
        colors[rest] = 0.0
        return np.clip(colors, 0.0, 255.0, out=colors)

    # Premultiplied colours and a weight channel, 0 for the unknown vertices
    # (sampled far outside the image, where the border is 0), drawn into UV
    # space; texels of partly known triangles keep their share of known colour.
    map_x.flat[rest] = -1e4
    ones = np.ones((height, width), np.float32)
    weighted = _remap(cv2.merge([image, ones]), map_x, map_y, n, cv2.BORDER_CONSTANT)
    texture = gather(uv_table_, weighted)
    pulled = _pulled(texture)
    points = np.take(np.asarray(uv_pixels), rest, axis=0).astype(np.float32)
    own = sample_bilinear(texture, points)
    colors[rest] = own[:, :-1] + (1.0 - own[:, -1:]) * sample_bilinear(pulled, points)
    return np.clip(colors, 0.0, 255.0, out=colors)
