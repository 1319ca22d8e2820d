import json
import os
import shutil

import cv2
import h5py
import numpy as np
import pytest
import scipy.io
from click.testing import CliRunner
from conftest import real_path, write_real_topology_model

from prn.cli.prep import main
from prn.pipeline.build import BuildSettings, build, detect_layout
from prn.pipeline.sample_geometry import jitter
from prn.pipeline.stage import read_rejects
from prn.pipeline.synthetic.synth import SynthSettings, synthesize
from prn.pipeline.verify import verify_shards
from prn.rendering.geometry.crop import crop_box, crop_transform, positions_in_crop
from prn.rendering.geometry.pose import image_vertices
from prn.rendering.morphable.bfm import load_morphable_model
from prn.rendering.morphable.uv_assets import keypoint_pixels
from prn.rendering.util.errors import InputError


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory, small_model_dir):
    src = tmp_path_factory.mktemp("synthetic")
    synthesize(SynthSettings(face_model_dir=small_model_dir, out_dir=src, layout="300w-lp", seed=2, image_size=200),
               24, progress=False)
    return src


def run_build(src, face_model_dir, out, layout="300w-lp", **options):
    settings = BuildSettings(face_model_dir=face_model_dir, out_dir=out, layout=layout,
                             **{"shard_size": 8, **options})
    return build(settings, src, progress=False)


def read_shards(out):
    rows = {}
    for path in sorted(out.glob("shard-*.h5")):
        with h5py.File(path) as handle:
            for i, name in enumerate(handle["name"].asstr()[:]):
                rows[name] = {key: handle[key][i] for key in handle if key not in ("name", "subset")}
    return rows


def test_position_maps_and_landmarks_are_exact(tmp_path, synthetic, small_model_dir):
    summary = run_build(synthetic, small_model_dir, tmp_path / "out")
    assert summary.written == 24 and not summary.rejects
    model = load_morphable_model(small_model_dir)
    kpt = keypoint_pixels(model.uv, model.landmarks, 256)
    rows = read_shards(tmp_path / "out")
    assert len(rows) == 24
    for name, row in rows.items():
        posmap = row["posmap"].astype(np.float32)
        np.testing.assert_allclose(posmap[kpt[1], kpt[0]], row["kpt68"], atol=0.5)
        # kpt68 from the sample's own parameters, through the crop recipe of docs/formats.md section 6
        fields = scipy.io.loadmat(synthetic / "300W_LP" / f"{name}.mat")
        vertices = model.vertices(fields["Shape_Para"].ravel(), fields["Exp_Para"].ravel())
        placed = image_vertices(vertices, fields["Pose_Para"].ravel().astype(np.float64), 200)
        shift_x, shift_y, factor = jitter(0, name)
        transform = crop_transform(*crop_box(placed[model.landmarks, :2], 1.5, (shift_x, shift_y), factor))
        np.testing.assert_allclose(row["tform"], transform, rtol=1e-5, atol=1e-3)
        expected = positions_in_crop(placed, transform)[model.landmarks]
        np.testing.assert_allclose(row["kpt68"], expected, atol=1e-2)
        assert row["image"].shape == (256, 256, 3) and row["image"].dtype == np.uint8
        assert row["posmap"].dtype == np.float16


def test_same_bytes_twice_and_resume_redoes_only_missing_shards(tmp_path, synthetic, small_model_dir):
    run_build(synthetic, small_model_dir, tmp_path / "a")
    run_build(synthetic, small_model_dir, tmp_path / "b")
    shards = sorted(p.name for p in (tmp_path / "a").glob("shard-*.h5"))
    assert len(shards) == 3
    for name in shards:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    (tmp_path / "a" / shards[1]).unlink()
    (tmp_path / "a" / "shard-00002.h5.json").write_text("{not json")
    summary = run_build(synthetic, small_model_dir, tmp_path / "a")
    assert summary.written == 16 and summary.skipped == 8
    for name in shards:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert not list((tmp_path / "a").glob("*.tmp"))


def test_a_rerun_redoes_a_shard_whose_bytes_changed_under_the_same_size(tmp_path, synthetic, small_model_dir):
    run_build(synthetic, small_model_dir, tmp_path / "a")
    path = tmp_path / "a" / "shard-00001.h5"
    good = path.read_bytes()
    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0xFF
    path.write_bytes(bytes(flipped))
    summary = run_build(synthetic, small_model_dir, tmp_path / "a")
    assert summary.written == 8 and summary.skipped == 16
    assert path.read_bytes() == good


def test_jitter_depends_on_seed_and_can_be_off(tmp_path, synthetic, small_model_dir):
    run_build(synthetic, small_model_dir, tmp_path / "s0")
    run_build(synthetic, small_model_dir, tmp_path / "s1", seed=1)
    run_build(synthetic, small_model_dir, tmp_path / "off", jitter=False)
    a, b, off = (read_shards(tmp_path / n) for n in ("s0", "s1", "off"))
    name = sorted(a)[0]
    assert not np.allclose(a[name]["tform"], b[name]["tform"])
    kpt = off[name]["kpt68"][:, :2]
    centre = (kpt.min(0) + kpt.max(0)) / 2
    np.testing.assert_allclose(centre, [127.5, 127.5], atol=0.01)  # no jitter: the landmark box is centred


def _break(folder, name, how):
    jpg, mat = folder / f"{name}.jpg", folder / f"{name}.mat"
    fields = {k: v for k, v in scipy.io.loadmat(mat).items() if not k.startswith("__")}
    if how == "corrupt_jpeg":
        jpg.write_bytes(b"\xff\xd8\xff garbage" * 10)
    elif how == "truncated_jpeg":
        jpg.write_bytes(jpg.read_bytes()[:200])
    elif how == "missing_mat":
        mat.unlink()
    elif how == "missing_field":
        fields.pop("Shape_Para")
        scipy.io.savemat(mat, fields)
    elif how == "wrong_shape":
        fields["Pose_Para"] = np.zeros((1, 6), np.float32)
        scipy.io.savemat(mat, fields)
    elif how == "nan":
        fields["Exp_Para"][3] = np.nan
        scipy.io.savemat(mat, fields)
    elif how == "too_long":
        fields["Shape_Para"] = np.zeros((250, 1))
        scipy.io.savemat(mat, fields)
    elif how == "outside":
        fields["Pose_Para"][0, 3] += 5000
        scipy.io.savemat(mat, fields)
    elif how == "absurd_shape":
        fields["Shape_Para"] = np.full_like(fields["Shape_Para"], 1e30)
        scipy.io.savemat(mat, fields)
    elif how == "absurd_scale":
        fields["Pose_Para"][0, 6] *= 1e8
        scipy.io.savemat(mat, fields)
    elif how == "tiny_image":
        cv2.imwrite(str(jpg), np.full((16, 16, 3), 120, np.uint8))
    elif how == "complex":
        fields["Shape_Para"] = fields["Shape_Para"] * (1 + 1j)
        scipy.io.savemat(mat, fields)


OUTSIDE_MOSTLY = "% of the face's landmark box lies in the"
BREAKAGES = {"corrupt_jpeg": "not a readable image (corrupt JPEG: ",
             "truncated_jpeg": "not a readable image (corrupt JPEG: ",
             "missing_mat": "missing", "missing_field": "missing field 'Shape_Para'",
             "wrong_shape": "'Pose_Para' has shape", "nan": "NaN", "too_long": "exceed",
             "outside": "wholly outside",
             "absurd_shape": ("the face's landmarks are not finite numbers", OUTSIDE_MOSTLY),
             "absurd_scale": OUTSIDE_MOSTLY, "tiny_image": "16 x 16 image",
             "complex": "'Shape_Para' holds complex numbers"}


def test_bad_samples_are_rejected_and_the_run_goes_on(tmp_path, synthetic, small_model_dir, recwarn):
    src = tmp_path / "src"
    shutil.copytree(synthetic, src)
    samples = sorted((src / "300W_LP").glob("*/*.jpg"))
    assert len(samples) > len(BREAKAGES)
    victims = {}
    for how, jpg in zip(BREAKAGES, samples):
        _break(jpg.parent, jpg.stem, how)
        victims[f"{jpg.parent.name}/{jpg.stem}"] = how
    summary = run_build(src, small_model_dir, tmp_path / "out")
    rejects = {r["sample"]: r["reason"] for r in read_rejects(tmp_path / "out")}
    assert set(rejects) == set(victims)
    for sample, how in victims.items():
        expected = BREAKAGES[how] if isinstance(BREAKAGES[how], tuple) else (BREAKAGES[how],)
        assert any(words in rejects[sample] for words in expected), (how, rejects[sample])
    assert summary.written == 24 - len(victims)
    assert len(read_shards(tmp_path / "out")) == 24 - len(victims)
    assert not [str(w) for w in recwarn.list if issubclass(w.category, np.exceptions.ComplexWarning)]


def test_a_file_name_that_is_not_utf8_is_a_reject_and_the_build_goes_on(tmp_path, synthetic, small_model_dir):
    src = tmp_path / "src"
    shutil.copytree(synthetic, src)
    folder = src / "300W_LP" / "AFW"
    first = sorted(p.stem for p in folder.glob("*.jpg"))[0]
    odd = os.fsdecode(os.fsencode(first) + b"\xff")
    for suffix in (".jpg", ".mat"):
        (folder / f"{first}{suffix}").rename(folder / f"{odd}{suffix}")
    result = CliRunner().invoke(main, ["build", "--src", str(src), "--out", str(tmp_path / "out"),
                                       "--model", str(small_model_dir)])
    assert result.exit_code == 0 and "23 written" in result.output and "1 rejected" in result.output, result.output
    (reject,) = read_rejects(tmp_path / "out")
    assert reject["sample"] == f"AFW/{odd}" and f"{first}\\xff: the file name is not valid UTF-8" in reject["reason"]
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["samples"] == 23
    assert verify_shards(tmp_path / "out") == []


def broken_copy(synthetic, tmp_path, breakages):
    """A copy of the synthetic source with the AFW samples broken in order: {"AFW/<name>": how}."""
    src = tmp_path / "src"
    shutil.copytree(synthetic, src)
    folder = src / "300W_LP" / "AFW"
    names = sorted(p.stem for p in folder.glob("*.jpg"))
    for name, how in zip(names, breakages):
        _break(folder, name, how)
    return src, {f"AFW/{name}": how for name, how in zip(names, breakages)}


def test_rejects_are_listed_in_sample_order_whatever_step_rejected_them(tmp_path, synthetic, small_model_dir):
    # the first sample fails late (its face lies outside the image), the second early (NaN in its .mat)
    src, victims = broken_copy(synthetic, tmp_path, ["outside", "nan"])
    summary = run_build(src, small_model_dir, tmp_path / "out")
    order = sorted(victims)
    assert [reject["sample"] for reject in summary.rejects] == order
    assert [reject["sample"] for reject in read_rejects(tmp_path / "out")] == order
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert [reject["sample"] for reject in manifest["rejects"]] == order
    record = json.loads((tmp_path / "out" / "shard-00000.h5.json").read_text())
    assert [reject["sample"] for reject in record["rejects"]] == order


def test_a_rerun_reports_the_rejects_of_the_shards_it_skips(tmp_path, synthetic, small_model_dir):
    src, victims = broken_copy(synthetic, tmp_path, ["nan", "outside", "missing_mat"])
    out = tmp_path / "out"
    command = ["build", "--src", str(src), "--model", str(small_model_dir), "--out", str(out), "--shard-size", "8",
               "--workers", "1", "--strict"]
    first = CliRunner().invoke(main, command)
    assert first.exit_code == 3, first.output
    assert "21 written, 0 already done, 3 rejected" in first.stdout
    files = {name: (out / name).read_bytes() for name in ("rejects.jsonl", "manifest.json")}
    assert len(files["rejects.jsonl"].splitlines()) == 3
    rerun = CliRunner().invoke(main, command)
    assert rerun.exit_code == 3, rerun.output
    assert "0 written, 21 already done, 3 rejected" in rerun.stdout
    for name, content in files.items():
        assert (out / name).read_bytes() == content, name
    (out / "shard-00001.h5").unlink()  # as if the run had been killed before that shard
    summary = run_build(src, small_model_dir, out)
    assert (summary.written, summary.skipped) == (8, 13)
    assert [reject["sample"] for reject in summary.rejects] == sorted(victims)
    for name, content in files.items():
        assert (out / name).read_bytes() == content, name


def test_a_rebuild_with_larger_shards_leaves_only_the_listed_shards(tmp_path, synthetic, small_model_dir):
    out = tmp_path / "out"
    run_build(synthetic, small_model_dir, out, shard_size=4)
    assert len(list(out.glob("shard-*.h5"))) == 6
    run_build(synthetic, small_model_dir, out, shard_size=16)
    listed = [shard["file"] for shard in json.loads((out / "manifest.json").read_text())["shards"]]
    assert listed == ["shard-00000.h5", "shard-00001.h5"]
    assert sorted(p.name for p in out.glob("shard-*")) == sorted(listed + [f"{name}.json" for name in listed])
    assert verify_shards(out) == []
    run_build(synthetic, small_model_dir, tmp_path / "fresh", shard_size=16)
    for name in listed:
        assert (out / name).read_bytes() == (tmp_path / "fresh" / name).read_bytes()


def damaged_jpeg(path, how):
    """Garbage over the middle of the entropy-coded data, or the file cut in the middle."""
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    if how == "garbage":
        data[middle:middle + 64] = bytes(range(64))
    else:
        del data[middle:]
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["garbage", "truncated"])
def test_a_jpeg_that_decodes_only_with_a_warning_is_rejected(tmp_path, synthetic, small_model_dir, how):
    src = tmp_path / "src"
    shutil.copytree(synthetic, src)
    victim = sorted((src / "300W_LP" / "HELEN").glob("*.jpg"))[1]
    damaged_jpeg(victim, how)
    if how == "garbage":  # OpenCV warns on stderr and returns the garbled picture
        assert cv2.imdecode(np.fromfile(victim, np.uint8), cv2.IMREAD_COLOR) is not None
    summary = run_build(src, small_model_dir, tmp_path / "out")
    assert [reject["sample"] for reject in summary.rejects] == [f"HELEN/{victim.stem}"]
    assert summary.rejects[0]["reason"].startswith(f"{victim}: not a readable image (corrupt JPEG: ")
    assert summary.written == 23
    assert f"HELEN/{victim.stem}" not in read_shards(tmp_path / "out")


def test_unusable_inputs_fail_before_any_work(tmp_path, synthetic, small_model_dir):
    with pytest.raises(InputError, match="BFM.mat"):
        run_build(synthetic, tmp_path, tmp_path / "o1")
    (tmp_path / "empty" / "300W_LP" / "AFW").mkdir(parents=True)
    with pytest.raises(InputError, match="no samples"):
        run_build(tmp_path / "empty", small_model_dir, tmp_path / "o2")
    with pytest.raises(InputError, match="not found"):
        run_build(tmp_path / "nowhere", small_model_dir, tmp_path / "o3")
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()
    assert detect_layout(synthetic) == "300w-lp"


def test_the_output_folder_may_not_be_the_source_or_its_dataset_folder(tmp_path, synthetic, small_model_dir):
    before = sorted(path.relative_to(synthetic) for path in synthetic.rglob("*"))
    for out in (synthetic, synthetic / "300W_LP"):
        for src in (synthetic, synthetic / "300W_LP"):
            with pytest.raises(InputError, match="must not be the source folder or its dataset's folder"):
                run_build(src, small_model_dir, out)
    assert sorted(path.relative_to(synthetic) for path in synthetic.rglob("*")) == before


def test_a_source_holding_both_layouts_asks_which(tmp_path):
    (tmp_path / "300W_LP" / "AFW").mkdir(parents=True)
    (tmp_path / "AFLW2000").mkdir()
    with pytest.raises(InputError, match="holds both 300W_LP and AFLW2000; give one of them as --src, or --layout"):
        detect_layout(tmp_path)
    assert detect_layout(tmp_path / "AFLW2000") == "aflw2000"


@pytest.mark.slow
def test_real_aflw2000_through_the_real_topology(tmp_path):
    """Pose, flip and crop conventions on data no one here made: posmap landmarks back in the image vs pt3d_68."""
    src = real_path("AFLW2000")
    face_model_dir = write_real_topology_model(tmp_path / "bfm", n_shape=199, n_exp=29)
    run_build(src, face_model_dir, tmp_path / "out", layout="aflw2000", jitter=False, shard_size=16)
    model = load_morphable_model(face_model_dir)
    kpt = keypoint_pixels(model.uv, model.landmarks, 256)
    errors = []
    with h5py.File(tmp_path / "out" / "shard-00000.h5") as handle:
        assert handle["image"].shape[0] == 16
        for i in range(16):
            crop_points = handle["posmap"][i][kpt[1], kpt[0], :2].astype(np.float64)
            inverse = np.linalg.inv(handle["tform"][i].astype(np.float64))
            image_points = crop_points @ inverse[:2, :2].T + inverse[:2, 2]
            truth = handle["pt3d_68"][i][:, :2]
            width, height = truth.max(0) - truth.min(0)
            errors.append(np.linalg.norm(image_points - truth, axis=1).mean() / np.sqrt(width * height))
            np.testing.assert_array_equal(handle["image_size"][i], [450, 450])
    print(f"real AFLW2000 through the posmap: NME {np.mean(errors):.4f} mean, {np.max(errors):.4f} worst")
    assert np.mean(errors) < 0.035, np.mean(errors)
