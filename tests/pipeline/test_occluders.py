"""Tests of prn.pipeline.synthetic.occluders: where they draw, how often, determinism."""

import numpy as np

from prn.pipeline.synthetic import occluders
from prn.pipeline.synthetic.backgrounds import make_background


def test_occluders_change_pixels_only_near_the_face_box():
    h, w = 300, 360
    box = (150.0, 110.0, 230.0, 200.0)
    x0, y0, x1, y1 = occluders.occluder_region(box, h, w)
    assert (x0, y0, x1, y1) == (110, 65, 271, 246)
    changed_any = 0
    for seed in range(25):
        image = make_background(np.random.default_rng(100 + seed), h, w)
        before = image.copy()
        out = occluders.add_occluders(image, np.random.default_rng(seed), box, 1.0)
        np.testing.assert_array_equal(image, before)  # input untouched
        assert out.shape == image.shape and out.dtype == np.uint8
        diff = (out != image).any(axis=2)
        outside = diff.copy()
        outside[y0:y1, x0:x1] = False
        assert not outside.any()
        changed_any += diff[int(box[1]):int(box[3]), int(box[0]):int(box[2])].any()
        again = occluders.add_occluders(image, np.random.default_rng(seed), box, 1.0)
        assert again.tobytes() == out.tobytes()
    assert changed_any >= 23  # nearly every occluder reaches into the face box


def test_occluders_probability():
    image = make_background(np.random.default_rng(0), 100, 100)
    box = (30, 30, 70, 70)
    for seed in range(10):
        np.testing.assert_array_equal(
            occluders.add_occluders(image, np.random.default_rng(seed), box, 0.0), image)
    drawn = sum((occluders.add_occluders(image, np.random.default_rng(s), box, 0.5) != image).any()
                for s in range(60))
    assert 15 <= drawn <= 45


def test_occluders_with_a_box_partly_outside_the_image():
    image = np.full((80, 90, 3), 128, np.uint8)
    for seed in range(10):
        out = occluders.add_occluders(image, np.random.default_rng(seed), (-40, 50, 30, 140), 1.0)
        assert out.shape == image.shape
