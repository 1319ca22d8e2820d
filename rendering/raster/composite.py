"""Blending into RGB uint8 images: a rendered face over a background, a patch through a mask.

`composite` puts a face over a background with a soft 1-pixel edge (the
synthetic images and the rotated views of `prn-prep augment`); `blend_patch`
blends a patch in place through a uint8 opacity mask (stickers, occluders).
Numba kernels (cache=True) do the per-pixel work. Speed (450 x 450, one core,
median): compositing about 0.25 ms.
"""

import cv2
import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _blend_kernel(dst, rgb, mask, scale, wy, wx):
    """dst (h, w, 3) uint8 in place: dst + a (rgb - dst), rounded, with the per-pixel
    opacity a = mask * scale * wy[row] * wx[col]; mask (h, w) uint8, wy (h,), wx (w,)
    float32. NumPy twin: `blend_reference` in tests/references.py."""
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


def blend_patch(image, rgb, mask, x0, y0, scale=1.0 / 255, wy=None, wx=None):
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


@numba.njit(cache=True, nogil=True, inline="always")
def _clip255(v):
    return min(max(v, np.float32(0.0)), np.float32(255.0))


@numba.njit(cache=True, nogil=True)
def _composite_kernel(face, coverage, alpha, out, r0, r1, c0, c1):
    """Blend face over out (a copy of the background) in rows r0:r1, cols c0:c1 in place.

    alpha (h, w) float32: the 3 x 3 binomial blur of coverage. Colour: the
    clipped face colour on covered pixels, the mean of the clipped colours of
    the covered 8-neighbours elsewhere. NumPy twin: `composite_reference` in tests/references.py.
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


_BINOMIAL = np.array([0.25, 0.5, 0.25], np.float32)


def _coverage_alpha(cov):
    """3 x 3 binomial ([1, 2, 1] / 4 each way) blur of a bool mask, replicated borders,
    float32 (exact multiples of 1 / 16)."""
    return cv2.sepFilter2D(cov.view(np.uint8).astype(np.float32), -1, _BINOMIAL, _BINOMIAL,
                           borderType=cv2.BORDER_REPLICATE)


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
