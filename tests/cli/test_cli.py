import subprocess

import numpy as np
import pytest
from click.testing import CliRunner

from prn.cli.prep import main
from prn.rendering.morphable.bfm import load_morphable_model


def run(*args):
    return subprocess.run(["prn-prep", *map(str, args)], capture_output=True, text=True, timeout=300)


def test_help_is_complete():
    runner = CliRunner()
    top = runner.invoke(main, ["--help"])
    assert top.exit_code == 0
    for command in ("synth-model", "uv-data", "synth", "fit", "build", "augment", "inspect", "verify"):
        assert command in top.output
    for command, options in [("synth-model", ["--out", "--vertices", "--seed"]),
                             ("uv-data", ["--model", "--out", "--size", "--face-vertices"]),
                             ("synth", ["--model", "--layout", "--count", "--out", "--seed", "--image-size",
                                        "--workers", "--scheduler"]),
                             ("fit", ["--model", "--src", "--out", "--workers", "--scheduler"]),
                             ("augment", ["--src", "--out", "--model", "--pitch", "--yaw", "--roll", "--random",
                                          "--seed", "--workers", "--scheduler", "--cluster"])]:
        result = runner.invoke(main, [command, "--help"])
        assert result.exit_code == 0
        for option in options:
            assert option in result.output


def test_synth_model_then_uv_data(tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["synth-model", "--out", tmp_path / "m", "--vertices", 1200, "--seed", 5])
    assert result.exit_code == 0, result.output
    model = load_morphable_model(tmp_path / "m")
    assert 1000 < model.n_vertices < 1400
    result = runner.invoke(main, ["uv-data", "--model", tmp_path / "m", "--size", 128])
    assert result.exit_code == 0, result.output
    out = tmp_path / "m" / "uv128"
    assert (out / "weight_mask_weight3.npy").is_file()
    assert np.load(out / "weight_mask_prnet.npy").shape == (128, 128)


def test_synth_model_is_byte_identical_for_a_seed(tmp_path):
    runner = CliRunner()
    for name in ("a", "b"):
        assert runner.invoke(main, ["synth-model", "--out", tmp_path / name, "--vertices", 800]).exit_code == 0
    for file in ("BFM.mat", "BFM_UV.mat", "face_vertex_ind.npy"):
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes()


@pytest.mark.parametrize("damage, message", [
    ("missing", "BFM.mat: missing"),
    ("truncated", "BFM.mat: not a readable MATLAB file"),
    ("nan", "contains NaN or inf"),
])
def test_bad_model_is_one_line_without_traceback_and_no_output(tmp_path, small_model_dir, damage, message):
    folder = tmp_path / "model"
    folder.mkdir()
    for file in small_model_dir.iterdir():
        (folder / file.name).write_bytes(file.read_bytes())
    if damage == "missing":
        (folder / "BFM.mat").unlink()
    elif damage == "truncated":
        data = (folder / "BFM.mat").read_bytes()
        (folder / "BFM.mat").write_bytes(data[: len(data) // 3])
    else:
        import scipy.io

        from prn.rendering.morphable.bfm import save_morphable_model
        struct = scipy.io.loadmat(folder / "BFM.mat")["model"][0, 0]
        fields = {name: struct[name] for name in struct.dtype.names}
        fields["shapeMU"] = fields["shapeMU"].copy()
        fields["shapeMU"][7] = np.inf
        save_morphable_model(folder, {**fields, "UV": scipy.io.loadmat(folder / "BFM_UV.mat")["UV"]})
    result = run("uv-data", "--model", folder, "--out", tmp_path / "out")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_bad_face_vertices_option(tmp_path, small_model_dir):
    (tmp_path / "faces.npy").write_bytes(b"\x93NUMPY garbage")
    result = run("uv-data", "--model", small_model_dir, "--face-vertices", tmp_path / "faces.npy",
                 "--out", tmp_path / "out")
    assert result.returncode != 0 and "faces.npy" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_synth_command(tmp_path, small_model_dir):
    result = run("synth", "--model", small_model_dir, "--layout", "aflw2000", "--count", 3, "--out", tmp_path,
                 "--image-size", 128, "--workers", 1)
    assert result.returncode == 0, result.stderr
    assert "3 written" in result.stdout
    assert len(list((tmp_path / "AFLW2000").glob("*.jpg"))) == 3
    again = run("synth", "--model", small_model_dir, "--layout", "aflw2000", "--count", 3, "--out", tmp_path,
                "--image-size", 128, "--workers", 1)
    assert "0 written, 3 already done" in again.stdout


def test_synth_with_unusable_model_is_one_line(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "BFM.mat").write_bytes(b"MATLAB garbage")
    result = run("synth", "--model", tmp_path / "model", "--layout", "300w-lp", "--count", 2, "--out",
                 tmp_path / "out", "--workers", 1)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "BFM.mat" in result.stderr
    assert not (tmp_path / "out").exists()
