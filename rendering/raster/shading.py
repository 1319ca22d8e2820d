"""Vertex normals and per-vertex shading (Lambert + Blinn-Phong + colour transform).

Coordinates are image coordinates as in `rasterizer` and `geometry.pose`: x to
the right (column), y down (row), z towards the viewer (larger = nearer). This
frame is left-handed, so a triangle's winding maps to the opposite normal from
the one it has in the model's right-handed frame; `vertex_normals` takes care
of it (see there). The viewer looks along -z, i.e. the direction to the viewer is
v = (0, 0, 1).

Lighting parameters, as stored in the 300W-LP / AFLW2000-3D fields (our
documented semantics; real files were fitted by another model, so their values
are only roughly comparable):

``Illum_Para`` (10,) = [ar, ag, ab, dr, dg, db, theta, phi, ks, shininess]
    ar, ag, ab: ambient light per channel (multiplies the albedo).
    dr, dg, db: directional light per channel.
    theta, phi (radians): direction *towards* the light, see `light_direction`:
        theta = angle between the light and the viewing axis (+z), phi =
        azimuth in the image plane, counterclockwise as the viewer sees it from
        the image's +x (right) axis: phi = 0 lights from the right of the image,
        phi = pi / 2 from above (image up, -y), phi = pi from the left.
        theta = 0 is a frontal light (from the camera); theta = pi / 2 grazes.
    ks: specular strength; shininess: Blinn-Phong exponent.

``Color_Para`` (7,) = [gr, gg, gb, or, og, ob, c]
    Applied after lighting, on colours scaled to 0-1 (x = lit / 255):
    grey = 0.299 r + 0.587 g + 0.114 b (per vertex);
    mixed = grey + c * (x - grey)   (c = 1 keeps the colour, c = 0 gives grey);
    out = gain * mixed + offset     (offsets in units of the 0-1 range);
    returned as out * 255. Identity: [1, 1, 1, 0, 0, 0, 1].

The ranges `prn-prep synth` draws them from are in
`prn.pipeline.synthetic.lighting`.
"""

from __future__ import annotations

import numba
import numpy as np

from prn.rendering.util.errors import InputError

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
IDENTITY_COLOR = np.array([1, 1, 1, 0, 0, 0, 1], dtype=np.float32)


# ---------------------------------------------------------------------------
# Normals


@numba.njit(cache=True, nogil=True)
def _normals_kernel(vertices, triangles, out):
    """Area-weighted sum of face normals into out (n, 3) float64 zeros.

    Face normal (b - a) x (c - a) (twice the area, so area-weighted). Returns
    the orientation score sum_t n_t . (g_t - mu), g_t the triangle's centroid
    and mu the mean vertex: positive when the normals point away from the
    mesh's centroid (out of a convex cap). Non-finite triangles are skipped.
    NumPy twin, with `_normalize_kernel`: `vertex_normals_reference` in tests/references.py.
    """
    n_vertices = vertices.shape[0]
    mx = 0.0
    my = 0.0
    mz = 0.0
    for i in range(n_vertices):
        mx += vertices[i, 0]
        my += vertices[i, 1]
        mz += vertices[i, 2]
    mx /= n_vertices
    my /= n_vertices
    mz /= n_vertices
    score = 0.0
    for t in range(triangles.shape[0]):
        ia = triangles[t, 0]
        ib = triangles[t, 1]
        ic = triangles[t, 2]
        ax = np.float64(vertices[ia, 0])
        ay = np.float64(vertices[ia, 1])
        az = np.float64(vertices[ia, 2])
        ux = vertices[ib, 0] - ax
        uy = vertices[ib, 1] - ay
        uz = vertices[ib, 2] - az
        vx = vertices[ic, 0] - ax
        vy = vertices[ic, 1] - ay
        vz = vertices[ic, 2] - az
        nx = uy * vz - uz * vy
        ny = uz * vx - ux * vz
        nz = ux * vy - uy * vx
        if not np.isfinite(nx + ny + nz):
            continue
        out[ia, 0] += nx
        out[ia, 1] += ny
        out[ia, 2] += nz
        out[ib, 0] += nx
        out[ib, 1] += ny
        out[ib, 2] += nz
        out[ic, 0] += nx
        out[ic, 1] += ny
        out[ic, 2] += nz
        gx = (ax + vertices[ib, 0] + vertices[ic, 0]) / 3.0 - mx
        gy = (ay + vertices[ib, 1] + vertices[ic, 1]) / 3.0 - my
        gz = (az + vertices[ib, 2] + vertices[ic, 2]) / 3.0 - mz
        score += nx * gx + ny * gy + nz * gz
    return score


@numba.njit(cache=True, nogil=True)
def _normalize_kernel(sums, sign, out):
    """out (n, 3) float32 = sign * sums / |sums|, or (0, 0, 1) where |sums| is 0."""
    for i in range(sums.shape[0]):
        x = sums[i, 0]
        y = sums[i, 1]
        z = sums[i, 2]
        norm = np.sqrt(x * x + y * y + z * z)
        if norm > 0.0:
            scale = sign / norm
            out[i, 0] = x * scale
            out[i, 1] = y * scale
            out[i, 2] = z * scale
        else:
            out[i, 0] = 0.0
            out[i, 1] = 0.0
            out[i, 2] = 1.0


def _check_mesh(vertices, triangles):
    v = np.ascontiguousarray(vertices, dtype=np.float32)
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] == 0:
        raise InputError(f"vertices must have shape (n, 3) with n >= 1, got {np.shape(vertices)}")
    t = np.asarray(triangles)
    if t.ndim != 2 or t.shape[1] != 3 or not np.issubdtype(t.dtype, np.integer):
        raise InputError(f"triangles must be integer indices of shape (m, 3), "
                         f"got {t.dtype} {t.shape}")
    if t.size and (t.min() < 0 or t.max() >= v.shape[0]):
        raise InputError(f"triangle vertex index out of range [0, {v.shape[0]})")
    return v, np.ascontiguousarray(t, dtype=np.int32)


def vertex_normals(vertices, triangles, orient=True) -> np.ndarray:
    """Unit vertex normals: the area-weighted sum of the adjacent face normals.

    vertices: (n, 3) image coordinates (x right, y down, z towards the viewer).
    triangles: (m, 3) integer 0-based vertex indices.
    orient: the sign convention.
        True (default): all normals are flipped together if needed so that they
            point out of the surface's convex side, away from the mean vertex
            (decided by the sign of sum_t n_t . (centroid_t - mean vertex)).
            For a face or head mesh that is outwards whatever the triangles'
            winding, so a face turned to the camera has normals towards +z.
            Not meaningful for a flat mesh (the score is about 0).
        False: the winding decides: the face normal is (b - a) x (c - a)
            computed in image coordinates. That is outward for the Basel Face
            Model's winding (its triangles run clockwise seen from outside in
            the model's right-handed frame, y up).
    A vertex in no (finite, non-degenerate) triangle gets (0, 0, 1).
    Returns (n, 3) float32. Note: mirroring the image (x -> w - 1 - x) flips
    the winding; with orient=True that does not matter.
    """
    v, t = _check_mesh(vertices, triangles)
    sums = np.zeros(v.shape, np.float64)
    score = _normals_kernel(v, t, sums)
    sign = -1.0 if (orient and score < 0.0) else 1.0
    out = np.empty(v.shape, np.float32)
    _normalize_kernel(sums, sign, out)
    return out


# ---------------------------------------------------------------------------
# Shading


def light_direction(theta, phi) -> np.ndarray:
    """Unit vector towards the light in image coordinates (x right, y down, z to the viewer).

    l = (sin theta cos phi, -sin theta sin phi, cos theta): theta from the
    viewing axis +z, phi counterclockwise (as the viewer sees it) from image
    right; the y sign makes phi = pi / 2 point to the image's top.
    """
    st = np.sin(theta)
    return np.array([st * np.cos(phi), -st * np.sin(phi), np.cos(theta)], dtype=np.float64)


def _params(values, size, name):
    p = np.asarray(values, dtype=np.float64).ravel()
    if p.shape != (size,) or not np.isfinite(p).all():
        raise InputError(f"{name} must have {size} finite values, got shape {np.shape(values)}")
    return p


def color_transform(rgb, color) -> np.ndarray:
    """Apply `Color_Para` (7,) to colours (..., 3) on the 0-255 scale; float32, not clipped.

    gain * (grey + c (x - grey)) + offset, computed on the 0-255 scale as
    (gain c) x + gain (1 - c) grey + 255 offset.
    """
    c = _params(color, 7, "Color_Para")
    x = np.asarray(rgb, dtype=np.float64)
    grey = (x @ LUMA.astype(np.float64))[..., None]
    out = x * (c[0:3] * c[6]) + grey * (c[0:3] * (1.0 - c[6])) + c[3:6] * 255.0
    return out.astype(np.float32)


@numba.njit(cache=True, nogil=True)
def _shade_kernel(albedo, normals, ambient, directional, light, half, ks, shininess,
                  gain_c, gain_grey, offset, out):
    """One pass of `shade` per vertex. NumPy twin: `shade_reference` in tests/references.py."""
    lx, ly, lz = light[0], light[1], light[2]
    hx, hy, hz = half[0], half[1], half[2]
    for i in range(albedo.shape[0]):
        nx = normals[i, 0]
        ny = normals[i, 1]
        nz = normals[i, 2]
        n_dot_l = max(nx * lx + ny * ly + nz * lz, np.float32(0.0))
        spec = np.float32(0.0)
        if ks != 0.0 and n_dot_l > 0.0:
            n_dot_h = max(nx * hx + ny * hy + nz * hz, np.float32(0.0))
            spec = n_dot_h ** shininess * ks
        r = albedo[i, 0] * (ambient[0] + directional[0] * n_dot_l) + spec * directional[0]
        g = albedo[i, 1] * (ambient[1] + directional[1] * n_dot_l) + spec * directional[1]
        b = albedo[i, 2] * (ambient[2] + directional[2] * n_dot_l) + spec * directional[2]
        grey = r * np.float32(0.299) + g * np.float32(0.587) + b * np.float32(0.114)
        out[i, 0] = r * gain_c[0] + grey * gain_grey[0] + offset[0]
        out[i, 1] = g * gain_c[1] + grey * gain_grey[1] + offset[1]
        out[i, 2] = b * gain_c[2] + grey * gain_grey[2] + offset[2]


def _shading_terms(illum, color):
    """float32 constants of `shade`: ambient, directional, l, h (or 0), 255 ks, shininess,
    gain * c, gain * (1 - c), 255 * offset."""
    p = _params(illum, 10, "Illum_Para")
    c = _params(color, 7, "Color_Para")
    light = light_direction(p[6], p[7])
    half = light + (0.0, 0.0, 1.0)
    norm = np.linalg.norm(half)
    # Light exactly opposite the viewer: no highlight direction (and n . l > 0 never
    # meets n . h > 0 usefully); use 0.
    half = half / norm if norm > 1e-12 else np.zeros(3)
    f32 = np.float32
    return (p[0:3].astype(f32), p[3:6].astype(f32), light.astype(f32), half.astype(f32),
            f32(255.0 * p[8]), f32(p[9]), (c[0:3] * c[6]).astype(f32),
            (c[0:3] * (1.0 - c[6])).astype(f32), (c[3:6] * 255.0).astype(f32))


def _check_shading_inputs(albedo, normals):
    albedo = np.ascontiguousarray(albedo, dtype=np.float32)
    normals = np.ascontiguousarray(normals, dtype=np.float32)
    if albedo.ndim != 2 or albedo.shape[1] != 3 or normals.shape != albedo.shape:
        raise InputError(f"albedo {albedo.shape} and normals {normals.shape} must both be (n, 3)")
    return albedo, normals


def shade(albedo, normals, illum, color=IDENTITY_COLOR) -> np.ndarray:
    """Per-vertex colours from albedo, normals, `Illum_Para` and `Color_Para`.

    albedo: (n, 3) RGB on the 0-255 scale (e.g. MorphableModel.colors).
    normals: (n, 3) unit normals in image coordinates (`vertex_normals`).
    illum: `Illum_Para` (10,), color: `Color_Para` (7,): see the module docstring.
    lit = albedo * (ambient + directional * max(0, n . l))
          + 255 * ks * directional * max(0, n . h) ** shininess   (only where n . l > 0)
    with l = light_direction(theta, phi), h = normalize(l + (0, 0, 1)) (viewer
    along +z); then `color_transform`. Returns (n, 3) float32 on the 0-255
    scale, NOT clipped (values may leave 0-255; clip when converting to an
    image, as `prn.rendering.raster.composite.composite` does).
    """
    albedo, normals = _check_shading_inputs(albedo, normals)
    out = np.empty_like(albedo)
    _shade_kernel(albedo, normals, *_shading_terms(illum, color), out)
    return out
