"""Test-time views: the UV mirror map, and turned and mirrored crops whose maps come back to the crop's."""

import dataclasses

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

import prn.model.inference as inference
from prn.cli.eval import main as eval_main
from prn.cli.predict import main as predict_main
from prn.model.evaluation.evaluate import check_views
from prn.model.prediction import Predictor
from prn.model.views import MIRRORED_LANDMARKS, VIEW_SETS, MirrorMap, Views, view_transform
from prn.rendering.geometry.pose import rotation_matrices
from prn.rendering.morphable.uv_assets import load_uv_assets
from prn.rendering.util.errors import InputError
from prn.uv_data import builtin_uv_dir


@pytest.fixture(scope="module")
def uv():
    return load_uv_assets(builtin_uv_dir())


@pytest.fixture(scope="module")
def mirror(uv):
    return MirrorMap(uv)


def test_landmarks_map_to_their_mirror_landmarks(uv, mirror):
    columns, rows = mirror.columns[uv.kpt[1], uv.kpt[0]], mirror.rows[uv.kpt[1], uv.kpt[0]]
    np.testing.assert_array_equal(columns, uv.kpt[0, MIRRORED_LANDMARKS])
    np.testing.assert_array_equal(rows, uv.kpt[1, MIRRORED_LANDMARKS])
    assert (MIRRORED_LANDMARKS[MIRRORED_LANDMARKS] == np.arange(68)).all()


def test_mirroring_twice_comes_back(uv, mirror):
    rows, columns = np.divmod(uv.face_ind, uv.size)
    positions = np.stack([mirror.columns, mirror.rows], axis=-1)
    twice = mirror.relabel(positions.astype(np.float32))[rows, columns]
    distance = np.linalg.norm(twice - np.stack([columns, rows], axis=-1), axis=1)
    assert np.percentile(distance, 99) < 0.05
    moved = np.linalg.norm(positions[rows, columns] - np.stack([columns, rows], axis=-1), axis=1)
    assert np.median(moved) > 10   # a real mirror, not the identity


def test_a_mirror_point_is_the_reflected_point_of_the_mean_face(uv, mirror):
    """Reading the mean face at each pixel's mirror gives that pixel's point reflected in the symmetry plane."""
    grid = np.zeros((uv.size * uv.size, 3), np.float32)
    grid[uv.face_ind] = uv.canonical
    grid = grid.reshape(uv.size, uv.size, 3)
    rows, columns = np.divmod(uv.face_ind, uv.size)
    inner = (mirror.relabel(np.ones_like(grid)) == 1).all(axis=2)   # not blended with the empty map at the edge
    mirrored = mirror.relabel(grid)[rows, columns]
    mirror_rows, mirror_columns = (np.rint(m[rows, columns]).astype(int) for m in (mirror.rows, mirror.columns))
    keep = inner[rows, columns] & inner[mirror_rows, mirror_columns]
    plane_x = np.median((uv.canonical[:, 0] + mirrored[:, 0]) / 2)
    reflected = uv.canonical * [-1, 1, 1] + [2 * plane_x, 0, 0]
    error = np.linalg.norm(mirrored - reflected, axis=1)[keep]
    extent = np.ptp(uv.canonical[:, 0])
    assert np.median(error) < 0.005 * extent and np.percentile(error, 95) < 0.02 * extent


def test_the_mirror_map_does_not_depend_on_the_mean_faces_frame(uv, mirror):
    rotation = rotation_matrices(np.radians([[20.0, -35.0, 10.0]]))[0]
    turned = MirrorMap(dataclasses.replace(uv, canonical=uv.canonical @ rotation.T * 1.7 + [5, -3, 40]))
    np.testing.assert_allclose(turned.columns, mirror.columns, atol=1e-3)
    np.testing.assert_allclose(turned.rows, mirror.rows, atol=1e-3)
    np.testing.assert_array_equal(turned.defined, mirror.defined)


def crop_of_coordinates(count=1):
    """(count, 256, 256, 3) crops whose pixels say where they are: red the column, green the row, blue 255.

    float32, so that the views' bilinear warps keep the coordinates exact (uint8 would round them).
    """
    rows, columns = np.mgrid[0:256, 0:256]
    crop = np.stack([columns, rows, np.full_like(rows, 255)], axis=-1).astype(np.float32)
    return np.repeat(crop[None], count, axis=0)


def answering_network(truth, mirror):
    """A stand-in for predict_posmaps that finds where each view's pixels came from and answers truth as seen there.

    truth (256, 256, 3): the map of the unturned crop. In a view made by the
    similarity A (crop -> view pixels), each point is at A(point), z scaled
    with A; in a mirrored view (det A < 0) the point labelled p is the
    face's mirror point of p, unknown where p has none.
    """
    def answer(network, config, crops, device="cpu", batch_size=32):
        maps = []
        for crop in crops:
            rows, columns = np.nonzero(crop[..., 2] == 255)          # pixels inside the original crop
            view = np.stack([columns, rows, np.ones_like(rows)], axis=1).astype(np.float64)
            source = crop[rows, columns, :2].astype(np.float64)
            to_source = np.linalg.lstsq(view, source, rcond=None)[0].T          # (2, 3): view -> crop pixels
            to_view = np.linalg.inv(np.vstack([to_source, [0, 0, 1]]))[:2]
            determinant = np.linalg.det(to_view[:, :2])
            seen = np.concatenate([truth[..., :2] @ to_view[:, :2].T + to_view[:, 2],
                                   truth[..., 2:] * np.sqrt(abs(determinant))], axis=-1).astype(np.float32)
            if determinant < 0:
                seen = mirror.relabel(seen)
                seen[~mirror.defined] = 1e6     # a point with no known mirror: its label names some other point
            maps.append(seen)
        return np.stack(maps)
    return answer


def a_turned_face(uv):
    """A map (256, 256, 3) float32: the mean face turned 30 degrees in yaw, over a tilted plane off the face."""
    rotation = rotation_matrices(np.radians([[10.0, 30.0, -8.0]]))[0]
    centre = uv.canonical.mean(axis=0)
    face = 0.8 * (uv.canonical - centre) @ rotation.T + [128, 120, 60]
    rows, columns = np.mgrid[0:256, 0:256].astype(np.float32)
    truth = np.stack([columns, rows, 0.3 * columns + 20], axis=-1).reshape(-1, 3)
    truth[uv.face_ind] = face
    return truth.reshape(256, 256, 3).astype(np.float32)


@pytest.mark.parametrize(("angle", "mirrored", "expected"), [(0.0, True, lambda crop: crop[:, ::-1]),
                                                            (180.0, False, lambda crop: crop[::-1, ::-1]),
                                                            (90.0, False, np.rot90)])
def test_views_turn_and_mirror_about_the_crop_centre(angle, mirrored, expected):
    """About the crop's centre (127.5, 127.5) a mirror, a half and a quarter turn take its pixel grid onto itself:
    the view is the crop's pixels rearranged, nothing blended or shifted (column c of a mirror is column 255 - c)."""
    crop = np.random.default_rng(3).integers(0, 256, (256, 256, 3), dtype=np.uint8)
    view = cv2.warpAffine(crop, view_transform(1.0, angle, mirrored), (256, 256), flags=cv2.INTER_LINEAR)
    np.testing.assert_array_equal(view, expected(crop))


@pytest.mark.parametrize("count", sorted(VIEW_SETS))
def test_every_view_brings_its_map_back_to_the_crop(uv, mirror, monkeypatch, count):
    truth = a_turned_face(uv)
    monkeypatch.setattr(inference, "predict_posmaps", answering_network(truth, mirror))
    predicted = Views.of(count, uv).predict(None, None, crop_of_coordinates(2))
    assert predicted.shape == (2, 256, 256, 3) and predicted.dtype == np.float32
    np.testing.assert_allclose(predicted[:, uv.kpt[1], uv.kpt[0]], np.repeat(truth[None, uv.kpt[1], uv.kpt[0]], 2, 0),
                               atol=0.01)
    rows, columns = np.divmod(uv.face_ind, 256)
    error = np.linalg.norm(predicted[0, rows, columns] - truth[rows, columns], axis=1)
    assert np.median(error) < 0.05 and np.percentile(error, 95) < 0.5
    # Off the face a pixel has no mirror: the unmirrored views alone give it.
    np.testing.assert_allclose(predicted[0][~mirror.defined], truth[~mirror.defined], atol=0.01)


@pytest.mark.parametrize("view", sorted({view for views in VIEW_SETS.values() for view in views}))
def test_each_view_alone_brings_its_map_back_to_the_crop(uv, mirror, monkeypatch, view):
    """One view at a time: the views of a set could hide each other's errors in their mean."""
    truth = a_turned_face(uv)
    monkeypatch.setattr(inference, "predict_posmaps", answering_network(truth, mirror))
    predicted = Views.chosen((view,), uv).predict(None, None, crop_of_coordinates())[0]
    np.testing.assert_allclose(predicted[uv.kpt[1], uv.kpt[0]], truth[uv.kpt[1], uv.kpt[0]], atol=0.01)
    rows, columns = np.divmod(uv.face_ind, 256)
    error = np.linalg.norm(predicted[rows, columns] - truth[rows, columns], axis=1)
    assert np.median(error) < 0.05 and np.percentile(error, 95) < 0.5


def test_uv_assets_without_mirrored_landmarks_on_the_face_are_one_line(uv):
    off_face = dataclasses.replace(uv, kpt=np.zeros((2, 68), np.int64))     # pixel (0, 0): outside the face mask
    with pytest.raises(InputError, match=r"no two mirrored landmarks on the UV face mask.*use --views 1"):
        Views.of(2, off_face)
    assert Views.of(1, off_face).mirror is None


def test_one_view_is_the_network_alone_and_views_go_in_one_call(uv, monkeypatch):
    calls = []
    monkeypatch.setattr(inference, "predict_posmaps", lambda network, config, crops, *args: calls.append(crops) or
                        np.ones((len(crops), 256, 256, 3), np.float32))
    crops = crop_of_coordinates(3)
    assert Views.of(1, uv).mirror is None
    np.testing.assert_array_equal(Views.of(1, uv).predict(None, None, crops), np.ones((3, 256, 256, 3)))
    assert len(calls) == 1 and calls[0] is crops
    Views.of(4, uv).predict(None, None, crops)
    assert len(calls) == 2 and len(calls[1]) == 12   # every view of every crop in one call


def test_bad_view_counts_are_one_line(uv, tmp_path):
    with pytest.raises(ValueError, match="views must be one of 1, 2, 4, 8, got 3"):
        Views.of(3, uv)
    with pytest.raises(InputError, match="views must be one of 1, 2, 4, 8, got 0"):
        Predictor.from_checkpoint(views=0)
    with pytest.raises(InputError, match="views must be one of"):
        check_views(5, "best.pt")
    with pytest.raises(InputError, match="give --checkpoint, not --predictions"):
        check_views(2, None)
    for main, args in ((predict_main, ["x.jpg", "--out", str(tmp_path)]), (eval_main, ["--data", str(tmp_path),
                                                                                    "--out", str(tmp_path)])):
        result = CliRunner().invoke(main, [*args, "--views", "3"])
        assert result.exit_code == 2 and "'3' is not one of '1', '2', '4', '8'" in result.output
    result = CliRunner().invoke(eval_main, ["--data", str(tmp_path), "--predictions", str(tmp_path / "p.npz"),
                                            "--out", str(tmp_path / "o"), "--views", "2"])
    assert result.exit_code != 0 and "give --checkpoint, not --predictions" in result.output


def test_the_predictor_sees_its_views(monkeypatch):
    seen = []
    original = inference.predict_posmaps

    def counting(network, config, crops, *args):
        seen.append(len(crops))
        return original(network, config, crops, *args)

    monkeypatch.setattr(inference, "predict_posmaps", counting)
    image, box = np.full((200, 200, 3), 90, np.uint8), [[40, 40, 160, 160]]
    four = Predictor.from_checkpoint()(image, box)[0]
    assert seen == [1, 4]   # the one-view pass that reframes the crop, then the four views
    one = Predictor.from_checkpoint(views=1, reframes=0)(image, box)[0]
    assert seen == [1, 4, 1]
    assert four.landmarks.shape == one.landmarks.shape == (68, 3) and not np.allclose(four.landmarks, one.landmarks)
