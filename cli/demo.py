"""`prn-demo`: the whole toolkit on the built-in synthetic model, from nothing to a trained PRN.

Every stage is the command a user runs on real data (`prn-prep`, `prn-train`,
`prn-eval`, `prn-predict`), called with the arguments printed before it. A
stage that finished is recorded in OUT/stages.json and skipped on a rerun;
a stage interrupted half-way continues through the command's own resume.
"""

import json
import math
import platform
import time
from pathlib import Path

import click

from prn.cli import eval as eval_cli
from prn.cli import predict as predict_cli
from prn.cli import prep as prep_cli
from prn.cli import train as train_cli
from prn.cli.common import Command
from prn.model.checkpoint import CHECKPOINT, SHIPPED_NAME
from prn.model.evaluation.baseline import write_mean_face_predictions
from prn.model.prediction import Predictor
from prn.model.prediction.overview import overview_picture
from prn.pipeline.synthetic.backgrounds import sample_data_dir
from prn.rendering.files.matfile import read_mat
from prn.rendering.util.atomic import atomic_path, write_png
from prn.rendering.util.cores import usable_cores
from prn.rendering.util.errors import InputError, first_line

STAGES_FILE = "stages.json"
SUMMARY_FILE = "summary.json"
OVERVIEW = "overview.png"
DEFAULT_STEPS = 4000  # about 9 minutes of the tiny preset on 2 cores (batch 16, about 120 samples/s)
LR_HALVE_STEPS = 3600  # 1e-3 for 3600 steps, then 5e-4: the best of the schedules in docs/training.md
DEMO_PHOTOS = "image0000[0-3].jpg"  # a glob pattern, as users may give prn-predict
REAL_PHOTO = "grace_hopper.jpg"  # in matplotlib's sample data


def demo_stages(out, steps, minutes, workers, train_count, test_count, seed):
    """[(name, command group, arguments or a callable)] in order; paths under `out`."""
    face_model, uv, data, shards = out / "model", out / "uv", out / "data", out / "shards"
    parallel = ["--workers", str(workers)]
    prep = prep_cli.main
    val_count = max(32, test_count // 4)
    time_budget = ["--max-minutes", minutes] if minutes else []
    resume = ["--resume"] if (out / "train" / CHECKPOINT).is_file() else []  # an interrupted training run
    return [
        ("synth-model", prep, ["synth-model", "--out", face_model]),
        ("uv-data", prep, ["uv-data", "--model", face_model, "--out", uv]),
        ("synth train", prep, ["synth", "--model", face_model, "--layout", "300w-lp", "--count", train_count,
                               "--out", data / "train", "--seed", seed, *parallel]),
        ("synth val", prep, ["synth", "--model", face_model, "--layout", "aflw2000", "--count", val_count,
                             "--out", data / "val", "--seed", seed + 1, *parallel]),
        ("synth test", prep, ["synth", "--model", face_model, "--layout", "aflw2000", "--count", test_count,
                              "--out", data / "test", "--seed", seed + 2, *parallel]),
        ("build train", prep, ["build", "--model", face_model, "--src", data / "train" / "300W_LP",
                               "--out", shards / "train", "--seed", seed, *parallel]),
        ("build val", prep, ["build", "--model", face_model, "--src", data / "val" / "AFLW2000",
                             "--out", shards / "val", *parallel]),
        ("build test", prep, ["build", "--model", face_model, "--src", data / "test" / "AFLW2000",
                              "--out", shards / "test", *parallel]),
        ("augment", prep, ["augment", "--model", face_model, "--src", shards / "train", "--out", shards / "augment",
                           "--yaw=-30:30", "--seed", seed, *parallel]),
        ("train", train_cli.main, ["--preset", "tiny", "--data", shards / "train", "--data", shards / "augment",
                                   "--val", shards / "val", "--uv-dir", uv, "--out", out / "train",
                                   "--epochs", 1000, "--max-steps", steps,
                                   "--lr-halve-steps", LR_HALVE_STEPS, *time_budget,
                                   "--workers", 1, "--seed", seed, *resume]),
        ("eval", eval_cli.main, ["--data", shards / "test", "--checkpoint", out / "train" / "best.pt",
                                 "--uv-dir", uv, "--out", out / "eval"]),
        ("eval shipped", eval_cli.main, ["--data", shards / "test", "--checkpoint", SHIPPED_NAME,
                                         "--uv-dir", uv, "--out", out / "eval-shipped"]),
        ("mean-face baseline", None,
         lambda: write_mean_face_predictions([shards / "train"], shards / "test", uv,
                                             out / "eval-mean-face" / "predictions.npz")),
        ("eval mean face", eval_cli.main, ["--data", shards / "test", "--predictions",
                                           out / "eval-mean-face" / "predictions.npz", "--uv-dir", uv,
                                           "--out", out / "eval-mean-face"]),
        ("face boxes", None, lambda: write_landmark_boxes(demo_photos(data), out / "predict-boxes.json")),
        ("predict", predict_cli.main, ["--uv-dir", uv, "--out", out / "predict", "--boxes", out / "predict-boxes.json",
                                       data / "test" / "AFLW2000" / DEMO_PHOTOS]),
        ("overview picture", None, lambda: write_overview(out, uv)),
    ]


def demo_photos(data):
    """The test photos `prn-predict` turns into 3D faces."""
    return sorted((data / "test" / "AFLW2000").glob(DEMO_PHOTOS))


def write_landmark_boxes(photos, path):
    """A `prn-predict --boxes` file: each photo's face box = the (x, y) bounding box of its pt3d_68.

    OpenCV's face detector finds about two thirds of the synthetic faces (fewer
    in profile), so the demo gives the boxes a detector would, from the labels.
    """
    boxes = {}
    for photo in photos:
        points = read_mat(photo.with_suffix(".mat"))["pt3d_68"][:2].T
        boxes[photo.name] = [[*map(float, points.min(0)), *map(float, points.max(0))]]
    _write_json(path, boxes)


def write_overview(out, uv):
    """OUT/overview.png: the shipped network on the first demo photo and on the photo matplotlib ships
    (Grace Hopper, face found by the detector): crops with landmarks, position maps, dense faces."""
    predictor = Predictor.from_checkpoint(None, uv)
    boxes = json.loads((out / "predict-boxes.json").read_text())
    name = sorted(boxes)[0]
    photos = [(out / "data" / "test" / "AFLW2000" / name, boxes[name][0])]
    samples = sample_data_dir()
    if samples is not None and (samples / REAL_PHOTO).is_file():
        photos.append((samples / REAL_PHOTO, None))
    write_png(out / OVERVIEW, overview_picture(predictor, photos))


def run_demo(out, steps, minutes, workers, train_count, test_count, seed, echo=click.echo):
    """Run (or continue) every stage; returns the summary dict also written to OUT/summary.json."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    settings = {"steps": steps, "minutes": minutes, "train_count": train_count, "test_count": test_count, "seed": seed}
    record = _read_stages(out, settings)
    stages = demo_stages(out, steps, minutes, workers, train_count, test_count, seed)
    started = time.perf_counter()
    for number, (name, group, arguments) in enumerate(stages, 1):
        if name in record["done"]:
            echo(f"[{number}/{len(stages)}] {name}: done before, skipped")
            continue
        stage_start = time.perf_counter()
        if callable(arguments):
            echo(f"[{number}/{len(stages)}] {name}")
            arguments()
        else:
            words = [str(word) for word in arguments]
            echo(f"[{number}/{len(stages)}] {name}: {_program(group)} {' '.join(words)}")
            _invoke(group, words)
        record["done"][name] = round(time.perf_counter() - stage_start, 1)
        _write_json(out / STAGES_FILE, record)
        echo(f"[{number}/{len(stages)}] {name}: {record['done'][name]:.1f} s")
    summary = _summary(out, record, settings)
    _write_json(out / SUMMARY_FILE, summary)
    echo(f"finished in {time.perf_counter() - started:.0f} s (all stages, this run and earlier ones: "
         f"{sum(record['done'].values()):.0f} s)")
    return summary


def _invoke(group, words):
    """Run a click command as its console script would; a failing exit status stops the demo."""
    status = group.main(words, prog_name=_program(group), standalone_mode=False)
    if isinstance(status, int) and status != 0:
        raise InputError(f"{_program(group)} {' '.join(words)}: exit status {status}")


def _program(group):
    """The console script of a command group."""
    return {prep_cli.main: "prn-prep", train_cli.main: "prn-train", eval_cli.main: "prn-eval",
            predict_cli.main: "prn-predict"}[group]


def _read_stages(out, settings):
    path = out / STAGES_FILE
    if not path.is_file():
        return {"settings": settings, "done": {}}
    try:
        record = json.loads(path.read_text())
    except RecursionError:
        raise InputError(f"{path}: unreadable (nested too deep); delete it to rerun every stage") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"{path}: unreadable ({first_line(error)}); delete it to rerun every stage") from None
    done = record.get("done") if isinstance(record, dict) else None
    if not (isinstance(done, dict) and all(isinstance(seconds, (int, float)) and not isinstance(seconds, bool)
                                           and math.isfinite(seconds) and seconds >= 0 for seconds in done.values())):
        raise InputError(f"{path}: not a stage record (expected {{\"settings\": ..., \"done\": {{stage: seconds}}}});"
                         " delete it to rerun every stage")
    if record.get("settings") != settings:
        raise InputError(f"{out} was made with other settings {record.get('settings')}; use another --out")
    return record


def _summary(out, record, settings):
    trained = json.loads((out / "eval" / "report.json").read_text())
    mean_face = json.loads((out / "eval-mean-face" / "report.json").read_text())
    shipped = json.loads((out / "eval-shipped" / "report.json").read_text())
    return {
        "shipped_nme2d_bbox_balanced": shipped["nme2d_bbox"]["balanced"],
        "shipped_nme2d_bbox_all": shipped["nme2d_bbox"]["all"],
        "nme2d_bbox_balanced": trained["nme2d_bbox"]["balanced"],
        "mean_face_nme2d_bbox_balanced": mean_face["nme2d_bbox"]["balanced"],
        "nme2d_bbox_all": trained["nme2d_bbox"]["all"],
        "mean_face_nme2d_bbox_all": mean_face["nme2d_bbox"]["all"],
        "test_count": trained["count"],
        "report": str(out / "eval" / "report.md"),
        "ced": str(out / "eval" / "ced.png"),
        "meshes": sorted(str(path) for path in (out / "predict").glob("*.obj")),
        "overview": str(out / OVERVIEW),
        "stage_seconds": record["done"],
        "settings": settings,
        "machine": f"{platform.machine()}, {usable_cores()} cores",
    }


def _write_json(path, value):
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(value, indent=1, sort_keys=True) + "\n")


@click.command(cls=Command)
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("runs/demo"),
              show_default=True, help="Folder for everything the demo makes; rerunning continues.")
@click.option("--steps", type=click.IntRange(min=1), default=DEFAULT_STEPS, show_default=True,
              help="Training steps of the tiny network (batch 16): the same seed gives the same network on "
                   "every machine. The default takes about 9 minutes on 2 cores.")
@click.option("--minutes", type=click.FloatRange(min=0.05), default=None,
              help="Also stop training after this many minutes (the result then depends on the machine's speed).")
@click.option("--workers", type=click.IntRange(min=1), default=usable_cores(), show_default="all cores",
              help="Worker processes of the data stages.")
@click.option("--train-count", type=click.IntRange(min=16), default=3000, show_default=True,
              help="Synthetic 300W-LP training samples (augment adds two yaw views of each).")
@click.option("--test-count", type=click.IntRange(min=16), default=500, show_default=True,
              help="Synthetic AFLW2000-3D test samples (a quarter more, at least 32, for validation).")
@click.option("--seed", type=int, default=0, show_default=True)
def main(out, steps, minutes, workers, train_count, test_count, seed):
    """Make data with the built-in model, build, augment, train, evaluate and predict: the whole toolkit."""
    summary = run_demo(out, steps, minutes, workers, train_count, test_count, seed)
    click.echo(f"report: {summary['report']}\nCED plot: {summary['ced']}\n3D faces: "
               f"{', '.join(summary['meshes']) or 'none'}\n"
               f"NME (2D, bbox, balanced over yaw bins) of the trained PRN: {summary['nme2d_bbox_balanced']:.2f} %; "
               f"predicting the mean face: {summary['mean_face_nme2d_bbox_balanced']:.2f} %; "
               f"the shipped network: {summary['shipped_nme2d_bbox_balanced']:.2f} %\n"
               f"picture: {summary['overview']}")
