"""prn-demo at its smallest size, end to end: every stage's output feeds the next, and training helps."""

import json
import math
from pathlib import Path

import cv2
import h5py
import pytest
from click.testing import CliRunner

from prn.cli.demo import STAGES_FILE, SUMMARY_FILE, demo_stages, main


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    arguments = ["--out", str(out), "--steps", "600", "--train-count", "400", "--test-count", "96",
                 "--workers", "2"]
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    return out, arguments, result.output


def test_every_stage_produced_what_the_next_one_read(demo):
    out, _, output = demo
    assert (out / "model" / "BFM.mat").is_file() and (out / "uv" / "uv_kpt_ind.txt").is_file()
    assert len(list((out / "data" / "train" / "300W_LP").rglob("*.jpg"))) == 400
    assert len(list((out / "data" / "test" / "AFLW2000").glob("*.jpg"))) == 96
    counts = {}
    for name in ("train", "val", "test", "augment"):
        manifest = json.loads((out / "shards" / name / "manifest.json").read_text())
        counts[name] = sum(entry["samples"] for entry in manifest["shards"])
    assert counts["train"] > 350 and counts["test"] > 80 and counts["augment"] > counts["train"]
    with h5py.File(next((out / "shards" / "test").glob("shard-*.h5")), "r") as handle:
        assert "pt3d_68" in handle
    assert (out / "train" / "best.pt").is_file()
    report = json.loads((out / "eval" / "report.json").read_text())
    assert report["count"] == counts["test"]
    assert (out / "eval" / "ced.png").is_file() and (out / "eval" / "report.md").is_file()
    assert list((out / "predict").glob("*.obj")) and list((out / "predict").glob("*_vis.jpg"))
    assert "3D faces:" in output and "predicting the mean face" in output
    overview = cv2.imread(str(out / "overview.png"))
    assert overview.shape == (1024, 1536, 3) and overview.std() > 10   # a synthetic photo and matplotlib's


def test_the_trained_model_beats_the_mean_face(demo):
    out = demo[0]
    summary = json.loads((out / SUMMARY_FILE).read_text())
    trained, baseline = summary["nme2d_bbox_balanced"], summary["mean_face_nme2d_bbox_balanced"]
    assert math.isfinite(trained) and math.isfinite(baseline)
    assert trained < baseline
    assert summary["shipped_nme2d_bbox_balanced"] < baseline


def test_a_rerun_skips_every_finished_stage(demo):
    out, arguments, _ = demo
    before = (out / SUMMARY_FILE).read_text()
    result = CliRunner().invoke(main, arguments)
    assert result.exit_code == 0, result.output
    assert result.output.count("done before, skipped") == len(json.loads((out / STAGES_FILE).read_text())["done"])
    assert json.loads((out / SUMMARY_FILE).read_text())["nme2d_bbox_balanced"] == json.loads(before)[
        "nme2d_bbox_balanced"]
    changed = CliRunner().invoke(main, arguments[:2] + ["--steps", "601"] + arguments[4:])
    assert changed.exit_code == 1 and "other settings" in changed.output


def test_an_unreadable_stage_record_is_one_line(tmp_path):
    (tmp_path / STAGES_FILE).write_text("{not json")
    result = CliRunner().invoke(main, ["--out", str(tmp_path), "--steps", "1"])
    assert result.exit_code == 1 and "stages.json: unreadable" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "model").exists()


@pytest.mark.parametrize("record", [[1, 2], {"settings": {}, "done": {"model": "abc"}}, {"settings": {}, "done": [1]},
                                    {"settings": {}, "done": {"model": -1}}, "[" * 100000])
def test_a_stage_record_that_is_not_one_is_one_line(tmp_path, record):
    (tmp_path / STAGES_FILE).write_text(record if isinstance(record, str) else json.dumps(record))
    result = CliRunner().invoke(main, ["--out", str(tmp_path), "--steps", "1"])
    assert result.exit_code == 1 and "stages.json: " in result.output and len(result.output.splitlines()) == 1
    assert "Traceback" not in result.output and not (tmp_path / "model").exists()


def test_training_resumes_only_an_interrupted_run(tmp_path):
    def training_words():
        (words,) = [words for name, _, words in demo_stages(tmp_path, 10, None, 1, 16, 16, 0) if name == "train"]
        return words

    assert "--resume" not in training_words()
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "last.pt").write_bytes(b"")
    assert "--resume" in training_words()


RECORDED = Path(__file__).with_name("demo_figures.json")
FIGURES = ("nme2d_bbox_balanced", "nme2d_bbox_all", "mean_face_nme2d_bbox_balanced", "mean_face_nme2d_bbox_all",
           "shipped_nme2d_bbox_balanced", "shipped_nme2d_bbox_all")


def test_the_demo_gives_its_recorded_figures(demo):
    """A change that moves the demo's results fails here: measure the full demo again (docs/benchmarks.md,
    "prn-demo") and record both runs' figures in demo_figures.json in the same commit."""
    summary = json.loads((demo[0] / SUMMARY_FILE).read_text())
    recorded = json.loads(RECORDED.read_text())["short"]
    assert recorded["arguments"] == demo[1][2:]
    assert {name: round(summary[name], 2) for name in FIGURES} == recorded["figures"]


def test_the_docs_state_the_full_demos_recorded_figures():
    figures = json.loads(RECORDED.read_text())["full"]["figures"]
    table = (Path(__file__).parents[2] / "docs" / "benchmarks.md").read_text()
    for kind in ("balanced", "all"):
        row = " | ".join(f"{figures[name]:.2f}" for name in
                         (f"nme2d_bbox_{kind}", f"shipped_nme2d_bbox_{kind}", f"mean_face_nme2d_bbox_{kind}"))
        assert f" | {row} |" in table, f"docs/benchmarks.md lacks the demo's {kind} row | {row} |"
