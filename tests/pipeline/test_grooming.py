"""Facial hair, make-up and glasses (prn.pipeline.synthetic.grooming, glasses): placed by the face's own landmarks."""

import numpy as np
import pytest

from prn.pipeline.synthetic.glasses import glasses
from prn.pipeline.synthetic.grooming import BEARD_STYLES, FaceFrame, beard_region, groom, lips
from prn.rendering.morphable.bfm import load_morphable_model


@pytest.fixture(scope="module")
def face(small_model_dir):
    model = load_morphable_model(small_model_dir)
    vertices = model.vertices(np.zeros(model.n_shape), np.zeros(model.n_exp)).astype(np.float64)
    return model, vertices, vertices[model.landmarks]


def _nearest(vertices, point):
    return int(np.argmin(np.linalg.norm(vertices - point, axis=1)))


@pytest.mark.parametrize("style", BEARD_STYLES)
def test_beards_grow_round_the_mouth_never_on_the_lips_eyes_or_brows(face, style):
    model, vertices, landmarks = face
    region = beard_region(FaceFrame(vertices, landmarks), style)
    assert ((region >= 0) & (region <= 1)).all()
    eyes_and_brows = model.landmarks[17:48]
    assert (region[eyes_and_brows] == 0).all()
    inner_lips = model.landmarks[[61, 62, 63, 65, 66, 67]]
    assert (region[inner_lips] < 0.05).all()
    under_the_nose = _nearest(vertices, 0.5 * (landmarks[33] + landmarks[51]))
    assert region[under_the_nose] > 0.5
    chin = _nearest(vertices, 0.5 * (landmarks[8] + landmarks[57]))
    assert (region[chin] > 0.5) == (style != "moustache")


def test_lips_cover_the_mouth_landmarks(face):
    model, vertices, landmarks = face
    inside = lips(FaceFrame(vertices, landmarks))
    assert (inside[model.landmarks[[51, 57, 62, 66]]] > 0.9).all()
    assert (inside[model.landmarks[[8, 30, 36, 45]]] == 0).all()


def test_groom_is_a_function_of_the_stream_and_keeps_the_rest_of_the_face(face):
    model, vertices, landmarks = face
    albedo = model.colors(np.zeros(len(model.tex_ev)))
    looks = [groom(albedo, vertices, landmarks, np.random.default_rng(seed)) for seed in range(30)]
    np.testing.assert_array_equal(looks[3], groom(albedo, vertices, landmarks, np.random.default_rng(3)))
    assert all(look.shape == albedo.shape and look.dtype == albedo.dtype for look in looks)
    changed = [np.abs(look - albedo).max(axis=1) > 1 for look in looks]
    assert sum(not c.any() for c in changed) >= 5       # often nothing at all
    assert sum(c.any() for c in changed) >= 5           # often something
    forehead = vertices[:, 1] > landmarks[19:25, 1].max() + 0.3 * (landmarks[19:25, 1].max() - landmarks[33, 1])
    assert not any(c[forehead].any() for c in changed)


def test_groom_scales_with_the_face(face):
    model, vertices, landmarks = face
    albedo = model.colors(np.zeros(len(model.tex_ev)))
    for seed in range(10):
        np.testing.assert_allclose(groom(albedo, vertices, landmarks, np.random.default_rng(seed)),
                                   groom(albedo, 3 * vertices, 3 * landmarks, np.random.default_rng(seed)),
                                   atol=1e-3)


def test_glasses_sit_in_front_of_the_eyes_and_reach_back_to_the_ears(face):
    model, vertices, landmarks = face
    drawn = [glasses(np.random.default_rng(seed), landmarks) for seed in range(60)]
    worn = [parts for parts in drawn if parts]
    assert 3 <= len(worn) <= 30  # some faces wear glasses, most do not
    eye_width = np.ptp(landmarks[36:42, 0])
    for parts in worn:
        for part in parts:
            assert np.isfinite(part.vertices).all() and part.triangles.max() < len(part.vertices)
            assert part.albedo.shape == part.vertices.shape
        rims = np.concatenate([part.vertices for part in parts[:2]])
        assert rims[:, 2].min() > landmarks[36:48, 2].max()  # the rims are in front of the eyes
        for rim, eye in zip(parts[:2], (landmarks[36:42], landmarks[42:48])):
            assert np.linalg.norm(rim.vertices[:, :2].mean(axis=0) - eye[:, :2].mean(axis=0)) < 0.3 * eye_width
        temple_ends = [part.vertices[-1] for part in parts[3:5]]
        assert all(end[2] < landmarks[27, 2] - eye_width for end in temple_ends)
    bigger = glasses(np.random.default_rng(next(i for i, parts in enumerate(drawn) if parts)), 2 * landmarks)
    np.testing.assert_allclose(bigger[0].vertices, 2 * worn[0][0].vertices, rtol=1e-9, atol=1e-6)
