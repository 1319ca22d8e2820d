"""The dense face's shape measures (prn.model.evaluation.surface) against plain NumPy and known answers."""

import numpy as np
import pytest

from prn.model.evaluation.surface import SurfaceMeasure, placed_mean_faces
from prn.rendering.geometry.pose import rotation_matrices
from prn.rendering.morphable.uv_assets import load_uv_assets
from prn.uv_data import builtin_uv_dir


@pytest.fixture(scope="module")
def uv():
    return load_uv_assets(builtin_uv_dir(), 256)


@pytest.fixture(scope="module")
def measure(uv):
    return SurfaceMeasure(uv.face_ind, uv.triangles, uv.kpt, uv.size)


def reference_normals(points, triangles):
    """Vertex normals with a loop over the triangles: each adds its cross product to its three vertices."""
    normals = np.zeros_like(points, dtype=np.float64)
    for a, b, c in triangles:
        normal = np.cross(points[b] - points[a], points[c] - points[a])
        normals[[a, b, c]] += normal
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return np.divide(normals, length, out=np.zeros_like(normals), where=length > 0)


def test_normals_match_the_loop(uv, measure):
    rng = np.random.default_rng(0)
    face = uv.canonical + rng.normal(0, 0.3, uv.canonical.shape)
    keep = np.unique(uv.triangles[:500])
    local = np.searchsorted(keep, uv.triangles[:500])
    small = SurfaceMeasure(uv.face_ind[keep], local, uv.kpt, uv.size)
    np.testing.assert_allclose(small.normals(face[keep][None])[0], reference_normals(face[keep], local), atol=1e-12)
    assert measure.normals(face[None]).shape == (1, len(uv.face_ind), 3)


def test_a_turned_face_is_off_by_its_turn_and_keeps_its_nose(uv, measure):
    """Each normal turns with the face: by the turn itself where it is square to the axis, less elsewhere."""
    face = uv.canonical[None].astype(np.float64)
    normals = measure.normals(face)[0]
    for degrees in (0.0, 5.0, 20.0):
        rotation = rotation_matrices(np.radians([[0.0, degrees, 0.0]]))[0]
        turned = 1.3 * face @ rotation.T + (4.0, -2.0, 7.0)
        expected = np.degrees(np.arccos(np.clip((normals @ rotation.T * normals).sum(1), -1, 1))).mean()
        assert measure.normal_angle(turned, face)[0] == pytest.approx(expected, abs=1e-6)
        assert 0.7 * degrees <= expected <= degrees + 1e-6
        assert measure.nose_depth_ratio(turned, face)[0] == pytest.approx(1.0, abs=1e-9)


def test_the_nose_depth_follows_a_flattened_face():
    """A flat grid face with the eyes and the mouth in z = 0 and a nose 8 px out: z scaled by k gives k."""
    size = 256
    rows, cols = np.mgrid[60:200, 60:200]
    face_ind = (rows * size + cols).reshape(-1)
    kpt = np.zeros((2, 68), np.int64)
    for landmark, (column, row) in {30: (130, 140), 36: (90, 100), 45: (170, 100), 48: (100, 170),
                                    54: (160, 170)}.items():
        kpt[:, landmark] = column, row
    points = np.stack([cols.reshape(-1), rows.reshape(-1), np.zeros(face_ind.size)], axis=1).astype(np.float64)
    points[np.flatnonzero(face_ind == 140 * size + 130), 2] = 8.0
    grid = np.arange(140 * 140).reshape(140, 140)
    triangles = np.concatenate([np.stack([grid[:-1, :-1], grid[1:, :-1], grid[:-1, 1:]], -1).reshape(-1, 3),
                                np.stack([grid[1:, :-1], grid[1:, 1:], grid[:-1, 1:]], -1).reshape(-1, 3)])
    measure = SurfaceMeasure(face_ind, triangles, kpt, size)
    assert measure.nose_depth(points[None])[0] == pytest.approx(8.0 / 80.0)
    flat = points * (1.0, 1.0, 0.5)
    assert measure.nose_depth_ratio(flat[None], points[None])[0] == pytest.approx(0.5)
    assert measure.normal_angle(flat[None], points[None])[0] > 0


def test_the_placed_mean_face_is_the_best_similarity(uv):
    face = uv.canonical.astype(np.float64)
    rotation = rotation_matrices(np.radians([[10.0, -30.0, 5.0]]))[0]
    truth = 0.7 * face @ rotation.T + (100.0, 90.0, 20.0)
    np.testing.assert_allclose(placed_mean_faces(face, truth[None])[0], truth, atol=1e-9)
    assert placed_mean_faces(face, np.zeros((0, len(face), 3))).shape == (0, len(face), 3)
