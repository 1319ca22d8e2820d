"""`prn-prep fit`: 3DMM coefficients for images that carry only 68 2D landmarks.

Input: images (.jpg, .jpeg, .png) anywhere under a folder, each with
`<name>.pts` (iBUG) or `<name>.mat` (a `pt2d` 2 x 68 field) beside it. Output:
the same relative paths under the output folder, the image copied unchanged
plus a 300W-LP-format `.mat` (pose, identity and expression fitted; texture,
lighting and colour left neutral, as nothing is fitted to the pixels).
"""

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from prn.pipeline.datasets import (
    SampleError,
    SampleParams,
    check_name,
    read_image,
    read_landmarks_2d,
    read_pts,
    roi_box,
    sample_fields,
)
from prn.pipeline.lock import output_lock
from prn.pipeline.provenance import claim_dataset
from prn.pipeline.stage import ChunkResult, chunks, run_chunks, worker_morphable_model
from prn.rendering.files.matfile import read_mat, write_mat
from prn.rendering.morphable.fitting import fit_landmarks
from prn.rendering.raster.shading import IDENTITY_COLOR
from prn.rendering.util.atomic import atomic_path
from prn.rendering.util.errors import InputError

CHUNK_SIZE = 64
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class FitSettings:
    face_model_dir: Path
    src_dir: Path
    out_dir: Path


def find_samples(src_dir):
    """Relative paths (without suffix) of every image or landmark file under src_dir, sorted.

    A landmark file without its image is listed too, so that it is reported.
    """
    src_dir = Path(src_dir)
    stems = set()
    for path in src_dir.rglob("*"):
        if path.suffix.lower() in IMAGE_SUFFIXES + (".pts", ".mat") and path.is_file():
            stems.add(path.relative_to(src_dir).with_suffix("").as_posix())
    return sorted(stems)


def _image_of(src_dir, stem):
    for suffix in IMAGE_SUFFIXES + tuple(s.upper() for s in IMAGE_SUFFIXES):
        candidate = Path(src_dir) / f"{stem}{suffix}"
        if candidate.is_file():
            return candidate
    raise SampleError(f"{Path(src_dir) / stem}: no image (.jpg, .jpeg or .png) beside the landmarks")


def read_input_landmarks(src_dir, stem):
    """(68, 2) landmarks of a sample from its .pts, else its .mat's pt2d."""
    pts = Path(src_dir) / f"{stem}.pts"
    if pts.is_file():
        return read_pts(pts)
    mat = Path(src_dir) / f"{stem}.mat"
    if mat.is_file():
        return read_landmarks_2d(mat, read_mat(mat))
    raise SampleError(f"{Path(src_dir) / stem}: no landmarks (.pts or .mat with pt2d)")


def fit_sample(face_model, src_dir, out_dir, stem):
    """Fit one sample and write its image and .mat; raises SampleError for bad input."""
    check_name(src_dir, stem)
    image_path = _image_of(src_dir, stem)
    landmarks = read_input_landmarks(src_dir, stem)
    height = read_image(image_path).shape[0]
    try:
        fit = fit_landmarks(face_model, landmarks, height)
    except InputError as error:
        raise SampleError(f"{Path(src_dir) / stem}: {error}") from None
    params = SampleParams(pose=fit.pose, shape=fit.shape_params, exp=fit.exp_params,
                          tex=np.zeros(len(face_model.tex_ev)), illum=np.zeros(10), color=IDENTITY_COLOR)
    fields = sample_fields(params, landmarks.T, roi_box(landmarks))
    out_image = Path(out_dir) / f"{stem}{image_path.suffix}"
    with atomic_path(out_image) as tmp:
        shutil.copyfile(image_path, tmp)
    write_mat(out_image.with_suffix(".mat"), fields)
    return fit.reprojection_error


def fit_chunk(stems, settings: FitSettings) -> ChunkResult:
    result = ChunkResult()
    face_model = worker_morphable_model(settings.face_model_dir)
    for stem in stems:
        if (settings.out_dir / f"{stem}.mat").is_file():
            result.skipped.append(stem)
            continue
        try:
            fit_sample(face_model, settings.src_dir, settings.out_dir, stem)
        except InputError as error:
            result.reject(stem, error)
            continue
        result.written.append(stem)
    return result


def fit_folder(settings: FitSettings, workers=1, scheduler=None, progress=True):
    """Fit every sample under src_dir (resuming); returns the StageSummary.

    The output folder's prn-dataset.json records the model; a folder fitted
    with another stops the run (InputError) before any sample.
    """
    if not settings.src_dir.is_dir():
        raise InputError(f"{settings.src_dir}: source folder not found")
    if settings.out_dir.resolve().is_relative_to(settings.src_dir.resolve()):
        raise InputError(f"{settings.out_dir}: the output folder must not be inside the source folder")
    worker_morphable_model(settings.face_model_dir)
    stems = find_samples(settings.src_dir)
    if not stems:
        raise InputError(f"{settings.src_dir}: no images or landmark files found")
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    with output_lock(settings.out_dir):
        claim_dataset(settings.out_dir, "fit", settings.face_model_dir, {},
                      folders=[Path(stem).parts[0] for stem in stems if len(Path(stem).parts) > 1])
        return run_chunks(fit_chunk, chunks(stems, CHUNK_SIZE), settings, settings.out_dir, workers=workers,
                          scheduler=scheduler, description="fit", progress=progress)
