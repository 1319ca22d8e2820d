import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import real_path

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
    ("complex", "field 'shapeMU' holds complex numbers, expected real ones"),
    ("degenerate", "field 'tri': every triangle repeats a vertex (no surface)"),
    ("flat uv", "field 'UV' lays every triangle on a line or a point"),
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
        uv = scipy.io.loadmat(folder / "BFM_UV.mat")["UV"]
        if damage == "nan":
            fields["shapeMU"] = fields["shapeMU"].copy()
            fields["shapeMU"][7] = np.inf
        elif damage == "complex":
            fields["shapeMU"] = fields["shapeMU"] + 1j
        elif damage == "degenerate":
            fields["tri"] = fields["tri"].copy()
            tri = fields["tri"]
            if tri.shape[0] == 3:
                tri[1] = tri[0]
            else:
                tri[:, 1] = tri[:, 0]
        else:
            uv = np.zeros_like(uv)
        save_morphable_model(folder, {**fields, "UV": uv})
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
    other = run("synth", "--model", small_model_dir, "--layout", "aflw2000", "--count", 3, "--out", tmp_path,
                "--image-size", 128, "--seed", 1, "--workers", 1)
    assert other.returncode == 1 and other.stderr.strip().splitlines() == [
        f"Error: {tmp_path}: made with --seed 0; this run has --seed 1: rerun with the same settings to continue "
        "it, or use another --out folder"]


def test_synth_with_unusable_model_is_one_line(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "BFM.mat").write_bytes(b"MATLAB garbage")
    result = run("synth", "--model", tmp_path / "model", "--layout", "300w-lp", "--count", 2, "--out",
                 tmp_path / "out", "--workers", 1)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "BFM.mat" in result.stderr
    assert not (tmp_path / "out").exists()


def invoke(*args, env=None):
    """prn-prep in this process, with PRN_MODEL_DIR unset unless `env` sets it."""
    return CliRunner().invoke(main, [str(arg) for arg in args], env={"PRN_MODEL_DIR": None, **(env or {})})


def run_without_model_env(*args, **env):
    """The prn-prep console script with PRN_MODEL_DIR unset unless given."""
    environment = {key: value for key, value in os.environ.items() if key != "PRN_MODEL_DIR"}
    return subprocess.run(["prn-prep", *map(str, args)], capture_output=True, text=True, timeout=300,
                          env={**environment, **env})


def one_error_line(result):
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def shard_bytes(folder):
    return {path.name: path.read_bytes() for path in sorted(Path(folder).glob("shard-*.h5"))}


def fingerprint(face_model_dir):
    return load_morphable_model(face_model_dir).fingerprint


@pytest.fixture(scope="module")
def other_model_dir(tmp_path_factory):
    """A second small model: the sizes of small_model_dir, another fingerprint."""
    from prn.pipeline.synthetic.face_model import make_synthetic_model
    from prn.rendering.morphable.bfm import save_morphable_model
    folder = tmp_path_factory.mktemp("other-model")
    save_morphable_model(folder, make_synthetic_model(n_vertices=1500, seed=4))
    return folder


@pytest.fixture(scope="module")
def synth_data(tmp_path_factory, small_model_dir):
    """`prn-prep synth` output (8 300W-LP samples) and its shards built with --model given explicitly."""
    root = tmp_path_factory.mktemp("synth-data")
    made = invoke("synth", "--model", small_model_dir, "--layout", "300w-lp", "--count", 8, "--out", root / "data",
                  "--image-size", 128, "--workers", 1)
    assert made.exit_code == 0, made.output
    built = invoke("build", "--src", root / "data", "--model", small_model_dir, "--out", root / "shards",
                   "--shard-size", 4, "--workers", 1)
    assert built.exit_code == 0, built.output
    return root / "data", root / "shards"


def test_build_uses_the_model_the_data_records(tmp_path, synth_data, small_model_dir):
    data, reference = synth_data
    assert json.loads((data / "prn-dataset.json").read_text())["model"]["path"] == str(small_model_dir)
    result = invoke("build", "--src", data / "300W_LP", "--out", tmp_path / "shards", "--shard-size", 4,
                    "--workers", 1)
    assert result.exit_code == 0, result.output
    assert shard_bytes(tmp_path / "shards") == shard_bytes(reference) != {}
    assert json.loads((tmp_path / "shards" / "manifest.json").read_text())["settings"]["model_dir"] == \
        str(small_model_dir)


def test_build_refuses_a_model_the_data_was_not_made_with(tmp_path, synth_data, small_model_dir, other_model_dir):
    data, _ = synth_data
    line = one_error_line(run_without_model_env("build", "--src", data, "--model", other_model_dir,
                                                "--out", tmp_path / "shards", "--workers", 1))
    assert line == (f"Error: --model {other_model_dir} is face model {fingerprint(other_model_dir)[:12]}, but the "
                    f"face model of {data / 'prn-dataset.json'} is {fingerprint(small_model_dir)[:12]}: give that "
                    "face model's folder, or leave out --model to use the recorded one")
    assert not (tmp_path / "shards").exists()


def test_prn_model_dir_gives_way_to_the_record(tmp_path, synth_data, other_model_dir):
    data, reference = synth_data
    result = invoke("build", "--src", data, "--out", tmp_path / "shards", "--shard-size", 4, "--workers", 1,
                    env={"PRN_MODEL_DIR": str(other_model_dir)})
    assert result.exit_code == 0, result.output
    assert shard_bytes(tmp_path / "shards") == shard_bytes(reference)


def test_data_without_a_record_needs_a_model(tmp_path, synth_data, small_model_dir):
    data, reference = synth_data
    unrecorded = tmp_path / "unrecorded"
    shutil.copytree(data, unrecorded)
    (unrecorded / "prn-dataset.json").unlink()
    line = one_error_line(run_without_model_env("build", "--src", unrecorded / "300W_LP", "--out", tmp_path / "a",
                                                "--workers", 1))
    assert line == (f"Error: {unrecorded / '300W_LP'}: no record of the 3D face model this data was made with (real "
                    "300W-LP and AFLW2000-3D have none): pass --model DIR or set PRN_MODEL_DIR, see README.md, "
                    '"Real data"')
    assert not (tmp_path / "a").exists()
    for env, options in (({"PRN_MODEL_DIR": str(small_model_dir)}, []), (None, ["--model", small_model_dir])):
        out = tmp_path / f"shards-{len(options)}"
        result = invoke("build", "--src", unrecorded, "--out", out, "--shard-size", 4, "--workers", 1, *options,
                        env=env)
        assert result.exit_code == 0, result.output
        assert shard_bytes(out) == shard_bytes(reference)


def test_real_300w_lp_needs_a_model(tmp_path):
    src = real_path("300W_LP")
    line = one_error_line(run_without_model_env("build", "--src", src, "--out", tmp_path / "shards"))
    assert line.startswith(f"Error: {src}: no record of the 3D face model")
    assert line.endswith('see README.md, "Real data"')
    assert not (tmp_path / "shards").exists()


def test_a_recorded_model_folder_that_is_gone_or_replaced_is_one_line(tmp_path, small_model_dir, other_model_dir):
    model = tmp_path / "model"
    shutil.copytree(small_model_dir, model)
    made = invoke("synth", "--model", model, "--layout", "aflw2000", "--count", 2, "--out", tmp_path / "data",
                  "--image-size", 128, "--workers", 1)
    assert made.exit_code == 0, made.output
    shutil.rmtree(model)
    record = tmp_path / "data" / "prn-dataset.json"
    gone = one_error_line(run_without_model_env("build", "--src", tmp_path / "data", "--out", tmp_path / "a"))
    assert gone == (f"Error: the face model {record} was made with, {fingerprint(small_model_dir)[:12]}, was "
                    f"at {model}, which no longer exists: pass --model DIR with that face model")
    shutil.copytree(other_model_dir, model)
    replaced = one_error_line(run_without_model_env("build", "--src", tmp_path / "data", "--out", tmp_path / "a"))
    assert replaced == (f"Error: {record} was made with face model {fingerprint(small_model_dir)[:12]}, but "
                        f"{model} now holds face model {fingerprint(other_model_dir)[:12]}: pass --model DIR with "
                        "that face model")
    assert not (tmp_path / "a").exists()
    result = invoke("build", "--src", tmp_path / "data", "--model", small_model_dir, "--out", tmp_path / "b",
                    "--workers", 1)
    assert result.exit_code == 0, result.output


def test_the_builtin_model_is_recorded_and_made_again_when_its_cache_is_gone(tmp_path, small_model_dir, monkeypatch):
    """The small model stands in for the built-in one (generating the real one takes about a minute)."""
    cache = tmp_path / "cache" / "builtin"

    def builtin_face_model_dir():
        if not cache.is_dir():
            shutil.copytree(small_model_dir, cache)
        return cache

    monkeypatch.setattr("prn.cli.common.builtin_face_model_dir", builtin_face_model_dir)
    monkeypatch.setattr("prn.pipeline.face_match.builtin_face_model_dir", builtin_face_model_dir)
    monkeypatch.setattr("prn.pipeline.face_match.builtin_fingerprint", lambda: fingerprint(small_model_dir))
    made = invoke("synth", "--layout", "aflw2000", "--count", 3, "--out", tmp_path / "data", "--image-size", 128,
                  "--workers", 1)
    assert made.exit_code == 0, made.output
    recorded = json.loads((tmp_path / "data" / "prn-dataset.json").read_text())["model"]
    assert recorded == {"fingerprint": fingerprint(small_model_dir), "path": str(cache), "builtin": True}
    shutil.rmtree(cache)
    result = invoke("build", "--src", tmp_path / "data", "--out", tmp_path / "shards", "--workers", 1)
    assert result.exit_code == 0, result.output
    assert cache.is_dir()
    explicit = invoke("build", "--src", tmp_path / "data", "--model", small_model_dir, "--out", tmp_path / "ref",
                      "--workers", 1)
    assert explicit.exit_code == 0, explicit.output
    assert shard_bytes(tmp_path / "shards") == shard_bytes(tmp_path / "ref")


def test_augment_uses_the_model_of_its_source_shards(tmp_path, synth_data, small_model_dir, other_model_dir):
    _, shards = synth_data
    common = ["--src", shards, "--yaw", "15", "--workers", 1]
    result = invoke("augment", *common, "--out", tmp_path / "default")
    assert result.exit_code == 0, result.output
    explicit = invoke("augment", *common, "--model", small_model_dir, "--out", tmp_path / "explicit")
    assert explicit.exit_code == 0, explicit.output
    assert shard_bytes(tmp_path / "default") == shard_bytes(tmp_path / "explicit") != {}
    line = one_error_line(run_without_model_env("augment", *common, "--model", other_model_dir,
                                                "--out", tmp_path / "other"))
    assert line == (f"Error: --model {other_model_dir} is face model {fingerprint(other_model_dir)[:12]}, but the "
                    f"face model of {shards / 'manifest.json'} is {fingerprint(small_model_dir)[:12]}: give that "
                    "face model's folder, or leave out --model to use the recorded one")
    assert not (tmp_path / "other").exists()


def test_augment_and_inspect_when_the_shards_model_is_gone(tmp_path, synth_data, small_model_dir):
    data, _ = synth_data
    model = tmp_path / "model"
    shutil.copytree(small_model_dir, model)
    built = invoke("build", "--src", data, "--model", model, "--out", tmp_path / "shards", "--workers", 1)
    assert built.exit_code == 0, built.output
    assert invoke("inspect", tmp_path / "shards", "--out", tmp_path / "grid.png").exit_code == 0
    shutil.rmtree(model)
    line = one_error_line(run_without_model_env("augment", "--src", tmp_path / "shards", "--yaw", "15",
                                                "--out", tmp_path / "aug"))
    assert line == (f"Error: the face model {tmp_path / 'shards' / 'manifest.json'} was made with, "
                    f"{fingerprint(small_model_dir)[:12]}, was at {model}, which no longer exists: pass --model DIR "
                    "with that face model")
    grid = run_without_model_env("inspect", tmp_path / "shards", "--out", tmp_path / "grid2.png")
    assert grid.returncode == 1 and grid.stderr.strip().splitlines() == [
        f"Error: the shards {tmp_path / 'shards'}: neither their face model {fingerprint(small_model_dir)[:12]} "
        f"(at {model}) nor UV assets of it are there; the grid needs its UV landmark pixels"]
    assert not (tmp_path / "grid2.png").exists()
