"""`prn-predict`: 3D faces from photos and videos with a trained PRN, or the network exported as ONNX."""

import glob
import math
from pathlib import Path

import click

from prn.cli.common import Command, OptionConflict
from prn.model.inference import FACE_SMOOTHING
from prn.model.landmarks import DEFAULT_LANDMARKS, LANDMARK_READINGS
from prn.model.prediction.boxes import read_boxes_file
from prn.model.prediction.detect import DEFAULT_DETECTOR, DETECTORS
from prn.model.prediction.export import export_onnx
from prn.model.prediction.flow import predict_images
from prn.model.prediction.outputs import MESH_WRITERS, output_stems
from prn.model.prediction.predictor import DEFAULT_REFRAMES, ENGINES, MAX_REFRAMES, Predictor
from prn.model.prediction.video import VIDEO_SUFFIXES, is_video, predict_video
from prn.model.views import DEFAULT_VIEWS, VIEW_SETS
from prn.rendering.util.atomic import missing_folders, remove_empty
from prn.rendering.util.errors import InputError, os_error_line
from prn.rendering.util.memory import reuse_freed_memory

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
INPUT_SUFFIXES = IMAGE_SUFFIXES | VIDEO_SUFFIXES


def _bbox(ctx, param, value):
    if value is None:
        return None
    try:
        box = [float(part) for part in value.split(",")]
    except ValueError:
        box = []
    if len(box) != 4 or not (box[0] < box[2] and box[1] < box[3]):
        raise click.BadParameter(f"{value!r} is not x0,y0,x1,y1 with x0 < x1 and y0 < y1")
    return box


def _finite(ctx, param, value):
    if not math.isfinite(value):
        raise click.BadParameter(f"{value!r} is not a finite number")
    return value


def gather_images(arguments):
    """(paths, problems): files as given, folders' images and videos, glob patterns' matches; in order, once each."""
    paths, problems = [], []
    for argument in arguments:
        path = Path(argument)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix.lower() in INPUT_SUFFIXES and p.is_file())
            if not found:
                problems.append(f"{path}: a folder with no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) "
                                f"or videos ({', '.join(sorted(VIDEO_SUFFIXES))})")
        elif path.is_file() or not any(char in argument for char in "*?["):
            found = [path]  # a missing file is reported by the image reader, in order
        else:
            found = sorted(Path(match) for match in glob.glob(argument, recursive=True) if Path(match).is_file())
            if not found:
                problems.append(f"{argument}: no file matches this pattern")
        paths.extend(found)
    return list(dict.fromkeys(paths)), problems


@click.command(cls=Command)
@click.argument("images", nargs=-1)
@click.option("--checkpoint", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="A prn-train checkpoint (best.pt or last.pt). Default: the shipped network "
                   "(the small preset trained on the built-in synthetic world; docs/training.md).")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False),
              help="Output folder: per image <stem>.json, <stem>_<k>.obj|ply, <stem>_depth.png, <stem>_vis.jpg; "
                   "per video <stem>.json (per-frame landmarks and pose) and <stem>_overlay.mp4.")
@click.option("--bbox", callback=_bbox, metavar="X0,Y0,X1,Y1",
              help="The face box, in pixels, of every image (instead of the detector).")
@click.option("--boxes", "boxes_file", type=click.Path(path_type=Path, dir_okay=False),
              help="JSON mapping image file name -> list of [x0, y0, x1, y1] (instead of the detector).")
@click.option("--batch-size", type=click.IntRange(min=1), default=16, show_default=True,
              help="Faces per network batch, across images.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True)
@click.option("--engine", type=click.Choice(ENGINES), default="torch", show_default=True,
              help="What runs the network: torch, or ONNX Runtime on the CPU (pip install 'prn-toolkit[onnx]'; "
                   "docs/benchmarks.md compares them).")
@click.option("--format", "mesh_format", type=click.Choice(sorted(MESH_WRITERS)), default="obj", show_default=True,
              help="Mesh files: OBJ with vertex colours, or binary PLY.")
@click.option("--smoothing", type=click.FloatRange(min=0), default=FACE_SMOOTHING, show_default=True, callback=_finite,
              help="Sigma, in pixels of the 256 UV map, of the Gaussian that smooths the dense face before the "
                   "mesh and depth map are read from it (0: the network's map as it is; landmarks never smoothed).")
@click.option("--views", type=click.Choice([str(count) for count in VIEW_SETS]), default=str(DEFAULT_VIEWS),
              show_default=True, callback=lambda ctx, param, value: int(value),
              help="Turned and mirrored copies of each face crop the network sees, their maps averaged: "
                   "more is more accurate and proportionally slower (docs/prediction.md, 'Views').")
@click.option("--reframes", type=click.IntRange(0, MAX_REFRAMES), default=DEFAULT_REFRAMES, show_default=True,
              help="Crop each face again that many times, as the training crops frame a face, from the landmarks "
                   "of a one-view pass over its crop, before the views run (docs/prediction.md, 'Reframing').")
@click.option("--landmarks", type=click.Choice(LANDMARK_READINGS), default=DEFAULT_LANDMARKS, show_default=True,
              help="'fit' the network's morphable model to each map and take its 68 landmarks, or read them from "
                   "the 'map' at the UV landmark pixels (docs/prediction.md, 'Landmarks').")
@click.option("--fit-model", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="The morphable model the checkpoint was trained for, for --landmarks fit. Default: the "
                   "built-in model when the checkpoint is of it, else the model folder its training shards "
                   "record, when still there.")
@click.option("--detector", type=click.Choice(DETECTORS), default=DEFAULT_DETECTOR, show_default=True,
              help="What finds the faces of images given without --bbox / --boxes: the RetinaFace CNN, or "
                   "OpenCV's Haar cascades (docs/prediction.md, 'Where the faces come from').")
@click.option("--uv-dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="UV assets of the checkpoint's model. Default: the folder it was trained with if present, "
                   "else the built-in model's; either only when of the checkpoint's model.")
@click.option("--export-onnx", "onnx_file", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the network as ONNX to this file (dynamic batch, opset 17) and exit; "
                   "needs pip install 'prn-toolkit[onnx]'.")
def main(images, checkpoint, out, bbox, boxes_file, batch_size, device, engine, mesh_format, smoothing, views,
         reframes, landmarks, fit_model, detector, uv_dir, onnx_file):
    """3D faces from photos and videos: IMAGES are files, folders or glob patterns.

    Videos (.avi, .mkv, .mov, .mp4, .webm) are read frame by frame. Faces
    come from --bbox, --boxes (photos only) or the face detector. A photo
    where no face is found is a result (its JSON lists none, and the last
    line names it). Exit status 0 when every image was read and predicted,
    1 when some failed (one line each), 2 for usage errors.
    """
    if onnx_file is not None:
        if images:
            raise OptionConflict("--export-onnx takes no IMAGES")
        export_onnx(checkpoint, onnx_file)
        click.echo(f"wrote {onnx_file}")
        return
    if not images:
        raise click.UsageError("give IMAGES (files, folders or glob patterns), or --export-onnx FILE")
    if out is None:
        raise click.UsageError("--out is required with IMAGES")
    if bbox is not None and boxes_file is not None:
        raise OptionConflict("--bbox and --boxes are mutually exclusive")
    boxes = read_boxes_file(boxes_file) if boxes_file is not None else None
    # torch's large activations otherwise come from fresh mmaps each batch: 2.4x slower at batch 16 on a CPU.
    reuse_freed_memory()
    predictor = Predictor.from_checkpoint(checkpoint, uv_dir, device, batch_size, progress=click.echo,
                                          engine=engine, smoothing=smoothing, views=views, landmarks=landmarks,
                                          fit_model=fit_model, detector=detector, reframes=reframes)
    paths, problems = gather_images(images)
    for problem in problems:
        click.echo(problem, err=True)
    stems = output_stems(paths)
    made = missing_folders(out)
    photos = [(path, stem) for path, stem in zip(paths, stems) if not is_video(path)]
    failures, faceless = predict_images([path for path, _ in photos], out, predictor, bbox=bbox, boxes=boxes,
                                        mesh_format=mesh_format,
                                        report=lambda line, failed=False: click.echo(line, err=failed),
                                        stems=[stem for _, stem in photos])
    if faceless:
        named = ", ".join(path.name for path in faceless[:10]) + (", ..." if len(faceless) > 10 else "")
        click.echo(f"prn-predict: no face found in {len(faceless)} of {len(photos)} photos: {named}")
    for path, stem in zip(paths, stems):
        if is_video(path):
            failures.update(_video(path, out, stem, predictor, bbox, boxes))
    remove_empty(made)   # every input failed: no empty --out folder left behind
    if failures or problems:
        click.echo(f"prn-predict: {len(failures) + len(problems)} of {len(paths) + len(problems)} inputs failed",
                   err=True)
        click.get_current_context().exit(1)


def _video(path, out, stem, predictor, bbox, boxes) -> dict:
    """Predict one video, echoing where its JSON went; {path: problem} when it failed."""
    try:
        if boxes is not None:
            raise InputError(f"{path}: --boxes gives photos' faces; for a video use --bbox or the detector")
        json_path, count, note = predict_video(path, out, stem, predictor, bbox)
    except (InputError, OSError) as error:
        line = str(error) if isinstance(error, InputError) else f"{path}: {os_error_line(error)}"
        click.echo(line, err=True)
        return {path: line}
    click.echo(f"{path}: {count} frame{'s' if count != 1 else ''} -> {json_path}")
    if note:
        click.echo(f"note: {note}", err=True)
    return {}
