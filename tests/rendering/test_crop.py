import numpy as np
import pytest
from references import crop_positions_reference

from prn.pipeline.sample_geometry import to_float16
from prn.rendering.geometry.crop import (
    CROP_CENTER,
    crop_box,
    crop_center,
    crop_positions,
    crop_transform,
    model_to_crop,
    positions_in_crop,
)
from prn.rendering.geometry.pose import image_vertices, rotation_matrices
from prn.rendering.util.errors import InputError


def test_crop_transform_maps_the_square_corners():
    transform = crop_transform(100.0, 80.0, 50.0, out_size=256)
    corners = np.array([[75.0, 55.0, 1], [75.0, 105.0, 1], [125.0, 55.0, 1]]) @ transform.T
    np.testing.assert_allclose(corners[:, :2], [[0, 0], [0, 255], [255, 0]], atol=1e-9)
    with pytest.raises(InputError):
        crop_transform(0, 0, 0)


@pytest.mark.parametrize("size", [256, 128, 5])
def test_the_crop_centre_is_where_crop_transform_puts_the_squares_centre(size):
    centre = crop_transform(100.0, 80.0, 50.0, out_size=size) @ [100.0, 80.0, 1.0]
    np.testing.assert_allclose(centre[:2], [crop_center(size)] * 2, atol=1e-9)
    assert CROP_CENTER == crop_center(256) == 127.5 and crop_center(5) == 2.0   # pixel 2 of 0..4


def test_crop_box_of_formats_section_6():
    points = np.array([[10.0, 20.0], [30.0, 60.0]])
    cx, cy, side = crop_box(points)
    assert (cx, cy) == (20.0, 40.0) and side == pytest.approx(1.5 * 30.0)
    cx, cy, side = crop_box(points, shift=(0.1, -0.1), size_factor=1.1)
    assert (cx, cy) == (23.0, 37.0) and side == pytest.approx(1.5 * 30.0 * 1.1)


def test_crop_positions_equal_positions_in_crop_of_the_image_vertices():
    rng = np.random.default_rng(0)
    vertices = (rng.normal(size=(5000, 3)) * 6e4).astype(np.float32)
    for _ in range(5):
        pose = np.r_[rng.uniform(-1, 1, 3), rng.uniform(100, 300, 3), rng.uniform(1e-3, 2e-3)]
        placed = image_vertices(vertices, pose, 450)
        transform = crop_transform(*crop_box(placed[:68, :2], 1.5, rng.uniform(-0.1, 0.1, 2), 1.05))
        reference = positions_in_crop(placed, transform)
        fast = crop_positions(vertices, *model_to_crop(rotation_matrices(pose[:3]), pose, 450, transform))
        np.testing.assert_allclose(fast, reference, atol=2e-3)
        assert fast[:, 2].min() == 0.0


def test_crop_positions_kernel_matches_its_numpy_twin():
    rng = np.random.default_rng(2)
    vertices = (rng.normal(size=(3000, 3)) * 6e4).astype(np.float32)
    for _ in range(3):
        pose = np.r_[rng.uniform(-1, 1, 3), rng.uniform(100, 300, 3), rng.uniform(1e-3, 2e-3)]
        transform = crop_transform(*rng.uniform(100, 300, 2), rng.uniform(100, 200))
        matrix, offset = model_to_crop(rotation_matrices(pose[:3]), pose, 450, transform)
        np.testing.assert_array_equal(crop_positions(vertices, matrix, offset),
                                      crop_positions_reference(vertices, matrix, offset))


def test_opencv_float16_is_numpy_float16():
    rng = np.random.default_rng(1)
    values = (rng.normal(size=(64, 64, 3)) * 300).astype(np.float32)
    values[0, 0] = [65519.0, -0.0, 1e-8]
    np.testing.assert_array_equal(to_float16(values).view(np.uint16), values.astype(np.float16).view(np.uint16))
