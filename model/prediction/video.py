"""`prn-predict` on a video: per-frame landmarks and pose in one JSON, and an overlay video.

Frames are read with OpenCV (BGR, turned RGB), their faces found like a
photo's (one `bbox` for every frame, else the detector), and the crops of
`predictor.batch_size` frames at a time go through the network together.
The per-frame work before and after the network (detection, mapping back,
the overlay) runs on a pool of threads, one per core, as for photos (flow.py).
Files for a video `<stem>`: `<stem>.json` (fps, frame size, per frame its
index and faces: box, box_clipped, landmarks68, pose_deg; image pixels as in
outputs.py) and `<stem>_overlay.mp4` (each frame with the faces shaded over
it, landmarks and boxes: outputs.overlay; MPEG-4 Part 2, "mp4v"). No meshes.
Both are written under a temporary name and renamed, the JSON last.
"""

import contextlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from prn.model.prediction.outputs import face_record, overlay_picture
from prn.model.prediction.predictor import single_threaded_blas
from prn.model.training.threads import usable_cores
from prn.rendering.util.atomic import atomic_path
from prn.rendering.util.errors import InputError

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm"}


def is_video(path) -> bool:
    """Is this a video file name (by its extension, VIDEO_SUFFIXES)?"""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def read_frames(capture, count):
    """Up to `count` next frames of an open cv2.VideoCapture, (h, w, 3) uint8 RGB each."""
    frames = []
    while len(frames) < count:
        ok, frame = capture.read()
        if not ok or frame is None:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    return frames


def predict_video(path, out_dir, stem, predictor, bbox=None, threads=None) -> tuple:
    """Write the video's JSON and overlay video into out_dir; (JSON path, frame count). InputError naming the file.

    bbox (4,): the face box of every frame; None: the detector, per frame.
    A frame where no face is found has an empty face list and is copied
    unchanged into the overlay video. threads: of the per-frame work; None: one per usable core.
    """
    path, out_dir = Path(path), Path(out_dir)
    capture = cv2.VideoCapture(str(path))
    with single_threaded_blas(), ThreadPoolExecutor(threads or usable_cores()) as pool:
        return _predict_video(capture, path, out_dir, stem, predictor, bbox, pool)


def _predict_video(capture, path, out_dir, stem, predictor, bbox, pool) -> tuple:
    """predict_video on an opened cv2.VideoCapture, the per-frame work on `pool`."""
    try:
        if not capture.isOpened():
            raise InputError(f"{path}: not a readable video (OpenCV cannot open it)")
        first = read_frames(capture, 1)
        if not first:
            raise InputError(f"{path}: no frame could be read (an empty or damaged video)")
        fps = capture.get(cv2.CAP_PROP_FPS)
        fps = float(fps) if np.isfinite(fps) and fps > 0 else 25.0
        height, width = first[0].shape[:2]
        frames = []
        with atomic_path(out_dir / f"{stem}_overlay.mp4") as tmp, _video_writer(tmp, fps, width, height) as writer:
            batch = first + read_frames(capture, predictor.batch_size - 1)
            while batch:
                for number, frame in enumerate(batch):
                    if frame.shape[:2] != (height, width):
                        raise InputError(f"{path}: frame {len(frames) + number} is {frame.shape[1]} x "
                                         f"{frame.shape[0]}, the first {width} x {height}")
                for records, picture in _batch_outputs(predictor, path, len(frames), batch, bbox, pool):
                    frames.append({"index": len(frames), "faces": records})
                    writer.write(picture)
                batch = read_frames(capture, predictor.batch_size)
    finally:
        capture.release()
    summary = {
        "video": str(path),
        "fps": fps,
        "width": width,
        "height": height,
        "frame_count": len(frames),
        "overlay": f"{stem}_overlay.mp4",
        "coordinates": "image pixels of each frame: x right, y down, z towards the viewer (relative)",
        "frames": frames,
    }
    json_path = out_dir / f"{stem}.json"
    with atomic_path(json_path) as tmp:
        tmp.write_text(json.dumps(summary) + "\n")
    return json_path, len(frames)


def _batch_outputs(predictor, path, start, frames, bbox, pool):
    """[(face records, overlay frame (h, w, 3) uint8 BGR)] of consecutive frames, their crops through the network
    together."""
    boxes = None if bbox is None else np.asarray(bbox, dtype=np.float64).reshape(1, 4)

    def prepare(frame):
        try:
            return predictor.prepare(frame, boxes)
        except InputError as error:
            return error

    prepared = list(pool.map(prepare, frames))
    for number, crops in enumerate(prepared):
        if isinstance(crops, InputError):
            raise InputError(f"{path}: frame {start + number}: {crops}") from None

    def finish(frame, crops, posmaps):
        faces = predictor.faces(crops, posmaps)
        picture = cv2.cvtColor(overlay_picture(frame, faces, predictor.uv.triangles), cv2.COLOR_RGB2BGR)
        return [face_record(face) for face in faces], picture

    return list(pool.map(finish, frames, prepared, predictor.posmaps(prepared)))


@contextlib.contextmanager
def _video_writer(tmp, fps, width, height):
    """A cv2.VideoWriter (mp4v) whose file becomes `tmp` when the block ends without error."""
    # OpenCV picks the container from the file name, so it writes to a .mp4 name first.
    named = tmp.with_name(tmp.name + ".mp4")
    writer = cv2.VideoWriter(str(named), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    try:
        if not writer.isOpened():
            raise OSError(f"{named.parent}: OpenCV cannot write an mp4v video here")
        yield writer
        writer.release()
        os.replace(named, tmp)
    finally:
        writer.release()
        with contextlib.suppress(OSError):
            os.unlink(named)
