"""Tests of prn.pipeline.synthetic.lighting: the drawn Illum_Para and Color_Para stay in their documented ranges."""

import numpy as np

from prn.pipeline.synthetic.lighting import draw_lighting


def test_drawn_lighting_stays_in_the_documented_ranges():
    rng = np.random.default_rng(0)
    illum, color = (np.array(values) for values in zip(*(draw_lighting(rng) for _ in range(500))))
    assert illum.shape == (500, 10) and color.shape == (500, 7)
    ambient, directional = illum[:, 0:3], illum[:, 3:6]
    assert ambient.min() >= 0.45 * 0.93 and ambient.max() <= 0.85 * 1.07
    assert directional.min() >= 0.1 * 0.9 and directional.max() <= 0.7 * 1.1
    assert (ambient + directional).max() < 1.7
    assert illum[:, 6].min() >= 0.0 and illum[:, 6].max() <= np.radians(60)
    assert illum[:, 7].min() >= 0.0 and illum[:, 7].max() <= 2 * np.pi
    assert illum[:, 8].max() <= 0.2 and illum[:, 9].min() >= 10.0 and illum[:, 9].max() <= 30.0
    gain = color[:, 0:3]
    assert gain.min() >= 0.85 * 0.95 and gain.max() <= 1.15 * 1.05
    assert (gain.max(axis=1) / gain.min(axis=1)).max() <= 1.05 / 0.95  # a mild cast, never green or purple
    assert np.abs(color[:, 3:6]).max() <= 0.04
    assert color[:, 6].min() >= 0.75 and color[:, 6].max() <= 1.05


def test_same_stream_same_lighting():
    one = draw_lighting(np.random.default_rng(5))
    two = draw_lighting(np.random.default_rng(5))
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
