"""`prn-predict`'s loop: read each photo, find its faces with the Predictor, write its files (outputs.py).

Per image the boxes come from one `bbox` for every image, from a boxes file
(image file name -> boxes), or from the face detector. The crops of
several images go through the network together, `predictor.batch_size` at a
time; an image that fails (unreadable, a box outside it) fails alone, with
one line naming its file. An image with no face is a result, not a failure:
its JSON lists no faces, and the outcome names it.

Reading and detecting (before the network) and mapping back and writing
files (after it) are per photo, on one core each: they run on a pool of
threads, one per core, between the network's passes, which use every core
themselves. Each photo's files depend only on that photo, and the report
lines keep the input order.
"""

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

import numpy as np

from prn.model.prediction.detect import check_detector
from prn.model.prediction.outputs import MESH_WRITERS, output_stems, write_photo_outputs
from prn.model.prediction.predictor import FaceCrops, Predictor, single_threaded_blas
from prn.pipeline.datasets import read_image
from prn.rendering.util.cores import usable_cores
from prn.rendering.util.errors import InputError, os_error_line


class Outcome(NamedTuple):
    """What became of a run's images: every image not in `failures` has its files."""

    failures: dict          # {path: problem} of the images that failed
    faceless: list          # [path] of the images read where no face was found (their JSON lists none)


def predict_images(paths, out_dir, predictor: Predictor, bbox=None, boxes=None, mesh_format="obj",
                   report=lambda line, failed=False: print(line), stems=None, threads=None) -> Outcome:
    """Predict every image; returns the Outcome: which images failed, and which had no face.

    bbox (4,): the one face box of every image; boxes: {file name: (k, 4)}
    (read_boxes_file); neither: the detector. `report(line, failed)` gets one
    line per image: where its JSON went, or (failed=True) the problem, naming the file.
    out_dir is made with the first image's files; when every image fails, none is left behind.
    stems: the output names, one per path; None: output_stems(paths).
    threads: of the per-photo work; None: one per usable core.
    """
    if mesh_format not in MESH_WRITERS:
        raise InputError(f"unknown mesh format '{mesh_format}'; expected one of {sorted(MESH_WRITERS)}")
    if bbox is None and boxes is None:
        check_detector(predictor.detector)  # a detector that cannot run: one error for the run, not one per image
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"{out_dir}: not a folder (--out)")
    paths = [Path(path) for path in paths]
    stems = output_stems(paths) if stems is None else stems
    failures, faceless, waiting = {}, [], []

    def fail(path, problem):
        failures[path] = problem
        report(problem, failed=True)

    def finish(photo, posmaps):
        """(report line, None) or (None, problem) of one photo whose position maps are known."""
        try:
            faces = predictor.faces(photo.prepared, posmaps)
            written = write_photo_outputs(out_dir, photo.stem, photo.path, photo.prepared.image, faces,
                                          photo.box_source, predictor.uv.triangles, mesh_format, predictor.method())
        except InputError as error:
            return None, f"{photo.path}: {error}"
        except OSError as error:
            return None, f"{photo.path}: {os_error_line(error)}"
        if not faces:
            return f"{photo.path}: no face found -> {written}", None
        clipped = photo.prepared.clipped.sum()
        note = f" ({clipped} box clipped to the image)" if clipped else ""
        return f"{photo.path}: {len(faces)} face{'s' if len(faces) != 1 else ''}{note} -> {written}", None

    def run_waiting(pool):
        posmaps = predictor.posmaps([photo.prepared for photo in waiting])
        for photo, (line, problem) in zip(waiting, pool.map(finish, waiting, posmaps)):
            if problem is not None:
                fail(photo.path, problem)
            else:
                report(line)
                if not len(photo.prepared.boxes):
                    faceless.append(photo.path)
        waiting.clear()

    def prepare(item):
        path, stem = item
        try:
            return _prepare(predictor, path, stem, bbox, boxes)
        except InputError as error:
            return str(error)

    with single_threaded_blas(), ThreadPoolExecutor(threads or usable_cores()) as pool:
        items = list(zip(paths, stems))
        for start in range(0, len(items), predictor.batch_size):
            chunk = items[start:start + predictor.batch_size]
            for (path, _), photo in zip(chunk, pool.map(prepare, chunk)):
                if isinstance(photo, str):
                    fail(path, photo)
                    continue
                waiting.append(photo)
                if sum(len(photo.prepared.crops) for photo in waiting) >= predictor.batch_size:
                    run_waiting(pool)
        if waiting:
            run_waiting(pool)
    return Outcome(failures, faceless)


class Photo(NamedTuple):
    """An image file with its faces cut out, waiting for the network."""

    path: Path
    stem: str               # the output files' name (output_stems)
    box_source: str         # "bbox", "boxes file" or "detector"
    prepared: FaceCrops


def _prepare(predictor, path, stem, bbox, boxes) -> Photo:
    """One image file with its faces (maybe none) cropped; InputError naming the file."""
    if bbox is not None:
        given, source = np.asarray(bbox, dtype=np.float64).reshape(1, 4), "bbox"
    elif boxes is not None:
        if path.name not in boxes:
            raise InputError(f"{path}: no entry '{path.name}' in the boxes file")
        given, source = boxes[path.name], "boxes file"
    else:
        given, source = None, "detector"
    image = read_image(path)
    try:
        prepared = predictor.prepare(image, given)
    except InputError as error:
        raise InputError(f"{path}: {error}") from None
    return Photo(path, stem, source, prepared)
