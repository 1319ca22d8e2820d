"""Pictures: position maps as colours, shaded meshes, landmarks drawn on images."""

import numpy as np
import pytest

from prn.rendering.raster.pictures import canvas_pixels, draw_landmarks, posmap_picture, shaded_mesh
from prn.rendering.util.errors import InputError


def test_posmap_picture_stretches_each_channel_over_the_covered_pixels():
    posmap = np.zeros((4, 4, 3), np.float32)
    posmap[1:3, 1:3] = [[[10, -5, 0.5], [20, -5, 1.0]], [[10, 5, 2.0], [20, 5, 1.5]]]
    posmap[0, 0] = np.nan
    picture = posmap_picture(posmap)
    assert picture.dtype == np.uint8 and picture.shape == (4, 4, 3)
    np.testing.assert_array_equal(picture[1:3, 1:3, 0], [[0, 255], [0, 255]])
    np.testing.assert_array_equal(picture[1:3, 1:3, 1], [[0, 0], [255, 255]])
    np.testing.assert_array_equal(picture[1:3, 1:3, 2], [[0, 85], [255, 170]])
    assert picture[0].sum() == 0 and picture[:, 3].sum() == 0  # uncovered and NaN pixels are black
    covered = np.zeros((4, 4), bool)
    covered[1, 1:3] = True
    only_row = posmap_picture(posmap, covered)
    np.testing.assert_array_equal(only_row[1, 1:3], [[0, 0, 0], [255, 0, 255]])
    assert only_row[2].sum() == 0


def roof():
    """A ridge along x = 7 over pixels 2..12: two planes sloping down to x = 2 and x = 12, normals' z 0.5 there."""
    ridge = 5 * np.sqrt(3)
    vertices = np.array([[2, 2, 0], [7, 2, ridge], [12, 2, 0], [2, 12, 0], [7, 12, ridge], [12, 12, 0]], np.float32)
    return vertices, np.array([[0, 1, 3], [1, 4, 3], [1, 2, 4], [2, 5, 4]])


def test_shaded_mesh_lights_from_the_front():
    background = np.full((16, 16, 3), 10, np.uint8)
    flat = np.array([[2, 2, 0], [12, 2, 0], [2, 12, 0], [12, 12, 0]], np.float32)
    square = np.array([[0, 1, 2], [1, 3, 2]])
    lit = shaded_mesh(flat, square, background, color=(200, 100, 40), ambient=0.2)
    np.testing.assert_array_equal(lit[7, 7], [200, 100, 40])
    np.testing.assert_array_equal(lit[0, 0], [10, 10, 10])
    half = shaded_mesh(flat, square, background, color=(200, 100, 40), ambient=0.2, opacity=0.5)
    np.testing.assert_allclose(half[7, 7], [105, 55, 25], atol=1)
    sloped = shaded_mesh(*roof(), background, color=(200, 100, 40), ambient=0.2)
    np.testing.assert_allclose(sloped[7, 2], np.array([200, 100, 40]) * (0.2 + 0.8 * 0.5), atol=1)
    assert sloped[7, 7].sum() > sloped[7, 2].sum()


def test_canvas_pixels_follow_resized_pixel_centres():
    points = np.array([[0.0, 0.0], [3.0, 1.0], [np.nan, 2.0], [1e6, 0.0]])
    pixels, drawable = canvas_pixels(points, scale=2)
    np.testing.assert_array_equal(drawable, [True, True, False, False])
    np.testing.assert_array_equal(pixels[:2], [[0, 0], [6, 2]])  # (x + 0.5) * 2 - 0.5, rounded to even


def test_draw_landmarks_dots_and_crosses():
    canvas = np.zeros((20, 20, 3), np.uint8)
    points = np.array([[5.0, 5.0, 1.0], [np.nan, 3.0, 0.0], [-1e9, 2.0, 0.0]])
    assert draw_landmarks(canvas, points, (0, 255, 0), "dot", 2) is canvas
    assert tuple(canvas[5, 5]) == (0, 255, 0) and tuple(canvas[5, 7]) != (0, 0, 0)
    assert canvas[15:].sum() == 0
    crossed = draw_landmarks(np.zeros((20, 20, 3), np.uint8), [[14.0, 14.0]], (255, 0, 0), "cross", 5)
    assert [tuple(crossed[14, x]) for x in (12, 14, 16)] == [(255, 0, 0)] * 3
    assert tuple(crossed[12, 14]) == (255, 0, 0) and crossed[12, 12].sum() == 0
    scaled = draw_landmarks(np.zeros((40, 40, 3), np.uint8), [[14.0, 14.0]], (255, 0, 0), "cross", 5, scale=2)
    assert tuple(scaled[28, 28]) == (255, 0, 0)
    with pytest.raises(InputError, match="landmark marker 'star'"):
        draw_landmarks(canvas, points, marker="star")
