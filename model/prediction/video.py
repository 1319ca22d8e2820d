"""`prn-predict` on a video: per-frame landmarks and pose in one JSON, and an overlay video.

Frames are read with OpenCV (BGR, turned RGB). With one `bbox` for every
frame, the crops of `predictor.batch_size` frames at a time go through the
network together, the per-frame work before and after it on a pool of
threads, one per core, as for photos (flow.py). Without, faces are found by
the detector and then followed: each frame's boxes are the box of the 68
landmarks predicted in the frame before, and the detector searches again
every REDETECT_EVERY frames and whenever no face is followed. That needs
each frame's landmarks before the next frame's crop, so frames go through
the network one at a time; the detector, which costs several network passes,
then runs on a fraction of the frames.
Files for a video `<stem>`: `<stem>.json` (fps, frame size, per frame its
index and faces: box, box_clipped, landmarks68, pose_deg; image pixels as in
outputs.py) and `<stem>_overlay.mp4` (each frame with the faces shaded over
it, landmarks and boxes: outputs.overlay; MPEG-4 Part 2, "mp4v"). No meshes.
Both are written under a temporary name and renamed, the JSON last.
A video that ends before the frame count its header declares (cut short,
damaged) gives the frames that could be read, and a note saying so.
FFmpeg's own log lines stay off the terminal: each problem is one line here.
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
from prn.pipeline.image_size import too_large
from prn.rendering.util.atomic import atomic_path
from prn.rendering.util.cores import usable_cores
from prn.rendering.util.errors import InputError

VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm"}
REDETECT_EVERY = 30       # frames between detector searches while faces are followed
MIN_FOLLOWED_SIDE = 8.0   # a followed face's landmark box narrower or lower than this (pixels) is dropped


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


def quiet_ffmpeg():
    """Keep FFmpeg's log ("moov atom not found", "overread") off the terminal, unless the user set its level.

    OpenCV reads OPENCV_FFMPEG_LOGLEVEL when it first opens a video, so call this before that.
    """
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")


def predict_video(path, out_dir, stem, predictor, bbox=None, threads=None) -> tuple:
    """Write the video's JSON and overlay video into out_dir; (JSON path, frame count, note or None).

    InputError naming the file when it cannot be read at all; the note says
    how many frames its header declared when fewer could be read.

    bbox (4,): the face box of every frame; None: the detector, per frame.
    A frame where no face is found has an empty face list and is copied
    unchanged into the overlay video. threads: of the per-frame work; None: one per usable core.
    """
    path, out_dir = Path(path), Path(out_dir)
    quiet_ffmpeg()
    capture = cv2.VideoCapture(str(path))
    with single_threaded_blas(), ThreadPoolExecutor(threads or usable_cores()) as pool:
        return _predict_video(capture, path, out_dir, stem, predictor, bbox, pool)


def _predict_video(capture, path, out_dir, stem, predictor, bbox, pool) -> tuple:
    """predict_video on an opened cv2.VideoCapture, the per-frame work on `pool`."""
    try:
        if not capture.isOpened():
            raise InputError(f"{path}: not a readable video (OpenCV cannot open it)")
        refused = too_large(int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        if refused is not None:
            raise InputError(f"{path}: not read: {refused}")
        first = read_frames(capture, 1)
        if not first:
            raise InputError(f"{path}: no frame could be read (an empty or damaged video)")
        fps = capture.get(cv2.CAP_PROP_FPS)
        fps = float(fps) if np.isfinite(fps) and fps > 0 else 25.0
        declared = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        declared = int(declared) if np.isfinite(declared) and declared > 0 else None
        height, width = first[0].shape[:2]
        frames, tracker = [], FaceTracker(width, height)
        with atomic_path(out_dir / f"{stem}_overlay.mp4") as tmp, _video_writer(tmp, fps, width, height) as writer:
            batch = first + read_frames(capture, predictor.batch_size - 1)
            while batch:
                for number, frame in enumerate(batch):
                    if frame.shape[:2] != (height, width):
                        raise InputError(f"{path}: frame {len(frames) + number} is {frame.shape[1]} x "
                                         f"{frame.shape[0]}, the first {width} x {height}")
                outputs = (_batch_outputs(predictor, path, len(frames), batch, bbox, pool) if bbox is not None
                           else _followed_outputs(predictor, path, len(frames), batch, tracker, pool))
                for records, picture in outputs:
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
        "frames_declared": declared,
        "overlay": f"{stem}_overlay.mp4",
        "coordinates": "image pixels of each frame: x right, y down, z towards the viewer (relative)",
        "prediction": predictor.method(),
        "frames": frames,
    }
    json_path = out_dir / f"{stem}.json"
    try:
        with atomic_path(json_path) as tmp:
            tmp.write_text(json.dumps(summary) + "\n")
    except BaseException:   # no overlay without its JSON
        (out_dir / f"{stem}_overlay.mp4").unlink(missing_ok=True)
        raise
    note = None
    if declared is not None and len(frames) < declared:
        note = (f"{path}: read {len(frames)} of the {declared} frames its header declares; the rest could not be "
                "decoded (a video cut short or damaged?)")
    return json_path, len(frames), note


class FaceTracker:
    """The boxes of a video's next frame: None (search with the detector) or the faces followed from the last frame."""

    def __init__(self, width, height):
        self.width, self.height = width, height
        self.boxes = None          # (k, 4) float64 landmark boxes of the last frame's faces, or None
        self.since_search = 0      # frames since the detector last searched

    def next_boxes(self):
        """(k, 4) boxes to crop the next frame with, or None when the detector must search it."""
        if self.boxes is None or self.since_search >= REDETECT_EVERY:
            return None
        return self.boxes

    def update(self, faces, searched):
        """Follow the faces [Face] predicted in the frame just done (searched: its boxes were the detector's)."""
        self.since_search = 0 if searched else self.since_search + 1
        boxes = []
        for face in faces:
            low = np.maximum(face.landmarks[:, :2].min(0), 0.0)
            high = np.minimum(face.landmarks[:, :2].max(0), [self.width - 1.0, self.height - 1.0])
            if np.isfinite(low).all() and np.isfinite(high).all() and (high - low >= MIN_FOLLOWED_SIDE).all():
                boxes.append([*low, *high])
        self.boxes = np.array(boxes, np.float64) if boxes else None


def _frame_outputs(predictor, frame, faces, sources):
    """(face records with their box_source, overlay frame (h, w, 3) uint8 BGR) of one frame."""
    records = [{**face_record(face), "box_source": source} for face, source in zip(faces, sources)]
    return records, cv2.cvtColor(overlay_picture(frame, faces, predictor.uv.triangles), cv2.COLOR_RGB2BGR)


def _followed_outputs(predictor, path, start, frames, tracker, pool):
    """[(face records, overlay frame)] of consecutive frames, each cropped by the tracker's boxes (module doc)."""
    pending = []
    for number, frame in enumerate(frames):
        boxes = tracker.next_boxes()
        try:
            crops = predictor.prepare(frame, boxes)
        except InputError as error:
            raise InputError(f"{path}: frame {start + number}: {error}") from None
        faces = predictor.faces(crops, predictor.posmaps([crops])[0])
        tracker.update(faces, searched=boxes is None)
        source = "detector" if boxes is None else "followed"
        pending.append(pool.submit(_frame_outputs, predictor, frame, faces, [source] * len(faces)))
    return [job.result() for job in pending]


def _batch_outputs(predictor, path, start, frames, bbox, pool):
    """[(face records, overlay frame (h, w, 3) uint8 BGR)] of consecutive frames with the box `bbox` (4,), their
    crops through the network together."""
    boxes = np.asarray(bbox, dtype=np.float64).reshape(1, 4)

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
        return _frame_outputs(predictor, frame, faces, ["bbox"] * len(faces))

    return list(pool.map(finish, frames, prepared, predictor.posmaps(prepared)))


@contextlib.contextmanager
def _video_writer(tmp, fps, width, height):
    """A cv2.VideoWriter (mp4v) whose file becomes `tmp` when the block ends without error."""
    # OpenCV picks the container from the file name, so it writes to a .mp4 name first.
    named = tmp.with_name(tmp.name + ".mp4")
    quiet_ffmpeg()
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
