"""Z-buffer triangle rasterizer (Numba, single-threaded kernels).

Conventions: vertices are in image coordinates, x = column, y = row, z larger =
nearer the viewer. A pixel (col, row) is covered by a triangle when its centre,
the point (col, row), is inside the triangle. Centres exactly on an edge go to
one triangle only (top-left rule), so meshes have neither cracks nor
double-covered pixels, whatever the orientation of each triangle. Degenerate
triangles and triangles with non-finite vertices are skipped.
"""

from __future__ import annotations

import operator
from typing import NamedTuple

import numba
import numpy as np

from prn.rendering.util.errors import InputError


class Rasterization(NamedTuple):
    """Per-pixel result of `rasterize` for an image of height h and width w.

    depth: (h, w) float32, z of the visible surface, -inf where nothing covers.
    triangle_ids: (h, w) int32, index of the visible triangle, -1 where nothing covers.
    barycentric: (h, w, 3) float32, weights of the visible triangle's three
        vertices (sum to 1), 0 where nothing covers.
    """

    depth: np.ndarray
    triangle_ids: np.ndarray
    barycentric: np.ndarray


class PixelTable(NamedTuple):
    """Coverage of one mesh layout, for rendering many attribute sets with `gather`.

    pixels: (p,) int64 flat indices row * width + col of covered pixels, increasing.
    vertex_ids: (p, 3) int32 vertices of the triangle covering each pixel.
    weights: (p, 3) float32 barycentric weights of those vertices.
    height, width: image size in pixels.
    """

    pixels: np.ndarray
    vertex_ids: np.ndarray
    weights: np.ndarray
    height: int
    width: int


# ---------------------------------------------------------------------------
# Kernels
#
# Edge functions are cross(a - p, b - p) for an edge a -> b and a pixel centre
# p, in float64 from float32 coordinates (converted once, in the wrappers).
# Exactness: differences of float32 values are exact in float64 (unless their
# magnitudes are 2^29 apart), a product of two differences of up to 26
# significant bits is exact, and rounding the final subtraction keeps its sign;
# so the sign of an edge function is exact for coordinates on a 2^-13 grid in
# images up to 4096 pixels (integer and half-integer ones included), and
# otherwise only a centre within ~1e-16 (relative) of an edge can land on the
# wrong side. Independently of rounding, the expression is antisymmetric term
# by term, so an edge shared by two triangles gives exactly opposite values
# from either side, and with the tie-break below no centre is dropped or
# covered twice. All code here (and the tests' reference) uses this expression.

# Triangles are processed in chunks. A branch-free (vectorised) pass finds,
# for every triangle of the chunk, which pixel centres of the 2 x 2 block at
# the corner of its bounding box it covers; a scalar pass then shades only
# those. Most triangles of a dense mesh cover 0 or 1 pixel, so this avoids a
# hard-to-predict branch per candidate pixel, which dominates a plain loop over
# each bounding box. Bounding boxes larger than 2 x 2 continue block by block.
# The small helpers below take scalars only and are inlined by Numba (an
# inlined helper taking arrays would add reference counting to the pixel loop).
_CHUNK = 256
_BIG = 16  # mask bit: the bounding box is larger than 2 x 2 pixels
_LOWEST_BIT = (0, 0, 1, 0, 2, 0, 1, 0, 3, 0, 1, 0, 2, 0, 1, 0)


@numba.njit(cache=True, nogil=True, inline="always")
def _owns(px, py, qx, qy):
    """Tie-break (top-left rule): does edge p -> q of a positive-area triangle own
    the centres exactly on it?

    It does when it points up (a left edge) or exactly right (a top edge). The
    neighbour across a shared edge walks it the other way, so exactly one of
    the two owns them.
    """
    return (qy < py) | ((qy == py) & (qx > px))


@numba.njit(cache=True, nogil=True, inline="always")
def _covers(ax, ay, bx, by, cx, cy, px, py):
    """Is the point (px, py) inside triangle a, b, c of positive area, with the tie-break?

    (Callers swap b and c of a triangle of negative area: the same coverage as
    flipping the signs of its edge functions.)
    """
    ax_ = ax - px
    bx_ = bx - px
    cx_ = cx - px
    ay_ = ay - py
    by_ = by - py
    cy_ = cy - py
    e_ab = ax_ * by_ - ay_ * bx_
    e_bc = bx_ * cy_ - by_ * cx_
    e_ca = cx_ * ay_ - cy_ * ax_
    return (
        ((e_ab > 0.0) | ((e_ab == 0.0) & _owns(ax, ay, bx, by)))
        & ((e_bc > 0.0) | ((e_bc == 0.0) & _owns(bx, by, cx, cy)))
        & ((e_ca > 0.0) | ((e_ca == 0.0) & _owns(cx, cy, ax, ay)))
    )


@numba.njit(cache=True, nogil=True, inline="always")
def _block_mask(ax, ay, bx, by, cx, cy, col, row, right, down):
    """Bits 2 * dy + dx for the covered centres (col + dx, row + dy) of a 2 x 2 block.

    Triangle a, b, c of positive area; right, down: whether the block's second
    column, second row are in use.
    """
    px = np.float64(col)
    py = np.float64(row)
    return (
        _covers(ax, ay, bx, by, cx, cy, px, py) * 1
        | (_covers(ax, ay, bx, by, cx, cy, px + 1.0, py) & right) * 2
        | (_covers(ax, ay, bx, by, cx, cy, px, py + 1.0) & down) * 4
        | (_covers(ax, ay, bx, by, cx, cy, px + 1.0, py + 1.0) & right & down) * 8
    )


@numba.njit(cache=True, nogil=True)
def _classify_chunk(count, xs, ys, x_max, y_max, x0s, y0s, masks):
    """Coverage of the first block of the first `count` triangles of a chunk.

    xs, ys: (3, chunk) float64 vertex coordinates; x_max, y_max: width - 1,
    height - 1. Writes x0s, y0s: (chunk,) float64 first column and row of the
    clamped bounding box; masks: (chunk,) int64, `_block_mask` of the block
    there, plus _BIG for a larger box. Branch-free, so it vectorises.
    Non-finite or degenerate triangles may get any mask: the caller skips them.
    """
    for j in range(count):
        ax = xs[0, j]
        bx = xs[1, j]
        cx = xs[2, j]
        ay = ys[0, j]
        by = ys[1, j]
        cy = ys[2, j]
        x0 = np.ceil(min(ax, bx, cx))
        x0 = x0 if x0 > 0.0 else 0.0
        x1 = np.floor(max(ax, bx, cx))
        x1 = x1 if x1 < x_max else x_max
        y0 = np.ceil(min(ay, by, cy))
        y0 = y0 if y0 > 0.0 else 0.0
        y1 = np.floor(max(ay, by, cy))
        y1 = y1 if y1 < y_max else y_max
        # Both orientations are drawn: swap b and c of a triangle of negative area.
        flip = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax) < 0.0
        bx, cx = (cx, bx) if flip else (bx, cx)
        by, cy = (cy, by) if flip else (by, cy)
        in_box = (x0 <= x1) & (y0 <= y1)
        big = in_box & ((x1 - x0 > 1.0) | (y1 - y0 > 1.0))
        mask = _block_mask(ax, ay, bx, by, cx, cy, x0, y0, x0 + 1.0 <= x1, y0 + 1.0 <= y1)
        masks[j] = (mask if in_box else 0) | (_BIG if big else 0)
        x0s[j] = x0
        y0s[j] = y0


@numba.njit(cache=True, nogil=True)
def _raster_kernel(vertices, triangles, colors, depth, triangle_ids, barycentric, image):
    """Rasterize all triangles into the buffers, in place.

    vertices (n, 3) float32, triangles (m, 3) int32 (indices checked),
    colors (n, c) float32; depth (h, w) float32 filled with -inf. Optional
    outputs are skipped when empty: triangle_ids (h, w) int32 filled with -1
    (or shape (0, 0)), barycentric (h, w, 3) float32 zeros (or (0, 0, 3)),
    image (h, w, c) float32 zeros (c = 0 for none).
    """
    height, width = depth.shape
    store_ids = triangle_ids.shape[0] > 0
    store_bary = barycentric.shape[0] > 0
    channels = image.shape[2]
    xs = np.empty((3, _CHUNK))
    ys = np.empty((3, _CHUNK))
    x0s = np.empty(_CHUNK)
    y0s = np.empty(_CHUNK)
    masks = np.empty(_CHUNK, np.int64)
    hits = np.empty(_CHUNK, np.int64)
    n_triangles = triangles.shape[0]
    for start in range(0, n_triangles, _CHUNK):
        count = min(_CHUNK, n_triangles - start)
        for j in range(count):
            for k in range(3):
                v = triangles[start + j, k]
                xs[k, j] = vertices[v, 0]
                ys[k, j] = vertices[v, 1]
        _classify_chunk(count, xs, ys, width - 1.0, height - 1.0, x0s, y0s, masks)
        # List the triangles with work to do, without a branch per triangle.
        n_hits = 0
        for j in range(count):
            hits[n_hits] = j
            n_hits += masks[j] != 0

        for h in range(n_hits):
            j = hits[h]
            t = start + j
            ia = triangles[t, 0]
            ib = triangles[t, 1]
            ic = triangles[t, 2]
            ax = xs[0, j]
            bx = xs[1, j]
            cx = xs[2, j]
            ay = ys[0, j]
            by = ys[1, j]
            cy = ys[2, j]
            az = np.float64(vertices[ia, 2])
            bz = np.float64(vertices[ib, 2])
            cz = np.float64(vertices[ic, 2])
            area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
            # area is finite exactly when all six x, y are (it is built from
            # all of them with +, -, * only), and nine float32 cannot overflow.
            if area == 0.0 or not np.isfinite(area + (az + bz + cz)):
                continue
            # Signed: the weights, from the edge functions in the given vertex
            # order, come out positive for either orientation.
            inv_area = 1.0 / area

            mask = masks[j]
            big = (mask & _BIG) != 0
            mask &= _BIG - 1
            # b and c in the order of positive area, for the coverage tests.
            pos_bx, pos_cx = (bx, cx) if area > 0.0 else (cx, bx)
            pos_by, pos_cy = (by, cy) if area > 0.0 else (cy, by)
            col0 = int(x0s[j])
            row0 = int(y0s[j])
            col1 = int(min(np.floor(max(ax, bx, cx)), width - 1.0)) if big else col0
            row1 = int(min(np.floor(max(ay, by, cy)), height - 1.0)) if big else row0
            block_col = col0
            block_row = row0
            while True:
                while mask:
                    q = _LOWEST_BIT[mask]
                    mask &= mask - 1
                    row = block_row + (q >> 1)
                    col = block_col + (q & 1)
                    py = np.float64(row)
                    px = np.float64(col)
                    ax_ = ax - px
                    bx_ = bx - px
                    cx_ = cx - px
                    ay_ = ay - py
                    by_ = by - py
                    cy_ = cy - py
                    wa = (bx_ * cy_ - by_ * cx_) * inv_area
                    wb = (cx_ * ay_ - cy_ * ax_) * inv_area
                    wc = (ax_ * by_ - ay_ * bx_) * inv_area
                    z = np.float32(wa * az + wb * bz + wc * cz)
                    # Strict test: on a tie the earlier triangle keeps the pixel.
                    if z > depth[row, col]:
                        depth[row, col] = z
                        if store_ids:
                            triangle_ids[row, col] = t
                        wa32 = np.float32(wa)
                        wb32 = np.float32(wb)
                        wc32 = np.float32(wc)
                        if store_bary:
                            barycentric[row, col, 0] = wa32
                            barycentric[row, col, 1] = wb32
                            barycentric[row, col, 2] = wc32
                        for k in range(channels):
                            # Same float32 expression as `interpolate` and `gather`.
                            image[row, col, k] = (
                                wa32 * colors[ia, k] + wb32 * colors[ib, k] + wc32 * colors[ic, k]
                            )
                if not big:
                    break
                # Next 2 x 2 block of a big bounding box, row by row.
                block_col += 2
                if block_col > col1:
                    block_col = col0
                    block_row += 2
                    if block_row > row1:
                        break
                mask = _block_mask(
                    ax, ay, pos_bx, pos_by, pos_cx, pos_cy, block_col, block_row,
                    block_col + 1 <= col1, block_row + 1 <= row1,
                )


@numba.njit(cache=True, nogil=True)
def _gather_kernel(pixels, vertex_ids, weights, attributes, out):
    """out (h * w, c) float32 zeros; writes the interpolated attributes (n, c) at pixels."""
    channels = attributes.shape[1]
    for p in range(pixels.shape[0]):
        q = pixels[p]
        ia = vertex_ids[p, 0]
        ib = vertex_ids[p, 1]
        ic = vertex_ids[p, 2]
        wa = weights[p, 0]
        wb = weights[p, 1]
        wc = weights[p, 2]
        for k in range(channels):
            out[q, k] = wa * attributes[ia, k] + wb * attributes[ib, k] + wc * attributes[ic, k]


# ---------------------------------------------------------------------------
# Input checks


def _check_size(height, width):
    try:
        h, w = operator.index(height), operator.index(width)
    except TypeError:
        h = w = 0
    if h <= 0 or w <= 0:
        raise InputError(f"image size must be positive integers, got height={height!r}, width={width!r}")
    return h, w


def _as_vertices(vertices):
    try:
        v = np.ascontiguousarray(vertices, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise InputError(f"vertices must be numeric: {e}") from None
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] == 0:
        raise InputError(f"vertices must have shape (n, 3) with n >= 1, got {np.shape(vertices)}")
    return v


def _as_triangles(triangles, n_vertices):
    t = np.asarray(triangles)
    if t.ndim != 2 or t.shape[1] != 3:
        raise InputError(f"triangles must have shape (m, 3), got {t.shape}")
    if t.shape[0] == 0:
        raise InputError("triangles is empty")
    if not np.issubdtype(t.dtype, np.integer):
        raise InputError(f"triangles must be integer vertex indices, got dtype {t.dtype}")
    lo, hi = t.min(), t.max()
    if lo < 0 or hi >= n_vertices:
        raise InputError(f"triangle vertex index out of range [0, {n_vertices}): min {lo}, max {hi}")
    return np.ascontiguousarray(t, dtype=np.int32)


def _as_attributes(attributes, n_vertices=None):
    """(n, c) contiguous float32; (n,) becomes (n, 1). n must equal n_vertices if given."""
    try:
        a = np.ascontiguousarray(attributes, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise InputError(f"attributes must be numeric: {e}") from None
    if a.ndim == 1:
        a = a[:, None]
    n = "n" if n_vertices is None else n_vertices
    if a.ndim != 2 or a.shape[0] == 0 or (n_vertices is not None and a.shape[0] != n_vertices):
        raise InputError(f"attributes must have shape ({n},) or ({n}, c), got {np.shape(attributes)}")
    return a


# ---------------------------------------------------------------------------
# Public API


def rasterize(vertices, triangles, height, width) -> Rasterization:
    """Z-buffer rasterization of a triangle mesh.

    vertices: (n, 3) image coordinates, x = column, y = row, z larger = nearer.
    triangles: (m, 3) integer 0-based vertex indices.
    height, width: image size in pixels.
    Returns a `Rasterization` with (h, w) depth and triangle ids and (h, w, 3)
    barycentric weights. The nearest triangle wins; on an exact float32 depth
    tie the earlier triangle keeps the pixel.
    """
    height, width = _check_size(height, width)
    v = _as_vertices(vertices)
    t = _as_triangles(triangles, v.shape[0])
    depth = np.full((height, width), -np.inf, dtype=np.float32)
    ids = np.full((height, width), -1, dtype=np.int32)
    bary = np.zeros((height, width, 3), dtype=np.float32)
    _raster_kernel(
        v, t, np.zeros((v.shape[0], 0), np.float32), depth, ids, bary,
        np.zeros((height, width, 0), np.float32),
    )
    return Rasterization(depth, ids, bary)


def interpolate(raster: Rasterization, triangles, attributes) -> np.ndarray:
    """Barycentric interpolation of per-vertex attributes (n, c) or (n,).

    raster: result of `rasterize` with the same triangles (m, 3).
    Returns (h, w, c) float32, 0 where nothing covers.
    """
    ids = np.asarray(raster.triangle_ids)
    weights = np.asarray(raster.barycentric, dtype=np.float32)
    if ids.ndim != 2 or weights.shape != ids.shape + (3,):
        raise InputError(f"rasterization shapes {ids.shape} and {weights.shape} do not match")
    a = _as_attributes(attributes)
    t = _as_triangles(triangles, a.shape[0])
    if ids.max(initial=-1) >= t.shape[0]:
        raise InputError(f"the rasterization uses more than the {t.shape[0]} triangles given")
    out = np.zeros(ids.shape + (a.shape[1],), dtype=np.float32)
    covered = ids >= 0
    tri = t[ids[covered]]
    w = weights[covered]
    # Same float32 expression, in the same order, as the kernels.
    out[covered] = w[:, 0:1] * a[tri[:, 0]] + w[:, 1:2] * a[tri[:, 1]] + w[:, 2:3] * a[tri[:, 2]]
    return out


def render_colors(vertices, triangles, colors, height, width) -> np.ndarray:
    """Render per-vertex colors (n, c) or (n,) with a z-buffer.

    vertices (n, 3) and triangles (m, 3) as in `rasterize`.
    Returns (height, width, c) float32, 0 background; equal to
    interpolate(rasterize(...), triangles, colors).
    """
    height, width = _check_size(height, width)
    v = _as_vertices(vertices)
    t = _as_triangles(triangles, v.shape[0])
    c = _as_attributes(colors, v.shape[0])
    depth = np.full((height, width), -np.inf, dtype=np.float32)
    image = np.zeros((height, width, c.shape[1]), dtype=np.float32)
    _raster_kernel(
        v, t, c, depth, np.zeros((0, 0), np.int32), np.zeros((0, 0, 3), np.float32), image
    )
    return image


def vertex_visibility(vertices, depth, tolerance=1.0) -> np.ndarray:
    """Which vertices are visible in a depth map.

    vertices: (n, 3) image coordinates as in `rasterize`.
    depth: (h, w) depth map from `rasterize`, -inf where nothing covers.
    tolerance: allowed depth below the surface, in the units of z.
    Returns (n,) bool: the vertex's nearest pixel (floor(x + 0.5), floor(y + 0.5))
    is inside the image and covered, and z >= depth there - tolerance.
    """
    v = _as_vertices(vertices)
    d = np.asarray(depth)
    if d.ndim != 2:
        raise InputError(f"depth must have shape (h, w), got {d.shape}")
    height, width = d.shape
    with np.errstate(invalid="ignore"):
        col = np.floor(v[:, 0].astype(np.float64) + 0.5)
        row = np.floor(v[:, 1].astype(np.float64) + 0.5)
        inside = (col >= 0) & (col < width) & (row >= 0) & (row < height)
    visible = np.zeros(v.shape[0], dtype=bool)
    r = row[inside].astype(np.int64)
    c = col[inside].astype(np.int64)
    surface = d[r, c]
    visible[inside] = np.isfinite(surface) & (v[inside, 2] >= surface - tolerance)
    return visible


def pixel_table(vertices, triangles, height, width) -> PixelTable:
    """Precompute coverage of a mesh layout (e.g. UV coordinates) for `gather`.

    Arguments as in `rasterize`. Returns a `PixelTable` of the covered pixels.
    """
    raster = rasterize(vertices, triangles, height, width)
    t = np.asarray(triangles)
    ids = raster.triangle_ids.ravel()
    pixels = np.flatnonzero(ids >= 0).astype(np.int64)
    vertex_ids = np.ascontiguousarray(t[ids[pixels]], dtype=np.int32)
    weights = np.ascontiguousarray(raster.barycentric.reshape(-1, 3)[pixels])
    return PixelTable(pixels, vertex_ids, weights, raster.depth.shape[0], raster.depth.shape[1])


def gather(table: PixelTable, attributes) -> np.ndarray:
    """Interpolate per-vertex attributes (n, c) or (n,) over a `PixelTable`.

    Returns (height, width, c) float32, 0 background; equal to render_colors on
    the layout the table was built from when all its depths are equal.
    """
    a = _as_attributes(attributes)
    if table.vertex_ids.size and table.vertex_ids.max() >= a.shape[0]:
        raise InputError(f"attributes have {a.shape[0]} rows, fewer than the table's mesh")
    out = np.zeros((table.height * table.width, a.shape[1]), dtype=np.float32)
    _gather_kernel(table.pixels, table.vertex_ids, table.weights, a, out)
    return out.reshape(table.height, table.width, a.shape[1])
