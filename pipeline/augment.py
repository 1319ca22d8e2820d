"""`prn-prep augment`: new views of each shard sample, its 3D face turned in pitch, yaw and roll.

Per source sample (a row of a `build` shard): the dense face from its stored
coefficients and pose, placed in its crop; per-vertex colours from the crop
(visible vertices, the mirrored side, then a smooth fill in UV space); the
source face removed from the crop and the hole filled. Per rotation: the pose
angles plus the rotation, the face turned about its centre, re-rendered over
that background with a soft edge, then cropped and written exactly as `build`
writes (prn.pipeline.sample_geometry: position map, landmarks and pose from
the rotated geometry). Tasks, resume, rejects, the manifest and the lock
work as build's.
"""

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from prn.pipeline.lock import output_lock
from prn.pipeline.sample_geometry import VERTEX_BATCH, PlacedFace, crop_rows, sample_seed, worker_uv_table
from prn.pipeline.shards import (
    CROP_SIZE,
    UV_SIZE,
    ShardFolder,
    finished_record,
    remove_unlisted_shards,
    shard_key,
    shard_name,
    write_manifest,
    write_shard,
)
from prn.pipeline.stage import ChunkResult, run_chunks, worker_morphable_model
from prn.rendering.geometry.crop import model_to_crop
from prn.rendering.geometry.pose import rotation_matrices
from prn.rendering.morphable.uv_assets import full_triangles, uv_pixel_coords
from prn.rendering.raster.composite import composite
from prn.rendering.raster.rasterizer import rasterize, render_colors
from prn.rendering.raster.texture import fill_holes, mirror_vertices, vertex_colors
from prn.rendering.util.errors import InputError

# How far the turned face's landmarks may leave the source crop, as a share of its side.
FRAME_MARGIN = 0.1
SOURCE_FIELDS = ("image", "pose", "shape_params", "exp_params", "tform", "image_size", "subset")


@dataclass(frozen=True)
class AugmentSettings:
    face_model_dir: Path
    out_dir: Path
    layout: str                  # the source shards' layout
    rotations: tuple = ()        # grid of (pitch, yaw, roll) degrees, or () with random > 0
    random: int = 0              # rotations drawn per sample from `ranges`
    ranges: tuple = ((0.0, 0.0), (0.0, 0.0), (0.0, 0.0))
    seed: int = 0
    jitter: bool = True
    shard_size: int = 1024
    posmap_dtype: str = "float16"


@dataclass(frozen=True)
class AugmentTask:
    index: int
    src_dir: Path
    samples: tuple               # output names: "<source name>@<pitch>,<yaw>,<roll>"
    items: tuple                 # (source shard file, row, source name, (pitch, yaw, roll) degrees)

    def __len__(self):
        return len(self.samples)


MAX_DEGREES = 180.0       # |angle| of a rotation about one axis
MAX_ROTATIONS = 1000      # rotations a grid may give each sample


def parse_range(text, option):
    """'A:B:STEP' or 'A:B' or 'A' (degrees, within +-MAX_DEGREES) -> (low, high, step or None)."""
    try:
        parts = [float(v) for v in text.split(":")]
    except ValueError:
        raise InputError(f"{option} {text!r}: expected A:B:STEP in degrees") from None
    if not all(math.isfinite(part) for part in parts):
        raise InputError(f"{option} {text!r}: expected finite numbers of degrees, not nan or inf")
    if any(abs(part) > MAX_DEGREES for part in parts[:2]):
        raise InputError(f"{option} {text!r}: angles must lie within -{MAX_DEGREES:g} and {MAX_DEGREES:g} degrees")
    if len(parts) == 1:
        return parts[0], parts[0], None
    if len(parts) not in (2, 3) or parts[1] < parts[0] or (len(parts) == 3 and parts[2] <= 0):
        raise InputError(f"{option} {text!r}: expected A:B:STEP with A <= B and STEP > 0")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


def grid_values(low, high, step):
    if step is None:
        return [low] if low == high else [low, high]
    count = grid_count(low, high, step)
    return [round(low + i * step, 6) for i in range(count)]


def grid_count(low, high, step) -> int:
    """How many values grid_values gives, without making them."""
    if step is None:
        return 1 if low == high else 2
    return int(np.floor((high - low) / step + 1e-9)) + 1


def rotation_grid(pitch, yaw, roll):
    """Every combination of the three axes' values, (pitch, yaw, roll) degrees; InputError past MAX_ROTATIONS."""
    count = math.prod(grid_count(*axis) for axis in (pitch, yaw, roll))
    if count > MAX_ROTATIONS:
        raise InputError(f"--pitch, --yaw and --roll make {count:,} rotations a sample, more than {MAX_ROTATIONS:,}: "
                         "use larger steps or --random K")
    return tuple(itertools.product(*(grid_values(*axis) for axis in (pitch, yaw, roll))))


def random_rotations(settings, name):
    """`settings.random` rotations drawn uniformly in the ranges from (seed, sample name)."""
    rng = np.random.default_rng(sample_seed(settings.seed, f"augment:{name}"))
    low = np.array([r[0] for r in settings.ranges])
    high = np.array([r[1] for r in settings.ranges])
    return [tuple(np.round(rng.uniform(low, high), 3)) for _ in range(settings.random)]


def output_name(source, rotation):
    return f"{source}@{rotation[0]:+g},{rotation[1]:+g},{rotation[2]:+g}"


def plan(settings, src_dir):
    """(source manifest, [AugmentTask]): (sample, rotation) pairs in source order, in fixed slices."""
    with ShardFolder(src_dir) as folder:
        names = folder.names
    items = []
    for index, name in enumerate(names.tolist()):
        shard, row = folder.locate(index)
        rotations = settings.rotations or random_rotations(settings, name)
        items.extend((folder.files[shard], row, name, tuple(float(a) for a in rotation)) for rotation in rotations)
    if not items:
        raise InputError(f"{src_dir}: the source shards hold no samples")
    tasks = []
    for index, start in enumerate(range(0, len(items), settings.shard_size)):
        part = tuple(items[start:start + settings.shard_size])
        tasks.append(AugmentTask(index=index, src_dir=Path(src_dir), items=part,
                                 samples=tuple(output_name(item[2], item[3]) for item in part)))
    return folder.manifest, tasks


@lru_cache(maxsize=2)
def _mesh(face_model_dir):
    """Triangles, UV pixel coordinates and mirror vertices of the model, once per process."""
    face_model = worker_morphable_model(face_model_dir)
    return (full_triangles(face_model), uv_pixel_coords(face_model.uv, UV_SIZE).astype(np.float32),
            mirror_vertices(face_model.uv))


def read_sources(src_dir, items):
    """{(shard, row): dict of the source row's fields and name} for the task's items."""
    rows = {}
    with ShardFolder(src_dir) as folder:
        shards = {file: index for index, file in enumerate(folder.files)}
        for shard, row, name, _ in items:
            if (shard, row) not in rows:
                rows[(shard, row)] = {**folder.read(shards[shard], SOURCE_FIELDS, row), "name": name}
    return rows


def placed_vertices(vertices, mapping):
    """Vertices (n, 3) float32 model units through mapping (M, b) of model_to_crop: (n, 3) float32, z unshifted."""
    matrix, offset = mapping
    return (vertices @ matrix.T.astype(np.float32) + offset.astype(np.float32)).astype(np.float32)


class SourceView:
    """A source sample prepared for re-rendering: its vertices, colours and a face-free background."""

    def __init__(self, face_model, mesh, table, source, vertices):
        triangles, uv_pixels, mirror = mesh
        self.source = source
        self.vertices = vertices
        self.height = int(source["image_size"][0])
        self.pose = source["pose"].astype(np.float64)
        self.tform = source["tform"].astype(np.float64)
        placed = placed_vertices(vertices, model_to_crop(rotation_matrices(self.pose[:3]), self.pose, self.height,
                                                         self.tform))
        depth = rasterize(placed, triangles, CROP_SIZE, CROP_SIZE).depth
        self.colors = vertex_colors(source["image"], placed, triangles, table, uv_pixels, mirror, depth=depth)
        face = cv2.dilate((depth > -np.inf).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
        self.background = np.clip(fill_holes(source["image"].astype(np.float32), ~face), 0, 255).astype(np.uint8)
        self.center = vertices.astype(np.float64).mean(0)

    def turned_pose(self, rotation_deg):
        """The pose with the rotation added to its angles, the face centre kept in place."""
        pose = self.pose.copy()
        pose[:3] += np.radians(rotation_deg)
        scale = pose[6]
        centre = scale * rotation_matrices(self.pose[:3]) @ self.center + self.pose[3:6]
        pose[3:6] = centre - scale * rotation_matrices(pose[:3]) @ self.center
        return pose


def augmented_row(face_model, mesh, table, view: SourceView, rotation_deg, name, settings):
    """The shard row of one rotated view; InputError when the rotation is out of bounds."""
    triangles = mesh[0]
    pose = view.turned_pose(rotation_deg)
    if abs(np.degrees(pose[1])) > 90:
        raise InputError(f"{name}: the rotation takes |yaw| to {abs(np.degrees(pose[1])):.1f} > 90 degrees")
    face = PlacedFace(view.vertices, rotation_matrices(pose[:3]), pose, view.height, view.tform)
    mapping = face.mapping()
    placed = placed_vertices(view.vertices, mapping)
    landmarks = placed[face_model.landmarks, :2]
    margin = FRAME_MARGIN * CROP_SIZE
    if landmarks.min() < -margin or landmarks.max() > CROP_SIZE - 1 + margin:
        raise InputError(f"{name}: the rotation moves the face out of the frame")
    with_coverage = np.concatenate([view.colors, np.ones((len(placed), 1), np.float32)], axis=1)
    rendered = render_colors(placed, triangles, with_coverage, CROP_SIZE, CROP_SIZE)
    picture = composite(rendered[..., :3], rendered[..., 3] > 0, view.background)
    row = crop_rows(face_model, table, face, picture, face.landmarks(face_model, mapping)[:, :2], name, settings)
    source = view.source
    row.update({
        "shape_params": source["shape_params"],
        "exp_params": source["exp_params"],
        "image_size": source["image_size"],
        "name": name,
        "subset": source["subset"],
        "source_name": source["name"],
        "rotation_deg": np.asarray(rotation_deg, np.float32),
    })
    if settings.layout == "aflw2000":
        row["pt3d_68"] = face.landmarks(face_model, face.mapping(np.eye(3))).astype(np.float32)  # original image px
    return row


def augment_shard(task: AugmentTask, settings: AugmentSettings) -> ChunkResult:
    """Render and write one output shard (or skip it when finished)."""
    result = ChunkResult()
    face_model, table = worker_morphable_model(settings.face_model_dir), worker_uv_table(settings.face_model_dir)
    mesh = _mesh(settings.face_model_dir)
    key = {**shard_key(settings, face_model.fingerprint), "stage": "augment"}
    record = finished_record(settings.out_dir, task, key)
    if record is not None:
        result.resume(task.samples, record["rejects"])
        return result
    sources = read_sources(task.src_dir, task.items)
    order = list(sources)
    views = {}
    for start in range(0, len(order), VERTEX_BATCH):
        batch = order[start:start + VERTEX_BATCH]
        vertices = face_model.vertices(np.stack([sources[k]["shape_params"] for k in batch]),
                                  np.stack([sources[k]["exp_params"] for k in batch]))
        for k, sample_vertices in zip(batch, vertices):
            views[k] = SourceView(face_model, mesh, table, sources[k], sample_vertices)
    rows = []
    for (shard, row, _, rotation), name in zip(task.items, task.samples):
        try:
            rows.append(augmented_row(face_model, mesh, table, views[(shard, row)], rotation, name, settings))
        except InputError as error:
            result.reject(name, error)
            continue
        result.written.append(name)
    write_shard(rows, result, task, key, settings, face_model.fingerprint)
    return result


def augment(settings: AugmentSettings, src_dir, workers=1, scheduler=None, progress=True):
    """Augment every sample of the source shards (resuming); writes the manifest; returns the StageSummary."""
    src_dir = Path(src_dir)
    if settings.out_dir.resolve() == src_dir.resolve():
        raise InputError(f"{settings.out_dir}: the output folder must not be the source folder")
    face_model = worker_morphable_model(settings.face_model_dir)
    manifest, tasks = plan(settings, src_dir)
    if manifest.get("model_fingerprint") != face_model.fingerprint:
        raise InputError(f"{src_dir}: the shards were built with another model than {settings.face_model_dir} "
                         "(fingerprints differ); pass the same --model")
    settings.out_dir.mkdir(parents=True, exist_ok=True)
    with output_lock(settings.out_dir):
        summary = run_chunks(augment_shard, tasks, settings, settings.out_dir, workers=workers,
                             scheduler=scheduler, description="augment", progress=progress)
        write_manifest(settings, src_dir, tasks, face_model.fingerprint, summary.rejects)
        remove_unlisted_shards(settings.out_dir, [shard_name(task.index) for task in tasks])
    return summary
