"""Tests of prn.rendering.raster.composite: a face over a background, a patch through a mask."""

import numpy as np
import pytest
from references import blend_reference, composite_reference

from prn.rendering.raster.composite import blend_patch, composite


def disc_scene(h=60, w=70, seed=0):
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:h, 0:w]
    coverage = (xs - 30.3) ** 2 + (ys - 27.6) ** 2 <= 17.2 ** 2
    face = np.where(coverage[:, :, None], rng.uniform(-30, 290, (h, w, 3)), 0).astype(np.float32)
    background = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    return face, coverage, background


def test_composite_keeps_background_outside_and_face_inside():
    face, coverage, background = disc_scene()
    out = composite(face, coverage, background)
    assert out.dtype == np.uint8 and out.shape == background.shape
    near = np.zeros_like(coverage)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            near |= np.roll(np.roll(coverage, dy, 0), dx, 1)
    np.testing.assert_array_equal(out[~near], background[~near])
    interior = coverage.copy()
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            interior &= np.roll(np.roll(coverage, dy, 0), dx, 1)
    expected = np.floor(np.clip(face, 0, 255) + 0.5).astype(np.uint8)
    np.testing.assert_array_equal(out[interior], expected[interior])
    # The rim is blended: neither pure background nor pure face everywhere.
    rim = near & ~interior
    assert (out[rim] != background[rim]).any() and (out[rim] != expected[rim]).any()


def test_composite_edge_is_soft():
    h, w = 20, 20
    coverage = np.zeros((h, w), bool)
    coverage[:, 10:] = True
    face = np.full((h, w, 3), 200.0, np.float32) * coverage[:, :, None]
    out = composite(face, coverage, np.zeros((h, w, 3), np.uint8))[5, :, 0]
    np.testing.assert_array_equal(out[7:13], [0, 0, 50, 150, 200, 200])


def test_composite_kernel_matches_its_numpy_twin_and_takes_views():
    face, coverage, background = disc_scene(seed=2)
    rgba = np.concatenate([face, np.ones(face.shape[:2] + (1,), np.float32)], axis=2)
    out = composite(rgba[:, :, :3], coverage, background)
    expected = composite_reference(face, coverage, background)
    assert np.abs(out.astype(int) - expected).max() <= 1
    # Face touching the image border.
    coverage[:, :3] = True
    face[:, :3] = 100
    out = composite(face, coverage, background)
    expected = composite_reference(face, coverage, background)
    assert np.abs(out.astype(int) - expected).max() <= 1


def test_composite_without_face_returns_background():
    background = np.random.default_rng(0).integers(0, 256, (10, 12, 3), dtype=np.uint8)
    out = composite(np.zeros((10, 12, 3), np.float32), np.zeros((10, 12), bool), background)
    np.testing.assert_array_equal(out, background)
    assert out is not background
    with pytest.raises(ValueError):
        composite(np.zeros((10, 12, 3)), np.zeros((10, 11), bool), background)


def test_blend_kernel_matches_its_numpy_twin():
    rng = np.random.default_rng(3)
    dst = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    rgb = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    mask = rng.integers(0, 256, (40, 50), dtype=np.uint8)
    mask[::3] = 0
    wy = rng.uniform(0, 1, 40).astype(np.float32)
    wx = rng.uniform(0, 1, 50).astype(np.float32)
    expected = blend_reference(dst, rgb, mask, np.float32(0.9 / 255), wy, wx)
    blend_patch(dst, rgb, mask, 0, 0, np.float32(0.9 / 255), wy, wx)
    assert np.abs(dst.astype(int) - expected).max() <= 1
    assert (dst != expected).mean() < 0.01


def test_blend_patch_sticking_out_blends_only_the_overlap():
    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    rgb = rng.integers(0, 256, (20, 25, 3), dtype=np.uint8)
    mask = rng.integers(0, 256, (20, 25), dtype=np.uint8)
    out = image.copy()
    blend_patch(out, rgb, mask, -5, 18)  # 5 columns out on the left, 8 rows out at the bottom
    ones_y, ones_x = np.ones(12, np.float32), np.ones(20, np.float32)
    expected = image.copy()
    expected[18:, :20] = blend_reference(image[18:, :20], rgb[:12, 5:], mask[:12, 5:], 1.0 / 255, ones_y, ones_x)
    assert np.abs(out.astype(int) - expected).max() <= 1
    np.testing.assert_array_equal(out[:18], image[:18])
    np.testing.assert_array_equal(out[:, 20:], image[:, 20:])
