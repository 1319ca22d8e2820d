"""Glasses for a synthetic face: two rims, a bridge and two temples as thin tubes, sometimes dark lenses.

Built from the sample's own landmarks before its pose (model units, the BFM's
axes: x across the face, y up, z towards the viewer), so they sit on any
model, and drawn in the face's z-buffer as the dressing is. Clear lenses are
left out: the z-buffer draws no transparency, and a clear lens changes little
of a photo.
"""

import numpy as np

from prn.pipeline.synthetic.dressing import Part, grid_triangles

GLASSES_PROBABILITY = 0.2
SUNGLASSES_SHARE = 0.25
FRAME_COLOURS = np.array([[20, 20, 22], [60, 40, 30], [110, 70, 40], [190, 170, 120], [175, 178, 182],
                          [140, 30, 40]], np.float32)
LENS_COLOUR = np.array([18.0, 20.0, 24.0], np.float32)
RIM_POINTS, TUBE_SIDES = 48, 6


def _tube(path, radius, colour) -> Part:
    """A tube of `radius` along path (k, 3): (k x TUBE_SIDES) vertices."""
    tangent = np.gradient(path, axis=0)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-12)
    helper = np.where(np.abs(tangent[:, 2:3]) < 0.9, [[0.0, 0.0, 1.0]], [[1.0, 0.0, 0.0]])
    first = np.cross(tangent, helper)
    first /= np.linalg.norm(first, axis=1, keepdims=True)
    second = np.cross(tangent, first)
    angle = np.linspace(0.0, 2 * np.pi, TUBE_SIDES, endpoint=False)
    ring = np.cos(angle)[None, :, None] * first[:, None] + np.sin(angle)[None, :, None] * second[:, None]
    points = path[:, None] + radius * ring
    return Part(points.reshape(-1, 3), grid_triangles(len(path), TUBE_SIDES, wrap=True),
                np.tile(colour, (points.shape[0] * TUBE_SIDES, 1)).astype(np.float32))


def _rim_outline(centre, half_width, half_height, power):
    """(RIM_POINTS + 1, 3) a closed superellipse around centre in the plane z = centre's (the first point repeated)."""
    angle = np.linspace(0.0, 2 * np.pi, RIM_POINTS + 1)
    cos, sin = np.cos(angle), np.sin(angle)
    x = half_width * np.sign(cos) * np.abs(cos) ** (2.0 / power)
    y = half_height * np.sign(sin) * np.abs(sin) ** (2.0 / power)
    return centre + np.stack([x, y, np.zeros_like(x)], axis=-1)


def _lens(outline, colour) -> Part:
    """A flat fan filling a closed outline (k, 3)."""
    points = np.concatenate([outline[:-1].mean(axis=0, keepdims=True), outline[:-1]])
    count = len(outline) - 1
    spokes = np.arange(1, count + 1)
    triangles = np.stack([np.zeros(count, int), spokes, spokes % count + 1], axis=-1).astype(np.int32)
    return Part(points, triangles, np.tile(colour, (len(points), 1)))


def glasses(rng, landmarks) -> list[Part]:
    """Glasses for one sample ([] for most): Parts in model units.

    landmarks (68, 3) model units, the sample's landmarks before its pose.
    """
    if rng.random() >= GLASSES_PROBABILITY:
        return []
    landmarks = np.asarray(landmarks, np.float64)
    eyes = [landmarks[36:42], landmarks[42:48]]
    eye_width = np.mean([np.ptp(eye[:, 0]) for eye in eyes])
    half_width, half_height = rng.uniform(0.7, 0.95) * eye_width, rng.uniform(0.42, 0.7) * eye_width
    power = rng.uniform(2.0, 6.0)
    radius = rng.uniform(0.03, 0.08) * eye_width
    front = max(landmarks[27, 2], max(eye[:, 2].max() for eye in eyes)) + rng.uniform(0.15, 0.35) * eye_width
    colour = FRAME_COLOURS[rng.integers(len(FRAME_COLOURS))] * rng.uniform(0.8, 1.2)
    parts, outlines = [], []
    for eye in eyes:
        centre = eye.mean(axis=0)
        centre = np.array([centre[0], centre[1] - 0.1 * eye_width, front])
        outlines.append(_rim_outline(centre, half_width, half_height, power))
        parts.append(_tube(outlines[-1], radius, colour))
    inner = [outline[np.argmin(np.abs(outline[:, 0] - landmarks[27, 0]))] for outline in outlines]
    arch = np.linspace(0.0, 1.0, 12)
    bridge = inner[0] + arch[:, None] * (inner[1] - inner[0])
    bridge[:, 1] += 0.25 * eye_width * np.sin(np.pi * arch)
    parts.append(_tube(bridge, radius, colour))
    for outline, ear in zip(outlines, (landmarks[0], landmarks[16])):
        hinge = outline[np.argmax(np.abs(outline[:, 0] - landmarks[27, 0]))]
        end = np.array([landmarks[27, 0] + 1.04 * (ear[0] - landmarks[27, 0]), hinge[1], ear[2] - 0.8 * eye_width])
        parts.append(_tube(hinge + np.linspace(0.0, 1.0, 16)[:, None] * (end - hinge), radius, colour))
    if rng.random() < SUNGLASSES_SHARE:
        parts += [_lens(outline + (0.0, 0.0, -0.5 * radius), LENS_COLOUR) for outline in outlines]
    return parts
