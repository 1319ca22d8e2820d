"""`prn-eval`: AFLW2000-3D benchmark of a checkpoint or a predictions file; `prn-eval real`: on real photos;
`prn-eval compare`: runs side by side."""

from pathlib import Path

import click

from prn.cli.common import Command, DefaultGroup, OptionConflict, recorded_face_model_dir, recorded_model_option
from prn.model.evaluation.evaluate import run_evaluation
from prn.model.evaluation.real_photos import RealPhotoRun, evaluate_real_photos, photo_folder, summary_line
from prn.model.evaluation.report import compare as compare_reports
from prn.model.evaluation.report import load_report
from prn.model.landmarks import DEFAULT_LANDMARKS, LANDMARK_READINGS
from prn.model.prediction.predictor import DEFAULT_REFRAMES, MAX_REFRAMES
from prn.model.views import VIEW_SETS
from prn.pipeline.face_match import FaceModelClaim
from prn.pipeline.provenance import find_dataset_record
from prn.rendering.util.cores import usable_cores
from prn.rendering.util.errors import InputError
from prn.rendering.util.memory import reuse_freed_memory

FOLDER = click.Path(path_type=Path, file_okay=False)
FILE = click.Path(path_type=Path, dir_okay=False)
VIEWS = click.option("--views", type=click.Choice([str(count) for count in VIEW_SETS]), default="1", show_default=True,
                     callback=lambda ctx, param, value: int(value),
                     help="Score the mean of the network's maps of that many turned and mirrored views of each crop, "
                          "as prn-predict does (docs/prediction.md, 'Views'); 1: the network's own map.")
LANDMARKS = click.option("--landmarks", type=click.Choice(LANDMARK_READINGS), default=DEFAULT_LANDMARKS,
                         show_default=True,
                         help="How the checkpoint's 68 landmarks and dense face are read from its maps: 'fit' the "
                              "network's morphable model to the map and take its landmarks and surface, or read "
                              "the 'map' at the UV landmark and face pixels (docs/prediction.md, 'Landmarks').")
FIT_MODEL = click.option("--fit-model", type=FOLDER, default=None,
                         help="The morphable model the checkpoint was trained for, for --landmarks fit. "
                              "Default: the built-in model when the checkpoint is of it, else the model folder "
                              "its training shards (or the test shards) record, when still there.")


@click.group(cls=DefaultGroup)
def main():
    """Evaluate on test shards (`prn-eval --data ...`), on real photos (`prn-eval real --aflw ...`) or compare
    reports (`prn-eval compare A B ...`)."""
    reuse_freed_memory()  # torch's large temporaries: recycled instead of page-faulted afresh


@main.command("run", cls=Command, epilog="Compare runs: prn-eval compare A/report.json B/report.json")
@click.option("--data", required=True, type=FOLDER, help="Test shard folder (`prn-prep build` of AFLW2000-3D).")
@click.option("--checkpoint", type=FILE, default=None,
              help="A `prn-train` checkpoint (last.pt or best.pt), or 'shipped'.")
@click.option("--predictions", type=FILE, default=None,
              help="Instead of a checkpoint: an .npz with name (N,) and kpt68 (N, 68, 3) in original image "
                   "coordinates; optionally posmap (N, 256, 256, 3) in the shard crops (or tform (N, 3, 3) "
                   "image -> their crops) for head pose and dense NME.")
@click.option("--out", required=True, type=FOLDER,
              help="Output folder: report.json, report.md, per_sample.csv, ced.png, gallery/.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--uv-dir", type=FOLDER, default=None,
              help="UV assets of the shards' model. Default: the folder the checkpoint was trained with, "
                   "else the built-in model's; either only when of the shards' and checkpoint's model.")
@VIEWS
@LANDMARKS
@FIT_MODEL
def run(data, checkpoint, predictions, out, batch_size, device, uv_dir, views, landmarks, fit_model):
    """Score a checkpoint or predictions on test shards: NME by yaw bin, Table 2, CED, AUC, head pose."""
    if (checkpoint is None) == (predictions is None):
        raise OptionConflict("give exactly one of --checkpoint and --predictions")
    _require_device(device)
    report = run_evaluation(data, out, checkpoint=checkpoint, predictions=predictions, batch_size=batch_size,
                            device=device, uv_dir=uv_dir, progress=click.echo, views=views, landmarks=landmarks,
                            fit_model=fit_model)
    main_nme = report["nme2d_bbox"]
    click.echo(f"{report['count']} samples: 2D bbox NME balanced {main_nme['balanced']:.2f} %, "
               f"all {main_nme['all']:.2f} %; 3D balanced {report['nme3d_bbox']['balanced']:.2f} %; "
               f"report: {out / 'report.md'}")


@main.command("real", cls=Command)
@click.option("--aflw", required=True, type=FOLDER,
              help="Real AFLW2000-3D photos: AFLW2000/imageNNNNN.jpg + .mat with pt3d_68 (or a folder holding it).")
@recorded_model_option
@click.option("--checkpoint", required=True, type=FILE,
              help="A `prn-train` checkpoint (last.pt or best.pt), or 'shipped'.")
@click.option("--baseline-shards", multiple=True, type=FOLDER,
              help="Training shards whose mean position map is the mean-face baseline (repeatable). "
                   "Default: the shards the checkpoint was trained on.")
@click.option("--out", required=True, type=FOLDER,
              help="Output folder: shards/, network/ (the photos cropped as prn-predict crops the box of their "
                   "true landmarks), network-framed/ (the shards' framed crops) and mean-face/ (prn-eval's "
                   "reports), summary.json.")
@click.option("--uv-dir", type=FOLDER, default=None,
              help="UV assets of the checkpoint's model. Default: the folder it was trained with, else the "
                   "built-in model's.")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--workers", type=click.IntRange(min=1), default=usable_cores(), show_default="all cores",
              help="Worker processes building the shards; 1 builds in this process.")
@VIEWS
@LANDMARKS
@FIT_MODEL
@click.option("--reframes", type=click.IntRange(0, MAX_REFRAMES), default=DEFAULT_REFRAMES, show_default=True,
              help="As prn-predict --reframes: the users' crops reframed by a first pass's landmarks that many times.")
def real(aflw, face_model_dir, checkpoint, baseline_shards, out, uv_dir, batch_size, device, workers, views, landmarks,
         fit_model, reframes):
    """Score a checkpoint on real AFLW2000-3D photos, with the mean-face baseline beside it.

    Builds the photos into OUT/shards (`prn-prep build`, no jitter; kept on a
    rerun), scores the checkpoint as prn-predict runs it on each photo with
    the box of its true landmarks, and on the shards' framed crops, and the
    training shards' mean face, and writes OUT/summary.json. The photos record no 3D
    model: give the one their parameters were fitted with (--model or
    PRN_MODEL_DIR).
    """
    _require_device(device)
    root = photo_folder(aflw)
    record = find_dataset_record(root)
    claim = record.face_model if record else FaceModelClaim(str(aflw), None)
    face_model_dir = recorded_face_model_dir(face_model_dir, claim)
    run = RealPhotoRun(photos=root, face_model_dir=face_model_dir, checkpoint=checkpoint, out=out,
                       baseline=tuple(baseline_shards), uv_dir=uv_dir, batch_size=batch_size, device=device,
                       workers=workers, views=views, landmarks=landmarks, fit_model=fit_model,
                       reframes=reframes)
    summary = evaluate_real_photos(run, note=click.echo)
    click.echo(summary_line(summary, out))


def _require_device(device):
    if device == "cuda":
        import torch
        if not torch.cuda.is_available():
            raise InputError("--device cuda: no CUDA device is available")


@main.command("compare", cls=Command)
@click.argument("reports", nargs=-1, required=True, type=FILE)
def compare(reports):
    """Print several report.json side by side, one column per run."""
    labels = [str(path.parent) if path.name == "report.json" else str(path) for path in reports]
    click.echo(compare_reports([(label, load_report(path)) for label, path in zip(labels, reports)]), nl=False)
