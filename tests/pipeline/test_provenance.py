"""prn-dataset.json: synth and fit record their model and settings; a rerun with others stops; build finds it."""

import json
import shutil

import pytest

from prn.pipeline.fit import FitSettings, fit_folder
from prn.pipeline.provenance import RECORD, find_dataset_record, read_dataset_record
from prn.pipeline.synthetic.synth import SynthSettings, synthesize
from prn.rendering.morphable.bfm import load_morphable_model, save_morphable_model
from prn.rendering.util.errors import InputError


@pytest.fixture(scope="module")
def other_model_dir(tmp_path_factory):
    """A second small model: the same sizes as small_model_dir, another fingerprint."""
    from prn.pipeline.synthetic.face_model import make_synthetic_model
    folder = tmp_path_factory.mktemp("other-model")
    save_morphable_model(folder, make_synthetic_model(n_vertices=1500, seed=4))
    return folder


def synth(face_model_dir, out, count=4, layout="aflw2000", **options):
    settings = SynthSettings(face_model_dir=face_model_dir, out_dir=out, layout=layout,
                             **{"image_size": 128, **options})
    return synthesize(settings, count, progress=False)


def test_synth_records_its_model_and_settings(tmp_path, small_model_dir):
    synth(small_model_dir, tmp_path / "data", layout="300w-lp", seed=3)
    record = json.loads((tmp_path / "data" / RECORD).read_text())
    assert record["format"] == "prn-dataset" and record["stage"] == "synth"
    assert record["model"] == {"fingerprint": load_morphable_model(small_model_dir).fingerprint,
                               "path": str(small_model_dir), "builtin": False}
    assert record["settings"] == {"layout": "300w-lp", "seed": 3, "image_size": 128, "occluder_probability": 0.2,
                                  "jpeg_quality": 90, "world": "photo"}
    assert record["folders"] == ["300W_LP"]
    synth(small_model_dir, tmp_path / "wide", pitch="wide")
    assert json.loads((tmp_path / "wide" / RECORD).read_text())["settings"]["pitch"] == "wide"
    for where in (tmp_path / "data", tmp_path / "data" / "300W_LP"):
        assert find_dataset_record(where).face_model.folder == small_model_dir


@pytest.mark.parametrize("change, message", [
    ({"seed": 1}, "made with --seed 0; this run has --seed 1"),
    ({"image_size": 160}, "made with --image-size 128; this run has --image-size 160"),
    ({"world": "face"}, "made with --world photo; this run has --world face"),
    ({"pitch": "wide"}, "made with --pitch normal; this run has --pitch wide"),
    ({"layout": "300w-lp"}, "made with --layout aflw2000; this run has --layout 300w-lp"),
    ({"model": True}, "made with face model "),
])
def test_synth_rerun_with_other_settings_stops(tmp_path, small_model_dir, other_model_dir, change, message):
    out = tmp_path / "data"
    synth(small_model_dir, out)
    before = {path: path.read_bytes() for path in out.rglob("*") if path.is_file()}
    face_model_dir = other_model_dir if change.pop("model", False) else small_model_dir
    with pytest.raises(InputError) as caught:
        synth(face_model_dir, out, count=6, **change)
    line = str(caught.value)
    assert line.startswith(f"{out}: ") and message in line and "\n" not in line
    if face_model_dir == other_model_dir:
        assert load_morphable_model(small_model_dir).fingerprint[:12] in line
        assert load_morphable_model(other_model_dir).fingerprint[:12] in line
    assert {path: path.read_bytes() for path in out.rglob("*") if path.is_file()} == before


def test_synth_rerun_with_the_same_settings_resumes_and_extends(tmp_path, small_model_dir):
    out = tmp_path / "data"
    synth(small_model_dir, out)
    record = (out / RECORD).read_bytes()
    summary = synth(small_model_dir, out, count=6)
    assert summary.written == 2 and summary.skipped == 4
    assert (out / RECORD).read_bytes() == record


def test_a_moved_model_with_the_same_fingerprint_resumes_and_is_recorded(tmp_path, small_model_dir):
    moved = tmp_path / "moved-model"
    shutil.copytree(small_model_dir, moved)
    out = tmp_path / "data"
    synth(small_model_dir, out)
    assert synth(moved, out).skipped == 4
    assert read_dataset_record(out / RECORD).face_model.folder == moved


def test_samples_without_a_record_stop_synth(tmp_path, small_model_dir):
    out = tmp_path / "data"
    synth(small_model_dir, out)
    (out / RECORD).unlink()
    with pytest.raises(InputError, match=f"{out}: holds samples but no {RECORD}"):
        synth(small_model_dir, out)
    assert not (out / RECORD).exists()


def test_fit_records_its_model_and_refuses_another(tmp_path, small_model_dir, other_model_dir):
    made = tmp_path / "made"
    synth(small_model_dir, made, count=3)
    src = tmp_path / "src" / "faces"
    src.mkdir(parents=True)
    for jpg in sorted((made / "AFLW2000").glob("*.jpg")):
        shutil.copy(jpg, src / jpg.name)
        shutil.copy(jpg.with_suffix(".mat"), src / jpg.with_suffix(".mat").name)
    out = tmp_path / "fitted"
    fit_folder(FitSettings(face_model_dir=small_model_dir, src_dir=tmp_path / "src", out_dir=out), progress=False)
    record = read_dataset_record(out / RECORD)
    assert record.stage == "fit" and record.folders == ("faces",) and record.face_model.folder == small_model_dir
    assert find_dataset_record(out / "faces").path == out / RECORD
    with pytest.raises(InputError, match="made with face model .*; this run has face model "):
        fit_folder(FitSettings(face_model_dir=other_model_dir, src_dir=tmp_path / "src", out_dir=out), progress=False)
    again = fit_folder(FitSettings(face_model_dir=small_model_dir, src_dir=tmp_path / "src", out_dir=out),
                       progress=False)
    assert again.skipped == 3 and again.written == 0
    with pytest.raises(InputError, match="made with prn-prep fit; this run has prn-prep synth"):
        synth(small_model_dir, out, count=3)


def test_a_record_covers_only_the_folders_its_stage_wrote(tmp_path, small_model_dir):
    out = tmp_path / "data"
    synth(small_model_dir, out)
    assert find_dataset_record(out / "AFLW2000") is not None
    (out / "copied" / "AFLW2000").mkdir(parents=True)
    assert find_dataset_record(out / "copied" / "AFLW2000") is None
    assert find_dataset_record(out / "copied") is None


@pytest.mark.parametrize("content, message", [
    ("{not json", "not readable JSON"),
    ('{"format": "prn-dataset", "stage": "synth"}', "malformed"),
])
def test_a_broken_record_is_one_line(tmp_path, small_model_dir, content, message):
    out = tmp_path / "data"
    synth(small_model_dir, out)
    (out / RECORD).write_text(content)
    for attempt in (lambda: synth(small_model_dir, out), lambda: find_dataset_record(out / "AFLW2000")):
        with pytest.raises(InputError, match=f"{RECORD}: {message}"):
            attempt()
