"""The rest of a person around a synthetic face: cranium, hair, neck and clothed shoulders.

The morphable model covers the face, the ears and the front of the neck; a
photo shows a whole head on a body. These meshes are built in the built-in
head's frame (`head`: mm, x to the subject's left, y up, z towards the viewer),
fitted to each sample by its jaw-end landmarks (0 and 16), so they sit on any
model with the BFM's axes, and are drawn in the same z-buffer as the face: the
image shows a person while the position map still holds only the face.
"""

import functools
from dataclasses import dataclass

import numpy as np

from prn.pipeline.synthetic.head import neck_section
from prn.pipeline.synthetic.landmarks import JAW_END_TARGET
from prn.pipeline.synthetic.shapes import smoothstep
from prn.rendering.geometry.pose import rotation_matrices

# The cranium: a superellipsoid close to `head`'s skull around the face, rounder on top.
CRANIUM_CENTRE = np.array([0.0, 35.0, 3.0])  # mm
CRANIUM_RADII = (78.0, 118.0, 103.0)         # mm: half-width, height, depth
CRANIUM_EXPONENT = 2.3
CAP_ROWS, CAP_COLUMNS = 44, 120             # vertex grid of the cranium and the hair: elevation x azimuth
CRANIUM_INSET = 2.0                         # mm under the skull, so the face wins where they meet
FACE_REGION_TOP = 80.0                      # mm: below this, in front, the face mesh covers the head
NECK_TOP, NECK_BOTTOM = 20.0, -260.0        # mm
TORSO_CENTRE = np.array([0.0, -330.0, -5.0])
SHOULDER_PIVOT = np.array([0.0, -130.0, 5.0])

# Albedo (RGB 0-255) of natural hair colours and how often each is drawn.
HAIR_COLOURS = np.array([[22, 18, 16], [48, 34, 26], [85, 58, 38], [130, 92, 60], [190, 150, 100],
                         [120, 55, 30], [140, 136, 132], [205, 200, 195]], np.float32)
HAIR_WEIGHTS = np.array([0.3, 0.25, 0.15, 0.1, 0.08, 0.04, 0.05, 0.03])


@dataclass(frozen=True)
class Part:
    """One mesh of the dressing: vertices (m, 3) float64 model units, triangles (k, 3) int32, albedo (m, 3) float32."""
    vertices: np.ndarray
    triangles: np.ndarray
    albedo: np.ndarray


def grid_triangles(rows, columns, wrap) -> np.ndarray:
    """Triangles (k, 3) int32 of a rows x columns vertex grid (row-major); wrap joins the last column to the first."""
    row, column = np.meshgrid(np.arange(rows - 1), np.arange(columns if wrap else columns - 1), indexing="ij")
    a = row * columns + column
    b = row * columns + (column + 1) % columns
    return np.concatenate([np.stack([a, a + columns, b], -1).reshape(-1, 3),
                           np.stack([b, a + columns, b + columns], -1).reshape(-1, 3)]).astype(np.int32)


def kept_triangles(triangles, keep) -> np.ndarray:
    """The triangles whose three vertices are all kept; keep (m,) bool."""
    return triangles[keep[triangles].all(axis=1)]


def _cap_radius(direction, inflate=0.0):
    """Distance (mm) from CRANIUM_CENTRE along unit directions (..., 3) to the cranium grown by `inflate` mm."""
    radii = np.asarray(CRANIUM_RADII) + inflate
    level = (np.abs(direction / radii) ** CRANIUM_EXPONENT).sum(axis=-1)
    return level ** (-1.0 / CRANIUM_EXPONENT)


def _directions(elevation, azimuth):
    """Unit directions (..., 3) at elevation and azimuth (radians; azimuth 0 faces the viewer, pi / 2 the left ear)."""
    elevation, azimuth = np.broadcast_arrays(elevation, azimuth)
    return np.stack([np.sin(azimuth) * np.cos(elevation), np.sin(elevation),
                     np.cos(azimuth) * np.cos(elevation)], axis=-1)


@functools.cache
def _cranium_grid():
    """Elevation and azimuth (CAP_ROWS, CAP_COLUMNS), radians, of the cranium's vertices."""
    return np.meshgrid(np.radians(np.linspace(-40.0, 90.0, CAP_ROWS)),
                       np.linspace(0.0, 2 * np.pi, CAP_COLUMNS, endpoint=False), indexing="ij")


def _smooth_noise(rng, azimuth, scale):
    """A smooth random function of azimuth (radians), about unit amplitude."""
    k = np.arange(1, 6)
    phases, amplitudes = rng.uniform(0, 2 * np.pi, 5), rng.normal(0.0, 1.0, 5) / k
    return np.sin(np.multiply.outer(azimuth, k) + phases) @ amplitudes * scale


def _cranium(skin):
    elevation, azimuth = _cranium_grid()
    direction = _directions(elevation, azimuth)
    points = CRANIUM_CENTRE + _cap_radius(direction, -CRANIUM_INSET)[..., None] * direction
    covered_by_face = (np.cos(azimuth) > 0.2) & (points[..., 1] < FACE_REGION_TOP)
    triangles = kept_triangles(grid_triangles(*azimuth.shape, wrap=True), ~covered_by_face.reshape(-1))
    return Part(points.reshape(-1, 3), triangles, np.tile(skin, (points[..., 0].size, 1)))


def _hair_albedo(rng, base, azimuth, height):
    """Strands: stripes along the fall of the hair, with a per-strand brightness jitter."""
    frequency = rng.uniform(60.0, 160.0)
    strands = np.sin(frequency * azimuth + 0.02 * height + _smooth_noise(rng, azimuth, 3.0))
    jitter = rng.normal(0.0, 0.08, azimuth.shape)
    gain = np.clip(0.85 + 0.2 * strands + jitter, 0.4, 1.4)
    return (base * gain[..., None]).reshape(-1, 3).astype(np.float32)


def _hair(rng):
    """The hair shell over the cranium down to a hairline and, for long hair, a curtain falling from it; [] if bald.

    The shell's rows run from the crown down to the hairline in every column,
    so its border follows the hairline instead of the grid.
    """
    if rng.random() < 0.08:
        return []
    azimuth = np.linspace(0.0, 2 * np.pi, CAP_COLUMNS, endpoint=False)
    base = HAIR_COLOURS[rng.choice(len(HAIR_COLOURS), p=HAIR_WEIGHTS)] * rng.uniform(0.8, 1.2)
    volume = rng.uniform(3.0, 22.0)
    front = rng.uniform(38.0, 55.0) if rng.random() < 0.15 else rng.uniform(70.0, 95.0)
    back = rng.uniform(-60.0, 10.0)
    hairline = front + (back - front) * (1.0 - np.cos(azimuth)) / 2 + _smooth_noise(rng, azimuth, 4.0)
    fine = np.radians(np.linspace(-60.0, 90.0, 301))
    heights = (CRANIUM_CENTRE[1] + _cap_radius(_directions(fine[:, None], azimuth), volume) * np.sin(fine)[:, None])
    lowest = np.array([np.interp(level, column, fine) for level, column in zip(hairline, heights.T)])
    share = np.linspace(1.0, 0.0, CAP_ROWS)[:, None]
    elevation = lowest + (np.pi / 2 - lowest) * share
    direction = _directions(elevation, azimuth)
    thickness = volume * (0.6 + 0.4 * smoothstep(-20.0, 60.0, np.degrees(elevation)))
    shell = CRANIUM_CENTRE + _cap_radius(direction, thickness[..., None])[..., None] * direction
    azimuths = np.broadcast_to(azimuth, elevation.shape)
    parts = [Part(shell.reshape(-1, 3), grid_triangles(*elevation.shape, wrap=True),
                  _hair_albedo(rng, base, azimuths, shell[..., 1]))]
    if rng.random() < 0.35:
        rim = CRANIUM_CENTRE + _cap_radius(_directions(0.0, azimuth), volume)[..., None] * _directions(0.0, azimuth)
        parts.append(_curtain(rng, base, azimuth, rim))
    return parts


def _curtain(rng, base, azimuth, rim):
    """Long hair falling straight from the rim (columns, 3) of the shell at the equator, beside and behind the face."""
    length = rng.uniform(60.0, 260.0)
    drop = np.linspace(0.0, 1.0, 24)
    flare = rng.uniform(0.0, 25.0)
    outward = np.stack([np.sin(azimuth), np.zeros_like(azimuth), np.cos(azimuth)], -1)
    points = rim[None] + drop[:, None, None] * (np.array([0.0, -length, 0.0]) + flare * outward[None])
    side = np.abs(np.angle(np.exp(1j * azimuth))) > np.radians(rng.uniform(50.0, 70.0))
    keep = np.broadcast_to(side, points[..., 0].shape)
    azimuths = np.broadcast_to(azimuth, points[..., 0].shape)
    triangles = kept_triangles(grid_triangles(len(drop), len(azimuth), wrap=True), keep.reshape(-1))
    return Part(points.reshape(-1, 3), triangles, _hair_albedo(rng, base, azimuths, points[..., 1]))


def _neck(skin):
    heights = np.linspace(NECK_TOP, NECK_BOTTOM, 30)
    azimuth = np.linspace(0.0, 2 * np.pi, 64, endpoint=False)
    half_width, depth, centre_z = neck_section(heights)
    x = (half_width[:, None] - CRANIUM_INSET) * np.sin(azimuth)
    z = centre_z[:, None] + (depth[:, None] - CRANIUM_INSET) * np.cos(azimuth)
    points = np.stack([x, np.broadcast_to(heights[:, None], x.shape), z], -1)
    return Part(points.reshape(-1, 3), grid_triangles(len(heights), len(azimuth), wrap=True),
                np.tile(skin, (x.size, 1)))


def _signed_power(value, power):
    return np.sign(value) * np.abs(value) ** power


def _clothes_albedo(rng, heights, azimuth):
    colour = rng.uniform(10.0, 230.0, 3) * rng.uniform(0.3, 1.0) + rng.uniform(0.0, 40.0)
    albedo = np.broadcast_to(colour, (*heights.shape, 3)).copy()
    pattern = rng.random()
    if pattern < 0.25:
        stripes = np.sin(heights * rng.uniform(0.1, 0.5)) > 0
        albedo[stripes] *= rng.uniform(0.3, 0.7)
    elif pattern < 0.4:
        checks = (np.sin(heights * 0.2) > 0) ^ (np.sin(azimuth * rng.uniform(8.0, 30.0)) > 0)
        albedo[checks] = rng.uniform(10.0, 230.0, 3)
    return albedo.reshape(-1, 3).astype(np.float32)


def _torso(rng, turn):
    """Shoulders and chest: the top of a superellipsoid, turned by `turn` (3, 3) about the neck's base."""
    width, height, depth = rng.uniform(170.0, 230.0), 200.0, rng.uniform(90.0, 130.0)
    power = 2.0 / rng.uniform(2.5, 3.5)
    elevation, azimuth = np.meshgrid(np.radians(np.linspace(-30.0, 90.0, 30)),
                                     np.linspace(0.0, 2 * np.pi, 96, endpoint=False), indexing="ij")
    cos_e, sin_e = _signed_power(np.cos(elevation), power), _signed_power(np.sin(elevation), power)
    points = TORSO_CENTRE + np.stack([width * cos_e * _signed_power(np.sin(azimuth), power), height * sin_e,
                                      depth * cos_e * _signed_power(np.cos(azimuth), power)], -1)
    points = SHOULDER_PIVOT + (points - SHOULDER_PIVOT) @ turn.T
    return Part(points.reshape(-1, 3), grid_triangles(*elevation.shape, wrap=True),
                _clothes_albedo(rng, points[..., 1], azimuth))


def dress(rng, landmarks, skin, head_angles) -> list[Part]:
    """Cranium, hair, neck and clothed shoulders for one sample.

    landmarks (68, 3) model units, the sample's landmarks before its pose;
    skin (3,) albedo RGB 0-255 of the cranium and neck; head_angles (3,)
    [pitch, yaw, roll] radians of the pose the meshes will be placed with (the
    shoulders turn less than the head). Returns Parts in model units, drawn
    from the numpy Generator rng.
    """
    head_turn = rotation_matrices(np.asarray(head_angles, np.float64))
    body_angles = np.array([0.0, head_angles[1] * rng.uniform(0.2, 0.8), head_angles[2] * rng.uniform(0.0, 0.5)])
    turn = head_turn.T @ rotation_matrices(body_angles)
    skin = np.asarray(skin, np.float32)
    parts = [_cranium(skin), *_hair(rng), _neck(skin), _torso(rng, turn)]
    jaw_target = np.asarray(JAW_END_TARGET)
    scale = np.linalg.norm(landmarks[16] - landmarks[0]) / (2 * abs(jaw_target[0]))
    anchor_model = 0.5 * (landmarks[0] + landmarks[16])
    anchor_mm = np.array([0.0, jaw_target[1], jaw_target[2]])
    return [Part(anchor_model + scale * (part.vertices - anchor_mm), part.triangles, part.albedo) for part in parts]
