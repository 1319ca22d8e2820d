import numpy as np
import pytest
import scipy.io
from conftest import real_path

from prn.pipeline.datasets import read_image, read_params
from prn.pipeline.stage import read_rejects
from prn.pipeline.synthetic.synth import (
    AFLW_YAW_BINS,
    WIDE_PITCH,
    SynthSettings,
    draw_params,
    sample_rng,
    synthesize,
    yaw_degrees,
)
from prn.rendering.geometry.pose import image_vertices
from prn.rendering.morphable.bfm import load_morphable_model


def make(tmp_path, face_model_dir, layout, count, workers=1, seed=0, size=160, name="out", pitch="normal"):
    settings = SynthSettings(face_model_dir=face_model_dir, out_dir=tmp_path / name, layout=layout, seed=seed,
                             image_size=size, pitch=pitch)
    summary = synthesize(settings, count, workers=workers, progress=False)
    return settings.out_dir, summary


def files(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _fields(path):
    return {k: (v.shape, v.dtype) for k, v in scipy.io.loadmat(path).items() if not k.startswith("__")}


@pytest.mark.parametrize("layout, real_file, top", [
    ("300w-lp", ("300W_LP", "IBUG", "IBUG_image_008_1_0.mat"), "300W_LP"),
    ("aflw2000", ("AFLW2000", "image00050.mat"), "AFLW2000"),
])
def test_fields_match_the_real_files(tmp_path, small_model_dir, layout, real_file, top):
    out, summary = make(tmp_path, small_model_dir, layout, 8)
    assert summary.written == 8 and not summary.rejects
    mats = sorted((out / top).glob("*/*.mat" if layout == "300w-lp" else "*.mat"))
    mats = [m for m in mats if "landmarks" not in m.parts]
    assert len(mats) == 8
    ours = _fields(mats[0])
    real = _fields(real_path(*real_file))
    if layout == "aflw2000":  # the real files hold AFLW's own 21 points in pt2d; ours the 68
        assert real.pop("pt2d")[0] == (2, 21) and ours.pop("pt2d")[0] == (2, 68)
    # the real files hold the BFM's 199 / 29 coefficients; the small test model has as many
    assert ours == real


def test_300wlp_layout_has_subsets_and_landmark_files(tmp_path, small_model_dir):
    out, _ = make(tmp_path, small_model_dir, "300w-lp", 16)
    subsets = sorted(p.name for p in (out / "300W_LP").iterdir() if p.name != "landmarks")
    assert subsets == sorted(["AFW", "HELEN", "IBUG", "LFPW", "AFW_Flip", "HELEN_Flip", "IBUG_Flip", "LFPW_Flip"])
    for jpg in (out / "300W_LP").glob("*/*.jpg"):
        pts = out / "300W_LP" / "landmarks" / jpg.parent.name / f"{jpg.stem}_pts.mat"
        landmarks = scipy.io.loadmat(pts)["pts_2d"]
        np.testing.assert_allclose(landmarks, scipy.io.loadmat(jpg.with_suffix(".mat"))["pt2d"].T)
        assert read_image(jpg).shape == (160, 160, 3)


def test_ground_truth_is_exact(tmp_path, small_model_dir):
    out, _ = make(tmp_path, small_model_dir, "aflw2000", 12, size=450)
    model = load_morphable_model(small_model_dir)
    for mat in sorted((out / "AFLW2000").glob("*.mat")):
        params = read_params(mat)
        fields = scipy.io.loadmat(mat)
        placed = image_vertices(model.vertices(params.shape, params.exp), params.pose, 450)[model.landmarks]
        np.testing.assert_allclose(placed[:, :2].T, fields["pt2d"], atol=1e-3)
        np.testing.assert_allclose(placed.T, fields["pt3d_68"], atol=1e-3)


def test_same_bytes_with_two_dask_workers_and_for_a_prefix(tmp_path, small_model_dir):
    one, _ = make(tmp_path, small_model_dir, "300w-lp", 40, workers=1, name="one")
    two, _ = make(tmp_path, small_model_dir, "300w-lp", 40, workers=2, name="two")
    assert files(one) == files(two)
    prefix, _ = make(tmp_path, small_model_dir, "300w-lp", 5, workers=1, name="prefix")
    first = files(prefix)
    assert all(files(one)[name] == data for name, data in first.items() if name.suffix in (".jpg", ".mat"))
    other, _ = make(tmp_path, small_model_dir, "300w-lp", 5, seed=1, name="other")
    assert files(other) != first


def test_resume_redoes_only_what_is_missing(tmp_path, small_model_dir):
    out, _ = make(tmp_path, small_model_dir, "aflw2000", 20)
    before = files(out)
    (out / "AFLW2000" / "image00003.mat").unlink()
    (out / "AFLW2000" / "image00017.jpg").unlink()
    (out / "AFLW2000" / "image00017.mat").unlink()
    kept = (out / "AFLW2000" / "image00005.mat").stat().st_mtime_ns
    _, summary = make(tmp_path, small_model_dir, "aflw2000", 20)
    assert summary.written == 2 and summary.skipped == 18
    assert (out / "AFLW2000" / "image00005.mat").stat().st_mtime_ns == kept
    assert files(out) == before
    assert read_rejects(out) == []
    assert not list(out.rglob("*.tmp"))


def test_aflw_yaw_bins_follow_the_benchmark():
    counts = np.zeros(3, int)
    for index in range(2000):
        yaw = abs(yaw_degrees("aflw2000", 0, index, sample_rng(0, index)))
        counts[np.searchsorted([30, 60], yaw, side="left")] += 1
    expected = np.array([count for _, _, count in AFLW_YAW_BINS])
    assert np.abs(counts - expected).max() <= 3, counts


def test_300wlp_yaw_spread():
    yaws = np.array([yaw_degrees("300w-lp", 0, i, sample_rng(0, i)) for i in range(3000)])
    assert np.abs(yaws).max() < 90 and np.abs(yaws).max() > 80
    assert (np.abs(yaws) < 30).mean() > 0.45 and (np.abs(yaws) > 60).mean() > 0.1


def _pitches(face_model, pitch, count=2000):
    settings = SynthSettings(face_model_dir=None, out_dir=None, layout="300w-lp", pitch=pitch)
    return np.array([np.degrees(draw_params(face_model, settings, i, sample_rng(0, i)).pose[0])
                     for i in range(count)])


def test_wide_pitch_turns_half_of_the_faces_over_the_whole_range(small_model_dir):
    face_model = load_morphable_model(small_model_dir)
    normal, wide = _pitches(face_model, "normal"), _pitches(face_model, "wide")
    same = np.isclose(normal, wide)
    assert 0.45 < same.mean() < 0.55
    assert (np.abs(normal) > 25).mean() < 0.02
    assert np.abs(wide).max() <= WIDE_PITCH and np.abs(wide).max() > 0.98 * WIDE_PITCH
    counts = np.histogram(wide[~same], bins=6, range=(-WIDE_PITCH, WIDE_PITCH))[0]
    assert counts.min() > 0.7 * counts.mean()           # uniform over the range


def test_wide_pitch_samples_are_the_normal_ones_with_another_pitch(tmp_path, small_model_dir):
    normal, _ = make(tmp_path, small_model_dir, "aflw2000", 12, name="normal")
    wide, _ = make(tmp_path, small_model_dir, "aflw2000", 12, name="wide", pitch="wide")
    turned = 0
    for image in sorted((normal / "AFLW2000").glob("*.mat")):
        before, after = read_params(image), read_params(wide / "AFLW2000" / image.name)
        for name in ("shape", "exp", "tex", "illum", "color"):
            np.testing.assert_array_equal(getattr(before, name), getattr(after, name))
        np.testing.assert_array_equal(before.pose[1:3], after.pose[1:3])
        changed = before.pose[0] != after.pose[0]
        turned += changed
        same_bytes = image.with_suffix(".jpg").read_bytes() == (wide / "AFLW2000" / image.name).with_suffix(
            ".jpg").read_bytes()
        assert same_bytes != changed
    assert 0 < turned < 12
