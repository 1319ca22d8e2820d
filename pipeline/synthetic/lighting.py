"""Random lighting and colour of synthetic samples: the Illum_Para and Color_Para that `prn-prep synth` draws.

What the values mean when rendering is `prn.rendering.raster.shading`'s
(Lambert + Blinn-Phong, then the colour transform); the ranges are the
synthetic world's choice. All uniform; the real 300W-LP / AFLW2000-3D values
seen in ../shared/real are in brackets:
    ambient 0.45-0.85, times 0.93-1.07 per channel [0.6-1.25]
    directional 0.1-0.7, times 0.9-1.1 per channel [about -0.1-1.1, mostly 0.3-0.9]
    theta 0-60 degrees [-0.4-1.4 rad]; phi 0-2 pi [any]
    ks 0-0.2 [0-1, mostly 0]; shininess 10-30 [always 20]
    gain 0.85-1.15, times 0.95-1.05 per channel: one exposure and a mild colour
        cast (independent channels over the full range make green or purple
        faces) [0.24-1.5]
    offset -0.04-0.04 [-1-0.6]
    contrast 0.75-1.05 [always 1]
Ambient + directional stays below about 1.7, so that bright albedo does not
saturate everywhere.
"""

import numpy as np


def draw_lighting(rng):
    """Illum_Para (10,) and Color_Para (7,) float64 of one sample, drawn from the numpy Generator rng."""
    return _draw(rng, ambient=(0.45, 0.85), directional=(0.1, 0.7), theta_degrees=60, ks=0.2, shininess=(10.0, 30.0))


def draw_studio_lighting(rng):
    """Harder, more varied light than `draw_lighting` for the photo world: (Illum_Para (10,), Color_Para (7,)).

    ambient 0.2-0.75, directional 0.2-1.1 (sum still below about 1.8), theta
    0-85 degrees, ks 0-0.35, shininess 10-40; the colour transform as `draw_lighting`'s.
    """
    return _draw(rng, ambient=(0.2, 0.75), directional=(0.2, 1.1), theta_degrees=85, ks=0.35, shininess=(10.0, 40.0))


def _draw(rng, ambient, directional, theta_degrees, ks, shininess):
    """(Illum_Para, Color_Para) with the light's ranges given ((low, high) or a maximum) and the shared colour."""
    ambient = rng.uniform(*ambient) * rng.uniform(0.93, 1.07, 3)
    directional = rng.uniform(*directional) * rng.uniform(0.9, 1.1, 3)
    illum = np.concatenate([ambient, directional,
                            [rng.uniform(0.0, np.radians(theta_degrees)), rng.uniform(0.0, 2 * np.pi),
                             rng.uniform(0.0, ks), rng.uniform(*shininess)]])
    gain = rng.uniform(0.85, 1.15) * rng.uniform(0.95, 1.05, 3)
    color = np.concatenate([gain, rng.uniform(-0.04, 0.04, 3), [rng.uniform(0.75, 1.05)]])
    return illum, color
