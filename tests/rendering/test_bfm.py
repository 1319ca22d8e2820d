import numpy as np
import pytest
import scipy.io

from prn.rendering.morphable.bfm import load_morphable_model, save_morphable_model
from prn.rendering.util.errors import InputError


def test_loads_synthetic_model(small_model_dir, small_fields):
    model = load_morphable_model(small_model_dir)
    n = len(small_fields["shapeMU"]) // 3
    assert model.n_vertices == n
    assert model.n_shape == 199 and model.n_exp == 29
    assert model.triangles.min() == 0 and model.triangles.max() < n
    np.testing.assert_array_equal(model.landmarks, small_fields["kpt_ind"].ravel() - 1)
    assert model.face_vertices is not None and len(model.face_vertices) < n


def test_batch_vertices_equal_one_at_a_time(small_model_dir):
    model = load_morphable_model(small_model_dir)
    rng = np.random.default_rng(0)
    shape = rng.normal(size=(5, 199)) * model.shape_ev
    exp = rng.normal(size=(5, 29)) * model.exp_ev
    batch = model.vertices(shape, exp)
    assert batch.shape == (5, model.n_vertices, 3) and batch.dtype == np.float32
    for i in range(5):
        # float32 ulp at 1e5 is 0.008
        np.testing.assert_allclose(batch[i], model.vertices(shape[i], exp[i]), rtol=0, atol=0.05)
    # the definition of docs/formats.md section 2, in float64
    basis = model.basis.astype(np.float64)
    expected = model.mean + basis[:, :199] @ shape[0] + basis[:, 199:] @ exp[0]
    np.testing.assert_allclose(batch[0].ravel(), expected, rtol=0, atol=1.0)


def test_short_parameters_pad_with_zeros_and_long_ones_fail(small_model_dir):
    model = load_morphable_model(small_model_dir)
    short = model.vertices(np.full(10, 1e5), np.ones(3))
    full = model.vertices(np.r_[np.full(10, 1e5), np.zeros(189)], np.r_[np.ones(3), np.zeros(26)])
    np.testing.assert_array_equal(short, full)
    with pytest.raises(InputError, match="exceed"):
        model.vertices(np.zeros(200), np.zeros(29))
    with pytest.raises(InputError, match="NaN"):
        model.vertices(np.full(199, np.nan), np.zeros(29))


def _write_broken(folder, fields, **changes):
    broken = dict(fields)
    for key, value in changes.items():
        if value is None:
            broken.pop(key)
        else:
            broken[key] = value
    save_morphable_model(folder, broken)
    return folder


@pytest.mark.parametrize("field, value, message", [
    ("shapePC", None, "missing field 'shapePC'"),
    ("shapeMU", np.zeros((10, 1), np.float32), "3 per vertex"),
    ("expPC", np.zeros((9, 29), np.float32), "'expPC' has shape"),
    ("shapeEV", np.ones((198, 1), np.float32), "'shapeEV' has shape"),
    ("texMU", "nan", "'texMU' contains NaN"),
    ("tri", np.zeros((3, 0), np.int32), "no triangles"),
    ("tri", np.zeros((4, 5), np.int32), "'tri' has shape"),
    ("tri", "out-of-range", "outside 1.."),
    ("kpt_ind", np.arange(1, 50, dtype=np.int32), "'kpt_ind' has shape"),
    ("kpt_ind", np.full((68, 1), 7, np.int32), "'kpt_ind' names 1 distinct vertices, expected 68"),
])
def test_bad_model_fields_name_file_and_field(tmp_path, small_fields, field, value, message):
    if isinstance(value, str) and value == "nan":
        value = small_fields[field].copy()
        value[5] = np.nan
    elif isinstance(value, str):
        value = small_fields[field].copy()
        value[0, 0] = len(small_fields["shapeMU"]) // 3 + 1
    folder = _write_broken(tmp_path, small_fields, **{field: value})
    with pytest.raises(InputError) as info:
        load_morphable_model(folder)
    text = str(info.value)
    assert "BFM.mat" in text and message in text and "\n" not in text


def test_bad_uv_file(tmp_path, small_fields):
    n = len(small_fields["shapeMU"]) // 3
    for uv, message in [(np.zeros((n - 1, 2)), "'UV' has shape"),
                        (np.full((n, 2), 2.0), "expected [0, 1]"),
                        (np.full((n, 2), np.nan), "NaN")]:
        save_morphable_model(tmp_path, {**small_fields, "UV": uv})
        with pytest.raises(InputError, match="BFM_UV.mat") as info:
            load_morphable_model(tmp_path)
        assert message in str(info.value)


def test_missing_truncated_and_corrupt_files(tmp_path, small_model_dir):
    with pytest.raises(InputError, match="model folder not found"):
        load_morphable_model(tmp_path / "nowhere")
    with pytest.raises(InputError, match="BFM.mat: missing"):
        load_morphable_model(tmp_path)
    data = (small_model_dir / "BFM.mat").read_bytes()
    (tmp_path / "BFM.mat").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="BFM.mat: not a readable MATLAB file"):
        load_morphable_model(tmp_path)
    (tmp_path / "BFM.mat").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(InputError, match="BFM.mat"):
        load_morphable_model(tmp_path)
    scipy.io.savemat(tmp_path / "BFM.mat", {"other": np.zeros(3)})
    with pytest.raises(InputError, match="no variable 'model'"):
        load_morphable_model(tmp_path)


def test_fingerprint_ignores_last_bit_differences_and_sees_real_ones(tmp_path, small_model_dir, small_fields):
    base = load_morphable_model(small_model_dir).fingerprint
    assert base == load_morphable_model(small_model_dir).fingerprint

    def fingerprint(name, **changed):
        save_morphable_model(tmp_path / name, {**small_fields, **changed})
        return load_morphable_model(tmp_path / name).fingerprint

    # another CPU's BLAS or SIMD kernels: a few values one float32 step away
    rng = np.random.default_rng(0)
    last_bits = {}
    for key in ("shapeMU", "shapePC", "expPC", "shapeEV", "expEV"):
        values = small_fields[key].copy()
        flat = values.reshape(-1)
        picked = rng.choice(flat.size, min(5, flat.size), replace=False)
        flat[picked] = np.nextafter(flat[picked], np.float32(np.inf))
        last_bits[key] = values
    assert fingerprint("last-bits", **last_bits) == base

    moved = small_fields["shapeMU"].copy()
    moved[0] += 100.0   # one vertex, 0.1 mm
    scaled = small_fields["expPC"].copy()
    scaled[:, 3] *= 1.01
    wider = small_fields["shapeEV"].copy()
    wider[10] *= 1.01
    shifted = small_fields["UV"].copy()
    shifted[7] += 0.01
    turned = small_fields["tri"].copy()
    turned[:, 0] = turned[::-1, 0]
    changes = [{"shapeMU": moved}, {"expPC": scaled}, {"shapeEV": wider}, {"UV": shifted}, {"tri": turned}]
    prints = {fingerprint(f"changed-{i}", **change) for i, change in enumerate(changes)}
    assert len(prints) == len(changes) and base not in prints
