import cv2
import numpy as np
import pytest
import scipy.io
from conftest import real_path

from prn.rendering.geometry.pose import angles_from_rotations, image_vertices, rotation_matrices
from prn.rendering.util.errors import InputError


def _rx(a):
    return np.array([[1, 0, 0], [0, np.cos(a), np.sin(a)], [0, -np.sin(a), np.cos(a)]])


def _ry(a):
    return np.array([[np.cos(a), 0, -np.sin(a)], [0, 1, 0], [np.sin(a), 0, np.cos(a)]])


def _rz(a):
    return np.array([[np.cos(a), np.sin(a), 0], [-np.sin(a), np.cos(a), 0], [0, 0, 1]])


def test_rotations_follow_the_300wlp_convention():
    rng = np.random.default_rng(0)
    angles = rng.uniform(-1.5, 1.5, size=(20, 3))
    batch = rotation_matrices(angles)
    for (pitch, yaw, roll), rotation in zip(angles, batch):
        np.testing.assert_allclose(rotation, _rx(pitch) @ _ry(yaw) @ _rz(roll), atol=1e-12)
    np.testing.assert_allclose(batch @ np.swapaxes(batch, 1, 2), np.broadcast_to(np.eye(3), batch.shape),
                               atol=1e-12)


def test_angles_round_trip():
    rng = np.random.default_rng(1)
    angles = rng.uniform([-1.5, -1.5, -1.5], [1.5, 1.5, 1.5], size=(100, 3))
    np.testing.assert_allclose(angles_from_rotations(rotation_matrices(angles)), angles, atol=1e-9)
    gimbal = angles_from_rotations(rotation_matrices([0.3, np.pi / 2, 0.0]))
    np.testing.assert_allclose(rotation_matrices(gimbal), rotation_matrices([0.3, np.pi / 2, 0.0]), atol=1e-9)


def test_image_vertices_flip_y_and_batch():
    vertices = np.array([[0.0, 0.0, 0.0], [1000.0, 2000.0, 3000.0]])
    pose = np.array([0, 0, 0, 10, 20, 30, 1e-3])
    out = image_vertices(vertices, pose, height=100)
    np.testing.assert_allclose(out, [[10, 100 - 1 - 20, 30], [11, 100 - 1 - 22, 33]])
    batch = image_vertices(np.stack([vertices, vertices]), np.stack([pose, pose]), 100)
    np.testing.assert_allclose(batch[1], out)
    with pytest.raises(InputError):
        image_vertices(vertices, np.zeros(6), 100)
    with pytest.raises(InputError):
        image_vertices(vertices, np.full(7, np.nan), 100)


def _bbox_nme(predicted, truth):
    width, height = truth.max(0) - truth.min(0)
    return np.linalg.norm(predicted - truth, axis=1).mean() / np.sqrt(width * height)


def test_mean_shape_lands_on_real_aflw2000_landmarks():
    """The real pt3d_68 of AFLW2000-3D come out of the real poses within the error the mean shape allows."""
    mean = np.load(real_path("bfm", "mean_shape.npy"))
    landmarks = mean[np.load(real_path("bfm", "kpt_ind.npy"))]
    errors, wrong_order = [], []
    for mat in sorted(real_path("AFLW2000").glob("*.mat")):
        sample = scipy.io.loadmat(mat)
        pose = sample["Pose_Para"].ravel()
        truth = sample["pt3d_68"][:2].T
        height = cv2.imread(str(mat.with_suffix(".jpg"))).shape[0]
        errors.append(_bbox_nme(image_vertices(landmarks, pose, height)[:, :2], truth))
        swapped = pose.copy()
        swapped[[0, 2]] = swapped[[2, 0]]
        wrong_order.append(_bbox_nme(image_vertices(landmarks, swapped, height)[:, :2], truth))
    assert np.mean(errors) < 0.03 and np.max(errors) < 0.05
    assert np.mean(wrong_order) > 4 * np.mean(errors)
