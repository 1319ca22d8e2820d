"""Cast shadows of a directional light (prn.rendering.raster.shadows)."""

import numpy as np
import pytest

from prn.rendering.raster.shading import light_direction
from prn.rendering.raster.shadows import lit_fraction, towards_z
from prn.rendering.util.errors import InputError


def _square(x0, y0, side, z, steps):
    """A flat square grid of (steps x steps) vertices at height z: (vertices (n, 3), triangles (m, 3))."""
    xs, ys = np.meshgrid(np.linspace(x0, x0 + side, steps), np.linspace(y0, y0 + side, steps))
    vertices = np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, float(z))], axis=-1)
    a = (np.arange(steps - 1)[:, None] * steps + np.arange(steps - 1)[None, :]).ravel()
    triangles = np.concatenate([np.stack([a, a + 1, a + steps], -1), np.stack([a + 1, a + steps + 1, a + steps], -1)])
    return vertices, triangles


def _scene():
    """A floor 100 px wide at z = 0 and a 20 px card above its middle at z = 40 (towards the viewer)."""
    floor, floor_triangles = _square(0, 0, 100, 0, 51)
    card, card_triangles = _square(40, 40, 20, 40, 11)
    return np.concatenate([floor, card]), np.concatenate([floor_triangles, card_triangles + len(floor)]), len(floor)


@pytest.mark.parametrize("seed", range(5))
def test_towards_z_turns_the_direction_onto_z(seed):
    direction = np.random.default_rng(seed).normal(size=3)
    turn = towards_z(direction)
    np.testing.assert_allclose(turn @ (direction / np.linalg.norm(direction)), [0, 0, 1], atol=1e-12)
    np.testing.assert_allclose(turn @ turn.T, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(towards_z([0, 0, -2]) @ [0, 0, -1], [0, 0, 1])


def test_a_card_shades_the_floor_under_the_light():
    vertices, triangles, floor = _scene()
    under = (np.abs(vertices[:floor, 0] - 50) < 8) & (np.abs(vertices[:floor, 1] - 50) < 8)
    frontal = lit_fraction(vertices, triangles, light_direction(0.0, 0.0))
    assert (frontal[:floor][under] == 0).all() and (frontal[:floor][~under & (np.abs(vertices[:floor, 0] - 50) > 14)]
                                                    == 1).all()
    assert (frontal[floor:] == 1).all()  # the card itself is in the light
    # Light 45 degrees from the right (+x): the shadow moves 40 px to the left (-x).
    slanted = lit_fraction(vertices, triangles, light_direction(np.radians(45.0), 0.0))
    moved = (np.abs(vertices[:floor, 0] - 10) < 6) & (np.abs(vertices[:floor, 1] - 50) < 8)
    assert (slanted[:floor][moved] == 0).all() and (slanted[:floor][under] == 1).all()


def test_softness_gives_a_penumbra():
    vertices, triangles, floor = _scene()
    hard = lit_fraction(vertices, triangles, light_direction(0.0, 0.0))
    soft = lit_fraction(vertices, triangles, light_direction(0.0, 0.0), softness=4.0)
    assert set(np.unique(hard)) == {0.0, 1.0}
    partial = (soft > 0) & (soft < 1)
    assert partial.sum() > 20
    edge = np.abs(np.maximum(np.abs(vertices[:, 0] - 50), np.abs(vertices[:, 1] - 50)) - 10)
    assert edge[partial].max() <= 5  # only near the card's outline


def test_bad_vertices_are_one_line_errors():
    with pytest.raises(InputError, match="finite"):
        lit_fraction(np.full((3, 3), np.nan), np.array([[0, 1, 2]]), (0, 0, 1))
    with pytest.raises(InputError):
        lit_fraction(np.zeros((3, 2)), np.array([[0, 1, 2]]), (0, 0, 1))
