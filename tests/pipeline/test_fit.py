import shutil
import subprocess

import numpy as np
import pytest
import scipy.io
from click.testing import CliRunner

from prn.cli.prep import main as prep_main
from prn.pipeline.datasets import read_params, write_pts
from prn.pipeline.fit import FitSettings, fit_folder
from prn.pipeline.stage import read_rejects
from prn.pipeline.synthetic.synth import SynthSettings, synthesize
from prn.rendering.geometry.pose import image_vertices
from prn.rendering.morphable.bfm import load_morphable_model
from prn.rendering.util.errors import InputError


@pytest.fixture(scope="module")
def source(tmp_path_factory, small_model_dir):
    """Synthetic AFLW2000-layout samples turned into a landmark-only dataset, with bad samples mixed in."""
    made = tmp_path_factory.mktemp("made")
    synthesize(SynthSettings(face_model_dir=small_model_dir, out_dir=made, layout="aflw2000", seed=4, image_size=300),
               12, progress=False)
    src = tmp_path_factory.mktemp("src")
    truth = {}
    for index, jpg in enumerate(sorted((made / "AFLW2000").glob("*.jpg"))):
        fields = scipy.io.loadmat(jpg.with_suffix(".mat"))
        folder = src / ("pts" if index % 2 else "mat")
        folder.mkdir(exist_ok=True)
        shutil.copy(jpg, folder / jpg.name)
        if index % 2:
            write_pts(folder / f"{jpg.stem}.pts", fields["pt2d"].T)
        else:
            scipy.io.savemat(folder / f"{jpg.stem}.mat", {"pt2d": fields["pt2d"]})
        truth[f"{folder.name}/{jpg.stem}"] = (fields["pt2d"].T, read_params(jpg.with_suffix(".mat")).pose)
    bad = src / "bad"
    bad.mkdir()
    good_jpg = next((src / "pts").glob("*.jpg"))
    points = next(iter(truth.values()))[0]
    (bad / "corrupt.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    write_pts(bad / "corrupt.pts", points)
    write_pts(bad / "no_image.pts", points)
    shutil.copy(good_jpg, bad / "short.jpg")
    (bad / "short.pts").write_text("version: 1\nn_points: 67\n{\n" + "1 2\n" * 67 + "}\n")
    shutil.copy(good_jpg, bad / "nan.jpg")
    nan_points = points.copy()
    nan_points[3] = np.nan
    write_pts(bad / "nan.pts", nan_points)
    shutil.copy(good_jpg, bad / "nofield.jpg")
    scipy.io.savemat(bad / "nofield.mat", {"something": np.zeros(3)})
    shutil.copy(good_jpg, bad / "truncated.jpg")
    scipy.io.savemat(bad / "truncated.mat", {"pt2d": points.T})
    data = (bad / "truncated.mat").read_bytes()
    (bad / "truncated.mat").write_bytes(data[:100])
    shutil.copy(good_jpg, bad / "nolandmarks.jpg")
    shutil.copy(good_jpg, bad / "odd\udcff.jpg")   # the file name's byte 0xff, not UTF-8
    write_pts(bad / "odd\udcff.pts", points)
    return src, truth


def test_fit_writes_300wlp_samples_and_rejects_bad_ones(tmp_path, small_model_dir, source):
    src, truth = source
    out = tmp_path / "out"
    summary = fit_folder(FitSettings(face_model_dir=small_model_dir, src_dir=src, out_dir=out), progress=False)
    assert summary.written == 12 and summary.skipped == 0
    rejects = {r["sample"]: r["reason"] for r in read_rejects(out)}
    assert set(rejects) == {f"bad/{name}" for name in
                            ("corrupt", "no_image", "short", "nan", "nofield", "truncated", "nolandmarks",
                             "odd\udcff")}
    assert "not a readable image" in rejects["bad/corrupt"]
    assert "no image" in rejects["bad/no_image"]
    assert "67 points" in rejects["bad/short"]
    assert "NaN" in rejects["bad/nan"]
    assert "missing field 'pt2d'" in rejects["bad/nofield"]
    assert "not a readable MATLAB file" in rejects["bad/truncated"]
    assert "no landmarks" in rejects["bad/nolandmarks"]
    assert "bad/odd\\xff: the file name is not valid UTF-8" in rejects["bad/odd\udcff"]
    assert all("\n" not in reason for reason in rejects.values())
    assert not list(out.glob("bad/*"))
    assert not list(out.rglob("*.tmp"))

    model = load_morphable_model(small_model_dir)
    for stem, (points, true_pose) in truth.items():
        mat = out / f"{stem}.mat"
        assert (out / f"{stem}.jpg").read_bytes() == (src / f"{stem}.jpg").read_bytes()
        fields = scipy.io.loadmat(mat)
        assert fields["Pose_Para"].shape == (1, 7) and fields["Pose_Para"].dtype == np.float32
        assert fields["Shape_Para"].shape == (199, 1) and fields["Exp_Para"].shape == (29, 1)
        assert fields["roi"].dtype == np.int16
        params = read_params(mat)
        placed = image_vertices(model.vertices(params.shape, params.exp), params.pose, 300)[model.landmarks]
        assert np.linalg.norm(placed[:, :2] - points, axis=1).mean() < 1.0
        if abs(np.degrees(true_pose[1])) <= 60:  # the 3-degree acceptance runs on the default model in test_fitting
            assert abs(np.degrees(params.pose[1] - true_pose[1])) < 5.0, stem


def test_fit_resumes_and_is_the_same_with_dask_workers(tmp_path, small_model_dir, source, monkeypatch):
    monkeypatch.setattr("prn.pipeline.fit.CHUNK_SIZE", 4)  # several tasks, so two workers share them
    src, _ = source
    one = tmp_path / "one"
    fit_folder(FitSettings(face_model_dir=small_model_dir, src_dir=src, out_dir=one), progress=False)
    two = tmp_path / "two"
    fit_folder(FitSettings(face_model_dir=small_model_dir, src_dir=src, out_dir=two), workers=2, progress=False)
    files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(two) for p in two.rglob("*") if p.is_file())
    for name in files:
        assert (one / name).read_bytes() == (two / name).read_bytes(), name
    victim = next(one.rglob("*.mat"))
    victim.unlink()
    summary = fit_folder(FitSettings(face_model_dir=small_model_dir, src_dir=src, out_dir=one), progress=False)
    assert summary.written == 1 and summary.skipped == 11 and len(summary.rejects) == 8


def test_unusable_model_or_source_is_one_clear_error(tmp_path, source):
    src, _ = source
    with pytest.raises(InputError, match="BFM.mat: missing"):
        fit_folder(FitSettings(face_model_dir=tmp_path, src_dir=src, out_dir=tmp_path / "o"), progress=False)
    with pytest.raises(InputError, match="source folder not found"):
        fit_folder(FitSettings(face_model_dir=tmp_path, src_dir=tmp_path / "none", out_dir=tmp_path / "o"),
                   progress=False)
    result = subprocess.run(["prn-prep", "fit", "--model", str(tmp_path), "--src", str(src), "--out",
                             str(tmp_path / "o"), "--workers", "1"], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "BFM.mat" in result.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("flat", [False, True])
def test_fit_output_is_ready_for_build(tmp_path, small_model_dir, source, flat):
    """Folders with other names than 300W-LP's subsets, or none: build finds every fitted sample."""
    src, truth = source
    if flat:
        flat_src = tmp_path / "flat"
        shutil.copytree(src / "pts", flat_src)
        src, truth = flat_src, {stem.split("/")[1]: value for stem, value in truth.items() if stem.startswith("pts/")}
    fit_folder(FitSettings(face_model_dir=small_model_dir, src_dir=src, out_dir=tmp_path / "fitted"), progress=False)
    result = CliRunner().invoke(prep_main, ["build", "--src", str(tmp_path / "fitted"), "--out",
                                            str(tmp_path / "shards")], env={"PRN_MODEL_DIR": None})
    assert result.exit_code == 0, result.output
    assert f"{len(truth)} written" in result.output and "0 rejected" in result.output, result.output
    import json
    manifest = json.loads((tmp_path / "shards" / "manifest.json").read_text())
    assert manifest["samples"] == len(truth)
