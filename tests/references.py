"""Plain NumPy twins of the package's Numba kernels: slow and obviously right, for the tests to compare with.

One twin per kernel (or per public wrapper of a few kernels), named after the
public function it checks:
    rasterize_reference       rasterizer._raster_kernel with _classify_chunk, _block_mask, _covers, _owns
    interpolate_reference     the attribute channels of rasterizer._raster_kernel (render_colors)
    gather_reference          rasterizer._gather_kernel (gather)
    vertex_normals_reference  shading._normals_kernel and _normalize_kernel (vertex_normals)
    shade_reference           shading._shade_kernel (shade)
    blend_reference           composite._blend_kernel (blend_patch)
    composite_reference       composite._composite_kernel with _clip255, and _coverage_alpha (composite)
    crop_positions_reference  crop._affine_shift_kernel (crop_positions)
"""

import numpy as np

# ---------------------------------------------------------------------------
# Rasterizer: one triangle at a time, vectorised over the pixels of its
# bounding box, with the same inside rule, tie-break, arithmetic and z-buffer.


def _owns(p, q):
    """Top-left rule: edge p -> q of a positive-area triangle owns the centres
    on it when it points up (a left edge) or exactly right (a top edge)."""
    return q[1] < p[1] or (q[1] == p[1] and q[0] > p[0])


def rasterize_reference(vertices, triangles, height, width):
    """(depth (h, w) float32, triangle ids (h, w) int32, barycentric (h, w, 3) float32), as `rasterize`."""
    v = np.asarray(vertices, dtype=np.float32).astype(np.float64)
    depth = np.full((height, width), -np.inf, dtype=np.float32)
    ids = np.full((height, width), -1, dtype=np.int32)
    bary = np.zeros((height, width, 3), dtype=np.float32)
    for t, (ia, ib, ic) in enumerate(np.asarray(triangles)):
        a, b, c = v[ia], v[ib], v[ic]
        if not np.isfinite([a, b, c]).all():
            continue
        area = (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])
        if area == 0:
            continue
        xs, ys = (a[0], b[0], c[0]), (a[1], b[1], c[1])
        x0, x1 = max(np.ceil(min(xs)), 0), min(np.floor(max(xs)), width - 1)
        y0, y1 = max(np.ceil(min(ys)), 0), min(np.floor(max(ys)), height - 1)
        if x0 > x1 or y0 > y1:
            continue
        rows, cols = np.mgrid[int(y0) : int(y1) + 1, int(x0) : int(x1) + 1]
        px, py = cols.astype(np.float64), rows.astype(np.float64)
        ax, bx, cx = a[0] - px, b[0] - px, c[0] - px
        ay, by, cy = a[1] - py, b[1] - py, c[1] - py
        e_ab = ax * by - ay * bx
        e_bc = bx * cy - by * cx
        e_ca = cx * ay - cy * ax
        if area > 0:
            inside = (
                ((e_ab > 0) | ((e_ab == 0) & _owns(a, b)))
                & ((e_bc > 0) | ((e_bc == 0) & _owns(b, c)))
                & ((e_ca > 0) | ((e_ca == 0) & _owns(c, a)))
            )
        else:  # both orientations are drawn: the same test for a, c, b
            inside = (
                ((e_ab < 0) | ((e_ab == 0) & _owns(b, a)))
                & ((e_bc < 0) | ((e_bc == 0) & _owns(c, b)))
                & ((e_ca < 0) | ((e_ca == 0) & _owns(a, c)))
            )
        inv_area = 1.0 / area  # signed: positive weights for either orientation
        wa, wb, wc = e_bc * inv_area, e_ca * inv_area, e_ab * inv_area
        z = (wa * a[2] + wb * b[2] + wc * c[2]).astype(np.float32)
        win = inside & (z > depth[rows, cols])  # strict: ties keep the earlier triangle
        r, k = rows[win], cols[win]
        depth[r, k] = z[win]
        ids[r, k] = t
        bary[r, k] = np.stack([wa[win], wb[win], wc[win]], axis=-1).astype(np.float32)
    return depth, ids, bary


def interpolate_reference(ids, bary, triangles, attributes):
    """(h, w, c) float32 attributes (n, c) or (n,) interpolated over `rasterize_reference`'s ids and weights."""
    a = np.asarray(attributes, dtype=np.float32).reshape(len(attributes), -1)
    out = np.zeros(ids.shape + (a.shape[1],), dtype=np.float32)
    covered = ids >= 0
    tri = np.asarray(triangles)[ids[covered]]
    w = bary[covered]
    out[covered] = w[:, 0:1] * a[tri[:, 0]] + w[:, 1:2] * a[tri[:, 1]] + w[:, 2:3] * a[tri[:, 2]]
    return out


def gather_reference(table, attributes):
    """(height, width, c) float32 attributes (n, c) or (n,) interpolated over a `PixelTable`, as `gather`."""
    a = np.asarray(attributes, dtype=np.float32).reshape(len(attributes), -1)
    out = np.zeros((table.height * table.width, a.shape[1]), dtype=np.float32)
    ids, w = table.vertex_ids, table.weights
    out[table.pixels] = w[:, 0:1] * a[ids[:, 0]] + w[:, 1:2] * a[ids[:, 1]] + w[:, 2:3] * a[ids[:, 2]]
    return out.reshape(table.height, table.width, a.shape[1])


# ---------------------------------------------------------------------------
# Shading


def vertex_normals_reference(vertices, triangles, orient=True):
    """(n, 3) float32 unit vertex normals, as `vertex_normals` (float64 sums of the face normals)."""
    v = np.asarray(vertices, dtype=np.float32).astype(np.float64)
    t = np.asarray(triangles, dtype=np.int64)
    a, b, c = v[t[:, 0]], v[t[:, 1]], v[t[:, 2]]
    face = np.cross(b - a, c - a)
    finite = np.isfinite(face).all(axis=1)
    face, t = face[finite], t[finite]
    a, b, c = a[finite], b[finite], c[finite]
    index = t.ravel()
    sums = np.stack(
        [np.bincount(index, weights=np.repeat(face[:, k], 3), minlength=len(v)) for k in range(3)],
        axis=1,
    )
    score = np.sum(face * ((a + b + c) / 3.0 - v.mean(axis=0)))
    sign = -1.0 if (orient and score < 0.0) else 1.0
    norm = np.linalg.norm(sums, axis=1, keepdims=True)
    out = np.where(norm > 0, sign * sums / np.where(norm > 0, norm, 1.0), [0.0, 0.0, 1.0])
    return out.astype(np.float32)


def shade_reference(albedo, normals, illum, color=(1, 1, 1, 0, 0, 0, 1)):
    """(n, 3) float32 lit colours, 0-255, as `shade`, computed in float64 from the documented formulas."""
    albedo = np.asarray(albedo, dtype=np.float32).astype(np.float64)
    normals = np.asarray(normals, dtype=np.float32).astype(np.float64)
    p = np.asarray(illum, dtype=np.float64).ravel()
    c = np.asarray(color, dtype=np.float64).ravel()
    ambient, directional, theta, phi, ks, shininess = p[0:3], p[3:6], p[6], p[7], p[8], p[9]
    light = np.array([np.sin(theta) * np.cos(phi), -np.sin(theta) * np.sin(phi), np.cos(theta)])
    n_dot_l = np.maximum(normals @ light, 0.0)
    lit = albedo * (ambient + directional * n_dot_l[:, None])
    half = light + (0.0, 0.0, 1.0)
    if ks != 0.0 and np.linalg.norm(half) > 1e-12:
        n_dot_h = np.maximum(normals @ (half / np.linalg.norm(half)), 0.0)
        spec = np.where(n_dot_l > 0, n_dot_h ** shininess, 0.0)
        lit += spec[:, None] * directional * (255.0 * ks)
    # Color_Para on the 0-1 scale: gain * (grey + contrast * (x - grey)) + offset.
    x = lit / 255.0
    grey = (x @ [0.299, 0.587, 0.114])[:, None]
    return ((c[0:3] * (grey + c[6] * (x - grey)) + c[3:6]) * 255.0).astype(np.float32)


# ---------------------------------------------------------------------------
# Compositing


def blend_reference(dst, rgb, mask, scale, wy, wx):
    """The new dst (h, w, 3) uint8: dst + a (rgb - dst), rounded, a = mask * scale * wy[row] * wx[col]."""
    a = (mask.astype(np.float32) * np.float32(scale) * wy[:, None] * wx[None, :])[:, :, None]
    d = dst.astype(np.float32)
    v = d + a * (rgb.astype(np.float32) - d)
    return np.clip(np.floor(v + np.float32(0.5)), 0, 255).astype(np.uint8)


def composite_reference(face_rgb, coverage, background):
    """(h, w, 3) uint8: the face (h, w, 3) over the background where coverage (h, w) is, as `composite`."""
    face = np.asarray(face_rgb, dtype=np.float32)
    cov = np.asarray(coverage, dtype=bool)
    bg = np.asarray(background, dtype=np.uint8)
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


# ---------------------------------------------------------------------------
# Crops


def crop_positions_reference(vertices, matrix, offset):
    """(n, 3) float32 M @ v + b in float32 for vertices (n, 3), then the minimum z moved to 0."""
    v = np.asarray(vertices, dtype=np.float32)
    m = np.asarray(matrix, dtype=np.float32)
    b = np.asarray(offset, dtype=np.float32)
    out = m[:, 0] * v[:, 0:1] + m[:, 1] * v[:, 1:2] + m[:, 2] * v[:, 2:3] + b
    out[:, 2] -= out[:, 2].min()
    return out
